"""One-shot NAS experiments end to end through the CLI, on real training: supernet searches (DARTS, ENAS) as Ray
trials, then the derived genotypes retrained as ordinary trials — one journal, one Parquet table, one MLflow parent,
selection on validation, the sealed test once, replay of either phase."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from search.cli import main
from search.events import EventLog
from search.records import read_trials
from search.workdir import ExperimentFolder
from spaces.nas import DartsCell, NB201Cell
from tests.conftest import ROOT
from tests.helpers import hypernas_in_process, tiny_config
from tests.search.test_resume import HYPERNAS, journal


def oneshot_config(name, method, cell, oneshot=None, **sections):
    config = tiny_config(
        name, trainer="nas",
        space={"cell": cell, "lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True}, "channels": 4,
               "cells": 1, "stages": 1, "batch_size": 64},
        searcher={"type": "random"}, scheduler={"type": "none", "max_epochs": 2},
        budget={"trials": 3, "max_concurrent": 2},
        oneshot={"method": method, "search_seeds": 2, "epochs": 2, "top_k": 2,
                 "settings": {"stages": 1, "cells": 1, "channels": 4, "batch_size": 64, **(oneshot or {})}},
    )
    config.update(sections)
    return config


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_darts_search_then_retrain_through_the_cli(ray_session, tmp_path, capsys, clean_env):
    path = tmp_path / "darts.yaml"
    path.write_text(yaml.safe_dump(oneshot_config("darts-1d", "darts", {"type": "nb201_cell"})))
    workdir = tmp_path / "w"
    code, out, err = run_cli(["run", str(path), "--workdir", str(workdir)], capsys)
    assert code == 0, out + err
    assert "one-shot" in out and "2 darts searches" in out

    folder = workdir / "darts-1d"
    rows = read_trials(folder)
    searches = [r for r in rows if r["phase"] == "search"]
    retrains = [r for r in rows if r["phase"] == "retrain"]
    assert [r["number"] for r in searches] == [0, 1] and all(r["state"] == "COMPLETE" for r in searches)
    assert all(NB201Cell().contains(r["derived_genotype"]) for r in searches)
    derived = {r["derived_genotype"] for r in searches}
    # every distinct derived genotype is retrained (top_k=2 ≥ distinct), then the sampler fills budget.trials=3
    assert [r["number"] for r in retrains] == [2, 3, 4]
    assert {r["params"]["cell"] for r in retrains} == derived
    assert all(r["state"] == "COMPLETE" and r["epochs_run"] == 2 for r in retrains)
    assert all(r["params"]["method"] == "darts" for r in searches)

    # the decision log covers both phases: every trial asked and told, in number order of asking
    events = EventLog.read(folder)
    assert sorted(e["trial"] for e in events.rows if e["kind"] == "ask") == list(range(5))
    assert sorted(e["trial"] for e in events.rows if e["kind"] == "tell") == list(range(5))

    # MLflow: search and retrain runs under one parent; architecture weights per epoch, heatmap, genotype
    state = ExperimentFolder(workdir, "darts-1d").read_state()
    client = MlflowClient(state["tracking_uri"])
    runs = client.search_runs([state["mlflow_experiment_id"]], f"tags.`mlflow.parentRunId` = '{state['parent_run_id']}'")
    by_number = {int(r.data.tags["hypernas.trial_number"]): r for r in runs}
    assert sorted(by_number) == list(range(5))
    for number in (0, 1):
        run = by_number[number]
        assert run.data.tags["hypernas.phase"] == "search"
        assert run.data.tags["hypernas.derived_genotype"] == rows[number]["derived_genotype"]
        alphas = [k for k in run.data.metrics if k.startswith("alpha.cell.e")]
        assert len(alphas) == 6 * 5  # 6 edges × 5 NAS-Bench-201 ops
        history = client.get_metric_history(run.info.run_id, alphas[0])
        assert sorted(m.step for m in history) == [1, 2]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"architecture.svg", "genotype.txt"} <= artifacts
    assert all(by_number[n].data.tags["hypernas.phase"] == "retrain" for n in (2, 3, 4))
    parent = client.get_run(state["parent_run_id"])
    assert parent.data.metrics["oneshot.distinct_genotypes"] == len(derived)
    assert "oneshot.search_val_accuracy_std" in parent.data.metrics

    # selection on validation among the retrains; the sealed test opens once, unchanged
    code, out, _ = run_cli(["best", "darts-1d", "--workdir", str(workdir)], capsys)
    assert code == 0
    best = json.loads(out)
    assert best["trial"] in (2, 3, 4) and best["params"]["cell"] in derived
    code, out, err = run_cli(["test", "darts-1d", "--workdir", str(workdir)], capsys)
    assert code == 0, out + err
    assert "test_accuracy" in out

    # replay either phase bit for bit from the journal
    for number in (0, best["trial"]):
        code, out, err = run_cli(["replay", "darts-1d", "--trial", str(number), "--workdir", str(workdir)], capsys)
        assert code == 0 and f"identical: trial {number}" in out, out + err


def test_enas_over_a_darts_cell_on_digits(ray_session, tmp_path, capsys, clean_env):
    cell = {"type": "darts_cell", "nodes": 2}
    # HyperBand brackets over the retrains; the searches never join one
    config = oneshot_config("enas-2d", "enas", cell, data={"source": "digits"}, budget={"trials": 2},
                            scheduler={"type": "hyperband", "max_epochs": 2})
    config["oneshot"]["search_seeds"] = 1
    config["space"]["lr"] = 0.01
    path = tmp_path / "enas.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "w"
    code, out, err = run_cli(["run", str(path), "--workdir", str(workdir)], capsys)
    assert code == 0, out + err
    rows = read_trials(workdir / "enas-2d")
    assert [r["phase"] for r in rows] == ["search", "retrain"]  # one genotype, nothing else free: one retrain
    assert DartsCell(nodes=2).contains(rows[0]["derived_genotype"])
    assert rows[1]["params"]["cell"] == rows[0]["derived_genotype"] and rows[1]["state"] == "COMPLETE"


def test_a_bad_oneshot_section_exits_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(oneshot_config("bad", "darts", {"type": "nb201_cell"},
                                                  oneshot={"skip_cap": -1})))
    code, out, err = run_cli(["validate", str(path)], capsys)
    assert code == 2 and "oneshot.settings.skip_cap" in err and not (tmp_path / "hypernas-runs").exists()


def test_interrupted_in_the_retrain_phase_resume_finishes_both_phases_once(ray_session, tmp_path, monkeypatch, capsys):
    # retrains are held before their 2nd epoch until the release file exists: the interrupt comes mid-retrain
    release = tmp_path / "release"
    config = oneshot_config("one-resume", "darts", {"type": "nb201_cell"},
                            faults=[{"trials": [2, 3, 4], "hang_at_epoch": 2, "release_file": str(release)}])
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir, folder = tmp_path / "w", tmp_path / "w" / "one-resume"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    driver = subprocess.Popen([*HYPERNAS, "run", str(path), "--workdir", str(workdir)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not any(e["kind"] == "result" and e["number"] >= 2 for e in journal(folder)):
            assert driver.poll() is None and time.monotonic() < deadline, "no retrain started"
            time.sleep(0.2)
        os.killpg(driver.pid, signal.SIGINT)
        output, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 130, output.decode()[-3000:]
    release.touch()
    done = hypernas_in_process(monkeypatch, capsys, "resume", "one-resume", "--workdir", str(workdir))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = read_trials(folder)
    assert [r["number"] for r in rows] == list(range(5)) and all(r["state"] == "COMPLETE" for r in rows)
    started = [e["number"] for e in journal(folder) if e["kind"] == "started" and e["number"] < 2]
    assert sorted(started) == [0, 1]  # the searches ran once: the resume did not search again
    derived = {r["derived_genotype"] for r in rows[:2]}
    assert {r["params"]["cell"] for r in rows[2:]} == derived
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("one-resume").experiment_id])
    assert sorted(int(r.data.tags["hypernas.trial_number"]) for r in runs if "hypernas.trial_number" in r.data.tags) \
        == list(range(5))
