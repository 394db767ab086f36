"""The Pareto front and the select: rule (search.pareto), and the config rules of multi-objective search."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from search.config import ConfigError, load_config
from search.constraints import Constraint
from search.pareto import Objective, SelectionRuleError, dominates, front_numbers, pareto_rows, select

ACC_ENERGY = [Objective("val_accuracy", "max"), Objective("energy_j", "min")]
BASE = {"name": "mo", "trainer": "mlp", "space": {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}}}


def _brute_force(points, objectives):
    def loss(values):
        return [o.loss(v) for o, v in zip(objectives, values)]

    finite = {n: v for n, v in points.items() if all(math.isfinite(x) for x in v)}
    return sorted(n for n, v in finite.items()
                  if not any(all(a <= b for a, b in zip(loss(w), loss(v))) and loss(w) != loss(v)
                             for w in finite.values()))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("objectives", [ACC_ENERGY, [*ACC_ENERGY, Objective("latency_ms", "min")]])
def test_front_matches_the_definition_with_ties_and_non_finite_values(seed, objectives):
    rng = random.Random(seed)
    points = {n: [rng.choice([0.5, 0.6, 0.7, 0.8]) if o.mode == "max" else rng.choice([1.0, 2.0, 3.0])
                  for o in objectives] for n in range(40)}
    points[40] = [math.nan] + points[0][1:]
    points[41] = list(points[3])  # an exact tie: both are on the front or neither is
    front = front_numbers(points, objectives)
    assert front == _brute_force(points, objectives)
    assert (3 in front) == (41 in front) and 40 not in front


def test_dominates_is_strict():
    assert dominates([0, 0], [0, 1]) and not dominates([0, 1], [0, 1]) and not dominates([0, 2], [1, 1])


def _row(number, acc, energy, state="COMPLETE", feasible=True, phase=None):
    return {"number": number, "state": state, "feasible": feasible, "phase": phase,
            "objective_values": {"val_accuracy": acc, "energy_j": energy}}


ROWS = [_row(0, 0.90, 100.0), _row(1, 0.95, 300.0), _row(2, 0.97, 900.0), _row(3, 0.80, 50.0),
        _row(4, 0.85, 400.0),  # dominated by 1
        _row(5, 0.99, 10.0, state="PRUNED"), _row(6, 0.99, 10.0, feasible=False), _row(7, 0.99, 5.0, phase="search")]


def test_only_complete_feasible_trials_compete():
    assert [r["number"] for r in pareto_rows(ROWS, ACC_ENERGY)] == [0, 1, 2, 3]


def test_select_by_objective_within_bounds_and_the_knee():
    front = pareto_rows(ROWS, ACC_ENERGY)
    assert select(front, ACC_ENERGY, "objective", "val_accuracy")["number"] == 2
    assert select(front, ACC_ENERGY, "objective", "energy_j")["number"] == 3
    bound = (Constraint("energy_j", max=350.0),)
    assert select(front, ACC_ENERGY, "objective", "val_accuracy", bound)["number"] == 1
    # the knee: scaled losses over the front — trial 1 (0.95, 300 J) is closest to the ideal corner
    scaled = {r["number"]: ((0.97 - r["objective_values"]["val_accuracy"]) / 0.17) ** 2
              + ((r["objective_values"]["energy_j"] - 50) / 850) ** 2 for r in front}
    assert select(front, ACC_ENERGY, "knee")["number"] == min(scaled, key=scaled.get) == 1
    with pytest.raises(SelectionRuleError, match="energy_j <= 1"):
        select(front, ACC_ENERGY, "objective", "val_accuracy", (Constraint("energy_j", max=1.0),))


def test_objectives_config_round_trips_and_defaults_to_a_multi_objective_searcher():
    cfg = load_config({**BASE, "objectives": [{"name": "val_accuracy", "mode": "max"}, "energy_j"]})
    assert cfg.multi_objective and cfg.metric.name == "val_accuracy" and cfg.searcher.type == "motpe"
    assert [o.mode for o in cfg.objectives] == ["max", "min"]  # energy_j: inferred min
    assert cfg.select.rule == "objective" and cfg.select.objective == "val_accuracy"
    assert load_config(cfg) == cfg
    one = load_config({**BASE, "objectives": ["val_loss"]})  # one objective is the metric form
    assert not one.multi_objective and one.metric.name == "val_loss" and one.metric.mode == "min"


@pytest.mark.parametrize("section, field, rule", [
    ({"objectives": ["val_accuracy", "energy_j"], "metric": "val_accuracy"}, "objectives", "not both"),
    ({"objectives": ["val_accuracy", "energy_j"], "searcher": "tpe"}, "searcher.type", "single objective"),
    ({"objectives": ["val_accuracy", "energy_j"], "searcher": "evolution"}, "searcher.type", "single objective"),
    ({"objectives": ["val_accuracy", "val_accuracy"]}, "objectives[1].name", "listed twice"),
    ({"objectives": ["val_accuracy", "test_accuracy"]}, "objectives[1].name", "does not report"),
    ({"objectives": ["val_accuracy", "energy_j"], "select": {"objective": "test_accuracy"}}, "select.objective",
     "validation values"),
    ({"objectives": ["val_accuracy", "energy_j"], "select": {"subject_to": {"params": {"max": 5}}}},
     "select.subject_to.params", "bounds an objective"),
    ({"objectives": ["val_accuracy", "energy_j"], "select": {"rule": "knee", "objective": "energy_j"}},
     "select.objective", "not both"),
    ({"select": "knee"}, "select", "two or more objectives"),
    ({"energy": {"grid_gco2_per_kwh": -1}}, "energy.grid_gco2_per_kwh", ">= 0"),
    ({"energy": {"cpu_watts_per_core": 0}}, "energy.cpu_watts_per_core", "> 0"),
])
def test_bad_multi_objective_configs_name_the_field(section, field, rule):
    with pytest.raises(ConfigError) as err:
        load_config({**BASE, **section})
    assert err.value.path == field and rule in err.value.rule


def test_every_multi_objective_searcher_builds_its_sampler():
    from search._optuna import make_sampler
    from search.registry import SEARCHERS

    cfg = load_config({**BASE, "objectives": ["val_accuracy", "energy_j"]})
    able = [e.name for e in SEARCHERS if e.multi_objective]
    assert {"motpe", "nsga2", "nsga3", "random"} <= set(able) and "tpe" not in able
    for name, constrained in itertools.product([n for n in able if n != "grid"], (False, True)):
        searcher = load_config({**BASE, "objectives": ["val_accuracy", "energy_j"], "searcher": name}).searcher
        assert make_sampler(searcher, cfg.space, 0, constrained) is not None


def test_an_objective_needs_a_name_and_strict_mode_refuses_measured_ones():
    with pytest.raises(ConfigError) as err:
        load_config({**BASE, "objectives": [{"mode": "min"}, "val_accuracy"]})
    assert err.value.path == "objectives[0].name" and "required" in err.value.rule
    with pytest.raises(ConfigError) as err:
        load_config({**BASE, "objectives": ["val_accuracy", "energy_j"], "reproducible": "strict"})
    assert err.value.path == "reproducible.mode" and "energy_j is measured" in err.value.rule
    assert load_config({**BASE, "objectives": ["val_accuracy", "params"], "reproducible": "strict"}).multi_objective


# -- the records: energy per source, unknown epochs, objectives never reported --------------------------------------

def _records(objectives=()):
    from search.config import MetricConfig
    from search.records import ExperimentRecords

    records = ExperimentRecords("val_accuracy", "max", objectives=[MetricConfig(*o) for o in objectives])
    records.started(0, "t0", 1, {"lr": 0.1}, 2)
    return records


def test_energy_is_billed_to_the_source_of_each_epoch_and_unknown_epochs_are_counted():
    records = _records()
    records.result(0, 1, {"val_accuracy": 0.5, "epoch_energy_j": 10.0, "energy_j": 10.0}, None, energy_source="nvml")
    records.result(0, 2, {"val_accuracy": 0.6, "epoch_energy_j": 20.0, "energy_j": 30.0}, None,
                   energy_source="estimate")  # restarted on a node without a counter
    records.result(0, 2, {"val_accuracy": 0.6, "epoch_energy_j": math.nan, "energy_j": math.nan}, None,
                   energy_source="estimate")
    totals = records.energy_totals()
    assert totals["by_source"] == {"estimate": 20.0, "nvml": 10.0} and totals["unknown_epochs"] == 1
    row = records.trial_rows()[0]
    assert row["energy_source"] == "mixed" and row["energy_spent_j"] == 30.0
    from search.accounting import describe, energy_summary

    line = describe(energy_summary(totals, (), 480.0))
    assert "ESTIMATE" in line and "INCOMPLETE: 1 epochs" in line


def test_a_trial_that_never_reported_an_objective_fails_in_the_records_as_in_optuna():
    records = _records([("val_accuracy", "max"), ("energy_j", "min")])
    records.result(0, 1, {"val_accuracy": 0.5}, None)
    records.result(0, 2, {"val_accuracy": 0.6}, None)
    record = records.ended(0)
    assert record.state == "FAILED" and record.error == "objective energy_j was never reported"
    from search.records import final_state, final_value

    assert final_state(2, 2, False, final_value([0.6, None])) == "FAILED"
    assert final_state(1, 2, False, final_value([0.6, None], complete=False)) == "PRUNED"


def test_curves_keep_every_metric_even_one_the_first_row_lacks(tmp_path):
    import pyarrow.parquet as pq

    records = _records()
    records.started(1, "t1", 2, {"lr": 0.2}, 2)
    records.result(0, 1, {"val_accuracy": 0.5}, None)  # written before energy was measured
    records.result(1, 1, {"val_accuracy": 0.4, "energy_j": 3.0, "epoch_energy_j": 3.0}, None, energy_source="rapl")
    _, curves = records.write(tmp_path)
    table = pq.read_table(curves).to_pylist()
    assert {"energy_j", "energy_source"} <= set(table[0]) and table[1]["energy_source"] == "rapl"
    assert table[0]["energy_j"] is None
