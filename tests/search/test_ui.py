"""`hypernas ui` ends the MLflow server it started, with everything the server started, on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.servers import BIN, free_port, stop_group

HYPERNAS = [str(BIN / "hypernas")] if (BIN / "hypernas").is_file() else [sys.executable, "-m", "search.cli"]


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state letter, start time) of a process from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], int(fields[19])


def process_tree(root: int) -> dict[int, int]:
    """``root`` and all its descendants: pid -> start time (a pid reused later has another start time)."""
    parents: dict[int, int] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)], starts[int(entry.name)] = stat[0], stat[2]
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        tree.update(children)
        frontier.extend(children)
    return {pid: starts[pid] for pid in tree if pid in starts}


def alive(pid: int, started: int) -> bool:
    """The same process (same start time) still exists and is not a zombie (dead, waiting to be reaped)."""
    stat = _stat(pid)
    return stat is not None and stat[2] == started and stat[1] != "Z"


@pytest.fixture
def mlflow_store(tmp_path):
    workdir = tmp_path / "runs"
    workdir.mkdir()
    MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").search_experiments()  # creates the store's tables
    return workdir


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ui_ends_its_server_and_everything_it_started(mlflow_store, signum):
    port = free_port()
    ui = subprocess.Popen([*HYPERNAS, "ui", "--workdir", str(mlflow_store), "--port", str(port)], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    tree: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert ui.poll() is None, f"hypernas ui exited early: {ui.stderr.read().decode()[-2000:]}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the MLflow UI did not answer"
                time.sleep(0.3)
        tree = process_tree(ui.pid)
        assert len(tree) >= 2  # hypernas ui and the server it started (the server may have workers of its own)

        os.kill(ui.pid, signum)  # to hypernas ui only, as a service manager or `kill` would
        assert ui.wait(timeout=60) == 128 + signum

        survivors = [pid for pid, started in tree.items() if alive(pid, started)]
        assert survivors == [], f"processes of the MLflow server survived: {survivors}"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        for pid, started in tree.items():  # whatever survived a failed check: this test started it
            if pid != ui.pid and alive(pid, started):
                os.kill(pid, signal.SIGKILL)
        stop_group(ui, grace_s=5.0)


def test_serve_kills_a_server_group_that_ignores_sigterm(tmp_path):
    """A server (and a worker it started) deaf to SIGTERM, as one stuck in a graceful shutdown would be, is killed
    once the grace period is over: `hypernas ui` never leaves it behind."""
    ready = tmp_path / "ready"
    worker = f"import pathlib, time; pathlib.Path({str(ready)!r}).write_text('up'); time.sleep(3600)"
    server = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              f"subprocess.Popen([sys.executable, '-c', {worker!r}]); time.sleep(3600)")  # the worker inherits SIG_IGN
    wrapper = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; from search.cli import serve; "
                               f"sys.exit(serve([sys.executable, '-c', {server!r}], dict(os.environ), grace_s=1.0))"],
        cwd=ROOT, start_new_session=True)
    tree: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 60
        while not ready.is_file():
            assert wrapper.poll() is None and time.monotonic() < deadline, "the fake server did not start"
            time.sleep(0.1)
        tree = process_tree(wrapper.pid)
        assert len(tree) == 3  # serve, the server, its worker
        os.kill(wrapper.pid, signal.SIGTERM)
        assert wrapper.wait(timeout=60) == 128 + signal.SIGTERM
        assert [pid for pid, started in tree.items() if alive(pid, started)] == []
    finally:
        for pid, started in tree.items():
            if pid != wrapper.pid and alive(pid, started):
                os.kill(pid, signal.SIGKILL)
        stop_group(wrapper, grace_s=1.0)
