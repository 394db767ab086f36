"""HyperBand on real local Ray (paused trials resumed from checkpoints), and a user's own trainer, a few tiny trials
each; every searcher × scheduler pair runs on the simulator (tests/search/test_simulate.py)."""

from __future__ import annotations

import io

import pytest

from search import run_experiment, run_sealed_test
from search._optuna import load_study
from search.records import read_trials
from tests.helpers import tiny_config

# Every searcher with every scheduler runs on the simulator (tests/search/test_simulate.py: the same OptunaSearcher
# and ObservedScheduler over Ray's scheduler classes, no training). Here, on real Ray, the one pair whose real path
# the simulator cannot stand in for: HyperBand pausing trials and Tune resuming them from their checkpoints.
COMBOS = [
    ("random", {"type": "hyperband", "max_epochs": 3, "reduction_factor": 2}),
]


@pytest.mark.parametrize("searcher, scheduler", COMBOS, ids=[c[0] + "+" + c[1]["type"] for c in COMBOS])
def test_searcher_and_scheduler_run_every_trial(ray_session, tmp_path, env_without_tracking, searcher, scheduler):
    # HyperBand pauses trials and takes no max_concurrent: the 2 CPUs bound it to 2 trials at a time.
    config = tiny_config(f"combo-{searcher}", searcher={"type": searcher}, scheduler=scheduler, budget={"trials": 6})
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    rows = read_trials(result.folder)
    assert len(rows) == 6 and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    # paused trials resumed from their checkpoints, and some were stopped
    assert {r["state"] for r in rows} == {"COMPLETE", "PRUNED"}
    study = load_study(result.folder / "optuna.journal", f"combo-{searcher}")
    assert sorted(t.state.name for t in study.trials) == sorted(r["state"] for r in rows)


def test_users_own_trainer_runs_and_can_be_tested(ray_session, tmp_path, env_without_tracking):
    from search.config import read_config_file
    from tests.conftest import ROOT

    config = read_config_file(ROOT / "examples" / "custom_trainer.yaml")
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO(),
                            overrides=["budget.trials=3", "data.num_samples=1000", "scheduler.max_epochs=2",
                                       "scheduler.grace_period=1"])
    assert sum(result.counts.values()) == 3 and result.counts["FAILED"] == 0
    entry = run_sealed_test(tmp_path, "custom-trainer")
    assert 0.1 < entry["test_metrics"]["test_accuracy"] < 1 and entry["test_metric"] == "test_accuracy"
