"""Ordered promotion (``scheduler.promotion: ordered``): ASHA's rungs decided in trial-number order, a trial whose
turn has not come parked (paused, its slot given to the next trial) — so slow trials never change which trials
are promoted, and no slot waits for them."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from search import run_experiment
from search._tune._scheduling import ObservedScheduler
from search._tune._slots import TrialSlots
from search.config import load_config
from search.events import EventLog
from search.journal import JOURNAL_FILE
from search.records import read_trials, reproducible_view
from tests.helpers import tiny_config


def _asha():
    scheduler = AsyncHyperBandScheduler(time_attr="epoch", max_t=8, grace_period=1, reduction_factor=2)
    scheduler.set_search_properties("val_accuracy", "max")
    return scheduler


class _Controller:
    """The two things the scheduler asks of Tune's controller here: the trials, and stopping one."""

    def __init__(self, trials):
        self.trials, self.stopped = trials, []

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        self.stopped.append(trial.config["trial_number"])
        trial.status = Trial.TERMINATED


def test_parked_trials_are_decided_in_order_and_resume_only_when_promoted():
    trials = [SimpleNamespace(trial_id=f"t{n}", config={"trial_number": n}, status=Trial.RUNNING) for n in range(4)]
    values = {0: 0.5, 1: 0.6, 2: 0.7, 3: 0.3}
    controller, events = _Controller(trials), EventLog()
    slots = TrialSlots(2)  # the one owner of the limit, shared with the searcher
    ordered = ObservedScheduler(_asha(), load_config(tiny_config()), events, park=True, slots=slots)
    for trial in trials:
        ordered.on_trial_add(controller, trial)
    for n in (3, 1, 2):  # rung-1 results arriving before trial 0's: each trial is paused, not held in its slot
        assert ordered.on_trial_result(controller, trials[n], {"epoch": 1, "val_accuracy": values[n]}) == TrialScheduler.PAUSE
        trials[n].status = Trial.PAUSED  # what Tune does with a PAUSE once the checkpoint is saved
    assert ordered.parked() == 3 and [e["trial"] for e in events.rows if e["kind"] == "wait"] == [3, 1, 2]
    assert ordered.choose_trial_to_run(controller) is None  # undecided parked trials never resume
    assert slots.parked == {1, 2, 3} and slots.free_for_new(live=4)  # the searcher may start a trial meanwhile

    assert ordered.on_trial_result(controller, trials[0], {"epoch": 1, "val_accuracy": values[0]}) == TrialScheduler.CONTINUE
    sequential = _asha()  # the same results, one trial after another
    for trial in trials:
        sequential.on_trial_add(None, trial)
    expected = {n: sequential.on_trial_result(None, trials[n], {"epoch": 1, "val_accuracy": values[n]}) for n in range(4)}
    assert sorted(controller.stopped) == sorted(n for n, d in expected.items() if d == TrialScheduler.STOP) != []
    promoted = [n for n in (1, 2, 3) if expected[n] == TrialScheduler.CONTINUE]
    assert promoted and ordered.parked() == 0
    rungs = [e["trial"] for e in events.rows if e["kind"] == "decision"]
    assert rungs == [0, 1, 2, 3]  # decided lowest number first

    # a promoted trial resumes when a slot is free (max_concurrent 2: trial 0 runs, so one more may start)
    assert ordered.choose_trial_to_run(controller) is trials[promoted[0]]
    trials[promoted[0]].status = Trial.RUNNING
    assert ordered.choose_trial_to_run(controller) is None  # two running: the next promotion waits its turn


def _config(name, faults):
    # random search: which configurations are asked does not depend on when results arrive, so any difference
    # between the two runs would come from the scheduler
    # the stall watchdog far away: held trials report nothing until released
    return tiny_config(name, searcher={"type": "random"}, faults=faults, resources={"cpus": 0.5},
                       budget={"trials": 8, "max_concurrent": 3}, tolerance={"stall_timeout_s": 600},
                       scheduler={"type": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2,
                                  "promotion": "ordered"})


