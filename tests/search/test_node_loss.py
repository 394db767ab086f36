"""Losing a Ray node mid-experiment: its trials move to the remaining node from their checkpoints, the lost
attempts are recorded as PREEMPTED, and every trial is in Parquet and MLflow exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from search.records import read_trials
from tests.conftest import ROOT
from tests.helpers import tiny_config

_SCRIPT = Path(sys.executable).parent / "hypernas"
HYPERNAS = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]
TRIALS = 6


def _journal(folder: Path) -> list[dict]:
    path = folder / "records.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.endswith("}")] if path.is_file() else []


def test_a_lost_worker_node_preempts_its_trials_and_nothing_is_lost(tmp_path):
    # A head that runs no trials and two one-CPU workers: a multi-node Ray cluster on this machine.
    cluster = subprocess.Popen([sys.executable, "-m", "tests.local_cluster", "--workers", "2"], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    driver = None
    try:
        info = json.loads(cluster.stdout.readline())
        workers = info["workers"]
        config = tiny_config("nodes", budget={"trials": TRIALS, "max_concurrent": 2},
                             scheduler={"type": "none", "max_epochs": 4}, tolerance={"max_retries": 3},
                             faults=[{"trials": list(range(TRIALS)), "slow": 40}])
        path = tmp_path / "nodes.yaml"
        path.write_text(yaml.safe_dump(config))
        workdir, folder = tmp_path / "w", tmp_path / "w" / "nodes"
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
        driver = subprocess.Popen([*HYPERNAS, "run", str(path), "--workdir", str(workdir), "--address", info["address"]],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        deadline = time.monotonic() + 240
        victim = None
        while time.monotonic() < deadline and victim is None:  # wait until some trial has reported from a worker
            results = [e for e in _journal(folder) if e["op"] == "result" and e.get("node")]
            if any(e["op"] == "ended" for e in _journal(folder)) and results:
                node_ids = {e["node"].rsplit("/", 1)[-1] for e in results}
                running = {e["number"] for e in _journal(folder) if e["op"] == "started"} - {
                    e["number"] for e in _journal(folder) if e["op"] == "ended"}
                if running:
                    victim = next((w for w in workers if w[:8] in node_ids), None)
            time.sleep(0.2)
        assert victim is not None, "no trial reached a worker node"
        cluster.stdin.write(f"remove {victim}\n")  # the node is lost, its trials with it
        cluster.stdin.flush()
        assert cluster.stdout.readline().strip() == "removed"
        output, _ = driver.communicate(timeout=600)
        assert driver.returncode == 0, output.decode()[-3000:]
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        if cluster.poll() is None:
            cluster.stdin.write("shutdown\n")
            cluster.stdin.flush()
            try:
                cluster.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(cluster.pid, signal.SIGKILL)

    rows = read_trials(folder)
    assert sorted(r["number"] for r in rows) == list(range(TRIALS))  # every trial exactly once
    assert all(r["state"] == "COMPLETE" and r["epochs_run"] == 4 for r in rows)
    preempted = [r for r in rows if r["attempt_history"] and
                 any(a["state"] == "PREEMPTED" for a in json.loads(r["attempt_history"]))]
    assert preempted, "the lost node's trials were recorded as PREEMPTED for the lost attempt"
    assert len({r["node"] for r in rows}) >= 2  # trials ran on more than one node
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("nodes").experiment_id])
    numbers = sorted(int(r.data.tags["hypernas.trial_number"]) for r in runs if "hypernas.trial_number" in r.data.tags)
    assert numbers == list(range(TRIALS))
    assert all(r.data.tags.get(f"hypernas.attempt{a['attempt']}.state") == "PREEMPTED" for r in runs
               for row in preempted if r.data.tags.get("hypernas.trial_number") == str(row["number"])
               for a in json.loads(row["attempt_history"]) if a["state"] == "PREEMPTED")
