"""Reproducible experiments on real local Ray: same seed, same trials.parquet — sequentially in the default async
mode; strict mode's ordering on Tune's real controller (and at any concurrency: tests/search/test_simulate.py)."""

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


# Strict mode at any concurrency: tests/search/test_simulate.py runs one real strict experiment (two trials at a time,
# Tune holding trials at rungs) and replays it on the simulator at 1, 3 and 50 workers — the same trials, values,
# rung decisions and cutoffs (three real runs at concurrency 1, 2 and 4 used to check this, for 30 s). How Tune acts
# on a held trial's decision is tested on Tune's real controller just below.


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
