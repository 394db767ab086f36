"""Multi-objective search end to end, through the CLI: real Ray, real training, real Optuna NSGA-II, MLflow on SQLite.

The Pareto front hypernas reports (``trials.parquet``'s ``pareto`` column, ``hypernas best --json``) is checked
against a brute-force recomputation from the values in ``trials.parquet``; the winner comes from the config's
``select:`` rule on validation values, and ``hypernas test`` opens the sealed split once for it and records the rule.
Energy: this machine has no NVML or RAPL counter, so every trial's energy is a flagged estimate.
"""

from __future__ import annotations

import json
import math
import re

import pyarrow.parquet as pq
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search._optuna import load_study
from search.cli import main
from search.records import read_trials
from search.sealing import TestLedger
from tests.helpers import tiny_config

OBJECTIVES = [{"name": "val_accuracy", "mode": "max"}, {"name": "energy_j", "mode": "min"}]


def _brute_force_front(rows: list[dict]) -> set[int]:
    """Non-dominated COMPLETE, feasible trials, by comparing every pair (the definition, nothing clever)."""
    def loss(row):
        return (-row["value_val_accuracy"], row["value_energy_j"])

    eligible = [r for r in rows if r["state"] == "COMPLETE" and r["feasible"]]
    return {a["number"] for a in eligible
            if not any(all(x <= y for x, y in zip(loss(b), loss(a))) and loss(b) != loss(a) for b in eligible)}


