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

from search._optuna import AskTellStudy, load_study
from search._tune._searcher import OptunaSearcher
from search.config import load_config
from search.events import EventLog
from search.journal import JOURNAL_FILE, Journal
from search.records import read_trials
from search.seeds import derive_seed
from tests.conftest import ROOT
from tests.helpers import hypernas_in_process, tiny_config
from trainers.hardware import TIMING_METRICS

_SCRIPT = Path(sys.executable).parent / "hypernas"
HYPERNAS = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]
TRIALS = 8


def journal(folder: Path) -> list[dict]:
    path = folder / "journal.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _ended_and_mid_way(entries: list[dict]) -> bool:
    """Three trials ended, and a running one has reported an epoch."""
    ended = {e["number"] for e in entries if e["kind"] == "ended"}
    return len(ended) >= 3 and any(e["kind"] == "result" and e["number"] not in ended for e in entries)


def _put_tune_snapshot_out_of_step(tune_dir: Path, promotion: str) -> None:
    """Leave Ray Tune's snapshot as a crash in the middle of its background copy to storage can: Tune writes the
    trial list, its search generator's state and the searcher's state as separate files, copied one after another.
    async: the trial list was copied, the searcher's state not yet (a first copy); ordered: the generator's count is
    from a later moment than the trial list (two more trials created). batched: as Tune left it. The resumed run must
    go by the trials Tune actually restored, whatever the rest says (this reads Tune's own file format)."""
    from ray import cloudpickle

    if promotion == "async":
        for path in [*tune_dir.glob("search_gen_state-*"), *tune_dir.glob("searcher-state-*")]:
            path.unlink()
    elif promotion == "ordered":
        path = sorted(tune_dir.glob("search_gen_state-*"))[-1]
        state = cloudpickle.loads(path.read_bytes())
        state["counter"] += 2
        path.write_bytes(cloudpickle.dumps(state))


