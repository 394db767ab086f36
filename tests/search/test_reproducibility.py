"""Reproducible experiments on real local Ray: same seed, same trials.parquet — sequentially in the default async
mode, and at any concurrency in strict mode."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from search import run_experiment
from search.records import reproducible_view
from tests.helpers import tiny_config


def run(tmp_path, name, **changes):
    config = tiny_config(name, **changes)
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO(), overwrite=True,
                            overrides=["name=same"])  # one name: trial ids and folders are the only differences
    view = reproducible_view(pq.read_table(result.trials_path))
    events = pq.read_table(result.events_path).to_pylist()
    return result, view, events


def test_same_seed_sequential_runs_are_identical(ray_session, tmp_path, env_without_tracking):
    budget = {"trials": 6, "max_concurrent": 1}
    _, first, first_events = run(tmp_path / "a", "seq", budget=budget)
    _, second, second_events = run(tmp_path / "b", "seq", budget=budget)
    assert first == second
    assert {r["state"] for r in first} >= {"COMPLETE", "PRUNED"}
    strip = lambda events: [{k: v for k, v in e.items() if k != "time"} for e in events]  # noqa: E731
    assert strip(first_events) == strip(second_events)  # the same asks, tells and decisions, in the same order
    _, other_seed, _ = run(tmp_path / "c", "seq", budget=budget, seed=1)
    assert other_seed != first


def test_strict_mode_is_identical_at_any_concurrency(ray_session, tmp_path, env_without_tracking):
    views = {}
    for concurrency in (1, 2, 4):
        # cpus 0.5: four trials fit on two cores, and every trial still gets one torch thread
        _, views[concurrency], _ = run(
            tmp_path / str(concurrency), "strict", reproducible={"mode": "strict", "generation_size": 4},
            budget={"trials": 8, "max_concurrent": concurrency}, resources={"cpus": 0.5},
            scheduler={"type": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2})
    assert views[1] == views[2] == views[4]
    assert {r["state"] for r in views[1]} >= {"COMPLETE", "PRUNED"}


def test_strict_scheduler_decides_rungs_in_trial_number_order(ray_session):
    """Results arriving out of order are held (NOOP) and decided as if the trials had run one by one — on Tune's real
    controller, which then stops the held trials decided STOP and sends the others' actors a training task."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

    from search._tune._scheduling import ObservedScheduler
    from search.config import load_config
    from search.events import EventLog
    from tests.search.test_internals import as_tune_reports, running_trials, tune_controller

    def asha():
        scheduler = AsyncHyperBandScheduler(time_attr="epoch", max_t=8, grace_period=1, reduction_factor=2)
        scheduler.set_search_properties("val_accuracy", "max")
        return scheduler

    values = {0: 0.5, 1: 0.4, 2: 0.6, 3: 0.3}
    cfg = load_config(tiny_config())  # metric val_accuracy, max
    events = EventLog()
    strict = ObservedScheduler(asha(), cfg, events, strict=True)
    controller = tune_controller(strict)
    trials = running_trials(controller, 4)
    for n in (3, 1, 2):  # rung-1 results arrive before trial 0's: each is held
        result = {"epoch": 1, "val_accuracy": values[n]}
        assert as_tune_reports(controller, strict, trials[n], result) == TrialScheduler.NOOP
    assert [e["trial"] for e in events.rows if e["kind"] == "wait"] == [3, 1, 2]
    assert controller.actions == []
    decisions = {0: as_tune_reports(controller, strict, trials[0], {"epoch": 1, "val_accuracy": values[0]})}
    # the held trials were decided, lowest number first, and Tune acted on each decision
    assert [n for _, n in controller.actions] == [1, 2, 3]
    for action, n in controller.actions:
        decisions[n] = TrialScheduler.STOP if action == "stop" else TrialScheduler.CONTINUE
        assert action in ("stop", "train")
        assert (trials[n].status == Trial.TERMINATED) == (action == "stop")
        assert (trials[n] in controller.get_live_trials()) == (action == "train")

    sequential = asha()  # the same results, one trial after another
    for trial in trials:
        sequential.on_trial_add(None, trial)
    expected = {n: sequential.on_trial_result(None, trials[n], {"epoch": 1, "val_accuracy": values[n]}) for n in range(4)}
    assert decisions == expected and TrialScheduler.STOP in expected.values()
    rung_rows = [e for e in events.rows if e["kind"] == "decision"]
    assert [e["trial"] for e in rung_rows] == [0, 1, 2, 3] and all(e["rung"] == 1 for e in rung_rows)
