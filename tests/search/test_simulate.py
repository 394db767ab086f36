"""``hypernas simulate``: the experiment's own Optuna sampler and Ray scheduler classes over recorded curves, on a
simulated clock — an ordinary experiment out, the same decisions as a real run, stragglers and lost workers that
lose nothing, bad tables refused with nothing written."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from search import run_experiment
from search._optuna import load_study
from search.cli import main
from search.records import read_trials, reproducible_view
from search.simulate import simulate_experiment
from tests.helpers import sim_config, sim_table, tiny_config


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return sim_table(tmp_path_factory.mktemp("table") / "curves.parquet", curves=2)


def simulate(tmp_path, config, table, workers=4, **options):
    options.setdefault("tracking", False)
    options.setdefault("plots", False)  # drawn and checked once, in the first test
    return simulate_experiment(config, curves=table, workers=workers, workdir=tmp_path, stream=io.StringIO(),
                               overwrite=True, **options)


def view(result):
    return reproducible_view(pq.read_table(result.trials_path))


def decisions(result):
    """The decision log without what differs between runs (sequence numbers, wall time)."""
    return [{k: v for k, v in row.items() if k not in ("seq", "time")}
            for row in pq.read_table(result.events_path).to_pylist()]


def per_trial(result, keys=None):
    """Each trial's asks, tells and decisions (how they interleave between trials follows the clock)."""
    rows = [e if keys is None else {k: e[k] for k in keys} for e in decisions(result) if e["kind"] != "wait"]
    return sorted(rows, key=lambda e: (e["trial"], e["kind"], e["epoch"] or 0))


def test_a_simulation_is_an_ordinary_experiment_and_the_same_seed_repeats_it(tmp_path, table, capsys):
    first = simulate(tmp_path / "a", sim_config("sim"), table, tracking=True, plots=True)
    rows = read_trials(first.folder)
    assert len(rows) == 40 and {r["state"] for r in rows} == {"COMPLETE", "PRUNED"}
    assert all(r["sim_ended_s"] > r["sim_started_s"] >= 0 for r in rows)
    curves = pq.read_table(first.curves_path).to_pylist()
    assert all(row["sim_time_s"] > 0 and row["epoch_wall_s"] > 0 for row in curves)
    rungs = [e for e in decisions(first) if e["kind"] == "decision" and e["rung"] is not None]
    assert {e["decision"] for e in rungs} == {"CONTINUE", "STOP"}
    assert all(e["cutoff"] is not None for e in rungs if e["decision"] == "STOP")  # stopped below a cutoff
    state = json.loads((first.folder / "state.json").read_text())
    assert state["simulated"]["workers"] == 4 and state["simulated"]["makespan_s"] > 0
    assert "max_concurrent: 4" in (first.folder / "config.yaml").read_text()

    # MLflow got the parent and one child run per trial, in one batch at the end
    from mlflow import MlflowClient

    client = MlflowClient(state["tracking_uri"])
    runs = client.search_runs([state["mlflow_experiment_id"]], max_results=1000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == state["parent_run_id"]]
    assert len(children) == 40 and all(r.info.status == "FINISHED" for r in children)
    parent = client.get_run(state["parent_run_id"])
    assert parent.data.tags["hypernas.simulated"] == "true" and parent.data.metrics["sim_makespan_s"] > 0
    assert (first.folder / "plots" / "learning_curves.png").is_file()

    # the verbs that read an experiment read it; those that need a trained model refuse it
    where = ["--workdir", str(tmp_path / "a")]
    for argv in (["status", "sim"], ["best", "sim"], ["report", "sim"]):
        assert main([*argv, *where]) == 0, argv
    assert "simulated time on 4 workers" in capsys.readouterr().out
    for argv in (["test", "sim"], ["resume", "sim"], ["replay", "sim", "--trial", "0"]):
        assert main([*argv, *where]) == 2, argv
        assert "was simulated" in capsys.readouterr().err

    again = simulate(tmp_path / "b", sim_config("sim"), table)
    assert view(again) == view(first) and decisions(again) == decisions(first)
    assert [r["sim_ended_s"] for r in read_trials(again.folder)] == [r["sim_ended_s"] for r in rows]
    other = simulate(tmp_path / "c", sim_config("sim", seed=1), table)
    assert view(other) != view(first)


