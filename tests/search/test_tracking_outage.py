"""A real MLflow tracking server that goes away mid-run: the experiment continues, the records stay complete,
and `hypernas sync` back-fills MLflow once the server is back."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search import run_experiment
from search.cli import main
from search.records import read_trials
from tests.helpers import tiny_config

TRIALS = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """`mlflow server` on 127.0.0.1 over a SQLite file; this test starts and stops its own process group."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port, self.process = folder, port, None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", "1", "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
                   "--artifacts-destination", str(self.folder / "artifacts")]
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "mlflow server exited"
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError("mlflow server did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


@pytest.fixture
def server(tmp_path):
    server = MlflowServer(tmp_path / "server", _free_port())
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


def _ended(folder: Path) -> int:
    path = folder / "records.jsonl"
    return path.read_text().count('"op": "ended"') if path.is_file() else 0


def test_outage_mid_run_then_sync(ray_session, tmp_path, server):
    config = tiny_config("outage", tracking={"uri": server.uri}, budget={"trials": TRIALS, "max_concurrent": 2},
                         faults=[{"trials": list(range(TRIALS)), "slow": 30}])
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
