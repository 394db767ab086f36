"""One writer per experiment: while a process holds an experiment (a driver running or resuming it, ``sync``,
``simulate``), a second ``run --overwrite``, ``resume`` or ``sync`` of it is refused (exit 2, naming the holder) and
changes nothing; the hold ends with its process, however that ends (kill -9 included)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import yaml

from search import run_experiment
from tests.conftest import ROOT
from tests.helpers import hypernas_in_process, tiny_config

_HOLDER = """
import sys
from pathlib import Path
from search.workdir import hold_experiment
with hold_experiment(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes the pipe, or kills this process
"""


def _holder(workdir, name) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(workdir), name], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def _snapshot(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_held_experiment_is_refused_to_every_other_writer_until_its_holder_dies(
        ray_session, tmp_path, monkeypatch, capsys, env_without_tracking):
    config = tiny_config("held", budget={"trials": 2, "max_concurrent": 2},
                         scheduler={"type": "none", "max_epochs": 1})
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    config_file = tmp_path / "held.yaml"
    config_file.write_text(yaml.safe_dump(config))
    before = _snapshot(result.folder)

    holder = _holder(tmp_path, "held")
    try:
        for argv in (["run", str(config_file), "--workdir", str(tmp_path), "--overwrite"],
                     ["resume", "held", "--workdir", str(tmp_path)],
                     ["sync", "held", "--workdir", str(tmp_path)]):
            refused = hypernas_in_process(monkeypatch, capsys, *argv)
            assert refused.returncode == 2, (argv, refused.stderr)
            assert f"hypernas pid {holder.pid}" in refused.stderr and "in use" in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
        assert _snapshot(result.folder) == before  # nothing replaced, resumed or written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    # killed, its hold is gone with it: no stale lock
    synced = hypernas_in_process(monkeypatch, capsys, "sync", "held", "--workdir", str(tmp_path))
    assert synced.returncode == 0, synced.stderr


def test_the_hold_is_released_when_its_block_ends(tmp_path):
    from search.config import ConfigError
    from search.workdir import hold_experiment

    with hold_experiment(tmp_path, "a"):
        with hold_experiment(tmp_path, "b"):  # one per experiment, not per workdir
            pass
    with hold_experiment(tmp_path, "a"):  # released: taken again
        holder_text = (tmp_path / ".a.lock").read_text()
        assert f"hypernas pid {os.getpid()}" in holder_text
    holder = _holder(tmp_path, "a")
    try:
        try:
            with hold_experiment(tmp_path, "a"):
                raise AssertionError("held twice")
        except ConfigError as err:
            assert err.path == "name" and str(holder.pid) in str(err)
    finally:
        holder.stdin.close()  # the holder's block ends normally
        holder.wait()
    with hold_experiment(tmp_path, "a"):
        pass
