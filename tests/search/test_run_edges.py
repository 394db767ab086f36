"""Real runs at the edges: failing trials, a time budget, a user's Parquet table."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search import run_experiment, run_sealed_test
from search._mlflow import PARENT_ID_TAG
from search._optuna import load_study
from search.cli import main
from search.records import read_trials
from tests.helpers import tiny_config


def test_a_failing_trial_is_failed_with_its_traceback_and_the_rest_go_on(ray_session, tmp_path,
                                                                          env_without_tracking):
    config = tiny_config("failing", trainer="tests.helpers:failing_train",
                         space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
                         metric={"name": "val_loss", "mode": "min"}, searcher="random",
                         scheduler={"type": "none", "max_epochs": 3}, budget={"trials": 6, "max_concurrent": 2},
                         tolerance={"max_retries": 0})  # retries: test_fault_tolerance; each costs a new worker here
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    rows = read_trials(result.folder)
    assert len(rows) == 6
    for row in rows:
        assert row["state"] == ("FAILED" if row["params"]["x"] > 0.5 else "COMPLETE")
        if row["state"] == "FAILED":
            assert "boom in trial" in row["error"] and row["epochs_run"] == 1
    assert {r["state"] for r in rows} == {"FAILED", "COMPLETE"}  # random seed 0 draws both kinds
    study = load_study(result.folder / "optuna.journal", "failing")
    assert {t.number: t.state for t in study.trials} == {
        r["number"]: TrialState.FAIL if r["state"] == "FAILED" else TrialState.COMPLETE for r in rows}
    client = MlflowClient(result.tracking_uri)
    children = client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                                  f"tags.`{PARENT_ID_TAG}` = '{result.parent_run_id}'")
    failed = [c for c in children if c.data.tags["hypernas.state"] == "FAILED"]
    assert failed and all(c.info.status == "FAILED" for c in failed)
    traceback = client.download_artifacts(failed[0].info.run_id, "traceback.txt", str(tmp_path))
    assert "RuntimeError: boom in trial" in open(traceback).read()


def test_time_budget_ends_the_experiment_early(ray_session, tmp_path, env_without_tracking):
    # Every trial hangs at epoch 2, so no trial can end by itself and no third one can start: only the time budget
    # can end this experiment before the stall watchdog (120 s, then fail_fast) would, however busy the machine.
    config = tiny_config("timed", scheduler={"type": "none", "max_epochs": 4},
                         budget={"trials": 500, "max_concurrent": 2, "time_budget_s": 8},
                         tolerance={"stall_timeout_s": 120, "fail_fast": True},
                         faults=[{"trials": list(range(500)), "hang_at_epoch": 2}])
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    rows = read_trials(result.folder)
    # the trials the budget cut short are PRUNED (stopped before max_epochs), never FAILED by the watchdog
    assert len(rows) <= 2 and all(r["state"] == "PRUNED" and r["epochs_run"] <= 1 for r in rows)
    assert sum(result.counts.values()) == len(rows) and result.counts["RUNNING"] == 0
    study = load_study(result.folder / "optuna.journal", "timed")  # no trial left RUNNING in Optuna either
    assert {t.number: t.state.name for t in study.trials if t.number in {r["number"] for r in rows}} == {
        r["number"]: r["state"] for r in rows}
    assert all(t.state != TrialState.RUNNING for t in study.trials)


def test_search_over_a_users_parquet_table(ray_session, tmp_path, env_without_tracking):
    rng = np.random.default_rng(0)
    n = 600
    label = rng.integers(0, 3, n)
    features = {f"f{i}": rng.normal(size=n) + (label == i % 3) * 2.0 for i in range(6)}
    path = tmp_path / "mine.parquet"
    pq.write_table(pa.table({**features, "kind": np.array(["a", "b", "c"])[label]}), path)
    config = tiny_config("mine", data={"source": "parquet", "path": str(path), "label": "kind"},
                         budget={"trials": 3, "max_concurrent": 2})
    result = run_experiment(config, workdir=tmp_path / "w", stream=io.StringIO())
    assert result.counts["COMPLETE"] >= 1
    entry = run_sealed_test(tmp_path / "w", "mine")
    assert abs(entry["test_split_size"] - 120) <= 3 and entry["test_metrics"]["test_accuracy"] > 0.6  # chance: 1/3
    path.rename(tmp_path / "moved.parquet")  # the data moved away: status still reads the journal
    assert main(["status", "mine", "--workdir", str(tmp_path / "w")]) == 0
