"""The MLflow writer under faults it did not expect (no Ray): any exception is counted and the writer goes on,
``close`` gives up after a bound, ``state.json`` says whether MLflow is complete, and after ``kill -9`` of the
driver ``hypernas sync`` restores every run and metric from the records."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from search import _mlflow
from search._mlflow import PARENT_ID_TAG, TrackingWriter, default_artifact_location
from search.cli import main
from search.records import ExperimentRecords
from tests.conftest import ROOT
from tests.helpers import tiny_config

EPOCHS = 3
FAILING = 1  # the trial number drive_trials fails at epoch 2


# -- helpers --------------------------------------------------------------------------------------------------------
def inject(client: MlflowClient, method: str, error: BaseException, when=lambda *a, **k: True) -> list:
    """Make ``client.<method>`` raise ``error`` whenever ``when(*args, **kwargs)``; returns the calls it failed."""
    original, failed = getattr(client, method), []

    def wrapped(*args, **kwargs):
        if when(*args, **kwargs):
            failed.append(args)
            raise error
        return original(*args, **kwargs)

    setattr(client, method, wrapped)
    return failed


def children(uri: str, parent: str) -> dict[int, list]:
    client = MlflowClient(uri)
    experiment = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment], f"tags.`{PARENT_ID_TAG}` = '{parent}'")
    by_number: dict[int, list] = {}
    for run in runs:
        by_number.setdefault(int(run.data.tags["hypernas.trial_number"]), []).append(run)
    return by_number


def two_trials(writer: TrackingWriter) -> None:
    """Trial 1 fails (with a traceback), trial 2 completes; two epochs each; the experiment's tags."""
    for number, state in ((1, "FAILED"), (2, "COMPLETE")):
        writer.trial_started(number, f"trial-{number:04d}", {"lr": 0.1 * number}, {"hypernas.trial_number": number})
        for epoch in (1, 2):
            writer.trial_metrics(number, epoch, {"val_accuracy": 0.1 * epoch + number}, 1000 * epoch)
        writer.trial_ended(number, state, {"hypernas.state": state},
                           {"traceback.txt": "Traceback: boom"} if state == "FAILED" else {})
    writer.parent_tags({"hypernas.state": "FINISHED"})


# per trial: start, two metric reports, end; then the experiment's tags, and close() ending the parent run
WRITES = 2 * 4 + 1 + 1


def new_writer(tmp_path: Path) -> tuple[str, TrackingWriter]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # no backoff and an immediate probe: the behaviour under test is what is counted and what lands, not timing
    writer = TrackingWriter(uri, "exp", default_artifact_location(uri, tmp_path), retry_delays=(0.0,),
                            offline_probe_s=0.0)
    writer.start("exp", params={}, tags={}, texts={})
    return uri, writer


# -- the writer thread ----------------------------------------------------------------------------------------------
def test_a_clean_writer_is_complete(tmp_path):
    uri, writer = new_writer(tmp_path)
    two_trials(writer)
    assert writer.close() is True
    assert writer.landed == writer.enqueued == WRITES and writer.dropped == 0 and writer.errors == []
    assert {n: runs[0].info.status for n, runs in children(uri, writer.parent_run_id).items()} == {
        1: "FAILED", 2: "FINISHED"}


@pytest.mark.parametrize("method, error, lost", [
    # trial 1's traceback upload raises a KeyError: that one write is lost
    ("log_text", KeyError("no such key"), 1),
    # trial 1's run creation raises a TypeError: the creation, its 2 metric reports and its end are lost
    ("create_run", TypeError("unexpected keyword"), 4),
])
def test_any_exception_is_counted_and_the_writer_goes_on(tmp_path, method, error, lost):
    uri, writer = new_writer(tmp_path)
    thread = writer._thread
    failed = inject(writer.client, method, error, when=lambda *a, **k: k.get("run_name", "trial-0001") == "trial-0001")
    two_trials(writer)
    assert writer.close() is False  # something was lost, and it says so
    assert failed and not thread.is_alive()  # it failed (and was retried), and the thread ended only when closed
    assert writer.dropped == lost and writer.landed == writer.enqueued - lost and writer.unflushed == 0
    assert type(error).__name__ in " ".join(writer.errors)

    client, runs = MlflowClient(uri), children(uri, writer.parent_run_id)
    later = runs[2][0]  # the trial after the failure landed in full: run, metrics, end
    assert later.info.status == "FINISHED" and later.data.tags["hypernas.state"] == "COMPLETE"
    assert [m.step for m in client.get_metric_history(later.info.run_id, "val_accuracy")] == [1, 2]
    parent = client.get_run(writer.parent_run_id)
    assert parent.data.tags["hypernas.state"] == "FINISHED" and parent.info.status == "FINISHED"
    if method == "create_run":
        assert 1 not in runs
    else:
        assert runs[1][0].data.tags["hypernas.state"] == "FAILED"  # tags went before the failing upload