def test_a_real_strict_run_and_its_simulation_decide_alike_at_any_worker_count(ray_session, tmp_path,
                                                                                env_without_tracking):
    """Record once, replay many: the real run's own folder is the table. Strict mode makes the searcher's and the
    scheduler's decisions independent of timing, so the simulation — the same Optuna sampler, Ray's ASHA — must
    ask the same configurations and stop the same trials at the same rungs, on 1 worker or 50."""
    config = tiny_config("strict", reproducible={"mode": "strict", "generation_size": 4}, resources={"cpus": 0.5},
                         budget={"trials": 8, "max_concurrent": 2},
                         scheduler={"type": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2})
    real = run_experiment(config, workdir=tmp_path / "real", stream=io.StringIO())
    real_view = view(real)
    assert {r["state"] for r in real_view} >= {"COMPLETE", "PRUNED"}
    keys = ("kind", "trial", "epoch", "value", "decision", "rung", "cutoff", "state", "detail")
    for workers in (1, 3, 50):
        sim = simulate(tmp_path / f"sim{workers}", config, real.folder, workers=workers)
        assert view(sim) == real_view, workers
        assert per_trial(sim, keys) == per_trial(real, keys), workers


SEARCHERS = ("tpe", "random", "cmaes", "grid", "evolution")
SCHEDULERS = {
    "asha": {"type": "asha", "max_epochs": 9, "grace_period": 1, "reduction_factor": 3},
    "hyperband": {"type": "hyperband", "max_epochs": 9, "reduction_factor": 3},
    "median": {"type": "median", "max_epochs": 9, "grace_period": 2, "min_samples_required": 3},
    "none": {"type": "none", "max_epochs": 5},
}


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("searcher", SEARCHERS)
def test_every_searcher_and_scheduler_runs_every_trial(tmp_path, table, searcher, scheduler):
    out = io.StringIO()
    result = simulate_experiment(sim_config(f"{searcher}-{scheduler}", searcher={"type": searcher},
                                            scheduler=SCHEDULERS[scheduler], budget={"trials": 60}),
                                 curves=table, workers=4, workdir=tmp_path, stream=out, tracking=False,
                                 plots=False)
    rows = read_trials(result.folder)
    expected = 48 if searcher == "grid" else 60  # the grid has 48 points: the budget is capped, with a note
    assert ("grid has 48 points" in out.getvalue()) == (searcher == "grid")
    assert len(rows) == expected and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    assert sorted(r["number"] for r in rows) == list(range(expected))
    if scheduler == "none":
        assert all(r["state"] == "COMPLETE" and r["epochs_run"] == 5 for r in rows)
    else:  # early stopping stopped some: paused HyperBand trials resumed from where they were
        assert {r["state"] for r in rows} == {"COMPLETE", "PRUNED"}
    if searcher == "grid":  # every point once
        assert len({json.dumps(r["params"], sort_keys=True) for r in rows}) == 48
    study = load_study(result.folder / "optuna.journal", f"{searcher}-{scheduler}")
    assert sorted(t.state.name for t in study.trials) == sorted(r["state"] for r in rows)


def _ordered(name, **changes):
    return sim_config(name, **{"searcher": {"type": "random"}, "budget": {"trials": 40, "max_concurrent": 6},
                               "scheduler": {"type": "asha", "max_epochs": 9, "grace_period": 1, "reduction_factor": 3,
                                             "promotion": "ordered"}, **changes})


@pytest.mark.parametrize("mode", ["ordered", "strict"])
def test_slow_trials_and_slow_nodes_never_change_which_trials_are_promoted(tmp_path, table, mode):
    """The promise of ordered promotion (parked trials) and of strict mode (held trials): stragglers change the
    clock, never the decisions — here with 50× slower trials and 20× slower workers."""
    changes = {"reproducible": {"mode": "strict", "generation_size": 6}} if mode == "strict" else {}
    clean = simulate(tmp_path / "clean", _ordered("same", **changes), table, workers=6)
    slow = simulate(tmp_path / "slow", _ordered("same", **changes), table, workers=6,
                    stragglers=["slow:0.25:50", "node:0.34:20"])
    assert view(slow) == view(clean)

    assert per_trial(slow) == per_trial(clean)
    waits = [e for e in decisions(slow) if e["kind"] == "wait"]
    assert waits and (mode == "strict" or all('"parked": true' in e["detail"] for e in waits))
    slow_state = json.loads((slow.folder / "state.json").read_text())["simulated"]
    clean_state = json.loads((clean.folder / "state.json").read_text())["simulated"]
    assert slow_state["makespan_s"] > clean_state["makespan_s"]
    # the slowed trials are the ones flagged: ten of forty (a seeded systematic quarter), and no other
    flagged = {r["number"] for r in read_trials(slow.folder) if r["straggler"]}
    from search.config import load_config
    from search.faults import in_fraction
    from search.seeds import derive_seed

    cfg = load_config(slow.folder / "config.yaml")
    rule = next(i for i, r in enumerate(cfg.faults) if r.slow == 50)
    chosen = {n for n in range(40) if in_fraction(0.25, n, derive_seed(cfg.seed, f"fault{rule}") / 2**32)}
    assert len(chosen) == 10 and chosen <= flagged


