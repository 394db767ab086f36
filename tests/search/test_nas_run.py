"""A real NAS search: evolution over a NAS-Bench-201 cell with hyperparameters, ASHA, and a constraint."""

from __future__ import annotations

import io

from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search import best_trial, run_experiment
from search._mlflow import PARENT_ID_TAG
from search._optuna import load_study
from search.records import read_trials
from spaces.nas import NB201Cell
from tests.helpers import tiny_config

MAX_PARAMS = 950  # about the median of this macro skeleton's parameter counts over random cells


def test_evolution_over_a_cell_space_with_a_parameter_budget(ray_session, tmp_path, env_without_tracking):
    config = tiny_config(
        "nas-run", trainer="nas",
        space={"cell": {"type": "nb201_cell"}, "lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True},
               "channels": 4, "cells": 1, "stages": 2},
        searcher={"type": "evolution", "population_size": 4, "sample_size": 2},
        scheduler={"type": "asha", "max_epochs": 2, "grace_period": 1, "reduction_factor": 2},
        budget={"trials": 10, "max_concurrent": 2},
        constraints={"params": {"max": MAX_PARAMS}},
    )
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    rows = read_trials(result.folder)
    assert len(rows) == 10 and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    assert all(NB201Cell().contains(r["params"]["cell"]) for r in rows)  # genotypes as plain strings
    for row in rows:
        assert row["hw_params"] > 0 and row["hw_macs"] > 0 and row["hw_latency_ms"] > 0
        assert row["feasible"] == (row["hw_params"] <= MAX_PARAMS)
        if not row["feasible"]:  # stopped at the first report that showed the violation
            assert row["epochs_run"] == 1 and "params <= 950" in row["violations"]
    assert {r["feasible"] for r in rows} == {True, False}

    study = load_study(result.folder / "optuna.journal", "nas-run")
    children = [t for t in study.trials if "evolution:parent" in t.system_attrs]
    assert children, "after the population filled, trials were mutated from tournament winners"
    for trial in study.trials:
        row = next(r for r in rows if r["number"] == trial.number)
        assert (max(trial.system_attrs["constraints"]) <= 0) == row["feasible"]
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)

    winner = best_trial(tmp_path, "nas-run")
    winner_row = next(r for r in rows if r["number"] == winner["trial"])
    assert winner_row["feasible"] and winner_row["state"] == "COMPLETE"
    # the winning cell drawn, with the genotype it shows
    assert (result.folder / "plots" / "winning_cell.txt").read_text().strip() == winner["params"]["cell"]
    assert (result.folder / "plots" / "winning_cell.png").read_bytes()[:4] == b"\x89PNG"

    client = MlflowClient(result.tracking_uri)
    children_runs = client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                                       f"tags.`{PARENT_ID_TAG}` = '{result.parent_run_id}'")
    assert len(children_runs) == 10
    infeasible = [c for c in children_runs if c.data.tags.get("hypernas.feasible") == "false"]
    assert len(infeasible) == sum(not r["feasible"] for r in rows)
    assert all("params" in c.data.metrics and "latency_ms" in c.data.metrics for c in children_runs)
    assert all(NB201Cell().contains(c.data.params["cell"]) for c in children_runs)
