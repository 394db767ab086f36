"""What importing hypernas costs and changes: checking a config loads no heavy package, and importing the Ray and
MLflow adapters sets no environment variable until their ``configure()`` is called. Each check runs in a fresh
interpreter (this test process has imported everything already)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "mlflow", "optuna", "ray", "pyarrow")
OURS = {  # what each adapter's configure() sets, and to what (where the user has not set it)
    "RAY_AUTH_MODE": "token", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0", "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
LOGGERS = ("ray.tune.analysis.experiment_analysis", "mlflow.store.db.utils", "alembic")


def fresh_python(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a new interpreter at the repository root; it prints one JSON line, returned parsed."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=env if env is not None else os.environ.copy())
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("example", ["quickstart", "mnist1d_nas", "mnist1d_cnn", "mnist1d_darts", "mnist1d_enas"])
def test_validating_a_builtin_trainers_config_imports_no_heavy_package(example):
    code = f"""
import contextlib, io, json, sys
from search.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["validate", "examples/{example}.yaml"])
import search
search.load_config("examples/{example}.yaml")
print(json.dumps({{"exit": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    assert fresh_python(code) == {"exit": 0, "heavy": []}


def test_builtin_trainers_declare_without_torch():
    code = """
import json, sys
from trainers import resolve_trainer
declared = {name: [sorted(resolve_trainer(name).hyperparameters), list(resolve_trainer(name).metrics)]
            for name in ("mlp", "cnn", "nas", "oneshot")}
print(json.dumps({"torch": "torch" in sys.modules, "nas": declared["nas"]}))
"""
    result = fresh_python(code)
    assert result["torch"] is False
    hypers, metrics = result["nas"]
    assert {"cell", "lr", "channels"} <= set(hypers) and "val_accuracy" in metrics and "params" in metrics


def test_adapters_change_no_environment_until_configured():
    env = {k: v for k, v in os.environ.items() if k not in OURS}
    env["RAY_AIR_NEW_OUTPUT"] = "1"  # a user's own setting wins over a default ...
    env["TUNE_DISABLE_SIGINT_HANDLER"] = "0"  # ... except where hypernas needs its value
    code = f"""
import json, logging, os, sys
import mlflow  # MLflow's own import-time settings (a telemetry session id) are not ours to judge
before, levels = dict(os.environ), [logging.getLogger(name).level for name in {LOGGERS!r}]
import search._tune, search._mlflow, search.experiment, search.selection, search.replay, search.cli
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
levels_changed = levels != [logging.getLogger(name).level for name in {LOGGERS!r}]
ray_loaded = "ray" in sys.modules
search._tune.configure(); search._mlflow.configure()
first = {{k: os.environ.get(k) for k in {sorted(OURS)!r}}}
search._tune.configure(); search._mlflow.configure()
again = {{k: os.environ.get(k) for k in {sorted(OURS)!r}}}
print(json.dumps({{"changed": changed, "levels_changed": levels_changed, "ray": ray_loaded, "configured": first,
                  "again": again, "configured_levels": [logging.getLogger(name).level for name in {LOGGERS!r}]}}))
"""
    result = fresh_python(code, env)
    assert result["changed"] == [] and result["levels_changed"] is False
    assert result["ray"] is False  # configure() is reachable before ray is imported, as Ray needs
    assert result["configured"] == {**OURS, "RAY_AIR_NEW_OUTPUT": "1"} == result["again"]
    assert result["configured_levels"] == [logging.ERROR, logging.WARNING, logging.WARNING]