def test_hung_trials_and_lost_workers_are_retried_and_nothing_is_lost(tmp_path, table):
    config = sim_config("faults", tolerance={"stall_timeout_s": 30, "max_retries": 2}, budget={"trials": 40})
    result = simulate(tmp_path, config, table, workers=8, stragglers=["hang:0.2", "lost:0.5@12"])
    rows = read_trials(result.folder)
    assert sorted(r["number"] for r in rows) == list(range(40))
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    history = {r["number"]: json.loads(r["attempt_history"] or "[]") for r in rows}
    assert {a["state"] for attempts in history.values() for a in attempts} == {"STALLED", "PREEMPTED"}
    from search.config import load_config
    from search.faults import in_fraction
    from search.seeds import derive_seed

    cfg = load_config(result.folder / "config.yaml")
    hung = {n for n in range(40) if in_fraction(0.2, n, derive_seed(cfg.seed, "fault0") / 2**32)}
    # every hung trial's first attempt ended badly — killed by the watchdog, or lost with its worker first — and
    # its retry finished it
    assert len(hung) == 8 and all(history[n] and history[n][0]["attempt"] == 1 for n in hung)
    stalled = {n for n, attempts in history.items() if any(a["state"] == "STALLED" for a in attempts)}
    assert stalled and stalled <= hung
    kills = [e for e in decisions(result) if e["kind"] == "stall_kill"]
    assert sorted(e["trial"] for e in kills) == sorted(stalled) and all(e["value"] == pytest.approx(30.0) for e in kills)
    nodes = {r["node"] for r in rows if r["sim_started_s"] > 12}
    assert len(nodes) <= 4  # half the workers were lost at second 12


def test_an_experiment_folder_with_pruned_curves_needs_nearest_lookup_for_what_it_lacks(tmp_path, table):
    base = simulate(tmp_path / "base", sim_config("base", budget={"trials": 12}), table)
    # replayed with another seed, the sampler asks for configurations the recording never trained that far
    with pytest.raises(Exception) as refused:
        simulate(tmp_path / "exact", sim_config("again", seed=5), base.folder)
    assert "--lookup nearest" in str(refused.value) or "ends at epoch" in str(refused.value)
    assert not (tmp_path / "exact" / "again").exists()
    nearest = simulate(tmp_path / "near", sim_config("again", seed=5, budget={"trials": 12}), base.folder,
                       lookup="nearest")
    assert len(read_trials(nearest.folder)) == 12