def test_a_write_that_fails_once_is_retried_and_lands(tmp_path):
    uri, writer = new_writer(tmp_path)
    failures = []
    original = writer.client.set_terminated

    def flaky(run_id, *args, **kwargs):
        if run_id != writer.parent_run_id and not failures:
            failures.append(run_id)
            raise RuntimeError("transient")
        return original(run_id, *args, **kwargs)

    writer.client.set_terminated = flaky
    two_trials(writer)
    assert writer.close() is True and failures and writer.dropped == 0
    assert {n: runs[0].info.status for n, runs in children(uri, writer.parent_run_id).items()} == {
        1: "FAILED", 2: "FINISHED"}


def test_close_gives_up_after_its_bound_and_counts_what_did_not_land(tmp_path):
    uri, writer = new_writer(tmp_path)
    thread = writer._thread
    blocked, release = threading.Event(), threading.Event()
    original = writer.client.create_run

    def hung(*args, **kwargs):  # a tracking store that stops answering
        blocked.set()
        release.wait()
        return original(*args, **kwargs)

    writer.client.create_run = hung
    two_trials(writer)
    assert blocked.wait(60)
    assert writer.close("KILLED", timeout_s=0.2) is False
    # nothing landed after start(): every write is unflushed (the parent's end is one of them)
    assert writer.unflushed == writer.enqueued == WRITES and writer.landed == 0
    assert "gave up" in " ".join(writer.errors)
    release.set()  # the store answers again: the write in flight ends, and no further one starts
    thread.join(60)
    assert not thread.is_alive()
    assert sorted(children(uri, writer.parent_run_id)) == [1]
    assert MlflowClient(uri).get_run(writer.parent_run_id).info.status == "RUNNING"


# -- a whole experiment without Ray ---------------------------------------------------------------------------------
def drive_trials(cfg, study, data, tune_dir, monitor, trials, restore=False, **_):
    """Stands in for ``search._tune.run_trials``: trials run one after another, reporting ``EPOCHS`` epochs; trial
    ``FAILING`` fails at epoch 2 (one failed attempt, then the end)."""
    numbers = []
    for _ in range(trials):
        number, params = study.ask()
        numbers.append(number)
        monitor.trial_started(number, f"t{number}", 100 + number, params, EPOCHS)
        for epoch in range(1, EPOCHS + 1):
            if number == FAILING and epoch == 2:
                error = f"Traceback: RuntimeError: boom in trial {number}"
                monitor.attempt_failed(number, 1, "FAILED", error)
                monitor.trial_ended(number, "FAILED", error=error)
                study.tell(number, "FAILED")
                break
            monitor.trial_result(number, epoch, {"val_accuracy": 0.1 * epoch + 0.01 * number}, "node-a")
        else:
            monitor.trial_ended(number, "COMPLETE")
            study.tell(number, "COMPLETE", 0.1 * EPOCHS + 0.01 * number)
    AFTER_TRIALS(monitor)
    return set(numbers)


def AFTER_TRIALS(monitor) -> None:  # noqa: N802 - the kill test's driver replaces it
    pass


def without_ray(setattr_, writer_options: dict | None = None) -> None:
    """``run_experiment`` with ``drive_trials`` for Ray, and writers that retry without backoff."""
    import search._tune as adapter

    setattr_(adapter, "ensure_ray", lambda address=None: None)
    setattr_(adapter, "describe_cluster", lambda _: "none (test)")
    setattr_(adapter, "unplaceable", lambda request: None)
    setattr_(adapter, "run_trials", drive_trials)
    options = {"retry_delays": (0.0,), "offline_probe_s": 0.0, **(writer_options or {})}
    setattr_(_mlflow, "TrackingWriter", lambda *a, **k: TrackingWriter(*a, **{**options, **k}))


def run(workdir: Path, name: str, trials: int = 4):
    from search import run_experiment

    config = tiny_config(name, budget={"trials": trials, "max_concurrent": 1}, searcher="random",
                         scheduler={"type": "none", "max_epochs": EPOCHS})
    return run_experiment(config, workdir=workdir, stream=io.StringIO())


def assert_mlflow_holds_the_records(workdir: Path, name: str, finished: bool) -> None:
    """Every recorded trial has exactly one child run with every epoch's metric, its end tags and status, and a
    failed trial its traceback; the parent has its artifacts (and, once ended, its final tags)."""
    folder = workdir / name
    state = json.loads((folder / "state.json").read_text())
    cfg_metric = "val_accuracy"
    records = ExperimentRecords.read(folder, cfg_metric, "max")
    uri, parent = state["tracking_uri"], state["parent_run_id"]
    client, runs = MlflowClient(uri), children(uri, parent)
    assert sorted(runs) == sorted(records.trials) and all(len(v) == 1 for v in runs.values())
    for number, record in records.trials.items():
        run = runs[number][0]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, cfg_metric)]
        assert steps == list(range(1, record.epochs_run + 1))
        assert run.data.tags["hypernas.state"] == record.state
        assert run.info.status == {"COMPLETE": "FINISHED", "FAILED": "FAILED"}[record.state]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert ("traceback.txt" in artifacts) == (record.state == "FAILED")
    parent_run = client.get_run(parent)
    assert {"trials.parquet", "curves.parquet"} <= {a.path for a in client.list_artifacts(parent)}
    if finished:
        assert parent_run.info.status == "FINISHED" and parent_run.data.tags["hypernas.state"] == "FINISHED"
        assert f"best_{cfg_metric}" in parent_run.data.metrics