def _run(tmp_path, name, faults):
    result = run_experiment(_config(name, faults), workdir=tmp_path, stream=io.StringIO(), overrides=["name=same"])
    return result, reproducible_view(pq.read_table(result.trials_path))


def _parked(folder: Path) -> set[int]:
    """Trials the journal shows parked at a rung (read while the driver writes it: a half-written line is skipped)."""
    parked = set()
    for line in (folder / JOURNAL_FILE).read_text().splitlines() if (folder / JOURNAL_FILE).is_file() else []:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry["kind"] == "wait" and '"parked": true' in entry["detail"]:
            parked.add(entry["trial"])
    return parked


def test_slow_trials_do_not_change_promotions(ray_session, tmp_path, env_without_tracking):
    # Trials 0 and 1 are held before they report epoch 1 until every later trial has reached rung 1 and been
    # parked there: the slowest a trial can be, and the overtaking happens on every machine, not only a fast one.
    release = tmp_path / "release"
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(run=_run(tmp_path / "slow", "slow", [
        {"trials": [0, 1], "hang_at_epoch": 1, "release_file": str(release)}])), daemon=True)
    runner.start()
    deadline = time.monotonic() + 300
    while _parked(tmp_path / "slow" / "same") != set(range(2, 8)):
        assert runner.is_alive() and time.monotonic() < deadline, "the later trials were not all parked"
        time.sleep(0.2)
    release.touch()
    runner.join(timeout=300)
    slow, slow_view = outcome["run"]

    # The clean run, on the simulator: the same sampler and Ray's ASHA over the slow run's own curves, with every
    # trial on time (tests/search/test_simulate.py checks such replays decide as the real run did). Ordered
    # promotion must have stopped the same trials at the same rungs, with bit-identical values.
    from search.simulate import simulate_experiment

    clean = simulate_experiment(_config("same", []), curves=slow.folder, workers=3, workdir=tmp_path / "clean",
                                tracking=False, plots=False, stream=io.StringIO())
    clean_view = reproducible_view(pq.read_table(clean.trials_path))
    assert slow_view == clean_view
    assert {r["state"] for r in clean_view} >= {"COMPLETE", "PRUNED"}
    rows = read_trials(slow.folder)
    assert [r["number"] for r in rows] == list(range(8))  # every trial once
    # the flag agrees with the recorded times (how it compares peers is tested on fixed numbers in test_records)
    assert all(r["straggler"] == (r["straggler_ratio"] >= 2.0) for r in rows if r["straggler_ratio"] is not None)
    events = pq.read_table(slow.events_path).to_pylist()
    parked = [e for e in events if e["kind"] == "wait" and '"parked": true' in e["detail"]]
    assert parked  # trials overtook the stragglers, were parked, and still got the decision a clean run gives them
    # a parked trial that was promoted resumed from its checkpoint and kept its one MLflow child run
    from mlflow.tracking import MlflowClient

    from search._mlflow import PARENT_ID_TAG
    client = MlflowClient(slow.tracking_uri)
    experiment = client.get_run(slow.parent_run_id).info.experiment_id
    runs = client.search_runs([experiment], f"tags.`{PARENT_ID_TAG}` = '{slow.parent_run_id}'")
    assert sorted(int(r.data.tags["hypernas.trial_number"]) for r in runs) == list(range(8))
    epochs_run = {r["number"]: r["epochs_run"] for r in rows}
    resumed = {e["trial"] for e in parked if epochs_run[e["trial"]] > e["epoch"]}
    assert resumed  # at least one parked trial was promoted and trained on
    for run in runs:
        number = int(run.data.tags["hypernas.trial_number"])
        if number in resumed:  # one curve, every epoch once, across the pause
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
            assert steps == list(range(1, epochs_run[number] + 1))