@pytest.mark.parametrize("argv, field, words", [
    (["--workers", "0"], "--workers", "[1,"),
    (["--workers", "4", "--straggler", "slow:2:3"], "--straggler", "fraction"),
    (["--workers", "4", "--straggler", "wobbly"], "--straggler", "slow:FRACTION:FACTOR"),
    (["--workers", "4", "--straggler", "hang:0.1"], "tolerance.stall_timeout_s", "stall timeout"),
    (["--workers", "4", "--set", "metric.name=train_loss", "--set", "metric.mode=min"], "--curves", "train_loss"),
    (["--workers", "4", "--set", "space.width.choices=[16, 128]"], "--curves", "is not in the table"),
    (["--workers", "4", "--set", "scheduler.max_epochs=12"], "--curves", "ends at epoch 9"),
])
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(tmp_path, table, capsys, argv, field, words):
    import yaml

    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(sim_config("bad")))
    work = tmp_path / "work"
    assert main(["simulate", str(config), "--curves", str(table), "--workdir", str(work), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hypernas: error: {field}:") and words in err[0], err
    assert not work.exists()


def test_a_missing_table_and_a_table_without_epoch_times_are_refused(tmp_path, table, capsys):
    import pyarrow as pa

    without = tmp_path / "no-times.parquet"
    pq.write_table(pq.read_table(table).drop(["epoch_time_s"]), without)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet")
    for curves, words in ((tmp_path / "nowhere.parquet", "no such table"), (without, "epoch_time_s"),
                          (garbage, "not a readable Parquet")):
        with pytest.raises(Exception) as refused:
            simulate(tmp_path / "w", sim_config("t"), curves)
        assert words in str(refused.value)
    pq.write_table(pa.table({"epoch": [1], "x": [0.1]}), tmp_path / "other.parquet")
    with pytest.raises(Exception) as refused:
        simulate(tmp_path / "w", sim_config("t"), tmp_path / "other.parquet")
    assert "epoch_time_s" in str(refused.value) or "depth" in str(refused.value)


def test_nearest_lookup_replays_the_closest_configuration(table):
    from search.config import load_config
    from search.simulation import CurveTable

    cfg = load_config(tiny_config("near", space={"depth": {"type": "int", "low": 1, "high": 4},
                                                 "width": {"type": "categorical", "choices": [16, 32, 64]},
                                                 "lr": {"type": "float", "low": 0.001, "high": 0.03, "log": True},
                                                 "batch_size": 64}))
    curves = CurveTable.read(table, cfg).bind(cfg)
    picked = curves.lookup({"depth": 3, "width": 32, "lr": 0.0029, "batch_size": 64}, 9, seed=0, lookup="nearest")
    assert picked.params == {"depth": 3, "width": 32, "lr": 0.003, "batch_size": 64}
    other = curves.lookup({"depth": 3, "width": 32, "lr": 0.0029, "batch_size": 64}, 9, seed=1, lookup="nearest")
    assert other.params == picked.params and other is not picked  # two recorded curves: the seed picks one


def test_a_sampler_history_window_keeps_trial_numbers_and_bounds_what_the_sampler_sees(tmp_path, table):
    from search._optuna import AskTellStudy
    from search.config import load_config

    cfg = load_config(sim_config("window"))
    study = AskTellStudy.create("window", cfg.space, cfg.searcher, 0, "max", None, history=10)
    open_ones = []
    for n in range(60):
        number, _ = study.ask()
        assert number == n
        study.report(number, 1, 0.01 * n)
        open_ones.append(number)
        if len(open_ones) > 3:  # a few stay open across the window's moves, as running trials do
            study.tell(open_ones.pop(0), "COMPLETE", 0.01 * n)
        assert len(study.study.trials) <= 2 * 10 + 4
    for number in open_ones:
        study.tell(number, "PRUNED")
    assert not any(study.is_open(n) for n in range(60))
    result = simulate(tmp_path, sim_config("window", budget={"trials": 60}), table, sampler_history=10)
    assert sorted(r["number"] for r in read_trials(result.folder)) == list(range(60))


def test_hundreds_of_parked_trials_are_decided_and_nothing_is_lost(tmp_path, table):
    """Ordered promotion at scale: with 300 workers and a few 50x stragglers, hundreds of trials wait parked at a rung
    at once, and each straggler's end decides them in one go."""
    result = simulate(tmp_path, _ordered("many", budget={"trials": 900}), table, workers=300,
                      stragglers=["slow:0.02:50"])
    rows = read_trials(result.folder)
    assert sorted(r["number"] for r in rows) == list(range(900))
    assert {r["state"] for r in rows} == {"COMPLETE", "PRUNED"}
    parked = {e["trial"] for e in decisions(result) if e["kind"] == "wait"}
    assert len(parked) > 100


def test_a_multi_objective_simulation_has_a_front_and_says_it_cannot_be_tested(tmp_path, table, capsys):
    config = sim_config("mo", metric=None, searcher={"type": "motpe"},
                        objectives=[{"name": "val_accuracy", "mode": "max"}, {"name": "epoch_time_s", "mode": "min"}])
    result = simulate(tmp_path, config, table)
    rows = read_trials(result.folder)
    front = [r for r in rows if r["pareto"]]
    assert front and all(r["state"] == "COMPLETE" for r in front)
    assert main(["best", "mo", "--workdir", str(tmp_path)]) == 0
    assert "simulated over recorded curves" in capsys.readouterr().out
