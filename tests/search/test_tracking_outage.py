"""A real MLflow tracking server that goes away mid-run: the experiment continues, the records stay complete,
and `hypernas sync` back-fills MLflow once the server is back."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search import run_experiment
from search.cli import main
from search.records import read_trials
from tests.helpers import tiny_config
from tests.servers import MlflowServer

TRIALS = 6


@pytest.fixture
def server(tmp_path):
    server = MlflowServer(tmp_path / "server")
    server.start()
    yield server
    server.stop()


def _ended(folder: Path) -> int:
    path = folder / "journal.jsonl"
    return path.read_text().count('"kind": "ended"') if path.is_file() else 0


def test_outage_mid_run_then_sync(ray_session, tmp_path, server):
    # trials 0 and 1 run through; the others are held before epoch 2 until the server is down: the outage comes
    # mid-run, with trials ended before it and trials running across it, whatever the machine's speed
    release = tmp_path / "release"
    config = tiny_config("outage", tracking={"uri": server.uri}, budget={"trials": TRIALS, "max_concurrent": 2},
                         scheduler={"type": "asha", "max_epochs": 4, "grace_period": 2, "reduction_factor": 2},
                         faults=[{"trials": list(range(2, TRIALS)), "hang_at_epoch": 2, "release_file": str(release)}])
    workdir, folder = tmp_path / "w", tmp_path / "w" / "outage"
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=run_experiment(
        config, workdir=workdir, stream=io.StringIO())), daemon=True)
    runner.start()
    deadline = time.monotonic() + 180
    while _ended(folder) < 2 and time.monotonic() < deadline and runner.is_alive():
        time.sleep(0.2)
    assert _ended(folder) >= 2 and runner.is_alive()
    server.stop()  # the tracking server goes away mid-run
    release.touch()
    runner.join(timeout=300)
    assert not runner.is_alive() and "result" in outcome  # the experiment went on and finished

    rows = read_trials(folder)
    assert len(rows) == TRIALS and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)  # records complete
    state = json.loads((folder / "state.json").read_text())
    assert state["status"] == "finished" and state["tracking_complete"] is False and state["tracking_errors"]

    server.start()  # back again, same store
    assert main(["sync", "outage", "--workdir", str(workdir)]) == 0
    client = MlflowClient(server.uri)
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert "trials.parquet" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_number = {}
    for child in children:
        by_number.setdefault(int(child.data.tags["hypernas.trial_number"]), []).append(child)
    assert sorted(by_number) == list(range(TRIALS)) and all(len(v) == 1 for v in by_number.values())
    for row in rows:
        child = by_number[row["number"]][0]
        assert child.data.tags["hypernas.state"] == row["state"] and child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
        assert steps == list(range(1, row["epochs_run"] + 1))
    assert json.loads((folder / "state.json").read_text())["tracking_complete"] is True
    assert main(["sync", "outage", "--workdir", str(workdir)]) == 0  # idempotent: nothing left to write