# async: Ray's ASHA (the default); ordered: trials parked undecided at a rung when the driver dies must be decided
# again on resume (rungs rebuilt from the decision log), and none may resume undecided; batched: trials sharing
# workers (resources.trials_per_worker) resume from their own checkpoints on the new driver's new workers
@pytest.mark.parametrize("promotion", ["async", "ordered", "batched"])
def test_kill_9_then_resume_finishes_with_every_trial_once(ray_session, tmp_path, monkeypatch, capsys, promotion):
    # Trials 0-2 run through; the later ones report epoch 1 (a checkpoint to resume from) and are held before
    # epoch 2 — ASHA's first rung, so none is pruned before — until the release, after the kill: the driver dies
    # with trials ended and trials mid-way, whatever the machine's speed.
    release = tmp_path / "release"
    batched = promotion == "batched"
    config = tiny_config("crash", budget={"trials": TRIALS, "max_concurrent": 4 if batched else 2},
                         scheduler={"type": "asha", "max_epochs": 4, "grace_period": 2, "reduction_factor": 2,
                                    "promotion": "async" if batched else promotion},
                         faults=[{"trials": list(range(3, TRIALS)), "hang_at_epoch": 2, "release_file": str(release)}],
                         resources={"cpus": 1, "trials_per_worker": 4 if batched else 1})
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir, folder = tmp_path / "w", tmp_path / "w" / "crash"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    with open(tmp_path / "driver.log", "w") as log:  # kept with the test's folder, to read on a failure
        driver = subprocess.Popen([*HYPERNAS, "run", str(path), "--workdir", str(workdir)], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _ended_and_mid_way(journal(folder)):
            assert driver.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()
    release.touch()
    _put_tune_snapshot_out_of_step(folder / "tune", promotion)
    before = journal(folder)
    ended_before = {e["number"] for e in before if e["kind"] == "ended"}
    running_before = {e["number"] for e in before if e["kind"] == "started"} - ended_before
    assert len(ended_before) >= 3 and json.loads((folder / "state.json").read_text())["status"] == "running"

    done = hypernas_in_process(monkeypatch, capsys, "resume", "crash", "--workdir", str(workdir))
    (tmp_path / "resume.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]

    after = journal(folder)[len(before):]
    restarted = {e["number"] for e in after if e["kind"] == "started"}
    assert not restarted & ended_before  # completed trials were not run again
    for number in running_before & restarted:  # running ones continued from their last recorded checkpoint
        reported_before = {e["epoch"]: e["metrics"] for e in before if e["kind"] == "result" and e["number"] == number}
        reported_after = {e["epoch"]: e["metrics"] for e in after if e["kind"] == "result" and e["number"] == number}
        # Tune resumes from the newest checkpoint its last state snapshot names: the epoch after, or slightly
        # earlier when the crash fell between a report and that snapshot ...
        assert min(reported_after) <= max(reported_before, default=0) + 1
        for epoch in set(reported_before) & set(reported_after):  # ... and an epoch run twice is bit-identical
            strip = lambda m: {k: v for k, v in m.items() if k not in TIMING_METRICS}  # noqa: E731
            assert strip(reported_before[epoch]) == strip(reported_after[epoch])

    if batched:  # the resumed trials trained on the new driver's workers, from their own checkpoints
        assert running_before & restarted
        assert all("batch_members" in e["metrics"] for e in after if e["kind"] == "result")
    rows = read_trials(folder)
    assert [r["number"] for r in rows] == list(range(TRIALS))  # each number once: none asked and lost at the crash
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    study = load_study(folder / "optuna.journal", "crash")  # the sampler kept its history
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert sorted(t.number for t in finished) == sorted(r["number"] for r in rows)
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    numbers = [r.data.tags["hypernas.trial_number"] for r in runs if "hypernas.trial_number" in r.data.tags]
    assert sorted(numbers, key=int) == [str(n) for n in range(TRIALS)]  # reattached: no duplicate child runs
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        if "hypernas.trial_number" in run.data.tags:
            row = next(r for r in rows if str(r["number"]) == run.data.tags["hypernas.trial_number"])
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
            assert steps == list(range(1, row["epochs_run"] + 1))  # every epoch logged once, none missing


def test_trials_asked_after_tunes_last_snapshot_run_again_under_their_numbers(tmp_path):
    """A driver killed between asking Optuna for a trial and Tune's next snapshot: Tune's restored state does not
    know the trial, Optuna holds it RUNNING. The resumed searcher offers it first, same number and configuration —
    also one the crash cut off mid-ask (TPE's first model-based ask is slow): its stored parameters are kept."""
    cfg = load_config(tiny_config("reoffer", budget={"trials": TRIALS, "max_concurrent": 2}))
    journal_path, snapshot = tmp_path / "optuna.journal", tmp_path / "searcher.json"
    seed = derive_seed(cfg.seed, "sampler")
    live = OptunaSearcher(AskTellStudy.create(cfg.name, cfg.space, cfg.searcher, seed, cfg.metric.mode, journal_path),
                          cfg, EventLog(Journal(tmp_path / JOURNAL_FILE)), TRIALS)
    first, second = live.suggest("t0"), live.suggest("t1")
    live.on_trial_complete("t0", {"epoch": first["epochs"], "val_accuracy": 0.5})
    live.save(str(snapshot))  # Tune's last snapshot: trial 1 live, trial 0 done
    late = live.suggest("t2")  # asked after the snapshot
    cut = live.study.study.ask()  # the next ask: one parameter stored, then the driver dies
    lr = cut.suggest_float("lr", 1e-3, 3e-2, log=True)

    study = AskTellStudy.load(cfg.name, cfg.space, cfg.searcher, seed, journal_path)
    journal, entries = Journal.open(tmp_path)  # the journal as the crash left it: asks of trials 0, 1, 2
    logged = EventLog(journal)
    logged.replay(entries)
    resumed = OptunaSearcher(study, cfg, logged, TRIALS, finished=frozenset({0}))
    resumed.restore(str(snapshot))
    assert resumed.numbers == {"t1": second["trial_number"]}
    again = resumed.suggest("u0")
    assert again == late and again["trial_number"] == 2  # same number, configuration, seed and epochs
    completed = resumed.suggest("u1")
    assert completed["trial_number"] == 3 and completed["params"]["lr"] == lr
    cfg.space.check(completed["params"])  # a whole configuration
    assert resumed.suggest("u2")["trial_number"] == 4  # then new trials
    assert [t.number for t in study.study.trials] == [0, 1, 2, 3, 4]  # none asked twice
    assert [r["trial"] for r in logged.rows if r["kind"] == "ask"] == [0, 1, 2, 3, 4]  # each ask logged once


def test_strict_generations_go_on_where_they_stood_after_a_restart(tmp_path):
    """Strict mode after a restart: a trial the records saw end but Optuna was never told of (it waited for a
    lower-numbered one) is told; the next generation waits until every earlier trial is told, then asks what is
    left of the budget."""
    cfg = load_config(tiny_config("strict", budget={"trials": 4, "max_concurrent": 2},
                                  reproducible={"mode": "strict", "generation_size": 2}))
    journal_path, snapshot = tmp_path / "optuna.journal", tmp_path / "searcher.json"
    seed = derive_seed(cfg.seed, "sampler")
    live = OptunaSearcher(AskTellStudy.create(cfg.name, cfg.space, cfg.searcher, seed, cfg.metric.mode, journal_path),
                          cfg, EventLog(), 4)
    first, second = live.suggest("t0"), live.suggest("t1")
    assert live.suggest("t2") is None  # the generation of two is out
    live.on_trial_complete("t1", {"epoch": second["epochs"], "val_accuracy": 0.5})  # waits for trial 0's tell
    live.save(str(snapshot))  # then the driver dies: trial 1 ended in the records, Optuna not told

    study = AskTellStudy.load(cfg.name, cfg.space, cfg.searcher, seed, journal_path)
    resumed = OptunaSearcher(study, cfg, EventLog(), 4, finished=frozenset({1}))
    resumed.tell_ended(1, "COMPLETE")
    resumed.restore(str(snapshot))
    assert study.study.trials[1].state == TrialState.COMPLETE and study.study.trials[1].value == 0.5
    assert resumed.suggest("u0") is None  # trial 0 is not told yet: no new generation
    resumed.on_trial_complete("t0", {"epoch": first["epochs"], "val_accuracy": 0.25})
    assert [resumed.suggest("u1")["trial_number"], resumed.suggest("u2")["trial_number"]] == [2, 3]
    assert resumed.suggest("u3") is None  # the budget of four is asked
    assert len(study.study.trials) == 4
