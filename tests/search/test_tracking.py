"""The MLflow writer against a real SQLite store: nesting, batching, statuses."""

from pathlib import Path

from mlflow.tracking import MlflowClient

from search._mlflow import PARENT_ID_TAG, TrackingWriter, default_artifact_location, resolve_tracking_uri


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("sqlite:///x.db", tmp_path) == "sqlite:///x.db"  # the YAML wins over the env
    assert default_artifact_location("http://127.0.0.1:5999", tmp_path) is None


def test_parent_and_nested_children_with_batched_metrics(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    writer = TrackingWriter(uri, "exp", default_artifact_location(uri, tmp_path))
    calls = {"log_batch": 0}
    original = writer.client.log_batch

    def counting(*args, **kwargs):
        calls["log_batch"] += 1
        return original(*args, **kwargs)

    writer.client.log_batch = counting
    parent = writer.start("exp", params={"budget.trials": 2}, tags={"hypernas.experiment_seed": 3},
                          texts={"config.yaml": "name: exp\n"})
    for number in (0, 1):
        writer.trial_started(number, f"trial-{number:04d}", {"lr": 0.1 * (number + 1)},
                             {"hypernas.trial_number": number, "hypernas.seed": 10 + number})
    for epoch in (1, 2, 3):
        for number in (0, 1):
            writer.trial_metrics(number, epoch, {"val_loss": 1.0 / epoch, "val_accuracy": 0.3 * epoch,
                                                 "train_loss": 2.0 / epoch, "epoch_time_s": 0.1}, 1000 * epoch)
    writer.trial_ended(0, "COMPLETE", {"hypernas.state": "COMPLETE"})
    writer.trial_ended(1, "FAILED", {"hypernas.state": "FAILED"}, {"traceback.txt": "Traceback: boom"})
    writer.close()
    assert writer.errors == []

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("exp")
    assert Path(experiment.artifact_location.removeprefix("file://")) == (tmp_path / "mlartifacts").resolve()
    runs = client.search_runs([experiment.experiment_id])
    children = {r.data.tags["hypernas.trial_number"]: r for r in runs if r.info.run_id != parent}
    assert len(runs) == 3 and set(children) == {"0", "1"}
    assert all(r.data.tags[PARENT_ID_TAG] == parent for r in children.values())
    assert children["0"].info.status == "FINISHED" and children["1"].info.status == "FAILED"
    history = client.get_metric_history(children["0"].info.run_id, "val_accuracy")
    assert [(m.step, round(m.value, 6)) for m in history] == [(1, 0.3), (2, 0.6), (3, 0.9)]
    assert children["1"].data.params == {"lr": "0.2"}
    assert client.get_run(parent).data.tags["hypernas.experiment_seed"] == "3"
    assert client.get_run(parent).info.status == "FINISHED"
    failed_artifacts = [a.path for a in client.list_artifacts(children["1"].info.run_id)]
    assert failed_artifacts == ["traceback.txt"]
    # 24 metric values, 2 params and the tags of 2 trials went out in a handful of batches, not one call each
    assert calls["log_batch"] <= 10


def test_a_new_sqlite_store_starts_from_a_copy_of_an_empty_one_that_mlflow_made(tmp_path, monkeypatch):
    """The copy is what MLflow makes: a working store, its ``Default`` experiment where MLflow would put it."""
    from search._mlflow import client_for

    monkeypatch.setenv("HYPERNAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    first = client_for(f"sqlite:///{tmp_path / 'one.db'}")  # builds the cached empty store, then copies it
    templates = list((tmp_path / "cache").glob("mlflow-*-empty.sqlite"))
    assert len(templates) == 1
    second = client_for(f"sqlite:///{tmp_path / 'two.db'}")
    for client in (first, second):
        default = client.get_experiment("0")
        assert default.name == "Default"
        assert default.artifact_location == str(tmp_path / "mlruns" / "0")
        experiment = client.create_experiment("e")
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "m", 1.5)
        assert client.get_run(run.info.run_id).data.metrics == {"m": 1.5}
    assert first.get_experiment_by_name("e").experiment_id == second.get_experiment_by_name("e").experiment_id
    again = client_for(f"sqlite:///{tmp_path / 'one.db'}")  # an existing store is opened, never replaced
    assert again.get_experiment_by_name("e") is not None
