"""Straggler and fault tolerance on real local Ray: stall kill and retry, exceptions, stragglers — nothing lost."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search import run_experiment
from search._mlflow import PARENT_ID_TAG
from search._optuna import load_study
from search.records import read_trials
from tests.helpers import tiny_config

# The watchdog counts from a trial's start, a fresh worker's imports included: 8 s leaves a loaded 2-core machine
# room to start a worker that is not hung (at 4 s one could be killed as stalled before its first epoch).
STALL_TIMEOUT_S = 8


def children(result):
    client = MlflowClient(result.tracking_uri)
    experiment = client.get_run(result.parent_run_id).info.experiment_id
    return client, client.search_runs([experiment], f"tags.`{PARENT_ID_TAG}` = '{result.parent_run_id}'")


def test_stalls_exceptions_and_stragglers(ray_session, tmp_path, env_without_tracking):
    faults = [
        {"trials": [1], "hang_at_epoch": 2, "first_attempt_only": True},  # stalls once, then recovers
        {"trials": [2], "hang_at_epoch": 2},                              # stalls every attempt: fails at last
        {"trials": [3], "raise_at_epoch": 2, "first_attempt_only": True},  # raises once, then recovers
        {"trials": [4], "slow": 4},                                       # a straggler
    ]
    config = tiny_config("faults", scheduler={"type": "none", "max_epochs": 3}, budget={"trials": 7, "max_concurrent": 2},
                         tolerance={"stall_timeout_s": STALL_TIMEOUT_S, "max_retries": 1}, faults=faults)
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    rows = {r["number"]: r for r in read_trials(result.folder)}
    assert sorted(rows) == list(range(7))  # every trial present exactly once

    history = {n: json.loads(r["attempt_history"] or "[]") for n, r in rows.items()}
    assert rows[1]["state"] == "COMPLETE" and rows[1]["attempts"] == 2
    assert [(a["attempt"], a["state"], a["epochs_run"]) for a in history[1]] == [(1, "STALLED", 1)]
    assert rows[2]["state"] == "FAILED" and [a["state"] for a in history[2]] == ["STALLED", "STALLED"]
    assert rows[3]["state"] == "COMPLETE" and [a["state"] for a in history[3]] == ["FAILED"]
    assert "injected fault: raise at epoch 2 (attempt 1)" in history[3][0]["error"]
    for n in (0, 4, 5, 6):
        assert rows[n]["state"] == "COMPLETE" and rows[n]["attempts"] == 1 and not history[n]
    # The drill makes every epoch of trial 4 take 4x its own training time as its worker measures it (exact, not
    # a race). Whether that also makes it 2x its peers depends on how busy the machine is, so the flag is checked
    # for agreeing with the recorded times here; the peer comparison itself is tested on fixed numbers in
    # test_records and measured in bench/stragglers.py.
    curves = [c for c in pq.read_table(result.curves_path).to_pylist() if c["trial"] == 4]
    assert [c["epoch"] for c in curves] == [1, 2, 3]
    assert all(c["epoch_wall_s"] >= 4 * c["epoch_time_s"] for c in curves)
    assert rows[4]["straggler_ratio"] is not None and rows[4]["straggler"] == (rows[4]["straggler_ratio"] >= 2.0)
    assert all(rows[n]["epochs_run"] == 3 for n in (0, 1, 3, 4, 5, 6))  # retries resumed and finished

    events = pq.read_table(result.events_path).to_pylist()
    kills = [e for e in events if e["kind"] == "stall_kill"]
    assert sorted(e["trial"] for e in kills) == [1, 2, 2] and all(e["value"] >= STALL_TIMEOUT_S for e in kills)

    client, runs = children(result)
    by_number = {}
    for run in runs:
        by_number.setdefault(int(run.data.tags["hypernas.trial_number"]), []).append(run)
    assert sorted(by_number) == list(range(7)) and all(len(v) == 1 for v in by_number.values())  # no duplicates
    failed = by_number[2][0]
    assert failed.info.status == "FAILED" and failed.data.tags["hypernas.attempt1.state"] == "STALLED"
    assert {"attempt-1-stalled.txt", "attempt-2-stalled.txt"} <= {a.path for a in client.list_artifacts(failed.info.run_id)}
    recovered = by_number[3][0]
    assert recovered.info.status == "FINISHED" and recovered.data.tags["hypernas.attempt1.state"] == "FAILED"
    assert [m.step for m in client.get_metric_history(recovered.info.run_id, "val_accuracy")] == [1, 2, 3]

    study = {t.number: t.state for t in load_study(result.folder / "optuna.journal", "faults").trials}
    assert study[2] == TrialState.FAIL and study[1] == study[3] == TrialState.COMPLETE
