"""`hypernas replay`: a trial re-run from MLflow's record matches bit for bit; a mismatch is shown and exits 1."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search import run_experiment
from search.cli import main
from search.records import read_trials
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def recorded(ray_session, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("replay")
    monkey = pytest.MonkeyPatch()
    monkey.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = tiny_config("rep", trainer="cnn",
                         space={"lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True}, "width": 8,
                                "depth": 1, "augment_shift": {"type": "int", "low": 0, "high": 2},
                                "epochs": 4},  # a budget in the space: replayed as the budget, not a hyperparameter
                         budget={"trials": 4, "max_concurrent": 2})
    result = run_experiment(config, workdir=workdir, stream=io.StringIO())
    yield result, workdir
    monkey.undo()


def test_replay_by_name_and_trial_is_identical(recorded, capsys):
    result, workdir = recorded
    pruned = [r for r in read_trials(result.folder) if r["state"] == "PRUNED"]
    for row in [read_trials(result.folder)[0], *pruned[:1]]:  # a complete trial, and one stopped early
        assert main(["replay", "rep", "--trial", str(row["number"]), "--workdir", str(workdir)]) == 0
        out = capsys.readouterr()
        assert f"identical: trial {row['number']}, {row['epochs_run']} epochs" in out.out
        assert "environment differs" not in out.err


def test_replay_by_run_id_reports_differences_and_environment_changes(recorded, capsys):
    result, workdir = recorded
    client = MlflowClient(result.tracking_uri)
    child = next(r for r in client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                                               "tags.`hypernas.trial_number` = '0'"))
    assert main(["replay", child.info.run_id, "--workdir", str(workdir)]) == 0
    assert "identical" in capsys.readouterr().out
    # A record that no longer matches the computation: another seed than the one the trial ran with.
    client.set_tag(child.info.run_id, "hypernas.seed", str(int(child.data.tags["hypernas.seed"]) + 1))
    path = client.download_artifacts(result.parent_run_id, "environment.json", str(workdir / "env"))
    environment = json.loads(Path(path).read_text())
    client.log_text(result.parent_run_id, json.dumps({**environment, "torch_version": "0.0.1"}), "environment.json")
    assert main(["replay", child.info.run_id, "--tracking-uri", result.tracking_uri]) == 1
    out = capsys.readouterr()
    assert "DIFFERENT: trial 0" in out.out and "val_loss" in out.out and "recorded" in out.out
    assert "warning: environment differs: torch_version: recorded '0.0.1'" in out.err


def test_replay_errors_are_bad_input(recorded, capsys):
    result, workdir = recorded
    assert main(["replay", "rep", "--trial", "99", "--workdir", str(workdir)]) == 2
    assert "has no trial 99" in capsys.readouterr().err
    assert main(["replay", "0123456789abcdef", "--tracking-uri", result.tracking_uri]) == 2
    assert "no MLflow run" in capsys.readouterr().err
