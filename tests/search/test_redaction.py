"""Credentials never reach MLflow, Parquet, the decision log or the console; trials still get real values."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search import run_experiment
from search.cli import main
from search.config import ConfigError
from search.redaction import looks_secret, redact, redact_text
from tests.helpers import tiny_config

SECRET = "s3cr3t-value"


def test_names_and_urls():
    assert all(looks_secret(n) for n in ("api_key", "password", "db.password", "GITHUB_TOKEN", "secret", "auth"))
    assert not any(looks_secret(n) for n in ("lr", "kernel_size", "width", "depth"))
    assert redact_text("http://me:pw@host:5000/x and s3://b") == "http://me:***@host:5000/x and s3://b"
    assert redact({"a": {"password": "x", "uri": "https://u:p@h"}}) == {"a": {"password": "***", "uri": "https://u:***@h"}}
    err = ConfigError("tracking.token", "must be a non-empty string (got 'hunter2')")
    assert "hunter2" not in str(err) and "looks like a secret" in str(err)


def test_a_secret_constant_stays_out_of_logs(ray_session, tmp_path, env_without_tracking, capsys):
    config = tiny_config("creds", trainer="tests.helpers:credential_train",
                         space={"x": {"type": "float", "low": 0.1, "high": 0.9}, "api_token": SECRET},
                         metric={"name": "val_loss", "mode": "min"}, scheduler={"type": "none", "max_epochs": 2},
                         budget={"trials": 3, "max_concurrent": 2})
    out = io.StringIO()
    result = run_experiment(config, workdir=tmp_path, stream=out)
    assert result.counts["COMPLETE"] == 3  # the trials saw the real value (the trainer asserts it)
    assert SECRET not in out.getvalue()
    for name in ("trials.parquet", "curves.parquet", "events.parquet"):
        assert SECRET.encode() not in (result.folder / name).read_bytes(), name
    assert SECRET in (result.folder / "config.yaml").read_text()  # the user's own file keeps it (resume needs it)

    client = MlflowClient(result.tracking_uri)
    experiment = client.get_run(result.parent_run_id).info.experiment_id
    for run in client.search_runs([experiment]):
        texts = json.dumps([run.data.params, run.data.tags])
        assert SECRET not in texts
        for artifact in client.list_artifacts(run.info.run_id):
            if not artifact.is_dir:
                local = client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path / "dl"))
                assert SECRET.encode() not in Path(local).read_bytes(), artifact.path

    capsys.readouterr()
    assert main(["best", "creds", "--workdir", str(tmp_path)]) == 0
    assert main(["test", "creds", "--workdir", str(tmp_path)]) == 0  # retrains with the real value
    printed = capsys.readouterr().out
    assert SECRET not in printed and '"api_token": "***"' in printed
