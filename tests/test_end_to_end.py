"""A real experiment on local Ray: Optuna TPE + ASHA, MLflow on SQLite, Parquet, sealed test split.

One small experiment is run once per module and inspected from every side.
"""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search import SelectionError, best_trial, run_experiment, run_sealed_test
from search._mlflow import PARENT_ID_TAG
from search._optuna import load_study
from search.cli import main
from search.records import TRIAL_COLUMNS, read_trials
from search.seeds import derive_seed
from tests.helpers import tiny_config

TRIALS = 8
CONSTANTS = {k for k, v in tiny_config()["space"].items() if not isinstance(v, dict)}  # not asked from Optuna


@pytest.fixture(scope="module")
def experiment(ray_session, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("work")
    monkey = pytest.MonkeyPatch()
    monkey.delenv("MLFLOW_TRACKING_URI", raising=False)
    # One trial at a time: ASHA then sees results in a fixed order, so which trials are pruned is reproducible.
    config = tiny_config("e2e", budget={"trials": TRIALS, "max_concurrent": 1})
    out = io.StringIO()
    result = run_experiment(config, workdir=workdir, stream=out)
    yield result, workdir, out.getvalue()
    monkey.undo()


def test_every_trial_ran_and_asha_pruned_some(experiment):
    result, _, output = experiment
    counts = result.counts
    assert sum(counts.values()) == TRIALS and counts["RUNNING"] == 0 and counts["FAILED"] == 0
    assert counts["COMPLETE"] >= 1 and counts["PRUNED"] >= 1
    assert "trials 8/8" in output and f"complete {counts['COMPLETE']}" in output  # live view, final line
    assert "best trial" in output and str(result.trials_path) in output and result.parent_run_id in output


def test_parquet_tables(experiment):
    result, _, _ = experiment
    table = pq.read_table(result.trials_path)
    assert tuple(table.column_names[: len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    rows = read_trials(result.folder)
    assert [r["number"] for r in rows] == list(range(TRIALS))
    assert all(r["seed"] == derive_seed(0, r["number"]) for r in rows)
    assert all(r["node"] and r["wall_time_s"] > 0 and r["trial_id"] for r in rows)
    for row in rows:
        assert (row["state"] == "COMPLETE") == (row["epochs_run"] == row["epochs"] == 4)
        assert ("momentum" in row["params"]) == (row["params"]["optimizer"] == "sgd")
    curves = pq.read_table(result.curves_path).to_pylist()
    assert len(curves) == sum(r["epochs_run"] for r in rows)
    assert {"trial", "epoch", "time_s", "val_accuracy", "val_loss", "train_loss"} <= set(curves[0])


def test_pruned_trials_reach_optuna_as_pruned_with_their_last_step(experiment):
    result, _, _ = experiment
    rows = {r["number"]: r for r in read_trials(result.folder)}
    study = load_study(result.folder / "optuna.journal", "e2e")
    assert len(study.trials) == TRIALS
    for trial in study.trials:
        row = rows[trial.number]
        assert trial.state.name == {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED"}[row["state"]]
        assert trial.last_step == row["epochs_run"]
        assert trial.value == pytest.approx(row["last_value"])  # PRUNED: the value at the step it stopped
        assert trial.params == {k: v for k, v in row["params"].items() if k not in CONSTANTS}
    assert any(t.state == TrialState.PRUNED and t.last_step < 4 for t in study.trials)


def test_mlflow_parent_and_nested_children(experiment):
    result, workdir, _ = experiment
    client = MlflowClient(result.tracking_uri)
    assert result.tracking_uri == f"sqlite:///{workdir.resolve()}/mlflow.db"
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "e2e"
    # the MLflow UI: a model-training experiment (its runs table, not the GenAI overview), and a description saying
    # what the experiment was and how it ended
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    note = parent.data.tags["mlflow.note.content"]
    assert "hypernas experiment `e2e`" in note and "Ended finished" in note and f"{TRIALS} trials" in note
    assert parent.data.tags["hypernas.experiment_seed"] == "0" and parent.data.tags["hypernas.state"] == "FINISHED"
    assert parent.data.tags["hypernas.env.torch_version"] and parent.data.tags["hypernas.env.python"]
    assert parent.data.params["budget.trials"] == str(TRIALS) and parent.data.params["searcher.type"] == "tpe"
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"config.yaml", "space.json", "environment.json", "trials.parquet", "curves.parquet"} <= artifacts
    # the pictures people look at first, with the data behind each
    plots = {a.path for a in client.list_artifacts(result.parent_run_id, "plots")}
    assert {f"plots/{name}" for name in ("learning_curves.png", "learning_curves.csv", "rungs.csv", "best_so_far.png",
                                         "best_so_far.csv", "parallel_coordinates.png", "param_importances.png",
                                         "param_importances.json")} <= plots
    drawn = list(csv.DictReader((result.folder / "plots" / "learning_curves.csv").open()))
    curves = pq.read_table(result.curves_path).to_pylist()
    assert sorted((int(r["trial"]), int(r["epoch"]), float(r["value"])) for r in drawn) == \
        sorted((c["trial"], c["epoch"], c["val_accuracy"]) for c in curves)
    importances = json.loads((result.folder / "plots" / "param_importances.json").read_text())["importances"]
    assert set(importances) <= {"lr", "width", "optimizer", "momentum"} and importances
    children = client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_ID_TAG}` = '{result.parent_run_id}'")
    rows = {r["number"]: r for r in read_trials(result.folder)}
    assert len(children) == TRIALS
    for child in children:
        number = int(child.data.tags["hypernas.trial_number"])
        row = rows[number]
        # the runs table reads at a glance: number, state and final value
        assert child.info.run_name == f"t{number:02d} {row['state']} {row['last_value']:.4f}"
        assert child.info.status == "FINISHED"
        assert child.data.tags["hypernas.state"] == row["state"]
        assert child.data.tags["hypernas.seed"] == str(row["seed"])
        assert child.data.params["lr"] == str(row["params"]["lr"]) and child.data.params["epochs"] == "4"
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(1, row["epochs_run"] + 1))
        assert history[-1].value == pytest.approx(row["last_value"])


def test_best_then_sealed_test_once_then_refusal_then_forced(experiment, capsys):
    result, workdir, _ = experiment
    best = best_trial(workdir, "e2e")
    rows = read_trials(result.folder)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert best["value"] == max(r["last_value"] for r in complete) and best["trial"] == result.best["number"]
    assert main(["best", "e2e", "--workdir", str(workdir)]) == 0
    assert json.loads(capsys.readouterr().out)["trial"] == best["trial"]

    state = json.loads((result.folder / "state.json").read_text())
    (result.folder / "state.json").write_text(json.dumps({**state, "status": "running"}))
    with pytest.raises(SelectionError, match="still running"):  # a live search's leader is not the winner yet
        run_sealed_test(workdir, "e2e")
    (result.folder / "state.json").write_text(json.dumps({**state, "status": "interrupted"}))
    with pytest.raises(SelectionError, match="interrupted.*hypernas resume e2e"):
        best_trial(workdir, "e2e")
    assert main(["test", "e2e", "--workdir", str(workdir)]) == 1
    assert "--allow-interrupted" in capsys.readouterr().err
    assert best_trial(workdir, "e2e", allow_interrupted=True)["trial"] == best["trial"]
    (result.folder / "state.json").write_text(json.dumps(state))
    assert not (result.folder / "test_audit.json").exists()

    entry = run_sealed_test(workdir, "e2e")
    assert entry["trial"] == best["trial"] and entry["open"] == 1 and entry["forced"] is False
    assert 0.15 < entry["test_metrics"]["test_accuracy"] <= 1.0  # a real model on the real test split (chance: 0.10)
    assert entry["optimism_gap"] == pytest.approx(best["value"] - entry["test_metrics"]["test_accuracy"])
    assert entry["test_split_size"] == 200 and len(entry["test_split_sha256"]) == 64

    # the identical model again: answered from the ledger, nothing opened
    repeat = run_sealed_test(workdir, "e2e")
    assert repeat["repeat"] and repeat["test_metrics"] == entry["test_metrics"] and repeat["open"] == 1
    assert main(["test", "e2e", "--workdir", str(workdir)]) == 0
    assert "REPEAT" in capsys.readouterr().out

    assert main(["test", "e2e", "--workdir", str(workdir), "--force"]) == 0
    forced = json.loads(capsys.readouterr().out.split("\n\n")[0])
    assert forced["forced"] is True and forced["open"] == 2 and not forced["repeat"]
    assert forced["test_metrics"] == entry["test_metrics"]  # same seed, same data: the retrain is deterministic
    audit = json.loads((result.folder / "test_audit.json").read_text())
    assert [(a["forced"], a["repeat"]) for a in audit] == [(False, False), (False, True), (False, True), (True, False)]

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["hypernas.test.opens"] == "2" and parent.data.tags["hypernas.test.forced"] == "true"
    assert parent.data.tags["hypernas.test.repeats"] == "2"
    assert [m.step for m in client.get_metric_history(result.parent_run_id, "test_accuracy")] == [0, 3]
    assert "optimism_gap" in parent.data.metrics
    assert "test_audit.json" in {a.path for a in client.list_artifacts(result.parent_run_id)}


def test_status_and_export(experiment, capsys, tmp_path):
    result, workdir, _ = experiment
    assert main(["status", "e2e", "--workdir", str(workdir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "finished" and status["trials_seen"] == TRIALS
    assert sum(status["counts"].values()) == TRIALS
    assert main(["status", "e2e", "--workdir", str(workdir)]) == 0
    assert "PRUNED" in capsys.readouterr().out
    out = tmp_path / "trials.parquet"
    assert main(["export", "e2e", "--workdir", str(workdir), "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == TRIALS
    assert main(["export", "e2e", "--workdir", str(workdir), "--out", str(tmp_path / "c.csv"),
                 "--table", "curves"]) == 0
    assert (tmp_path / "c.csv").read_text().startswith('"trial","epoch"')


def test_rerunning_an_existing_name_is_refused(experiment, capsys):
    result, workdir, _ = experiment
    before = sorted(p.name for p in result.folder.iterdir())
    with pytest.raises(Exception, match="already exists"):
        run_experiment(tiny_config("e2e"), workdir=workdir)
    assert sorted(p.name for p in result.folder.iterdir()) == before
