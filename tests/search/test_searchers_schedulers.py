"""Every searcher and scheduler on real local Ray, and a user's own trainer, each a few tiny trials."""

from __future__ import annotations

import io

import pytest

from search import run_experiment, run_sealed_test
from search._optuna import load_study
from search.records import read_trials
from tests.helpers import tiny_config

COMBOS = [
    ("random", {"type": "hyperband", "max_epochs": 3, "reduction_factor": 2}),
    ("cmaes", {"type": "median", "max_epochs": 3, "grace_period": 1, "min_samples_required": 2}),
    ("grid", {"type": "none", "max_epochs": 2}),
]


@pytest.mark.parametrize("searcher, scheduler", COMBOS, ids=[c[0] + "+" + c[1]["type"] for c in COMBOS])
def test_searcher_and_scheduler_run_every_trial(ray_session, tmp_path, env_without_tracking, searcher, scheduler):
    space = tiny_config()["space"]
    if searcher == "grid":
        space = {"lr": {"type": "categorical", "choices": [0.003, 0.01]}, "width": {"type": "categorical",
                 "choices": [16, 32]}, "batch_size": 64}
    # HyperBand pauses trials and takes no max_concurrent: the 2 CPUs bound it to 2 trials at a time.
    budget = {"trials": 6} if scheduler["type"] == "hyperband" else {"trials": 6, "max_concurrent": 2}
    config = tiny_config(f"combo-{searcher}", space=space, searcher={"type": searcher}, scheduler=scheduler,
                         budget=budget)
    out = io.StringIO()
    result = run_experiment(config, workdir=tmp_path, stream=out)
    rows = read_trials(result.folder)
    expected = 4 if searcher == "grid" else 6  # the grid has 4 points: the budget is capped, with a note
    assert len(rows) == expected and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    if scheduler["type"] == "hyperband":  # paused trials resumed from their checkpoints, and some were stopped
        assert {r["state"] for r in rows} == {"COMPLETE", "PRUNED"}
    if searcher == "grid":
        assert "grid has 4 points" in out.getvalue()
        assert len({tuple(sorted(r["params"].items())) for r in rows}) == 4
        assert all(r["state"] == "COMPLETE" for r in rows)  # no scheduler: every trial trains its budget
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
