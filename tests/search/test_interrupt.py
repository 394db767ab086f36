"""Ctrl-C (SIGINT) and SIGTERM to a real `hypernas run`: running trials end INTERRUPTED (not PRUNED, not final in
Optuna, MLflow KILLED), the experiment is `interrupted`, the exit code is 130/143, the message names
`hypernas resume`, and `hypernas resume` then finishes the budget from the checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search._optuna import load_study
from search._tune._run import _HIDE_TUNE_RESUME_HINTS, _TUNE_LOG, _TuneStop
from search.interruption import Interrupted, SignalGuard
from search.records import read_trials
from tests.conftest import ROOT
from tests.helpers import hypernas_in_process, tiny_config
from tests.search.test_resume import HYPERNAS, journal
from trainers.hardware import TIMING_METRICS

TRIALS = 6


def _start(tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path, Path]:
    # Trial 0 runs through; every other trial reports epoch 1 and is then held (before reporting epoch 2) until
    # _release: the moment "one trial ended, another mid-run" comes and lasts, whatever the machine's speed. ASHA's
    # first rung is at epoch 2, so no trial is pruned before it is held.
    config = tiny_config(name, budget={"trials": TRIALS, "max_concurrent": 2},
                         scheduler={"type": "asha", "max_epochs": 4, "grace_period": 2, "reduction_factor": 2},
                         faults=[{"trials": list(range(1, TRIALS)), "hang_at_epoch": 2,
                                  "release_file": str(_release(tmp_path))}])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "w"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        # its own process group, as a shell gives a foreground job: Ctrl-C goes to the whole group
        driver = subprocess.Popen([*HYPERNAS, "run", str(path), "--workdir", str(workdir)], cwd=ROOT, env=env,
                                  stdout=out, stderr=err, start_new_session=True)
    return driver, workdir, workdir / name


def _release(tmp_path: Path) -> Path:
    """The file whose existence lets held trials go on (created before resuming)."""
    return tmp_path / "release"


def _wait_for_mid_run(driver: subprocess.Popen, folder: Path) -> None:
    """Until one trial has ended and another is running with at least one epoch reported (and checkpointed)."""
    deadline = time.monotonic() + 300
    while True:
        events = journal(folder)
        ended = {e["number"] for e in events if e["kind"] == "ended"}
        reporting = {e["number"] for e in events if e["kind"] == "result"} - ended
        if ended and reporting:
            return
        assert driver.poll() is None, "the driver ended before it could be interrupted"
        assert time.monotonic() < deadline, "no trial ended while another ran"
        time.sleep(0.2)


def _output(tmp_path: Path) -> str:
    return (tmp_path / "out.txt").read_text() + (tmp_path / "err.txt").read_text()


def _runs(workdir: Path, name: str) -> tuple[dict[int, object], object]:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    children = [r for r in runs if "hypernas.trial_number" in r.data.tags]
    by_number = {int(r.data.tags["hypernas.trial_number"]): r for r in children}
    assert len(by_number) == len(children)  # one child run per trial number
    return by_number, next(r for r in runs if r.data.tags.get("hypernas.role") == "experiment")


def test_ctrl_c_interrupts_and_resume_finishes_the_budget(ray_session, tmp_path, monkeypatch, capsys):
    driver, workdir, folder = _start(tmp_path, "ctrlc")
    try:
        _wait_for_mid_run(driver, folder)
        os.killpg(driver.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
        code = driver.wait(timeout=180)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    output = _output(tmp_path)
    assert code == 130, output[-3000:]
    assert f"hypernas resume ctrlc --workdir {workdir}" in output
    assert "Tuner.restore" not in output and "hypernas test" not in output

    assert json.loads((folder / "state.json").read_text())["status"] == "interrupted"
    before = journal(folder)
    rows = {r["number"]: r for r in read_trials(folder)}
    interrupted = {n for n, r in rows.items() if r["state"] == "INTERRUPTED"}
    assert interrupted, rows
    # nothing was stopped by anything but the scheduler: every other trial ended COMPLETE, or PRUNED by a decision
    events = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    stopped = {e["trial"] for e in events if e["kind"] == "decision" and e["decision"] == "STOP"}
    for number, row in rows.items():
        assert row["state"] in ("COMPLETE", "INTERRUPTED") or (row["state"] == "PRUNED" and number in stopped), row
    study = load_study(folder / "optuna.journal", "ctrlc")
    optuna_states = {t.number: t.state for t in study.trials}
    assert all(optuna_states[n] == TrialState.RUNNING for n in interrupted)  # not told anything final
    runs, parent = _runs(workdir, "ctrlc")
    for number in interrupted:
        assert runs[number].info.status == "KILLED" and runs[number].data.tags["hypernas.state"] == "INTERRUPTED"
    assert parent.info.status == "KILLED" and parent.data.tags["hypernas.state"] == "INTERRUPTED"

    _release(tmp_path).touch()
    done = hypernas_in_process(monkeypatch, capsys, "resume", "ctrlc", "--workdir", str(workdir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((folder / "state.json").read_text())["status"] == "finished"

    after = journal(folder)[len(before):]
    assert not {e["number"] for e in after if e["kind"] == "started"} - set(range(TRIALS))
    for number in interrupted:  # continued from its checkpoints, not from scratch
        reported_before = {e["epoch"]: e["metrics"] for e in before if e["kind"] == "result" and e["number"] == number}
        reported_after = {e["epoch"]: e["metrics"] for e in after if e["kind"] == "result" and e["number"] == number}
        if reported_before and reported_after:
            # from the last epoch's checkpoint; or the one before when the signal came between an epoch's report
            # and Tune's saving of its checkpoint (a separate step) — then that epoch runs again, bit-identical
            assert max(reported_before) <= min(reported_after) <= max(reported_before) + 1
            for epoch in set(reported_before) & set(reported_after):
                strip = lambda m: {k: v for k, v in m.items() if k not in TIMING_METRICS}  # noqa: E731
                assert strip(reported_before[epoch]) == strip(reported_after[epoch])
    rows = read_trials(folder)
    assert [r["number"] for r in rows] == list(range(TRIALS))  # each number once
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    study = load_study(folder / "optuna.journal", "ctrlc")
    assert sorted(t.number for t in study.trials) == list(range(TRIALS))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    runs, parent = _runs(workdir, "ctrlc")
    assert sorted(runs) == list(range(TRIALS))
    assert all(run.info.status == "FINISHED" for run in runs.values()) and parent.info.status == "FINISHED"
    for number in interrupted:
        assert runs[number].data.tags["hypernas.state"] in ("COMPLETE", "PRUNED")
        client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
        steps = [m.step for m in client.get_metric_history(runs[number].info.run_id, "val_accuracy")]
        row = next(r for r in rows if r["number"] == number)
        assert steps == list(range(1, row["epochs_run"] + 1))  # every epoch logged once, none missing


def test_sigterm_interrupts_with_exit_143_and_resumes_without_tunes_state(ray_session, tmp_path, monkeypatch, capsys):
    driver, workdir, folder = _start(tmp_path, "term")
    try:
        _wait_for_mid_run(driver, folder)
        driver.send_signal(signal.SIGTERM)  # to the driver alone, as a service manager or `kill` would
        code = driver.wait(timeout=180)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        else:
            try:
                os.killpg(driver.pid, signal.SIGKILL)  # a local Ray left behind by a failed check
            except ProcessLookupError:
                pass
    output = _output(tmp_path)
    assert code == 143, output[-3000:]
    assert "interrupted by SIGTERM" in output and f"hypernas resume term --workdir {workdir}" in output
    assert "Tuner.restore" not in output
    assert json.loads((folder / "state.json").read_text())["status"] == "interrupted"
    states = [r["state"] for r in read_trials(folder)]
    assert "INTERRUPTED" in states and "RUNNING" not in states

    # As if the signal had come before Ray Tune saved any state of its own: resume starts Tune afresh for what is
    # left of the budget, the interrupted trials first, under their numbers.
    shutil.rmtree(folder / "tune")
    _release(tmp_path).touch()
    done = hypernas_in_process(monkeypatch, capsys, "resume", "term", "--workdir", str(workdir))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_trials(folder)
    assert [r["number"] for r in rows] == list(range(TRIALS))
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    study = load_study(folder / "optuna.journal", "term")
    assert sorted(t.number for t in study.trials) == list(range(TRIALS))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    runs, parent = _runs(workdir, "term")
    assert sorted(runs) == list(range(TRIALS)) and all(r.info.status == "FINISHED" for r in runs.values())


def test_signal_guard_stops_gracefully_once_then_at_once():
    reactions, before = [], {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with SignalGuard() as guard:
        with guard.on_first_signal(lambda: reactions.append("stop") or True):
            os.kill(os.getpid(), signal.SIGTERM)  # the first: the executor is asked to stop, nothing raised
            assert reactions == ["stop"] and guard.signum == signal.SIGTERM
            with pytest.raises(Interrupted) as second:  # the second: at once
                os.kill(os.getpid(), signal.SIGINT)
    assert second.value.exit_code == 143 and isinstance(second.value, KeyboardInterrupt)
    with SignalGuard() as guard, pytest.raises(Interrupted) as early:  # nothing to stop gracefully yet
        os.kill(os.getpid(), signal.SIGTERM)
    assert early.value.exit_code == 143
    assert {signum: signal.getsignal(signum) for signum in before} == before  # the handlers before are back


def test_tune_stop_is_tunes_own_graceful_stop():
    """The one use of a Ray private: the stop handler Tune installs (for SIGUSR1, its SIGINT handler disabled)."""
    from ray.tune.tune import _setup_signal_catching

    stop = _TuneStop()
    assert stop() is False  # before Tune has set up: nothing to stop gracefully, the signal interrupts at once
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGUSR1)}
    try:
        event = _setup_signal_catching()  # what tune.run does just before it sets up the callbacks
        assert signal.getsignal(signal.SIGINT) is before[signal.SIGINT]  # ours stays: Tune's SIGINT handler is off
        stop.setup()
        assert stop() is True and event.is_set()
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        _TUNE_LOG.removeFilter(_HIDE_TUNE_RESUME_HINTS)


def test_a_trial_interrupted_twice_stays_interrupted(tmp_path):
    """Ctrl-C on a `resume` before Tune restarted an INTERRUPTED trial: it must stay INTERRUPTED (not final)."""
    import io

    from search._mlflow import TrackingWriter
    from search.events import EventLog
    from search.journal import Journal
    from search.monitor import Monitor
    from search.progress import ProgressView
    from search.records import ExperimentRecords

    def records_with_journal():  # the records as a resumed driver has them: the journal so far, appended to
        journal, entries = Journal.open(tmp_path)
        records = ExperimentRecords("val_loss", "min", (), 2.0, journal=journal)
        records.replay(entries)
        return records

    tracker = TrackingWriter(f"sqlite:///{tmp_path / 'mlflow.db'}", "twice", (tmp_path / "art").as_uri())
    tracker.start(run_name="twice", params={}, tags={}, texts={})

    def monitor(records):
        return Monitor(records, EventLog(), tracker, ProgressView(2, "val_loss", io.StringIO()), tmp_path)

    records = records_with_journal()
    first = monitor(records)
    first.trial_started(0, "t0", 1, {"x": 0.1}, 4)
    first.trial_result(0, 1, {"val_loss": 0.5}, "node", "cpu")
    first.finish(interrupted=True)
    records.close()
    assert ExperimentRecords.read(tmp_path, "val_loss", "min").trials[0].state == "INTERRUPTED"

    again = records_with_journal()
    monitor(again).finish(interrupted=True)  # the resume is interrupted before the trial ran again
    again.close()
    assert ExperimentRecords.read(tmp_path, "val_loss", "min").trials[0].state == "INTERRUPTED"
    tracker.close("KILLED")
