"""One-shot NAS experiments: the ``oneshot:`` config rules, and the two-phase study (searches, then retrains of the
derived genotypes) on a real Optuna study — no Ray here; tests/search/test_oneshot_run.py runs them end to end."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from search.config import ConfigError, config_from_dict
from search.events import EventLog
from search.oneshot import (FINISHED, OneShotStudy, architecture_weights, derived_genotypes, heatmap_svg,
                            retrain_space, search_params)
from search.records import pick_best
from spaces import Categorical
from tests.helpers import tiny_config

G1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
G2 = "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def oneshot_config(oneshot=None, **sections):
    config = tiny_config(
        "one", trainer="nas",
        space={"cell": {"type": "nb201_cell"}, "lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True},
               "channels": 4, "cells": 1, "stages": 1},
        searcher={"type": "random"}, scheduler={"type": "none", "max_epochs": 2}, budget={"trials": 4},
        oneshot=oneshot if oneshot is not None else {"method": "darts", "search_seeds": 2, "epochs": 2, "top_k": 2},
    )
    config.update(sections)
    return config


@pytest.mark.parametrize("oneshot, space, where", [
    ({"method": "nasnet"}, None, "oneshot.method"),
    ({"search_seeds": 2}, None, "oneshot.method"),
    ({"method": "darts", "search_seeds": 0}, None, "oneshot.search_seeds"),
    ({"method": "darts", "top_k": 0}, None, "oneshot.top_k"),
    ({"method": "darts", "epochs": 0}, None, "oneshot.epochs"),
    ({"method": "darts", "seeds": 2}, None, "oneshot.seeds"),
    ({"method": "darts", "settings": {"no_such": 1}}, None, "oneshot.settings.no_such"),
    ({"method": "darts", "settings": {"method": "enas"}}, None, "oneshot.settings.method"),
    ({"method": "darts", "settings": {"arch_lr": -1.0}}, None, "oneshot.settings.arch_lr"),
    ({"method": "darts", "settings": [1]}, None, "oneshot.settings"),
    ({"method": "darts"}, {"lr": 0.01}, "oneshot"),
    ({"method": "darts", "top_k": 5}, None, "oneshot.top_k"),  # budget.trials is 4: one would never be retrained
    ({"method": "darts"}, {"cell": {"type": "nb201_cell", "when": {"pool": "avg"}},
                           "pool": {"type": "categorical", "choices": ["avg", "avgmax"]}}, "space.cell.when"),
])
def test_bad_oneshot_sections_name_the_field(oneshot, space, where):
    config = oneshot_config(oneshot)
    if space is not None:
        config["space"] = space
    with pytest.raises(ConfigError) as err:
        config_from_dict(config)
    assert err.value.path == where, str(err.value)


def test_the_searches_must_report_the_experiment_metric():
    config = oneshot_config()
    config["metric"] = {"name": "latency_ms", "mode": "min"}
    assert config_from_dict(config).metric.name == "latency_ms"  # the oneshot trainer reports it too
    config["trainer"], config["metric"] = "tests.helpers:f1_train", {"name": "val_f1", "mode": "max"}
    with pytest.raises(ConfigError) as err:
        config_from_dict(config)
    assert err.value.path == "metric.name"


def test_the_config_round_trips_and_says_which_trial_is_which():
    cfg = config_from_dict(oneshot_config({"method": "enas", "search_seeds": 3, "epochs": 5, "top_k": 2,
                                           "settings": {"entropy_weight": 0.001}}))
    assert config_from_dict(cfg.to_dict()) == cfg
    assert [cfg.phase_of(n) for n in range(5)] == ["search"] * 3 + ["retrain"] * 2
    assert [cfg.trainer_for(n) for n in (0, 2, 3)] == ["oneshot", "oneshot", "nas"]
    assert cfg.epochs_for({}, 0) == 5 and cfg.epochs_for({}, 3) == cfg.scheduler.max_epochs
    params = search_params(cfg)
    assert params["method"] == "enas" and params["entropy_weight"] == 0.001
    assert json.loads(params["cell_space"]) == {"type": "nb201_cell"}
    plain = config_from_dict(tiny_config())
    assert plain.phase_of(0) is None and plain.trainer_for(0) == "mlp"


@dataclass
class Rec:
    number: int
    state: str
    last_value: float | None
    derived_genotype: str | None
    phase: str = "search"


def test_derived_genotypes_are_distinct_best_search_first():
    cfg = config_from_dict(oneshot_config({"method": "darts", "search_seeds": 4, "top_k": 2}))
    searches = [Rec(0, "COMPLETE", 0.5, G1), Rec(1, "COMPLETE", 0.7, G2), Rec(2, "COMPLETE", 0.9, G1),
                Rec(3, "FAILED", 0.99, G2)]
    assert derived_genotypes(cfg, searches) == [G1, G2]  # G1 (0.9) first; trial 3 failed
    # a search that stopped itself early (stability_patience) ends PRUNED: its genotype counts
    assert derived_genotypes(cfg, [Rec(0, "PRUNED", 0.5, G2), Rec(1, "COMPLETE", 0.4, G1)]) == [G2, G1]
    space = retrain_space(cfg, [G1, G2])
    assert space["cell"] == Categorical([G1, G2]) and space["lr"] == cfg.space["lr"]


def test_a_search_trial_is_never_the_winner():
    rows = [{"number": 0, "state": "COMPLETE", "last_value": 0.99, "phase": "search"},
            {"number": 1, "state": "COMPLETE", "last_value": 0.80, "phase": "retrain"}]
    assert pick_best(rows, "max")["number"] == 1


def test_the_study_searches_then_retrains_each_derived_genotype(tmp_path):
    cfg = config_from_dict(oneshot_config({"method": "darts", "search_seeds": 2, "top_k": 2}))
    searches: list[Rec] = []
    study = OneShotStudy(cfg, tmp_path / "optuna.journal", lambda: searches)
    events = EventLog()
    asked = [study.ask(), study.ask()]
    assert [n for n, _ in asked] == [0, 1] and asked[0][1] == search_params(cfg)
    for number, params in asked:
        events.ask(number, params)
    assert study.ask() is None  # the retrains wait for every search
    for number, value, genotype in ((0, 0.6, G2), (1, 0.8, G1)):
        study.report(number, 1, value - 0.1)
        study.report(number, 2, value)
        assert study.last_value(number) == value
        searches.append(Rec(number, "COMPLETE", value, genotype))
        study.tell(number, "COMPLETE", value)
        events.tell(number, "COMPLETE", value)
    # 'lr' is free: budget.trials (4) retrains, the two derived genotypes first, best search's first
    retrains = []
    while (asked := study.ask()) != FINISHED:
        retrains.append(asked)
        events.ask(*asked)
    assert [n for n, _ in retrains] == [2, 3, 4, 5]
    assert [p["cell"] for _, p in retrains[:2]] == [G1, G2]
    assert all(p["cell"] in (G1, G2) for _, p in retrains)
    study.report(2, 2, 0.9)
    study.tell(2, "COMPLETE", 0.9)
    assert not study.is_open(2) and study.is_open(3)

    # an interrupted experiment's study, rebuilt from the decision log and the Optuna journal — over the genotypes
    # the retrains were created with, whatever the records say now (a failed search retried, say)
    searches.append(Rec(9, "COMPLETE", 0.99, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    again = OneShotStudy.load(cfg, tmp_path / "optuna.journal", lambda: searches, events)
    assert again.genotypes == [G1, G2] and again.asked() == 6
    assert [n for n, _ in again.open_trials()] == [3, 4, 5]
    assert again.ask() == FINISHED


def test_only_derived_genotypes_in_the_space_retrain_each_once(tmp_path):
    config = oneshot_config({"method": "darts", "search_seeds": 1, "top_k": 3})
    config["space"]["lr"] = 0.01
    cfg = config_from_dict(config)
    searches = [Rec(0, "COMPLETE", 0.5, G1)]
    study = OneShotStudy(cfg, tmp_path / "optuna.journal", lambda: searches)
    study.ask()
    study.tell(0, "COMPLETE", 0.5)
    number, params = study.ask()
    assert number == 1 and params["cell"] == G1 and params["lr"] == 0.01
    assert study.ask() == FINISHED  # one genotype, nothing else to choose: one retrain


def test_a_grid_retrains_every_genotype_under_every_other_choice(tmp_path):
    config = oneshot_config({"method": "darts", "search_seeds": 2, "top_k": 2}, searcher={"type": "grid"})
    config["space"]["lr"] = {"type": "categorical", "choices": [0.01, 0.02]}
    cfg = config_from_dict(config)
    searches = [Rec(0, "COMPLETE", 0.5, G1), Rec(1, "COMPLETE", 0.6, G2)]
    study = OneShotStudy(cfg, tmp_path / "optuna.journal", lambda: searches)
    for number in (0, 1):
        study.ask()
        study.tell(number, "COMPLETE", 0.5)
    retrains = []
    while (asked := study.ask()) != FINISHED:
        retrains.append(asked[1])
    assert sorted((p["cell"], p["lr"]) for p in retrains) == sorted((g, lr) for g in (G1, G2) for lr in (0.01, 0.02))


def test_a_search_still_running_holds_the_retrains(tmp_path):
    cfg = config_from_dict(oneshot_config({"method": "darts", "search_seeds": 1}))
    searches = [Rec(0, "RUNNING", 0.5, G1)]
    study = OneShotStudy(cfg, tmp_path / "optuna.journal", lambda: searches)
    study.ask()
    study.tell(0, "FAILED")  # told, but retried by Tune (a resumed run re-runs errored trials)
    assert study.ask() is None
    searches[0].state = "COMPLETE"
    assert study.ask()[0] == 1


def test_no_genotype_derived_means_no_retrain(tmp_path):
    cfg = config_from_dict(oneshot_config({"method": "darts", "search_seeds": 1}))
    study = OneShotStudy(cfg, tmp_path / "optuna.journal", lambda: [Rec(0, "FAILED", None, None)])
    study.ask()
    study.tell(0, "FAILED")
    assert study.ask() == FINISHED


def test_architecture_heatmap_from_reported_weights():
    metrics = {"alpha.normal.e0.sep_conv_3x3": 0.7, "alpha.normal.e0.skip_connect": 0.3, "alpha.normal.e0.input": 0.9,
               "alpha.reduce.e1.max_pool_3x3": 1.0, "val_accuracy": 0.5}
    weights = architecture_weights(metrics)
    assert weights == {"normal": {0: {"sep_conv_3x3": 0.7, "skip_connect": 0.3}}, "reduce": {1: {"max_pool_3x3": 1.0}}}
    svg = heatmap_svg(weights, "t")
    assert svg.startswith("<svg") and svg.count("<rect") == 3 and "sep_conv_3x3: 0.700" in svg
