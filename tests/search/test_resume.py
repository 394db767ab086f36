"""Driver crash: `kill -9` of `hypernas run` mid-experiment, then `hypernas resume` finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search._optuna import load_study
from search.records import read_trials
from tests.conftest import ROOT
from tests.helpers import tiny_config
from trainers.hardware import TIMING_METRICS

_SCRIPT = Path(sys.executable).parent / "hypernas"
HYPERNAS = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]
TRIALS = 8


def journal(folder: Path) -> list[dict]:
    path = folder / "records.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


# async: Ray's ASHA (the default); ordered: trials parked undecided at a rung when the driver dies must be decided
# again on resume (rungs rebuilt from the decision log), and none may resume undecided
@pytest.mark.parametrize("promotion", ["async", "ordered"])
def test_kill_9_then_resume_finishes_with_every_trial_once(tmp_path, promotion):
    config = tiny_config("crash", budget={"trials": TRIALS, "max_concurrent": 2},
                         scheduler={"type": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2,
                                    "promotion": promotion},
                         faults=[{"trials": list(range(TRIALS)), "slow": 40}])  # trials long enough to die mid-way
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir, folder = tmp_path / "w", tmp_path / "w" / "crash"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    driver = subprocess.Popen([*HYPERNAS, "run", str(path), "--workdir", str(workdir)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and sum(e["op"] == "ended" for e in journal(folder)) < 3:
            assert driver.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()
    before = journal(folder)
    ended_before = {e["number"] for e in before if e["op"] == "ended"}
    running_before = {e["number"] for e in before if e["op"] == "started"} - ended_before
    assert len(ended_before) >= 3 and json.loads((folder / "state.json").read_text())["status"] == "running"

    done = subprocess.run([*HYPERNAS, "resume", "crash", "--workdir", str(workdir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    after = journal(folder)[len(before):]
    restarted = {e["number"] for e in after if e["op"] == "started"}
    assert not restarted & ended_before  # completed trials were not run again
    for number in running_before & restarted:  # running ones continued from their last recorded checkpoint
        reported_before = {e["epoch"]: e["metrics"] for e in before if e["op"] == "result" and e["number"] == number}
        reported_after = {e["epoch"]: e["metrics"] for e in after if e["op"] == "result" and e["number"] == number}
        # Tune resumes from the newest checkpoint its last state snapshot names: the epoch after, or slightly
        # earlier when the crash fell between a report and that snapshot ...
        assert min(reported_after) <= max(reported_before, default=0) + 1
        for epoch in set(reported_before) & set(reported_after):  # ... and an epoch run twice is bit-identical
            strip = lambda m: {k: v for k, v in m.items() if k not in TIMING_METRICS}  # noqa: E731
            assert strip(reported_before[epoch]) == strip(reported_after[epoch])

    rows = read_trials(folder)
    assert len(rows) == TRIALS and len({r["number"] for r in rows}) == TRIALS
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    study = load_study(folder / "optuna.journal", "crash")  # the sampler kept its history
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert sorted(t.number for t in finished) == sorted(r["number"] for r in rows)
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    numbers = [r.data.tags["hypernas.trial_number"] for r in runs if "hypernas.trial_number" in r.data.tags]
    assert sorted(numbers, key=int) == [str(r["number"]) for r in rows]  # reattached: no duplicate child runs
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        if "hypernas.trial_number" in run.data.tags:
            row = next(r for r in rows if str(r["number"]) == run.data.tags["hypernas.trial_number"])
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
            assert steps == list(range(1, row["epochs_run"] + 1))  # every epoch logged once, none missing
