"""The command line: bad input (exit 2, nothing created), a real `hypernas run` process, and `hypernas ui`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from search.cli import main
from tests.conftest import ROOT
from tests.helpers import hypernas_in_process, tiny_config

# The installed console script when there is one (as a user runs it), else the module.
_SCRIPT = Path(sys.executable).parent / "hypernas"
HYPERNAS = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]


def write_config(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(tiny_config(**changes)))
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A workdir that must stay absent, and an MLflow URI whose database must never appear."""
    store = tmp_path / "tracking.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    return tmp_path / "work", store


BAD_RUNS = [
    ({"budget": {"trials": "many"}}, "budget.trials: must be an integer >= 1"),
    ({"colour": "red"}, "colour: unknown setting"),
    ({"space": {"lr": {"type": "float", "low": 0.1, "high": 0.01}}}, "space.lr.low: low < high must hold"),
    ({"searcher": "bayes"}, "searcher.type: must be one of tpe, random, cmaes, grid, evolution, reinforce, motpe, nsga2, nsga3 (got 'bayes')"),
    ({"scheduler": "pbt"}, "scheduler.type: must be one of asha, hyperband, median, none (got 'pbt')"),
    ({"trainer": "resnet"}, "trainer: unknown trainer 'resnet'"),
    ({"seed": "zero"}, "seed: must be an integer >= 0"),
]


@pytest.mark.parametrize("changes, message", BAD_RUNS, ids=[m.split(":")[0] for _, m in BAD_RUNS])
def test_bad_config_exits_2_with_one_message_and_creates_nothing(tmp_path, isolated, capsys, changes, message):
    workdir, store = isolated
    config = write_config(tmp_path / "bad.yaml", **changes)
    assert main(["run", str(config), "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"hypernas: error: {err[0].removeprefix('hypernas: error: ')}"] and message in err[0]
    assert not workdir.exists() and not store.exists()


def test_missing_file_bad_set_and_unusable_data(tmp_path, isolated, capsys):
    workdir, store = isolated
    assert main(["run", str(tmp_path / "nope.yaml"), "--workdir", str(workdir)]) == 2
    assert "config: no such file" in capsys.readouterr().err
    config = write_config(tmp_path / "ok.yaml")
    assert main(["run", str(config), "--workdir", str(workdir), "--set", "budget.trials"]) == 2
    assert "--set: expects key=value" in capsys.readouterr().err
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0] * 20, "b": ["x", "y"] * 20}), table)
    data = {"source": "parquet", "path": str(table), "label": "target"}
    config = write_config(tmp_path / "data.yaml", data=data)
    assert main(["run", str(config), "--workdir", str(workdir)]) == 2
    assert "hypernas: error: data.label: column 'target' is not in" in capsys.readouterr().err  # from the schema
    assert not workdir.exists() and not store.exists()


@pytest.mark.parametrize("verb", ["status", "best", "test", "export"])
def test_unknown_experiment_name_exits_2(tmp_path, capsys, verb):
    (tmp_path / "w").mkdir()
    extra = ["--out", str(tmp_path / "x.parquet")] if verb == "export" else []
    assert main([verb, "ghost", "--workdir", str(tmp_path / "w"), *extra]) == 2
    assert "no experiment 'ghost' in workdir" in capsys.readouterr().err


def test_validate_prints_the_resolved_config_and_creates_nothing(tmp_path, isolated, capsys):
    workdir, store = isolated
    config = write_config(tmp_path / "v.yaml")
    assert main(["validate", str(config), "--set", "budget.trials=3", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out)
    assert resolved["budget"]["trials"] == 3 and resolved["scheduler"]["type"] == "asha"
    assert not workdir.exists() and not store.exists()


@pytest.mark.parametrize("verb", ["run", "validate", "status", "best", "test", "export", "ui"])
def test_every_verb_has_help_and_workdir(verb, capsys):
    with pytest.raises(SystemExit) as info:
        main([verb, "--help"])
    assert info.value.code == 0 and "--workdir" in capsys.readouterr().out


def test_output_cut_by_a_closed_pipe_ends_quietly(tmp_path):
    """`hypernas validate CONFIG | head -1`: the reader goes away; hypernas stops with the shell's SIGPIPE status and
    no traceback (the pipe's reading end is closed before the process starts: its first write fails)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([*HYPERNAS, "validate", str(ROOT / "examples" / "quickstart.yaml")], cwd=tmp_path,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 128 + signal.SIGPIPE and done.stderr == ""


def test_real_cli_process_runs_an_experiment(ray_session, tmp_path, monkeypatch, capsys):
    """`hypernas run` as a separate process: its own local Ray, exit code 0, summary, files; bad input exits 2;
    run again with --overwrite (in this process), the first MLflow parent is marked superseded."""
    config = write_config(tmp_path / "cli.yaml", name="cli", budget={"trials": 3, "max_concurrent": 2})
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    done = subprocess.run([*HYPERNAS, "run", str(config), "--workdir", str(tmp_path / "w")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trials 3/3" in done.stdout and "best trial" in done.stdout
    assert (tmp_path / "w" / "cli" / "trials.parquet").is_file() and (tmp_path / "w" / "mlflow.db").is_file()
    bad = subprocess.run([*HYPERNAS, "run", str(config), "--workdir", str(tmp_path / "w")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "already exists" in bad.stderr
    again = hypernas_in_process(monkeypatch, capsys, "run", str(config), "--workdir", str(tmp_path / "w"),
                                "--overwrite", "--set", "budget.trials=2")
    assert again.returncode == 0, again.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}")
    parents = client.search_runs([client.get_experiment_by_name("cli").experiment_id],
                                 "tags.`hypernas.role` = 'experiment'")
    assert sorted(p.data.tags.get("hypernas.superseded", "no") for p in parents) == ["no", "true"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ui_serves_the_workdir_store_on_localhost(tmp_path):
    from search._mlflow import TrackingWriter, default_artifact_location

    workdir = tmp_path / "w"
    workdir.mkdir()
    uri = f"sqlite:///{workdir}/mlflow.db"
    writer = TrackingWriter(uri, "ui-check", default_artifact_location(uri, workdir))
    writer.start("ui-check", {}, {}, {})
    writer.close()
    port = _free_port()
    process = subprocess.Popen([*HYPERNAS, "ui", "--workdir", str(workdir), "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, body = time.monotonic() + 120, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search", method="POST",
                    data=json.dumps({"max_results": 10}).encode(), headers={"Content-Type": "application/json"})
                body = json.loads(urllib.request.urlopen(request, timeout=5).read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, process.stdout.read1().decode() if process.poll() is not None else "no answer"
        assert "ui-check" in {e["name"] for e in body["experiments"]}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_trials_the_cluster_can_never_place_fail_fast(ray_session, tmp_path, isolated, capsys):
    workdir, store = isolated
    config = write_config(tmp_path / "gpu.yaml", resources={"cpus": 1, "gpus": 1})
    assert main(["run", str(config), "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert "resources: each trial needs CPU=1, GPU=1; the cluster has 0 GPU" in err
    config = write_config(tmp_path / "big.yaml", resources={"cpus": 64})
    assert main(["run", str(config), "--workdir", str(workdir)]) == 2
    assert "each trial needs CPU=64; the largest node offers CPU=2" in capsys.readouterr().err
    config = write_config(tmp_path / "custom.yaml", resources={"cpus": 1, "custom": {"accel": 1}})
    assert main(["run", str(config), "--workdir", str(workdir)]) == 2
    assert "the cluster has 0 accel" in capsys.readouterr().err
    assert not workdir.exists() and not store.exists()
