"""Several Ray nodes on this machine: trials asking for a custom resource run only where it is offered; losing a
node mid-experiment moves its trials to the remaining nodes from their checkpoints, the lost attempts are
recorded as PREEMPTED, and every trial is in Parquet and MLflow exactly once."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from search.records import read_trials
from tests.conftest import ROOT
from tests.helpers import tiny_config

_SCRIPT = Path(sys.executable).parent / "hypernas"
HYPERNAS = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]
TRIALS = 6


def _journal(folder: Path) -> list[dict]:
    path = folder / "journal.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.endswith("}")] if path.is_file() else []


class LocalCluster:
    """tests/local_cluster.py in its own process: a head (no CPUs), two one-CPU workers, one worker with accel."""

    def __init__(self) -> None:
        # Token auth stays on: a token of its own for this cluster (Ray's test Cluster does not create one, unlike
        # ray.init), which its drivers present too
        self.env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS",
                                                                      "RAY_AUTH_TOKEN_PATH")}
        self.env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.local_cluster", "--workers", "2", "--special", '{"accel": 2}'], cwd=ROOT,
            env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        info = json.loads(self.process.stdout.readline())
        self.address, self.workers, self.special = info["address"], info["workers"], info["special"]

    def remove(self, node_id: str) -> None:
        self.process.stdin.write(f"remove {node_id}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "removed"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("shutdown\n")
            self.process.stdin.flush()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster():
    cluster = LocalCluster()
    yield cluster
    cluster.stop()


def run_cli(cluster, args, **kwargs):
    return subprocess.Popen([*HYPERNAS, *args], cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def test_custom_resources_place_trials_only_where_offered(cluster, tmp_path):
    config = tiny_config("accel", budget={"trials": 4, "max_concurrent": 2},
                         resources={"cpus": 1, "custom": {"accel": 1}})
    path = tmp_path / "accel.yaml"
    path.write_text(yaml.safe_dump(config))
    driver = run_cli(cluster, ["run", str(path), "--workdir", str(tmp_path / "w"), "--address", cluster.address])
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output.decode()[-3000:]
    rows = read_trials(tmp_path / "w" / "accel")
    assert len(rows) == 4 and {r["node"].rsplit("/", 1)[-1] for r in rows} == {cluster.special[:8]}


def test_a_lost_worker_node_preempts_its_trials_and_nothing_is_lost(cluster, tmp_path):
    driver = None
    workers = cluster.workers
    try:
        # trial 0 runs through; the others are held before epoch 2 until the node is gone: the node is lost with a
        # trial on it mid-run, after another ended, whatever the machine's speed
        release = tmp_path / "release"
        config = tiny_config("nodes", budget={"trials": TRIALS, "max_concurrent": 2},
                             scheduler={"type": "none", "max_epochs": 4}, tolerance={"max_retries": 3},
                             faults=[{"trials": list(range(1, TRIALS)), "hang_at_epoch": 2,
                                      "release_file": str(release)}])
        path = tmp_path / "nodes.yaml"
        path.write_text(yaml.safe_dump(config))
        workdir, folder = tmp_path / "w", tmp_path / "w" / "nodes"
        driver = run_cli(cluster, ["run", str(path), "--workdir", str(workdir), "--address", cluster.address])
        deadline = time.monotonic() + 240
        victim = None
        while time.monotonic() < deadline and victim is None:  # until a trial ended and a held one reported
            events = _journal(folder)
            running = {e["number"] for e in events if e["kind"] == "started"} - {
                e["number"] for e in events if e["kind"] == "ended"}
            held_on = {e["node"].rsplit("/", 1)[-1] for e in events
                       if e["kind"] == "result" and e.get("node") and e["number"] in running}
            if any(e["kind"] == "ended" for e in events) and held_on:  # the head has no CPU: trials run on workers
                victim = next((w for w in [*workers, cluster.special] if w[:8] in held_on), None)
            time.sleep(0.2)
        assert victim is not None, "no trial reached a worker node"
        cluster.remove(victim)  # the node is lost, its trials with it
        release.touch()
        output, _ = driver.communicate(timeout=600)
        assert driver.returncode == 0, output.decode()[-3000:]
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)

    rows = read_trials(folder)
    assert sorted(r["number"] for r in rows) == list(range(TRIALS))  # every trial exactly once
    assert all(r["state"] == "COMPLETE" and r["epochs_run"] == 4 for r in rows)
    preempted = [r for r in rows if r["attempt_history"] and
                 any(a["state"] == "PREEMPTED" for a in json.loads(r["attempt_history"]))]
    assert preempted, "the lost node's trials were recorded as PREEMPTED for the lost attempt"
    # trials ran on the lost node and on others (which others, and where a preempted trial ends, is Ray's call: a
    # worker process of the removed node may even finish its epochs before it notices its raylet is gone)
    ran_on = {e["node"].rsplit("/", 1)[-1] for e in _journal(folder) if e["kind"] == "result" and e.get("node")}
    assert victim[:8] in ran_on and len(ran_on) >= 2
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("nodes").experiment_id])
    numbers = sorted(int(r.data.tags["hypernas.trial_number"]) for r in runs if "hypernas.trial_number" in r.data.tags)
    assert numbers == list(range(TRIALS))
    assert all(r.data.tags.get(f"hypernas.attempt{a['attempt']}.state") == "PREEMPTED" for r in runs
               for row in preempted if r.data.tags.get("hypernas.trial_number") == str(row["number"])
               for a in json.loads(row["attempt_history"]) if a["state"] == "PREEMPTED")
