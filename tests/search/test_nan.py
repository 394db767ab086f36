"""A trial whose final metric is NaN or infinite is FAILED — in the records, Parquet, MLflow and Optuna — and is never
the winner; a NaN report is never promoted by ASHA."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from ray.tune.schedulers import TrialScheduler
from search import run_experiment
from search._mlflow import PARENT_ID_TAG
from search._optuna import AskTellStudy, load_study
from search._tune._scheduling import ObservedScheduler, make_scheduler
from search._tune._searcher import OptunaSearcher
from search.config import load_config
from search.events import EventLog
from search.journal import JOURNAL_FILE, Journal
from search.records import ExperimentRecords, final_state, pick_best, read_trials
from search.selection import best_trial
from tests.helpers import tiny_config

NAN_AT_END, NAN_MID_CURVE = 1, 2  # trial numbers nan_train treats specially


def nan_train(spec, reporter):
    """A trainer for tests: trial ``NAN_AT_END`` has the best values of all until its last epoch, which is NaN;
    trial ``NAN_MID_CURVE`` reports NaN at epoch 2 only; the others report ``0.5 + x / epoch``."""
    for epoch in range(1, spec.epochs + 1):
        value = 0.5 + spec.params["x"] / epoch
        if spec.trial_number == NAN_AT_END:
            value = math.nan if epoch == spec.epochs else 0.01 / epoch
        elif spec.trial_number == NAN_MID_CURVE and epoch == 2:
            value = math.nan
        reporter.report(epoch, {"val_loss": value})


nan_train.metrics = ("val_loss",)


@pytest.mark.parametrize("final", [math.nan, math.inf, -math.inf])
def test_a_non_finite_last_epoch_fails_the_trial_and_never_wins(tmp_path, final):
    assert final_state(3, 3, errored=False, final_value=final) == "FAILED"
    assert final_state(1, 3, errored=False, final_value=final) == "FAILED"  # stopped there: not PRUNED either
    assert final_state(3, 3, errored=False, final_value=0.2) == "COMPLETE"
    assert final_state(3, 3, errored=False, final_value=None) == "COMPLETE"

    records = ExperimentRecords("val_loss", "min", journal=Journal(tmp_path / JOURNAL_FILE))
    for number, values in ((0, [0.5, 0.4, 0.3]), (1, [0.2, 0.1, final]), (2, [0.6, math.nan, 0.35])):
        records.started(number, f"t{number}", number, {}, 3)
        for epoch, value in enumerate(values, start=1):
            records.result(number, epoch, {"val_loss": value}, None)
        records.ended(number, "COMPLETE")
    records.close()
    failed = records.trials[1]
    assert failed.state == "FAILED" and failed.error == f"final val_loss is {final}"
    assert failed.last_value != failed.last_value or math.isinf(failed.last_value)  # the value as reported
    assert failed.best_value == 0.1 and failed.best_epoch == 2  # the curve stays on record
    assert records.trials[2].state == "COMPLETE" and records.trials[2].last_value == 0.35  # NaN mid-curve only
    assert records.best().number == 0
    assert pick_best(records.trial_rows(), "min")["number"] == 0
    assert records.counts()["FAILED"] == 1
    replayed = ExperimentRecords.read(tmp_path, "val_loss", "min")
    assert replayed.trials[1].state == "FAILED" and replayed.best().number == 0


def test_pick_best_never_takes_a_non_finite_value():
    rows = [{"number": 0, "state": "COMPLETE", "last_value": 0.5},
            {"number": 1, "state": "COMPLETE", "last_value": math.inf},  # e.g. a table written before this rule
            {"number": 2, "state": "COMPLETE", "last_value": math.nan}]
    assert pick_best(rows, "max")["number"] == 0
    assert pick_best([{"number": 0, "state": "COMPLETE", "last_value": -math.inf}], "min") is None


def _cfg(**sections):
    return load_config(tiny_config("nan", trainer="tests.search.test_nan:nan_train",
                                   space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
                                   metric={"name": "val_loss", "mode": "min"}, searcher="random", **sections))


def test_optuna_is_told_fail_for_a_nan_end(tmp_path):
    cfg = _cfg(scheduler={"type": "none", "max_epochs": 3})
    study = AskTellStudy.create("nan", cfg.space, cfg.searcher, 0, "min", tmp_path / "optuna.journal")
    searcher = OptunaSearcher(study, cfg, EventLog(), trials=2)
    for trial_id, values in (("a", [0.2, 0.1, math.nan]), ("b", [0.6, 0.5, 0.4])):
        assert searcher.suggest(trial_id) is not None
        for epoch, value in enumerate(values[:-1], start=1):
            searcher.on_trial_result(trial_id, {"epoch": epoch, "val_loss": value})
        searcher.on_trial_complete(trial_id, {"epoch": 3, "val_loss": values[-1]})  # Tune passes the last result
    told = {t.number: (t.state, t.value) for t in study.study.trials}
    assert told == {0: (TrialState.FAIL, None), 1: (TrialState.COMPLETE, 0.4)}


def test_asha_never_promotes_a_nan_report():
    cfg = _cfg(scheduler={"type": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2})
    trials = [SimpleNamespace(trial_id=f"t{n}", config={"trial_number": n}, status="RUNNING") for n in range(3)]
    raw = make_scheduler(cfg.scheduler)
    raw.set_search_properties("val_loss", "min")
    inner = make_scheduler(cfg.scheduler)
    inner.set_search_properties("val_loss", "min")
    events = EventLog()
    observed = ObservedScheduler(inner, cfg, events)
    for trial in trials:
        raw.on_trial_add(None, trial)
        observed.on_trial_add(None, trial)
    reports = [(trials[0], 0.3), (trials[1], 0.4), (trials[2], math.nan)]
    # Ray's ASHA alone lets the NaN through its rung (NaN < cutoff is False) — why hypernas decides it first
    assert [raw.on_trial_result(None, t, {"epoch": 1, "val_loss": v}) for t, v in reports] == [
        TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.CONTINUE]
    assert [observed.on_trial_result(None, t, {"epoch": 1, "val_loss": v}) for t, v in reports] == [
        TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.STOP]
    rung = dict(observed.rungs(trials[0]))[1]
    assert set(rung) == {"t0", "t1"}  # the NaN is not recorded at the rung, where it would skew later cutoffs
    assert "val_loss is nan" in events.rows[-1]["detail"] and events.rows[-1]["decision"] == TrialScheduler.STOP


def test_a_real_run_fails_the_nan_trial_everywhere(ray_session, tmp_path, env_without_tracking):
    config = tiny_config("nan", trainer="tests.search.test_nan:nan_train",
                         space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
                         metric={"name": "val_loss", "mode": "min"}, searcher="random",
                         scheduler={"type": "none", "max_epochs": 3}, budget={"trials": 4, "max_concurrent": 2},
                         tolerance={"max_retries": 0})
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    rows = {row["number"]: row for row in read_trials(result.folder)}
    assert sorted(rows) == [0, 1, 2, 3]
    nan_row = rows[NAN_AT_END]
    assert nan_row["state"] == "FAILED" and nan_row["error"] == "final val_loss is nan"
    assert nan_row["epochs_run"] == 3 and math.isnan(nan_row["last_value"]) and nan_row["best_value"] == 0.005
    assert all(rows[n]["state"] == "COMPLETE" for n in (0, 2, 3))  # a NaN mid-curve alone fails nothing

    study = load_study(result.folder / "optuna.journal", "nan")
    assert {t.number: t.state for t in study.trials} == {
        0: TrialState.COMPLETE, NAN_AT_END: TrialState.FAIL, 2: TrialState.COMPLETE, 3: TrialState.COMPLETE}

    client = MlflowClient(result.tracking_uri)
    experiment_id = client.get_run(result.parent_run_id).info.experiment_id
    runs = {int(r.data.tags["hypernas.trial_number"]): r for r in client.search_runs(
        [experiment_id], f"tags.`{PARENT_ID_TAG}` = '{result.parent_run_id}'")}
    assert runs[NAN_AT_END].info.status == "FAILED" and runs[NAN_AT_END].data.tags["hypernas.state"] == "FAILED"
    assert all(runs[n].info.status == "FINISHED" for n in (0, 2, 3))

    winner = min((0, 2, 3), key=lambda n: rows[n]["last_value"])  # the best finite end, not trial 1's stale 0.005
    assert result.best["number"] == winner and best_trial(tmp_path, "nan")["trial"] == winner
