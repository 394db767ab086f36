"""Batched trials end to end (``resources.trials_per_worker``): real Ray, real training, real ASHA, Optuna, MLflow.

Trials of one network shape train as one vectorised model on a shared worker, and each stays a trial of its own:
its own reports and ASHA decision, Optuna trial, MLflow run, Parquet rows, checkpoint — and its replay, run on its
own, matches what it computed in its batches bit for bit (whichever companions it had, pruned or not).
"""

from __future__ import annotations

import io
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search import run_experiment
from search._mlflow import PARENT_ID_TAG
from search._optuna import load_study
from search.config import ConfigError, load_config
from search.records import read_trials
from search.replay import replay_trial
from tests.conftest import ROOT
from tests.helpers import tiny_config

BATCHED_SPACE = {
    "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "width": {"type": "categorical", "choices": [16, 32]},  # two shapes: never vectorised together
    "batch_size": 64,
    "schedule": "constant",
}


def test_batched_trials_stay_separate_trials_and_replay_bit_for_bit(ray_session, tmp_path, env_without_tracking):
    config = tiny_config("batched", space=BATCHED_SPACE, budget={"trials": 10, "max_concurrent": 4},
                         searcher={"type": "random"}, resources={"cpus": 1, "trials_per_worker": 4})
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    rows = read_trials(result.folder)
    assert len(rows) == 10 and {r["state"] for r in rows} == {"COMPLETE", "PRUNED"}  # ASHA stopped members
    curves = pq.read_table(result.curves_path).to_pylist()
    assert {c["trial"] for c in curves} == set(range(10))
    for row in rows:  # each trial's own rows, one per epoch it ran
        assert sorted(c["epoch"] for c in curves if c["trial"] == row["number"]) == \
            list(range(1, row["epochs_run"] + 1))
    assert max(c["batch_members"] for c in curves) > 1, "some epochs were vectorised across trials"
    assert all(c["batch_members"] <= 4 for c in curves)

    study = load_study(result.folder / "optuna.journal", "batched")
    assert sorted(t.number for t in study.trials) == list(range(10))
    for trial in study.trials:
        state = next(r["state"] for r in rows if r["number"] == trial.number)
        assert trial.state == (TrialState.COMPLETE if state == "COMPLETE" else TrialState.PRUNED)

    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                              f"tags.`{PARENT_ID_TAG}` = '{result.parent_run_id}'")
    assert len(runs) == 10 and all("val_accuracy" in r.data.metrics for r in runs)

    checkpoints = list((result.folder / "tune").rglob("state.pt"))
    assert len({p.parts[-3] for p in checkpoints}) == 10  # one checkpoint folder per trial

    # a pruned member, a finished one, and one of each shape: each computed exactly what it computes alone
    pruned = next(r for r in rows if r["state"] == "PRUNED")
    finished = [r for r in rows if r["state"] == "COMPLETE"]
    chosen = {pruned["number"], finished[0]["number"]} | {
        next(r["number"] for r in rows if r["params"]["width"] == width) for width in (16, 32)}
    for number in sorted(chosen):
        replay = replay_trial(tmp_path, "batched", number)
        assert replay.identical, replay.table()
        assert replay.compared >= 3 * next(r["epochs_run"] for r in rows if r["number"] == number)


NAS_SPACE = {"cell": {"type": "nb201_cell"}, "channels": 4, "cells": 1, "stages": 2}


@pytest.mark.parametrize("sections, field, rule", [
    ({"trainer": "nas", "space": NAS_SPACE, "resources": {"trials_per_worker": 4}},
     "resources.trials_per_worker", "only the built-in cnn and mlp recipes"),
    ({"resources": {"trials_per_worker": 0}}, "resources.trials_per_worker", ">= 1"),
    ({"resources": {"trials_per_worker": 4.5}}, "resources.trials_per_worker", "integer"),
    ({"resources": {"gpus": 1.5}}, "resources.gpus", "whole number"),
])
def test_batching_and_gpu_requests_that_cannot_work_are_refused(sections, field, rule):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config("refused", **sections))
    assert err.value.path == field and rule in str(err.value)


def test_a_refused_batching_config_exits_2_from_the_cli(tmp_path):
    import yaml

    config = tiny_config("refused", trainer="tests.helpers:scored_train",
                         space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
                         metric={"name": "val_loss", "mode": "min"}, resources={"trials_per_worker": 8})
    path = tmp_path / "refused.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "search.cli", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "resources.trials_per_worker" in done.stderr and "tests.helpers:scored_train" in done.stderr