def _report(capsys, workdir, out) -> str:
    capsys.readouterr()
    assert main(["report", "pareto", "--workdir", str(workdir), "--out", str(out)]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    return out.read_text()


def _run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.JSONDecoder().raw_decode(capsys.readouterr().out)[0]  # `test` prints a summary line after it


def test_a_multi_objective_run_through_the_cli(ray_session, tmp_path, env_without_tracking, capsys):
    config = tiny_config("pareto", objectives=OBJECTIVES, searcher={"type": "nsga2", "population_size": 4},
                         select={"rule": "knee"}, budget={"trials": 10, "max_concurrent": 2})
    del config["metric"]
    path = tmp_path / "pareto.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "w"
    assert main(["run", str(path), "--workdir", str(workdir)]) == 0
    folder = workdir / "pareto"

    rows = read_trials(folder)
    assert len(rows) == 10 and "PRUNED" in {r["state"] for r in rows}  # ASHA watched the first objective
    front = _brute_force_front(rows)
    assert front and {r["number"] for r in rows if r["pareto"]} == front
    # energy: measured per trial, flagged as an estimate on a machine without counters, never blank
    assert all(r["energy_source"] == "estimate" and r["energy_j"] > 0 for r in rows)
    curves = pq.read_table(folder / "curves.parquet").to_pylist()
    assert all(c["energy_source"] == "estimate" and c["epoch_energy_j"] > 0 for c in curves)
    for row in rows:  # the objective told is the last epoch's cumulative energy
        last = max((c for c in curves if c["trial"] == row["number"]), key=lambda c: c["epoch"])
        assert row["value_energy_j"] == last["energy_j"] == row["energy_j"]

    # Optuna: a two-objective study; pruned trials told PRUNED; complete ones told both values
    study = load_study(folder / "optuna.journal", "pareto")
    assert len(study.directions) == 2
    for trial in study.trials:
        row = next(r for r in rows if r["number"] == trial.number)
        assert trial.state == {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED}[row["state"]]
        if row["state"] == "COMPLETE":
            assert trial.values == [row["value_val_accuracy"], row["value_energy_j"]]

    best = _run_json(capsys, "best", "pareto", "--workdir", str(workdir), "--json")
    assert {p["trial"] for p in best["front"]} == front
    assert not (workdir / "test_ledger.jsonl").exists(), "choosing the winner never touches the test split"
    # the knee, recomputed: scale each objective over the front to [0, 1], closest to the ideal point
    points = {r["number"]: (-r["value_val_accuracy"], r["value_energy_j"]) for r in rows if r["number"] in front}
    low = [min(p[i] for p in points.values()) for i in range(2)]
    high = [max(p[i] for p in points.values()) for i in range(2)]
    distance = {n: sum(((p[i] - low[i]) / (high[i] - low[i]) if high[i] > low[i] else 0) ** 2 for i in range(2))
                for n, p in points.items()}
    knee = min(distance, key=lambda n: (distance[n], n))
    assert best["selected"]["trial"] == knee and [p["selected"] for p in best["front"]].count(True) == 1
    capsys.readouterr()
    assert main(["best", "pareto", "--workdir", str(workdir)]) == 0
    table = capsys.readouterr().out
    assert "Pareto front of pareto" in table and "knee" in table

    status = _run_json(capsys, "status", "pareto", "--workdir", str(workdir), "--json")
    assert status["pareto_front"] == sorted(front)
    energy = status["energy"]
    assert energy["estimated"] and set(energy["by_source"]) == {"estimate"}
    assert math.isclose(energy["energy_j"], sum(r["energy_spent_j"] for r in rows))
    assert math.isclose(energy["co2e_g"], energy["energy_j"] / 3.6e6 * 480.0)

    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    state = json.loads((folder / "state.json").read_text())
    parent = client.get_run(state["parent_run_id"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_front.json", "pareto_front.png"} <= artifacts
    assert parent.data.tags["hypernas.pareto_front"] == ",".join(str(n) for n in sorted(front))
    assert math.isclose(parent.data.metrics["energy_total_j"], energy["energy_j"])
    assert parent.data.tags["hypernas.selected_trial"] == str(knee)
    assert f"selected by the config's rule: trial {knee}" in parent.data.tags["mlflow.note.content"]
    from search._mlflow import ui_url

    assert ui_url("http://127.0.0.1:5000", state["mlflow_experiment_id"]) == \
        f"http://127.0.0.1:5000/#/experiments/{state['mlflow_experiment_id']}/runs?workflowType=machine_learning"
    assert main(["ui", "no-such-experiment", "--workdir", str(workdir)]) == 2

    # the report: one static file, nothing fetched, pictures embedded; the split still sealed
    sealed = _report(capsys, workdir, tmp_path / "before.html")
    assert "The test split is still sealed" in sealed
    assert sealed.count("data:image/png;base64,") >= 5  # curves, best so far, coordinates, importances, front
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", sealed) and "<script" not in sealed
    assert all(f">{n}</td>" in sealed for n in range(10)) and "energy" in sealed.lower()

    audit = _run_json(capsys, "test", "pareto", "--workdir", str(workdir))
    assert audit["trial"] == knee and audit["selection"]["rule"] == {"rule": "knee"}
    assert audit["validation_metric"] == "val_accuracy" and audit["retrain_energy_source"] == "estimate"
    assert audit["retrain_energy_j"] > 0
    opens = [e for e in TestLedger(workdir).events() if e.get("event") == "open"]
    assert len(opens) == 1 and opens[0]["trial"] == knee
    opened = _report(capsys, workdir, tmp_path / "after.html")
    assert "still sealed" not in opened and "the knee of the Pareto front" in opened
    after = _run_json(capsys, "status", "pareto", "--workdir", str(workdir), "--json")["energy"]
    assert math.isclose(after["energy_j"], energy["energy_j"] + audit["retrain_energy_j"])


@pytest.mark.parametrize("searcher", ["tpe", "cmaes", "evolution"])
def test_a_single_objective_searcher_refuses_objectives(tmp_path, capsys, searcher):
    config = tiny_config("refused", objectives=OBJECTIVES, searcher={"type": searcher})
    del config["metric"]
    path = tmp_path / "refused.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "searcher.type" in err and "single objective" in err and "nsga2" in err
    assert not (tmp_path / "w" / "refused").exists()


@pytest.mark.parametrize("bound, feasible", [(1e12, True), (1e-12, False)])
def test_a_constraint_on_energy_is_judged_on_the_measured_energy(ray_session, tmp_path, env_without_tracking,
                                                                 bound, feasible):
    """energy_j is added by the trial's reporter, not the recipe: a bound on it sees the reported value."""
    from search import run_experiment

    config = tiny_config("bounded", constraints={"energy_j": {"max": bound}}, budget={"trials": 3, "max_concurrent": 2},
                         scheduler={"type": "none", "max_epochs": 2}, searcher={"type": "random"})
    import io

    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    rows = read_trials(result.folder)
    assert {r["feasible"] for r in rows} == {feasible}
    if feasible:  # nothing stopped: every trial trained its budget
        assert {(r["state"], r["epochs_run"]) for r in rows} == {("COMPLETE", 2)}
    else:  # stopped at the report that showed the bound broken, never selected
        assert {r["epochs_run"] for r in rows} == {1} and result.best is None