def test_state_says_complete_when_every_write_landed(tmp_path, monkeypatch, env_without_tracking):
    without_ray(monkeypatch.setattr)
    run(tmp_path, "clean")
    state = json.loads((tmp_path / "clean" / "state.json").read_text())
    assert state["tracking_complete"] is True and state["tracking_dropped"] == 0 and state["tracking_errors"] == []
    assert_mlflow_holds_the_records(tmp_path, "clean", finished=True)


def _failing_uploads(monkeypatch):
    """Writers whose text uploads raise a KeyError (a non-MLflow exception inside the writer thread)."""
    def factory(*args, **kwargs):
        writer = TrackingWriter(*args, **{"retry_delays": (0.0,), "offline_probe_s": 0.0, **kwargs})
        inject(writer.client, "log_text", KeyError("artifact repo"),
               when=lambda run_id, *a, **k: run_id != writer.parent_run_id)  # the parent's texts are written first
        return writer
    monkeypatch.setattr(_mlflow, "TrackingWriter", factory)


def test_lost_writes_then_a_backfill_that_works(tmp_path, monkeypatch, env_without_tracking):
    without_ray(monkeypatch.setattr)
    _failing_uploads(monkeypatch)
    run(tmp_path, "lossy")
    state = json.loads((tmp_path / "lossy" / "state.json").read_text())
    # the writer lost the failed trial's attempt text and traceback; the back-fill from the records wrote them
    assert state["tracking_dropped"] == 2 and "KeyError" in " ".join(state["tracking_errors"])
    assert state["tracking_complete"] is True
    assert_mlflow_holds_the_records(tmp_path, "lossy", finished=True)


def test_lost_writes_and_no_backfill_leave_tracking_incomplete_until_sync(tmp_path, monkeypatch,
                                                                         env_without_tracking):
    without_ray(monkeypatch.setattr)
    _failing_uploads(monkeypatch)
    real_backfill = _mlflow.backfill

    def unreachable(*args, **kwargs):
        raise MlflowException("tracking store unreachable")

    monkeypatch.setattr(_mlflow, "backfill", unreachable)
    run(tmp_path, "lossy")
    folder = tmp_path / "lossy"
    state = json.loads((folder / "state.json").read_text())
    assert state["status"] == "finished" and state["tracking_complete"] is False and state["tracking_dropped"] == 2

    monkeypatch.setattr(_mlflow, "backfill", real_backfill)
    assert main(["sync", "lossy", "--workdir", str(tmp_path)]) == 0
    assert json.loads((folder / "state.json").read_text())["tracking_complete"] is True
    assert_mlflow_holds_the_records(tmp_path, "lossy", finished=True)


_KILLED_DRIVER = """
import os, signal, sys, threading
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.search import test_tracking_writer as t

blocked = threading.Event()

def after_trials(monitor):
    blocked.wait(120)  # the writer is stuck on trial 2's run: trials 0 and 1 landed, the rest is queued
    os.kill(os.getpid(), signal.SIGKILL)

def install(obj, name, value):
    setattr(obj, name, value)

t.without_ray(install)
t.AFTER_TRIALS = after_trials
make = t._mlflow.TrackingWriter

def stuck_writer(*args, **kwargs):
    writer = make(*args, **kwargs)
    original = writer.client.create_run

    def create_run(*a, **k):
        if k.get("run_name") == "t02 RUNNING":  # search.monitor.trial_run_name(2)
            blocked.set()
            threading.Event().wait()  # never answers
        return original(*a, **k)

    writer.client.create_run = create_run
    return writer

t._mlflow.TrackingWriter = stuck_writer
t.run(Path({workdir!r}), "killed", trials=5)
"""


def test_a_driver_killed_before_the_writer_flushed_is_restored_by_sync(tmp_path, env_without_tracking):
    script = tmp_path / "driver.py"
    script.write_text(_KILLED_DRIVER.format(root=str(ROOT), workdir=str(tmp_path)))
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    folder = tmp_path / "killed"
    state = json.loads((folder / "state.json").read_text())
    assert state["status"] == "running" and "tracking_complete" not in state
    records = ExperimentRecords.read(folder, "val_accuracy", "max")
    assert sorted(records.trials) == [0, 1, 2, 3, 4]  # the records have everything
    assert sorted(children(state["tracking_uri"], state["parent_run_id"])) == [0, 1]  # MLflow only what landed

    assert main(["sync", "killed", "--workdir", str(tmp_path)]) == 0
    assert json.loads((folder / "state.json").read_text())["tracking_complete"] is True
    assert_mlflow_holds_the_records(tmp_path, "killed", finished=False)
    assert main(["sync", "killed", "--workdir", str(tmp_path)]) == 0  # idempotent: no run twice, no metric twice
    assert_mlflow_holds_the_records(tmp_path, "killed", finished=False)
