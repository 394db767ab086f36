"""RegularizedEvolutionSampler in plain Optuna studies, and every searcher over spaces holding cells."""

import math

import numpy as np
import optuna
import pytest

from search import RegularizedEvolutionSampler, suggest_config
from search._optuna import make_sampler
from search.config import SearcherConfig
from spaces import Categorical, Float, Space
from spaces.nas import DartsCell, NB201Cell

TARGET = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
SPACE = Space({"cell": NB201Cell(), "lr": Float(1e-4, 1.0, log=True)})


def score(config) -> float:
    """Known optimum: the TARGET cell (6 matching edges) and lr = 0.01; the cell dominates."""
    target = NB201Cell().genotype(TARGET).cells["cell"].nodes
    found = NB201Cell().genotype(config["cell"]).cells["cell"].nodes
    matches = sum(a == b for node_a, node_b in zip(target, found) for a, b in zip(node_a, node_b))
    return matches + 0.5 * (1 - min(1.0, abs(math.log10(config["lr"] / 0.01)) / 2))


def best_score(sampler, trials=150) -> float:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: score(suggest_config(t, SPACE)), n_trials=trials)
    return study.best_value


def test_works_in_a_plain_optuna_study_and_mutates_one_parameter():
    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=0))
    study.optimize(lambda t: score(suggest_config(t, SPACE)), n_trials=40)
    children = [t for t in study.trials if "evolution:parent" in t.system_attrs]
    assert [t.number for t in children] == list(range(10, 40))  # random until the population is full
    for child in children:
        parent = study.trials[child.system_attrs["evolution:parent"]]
        changed = [k for k in child.params if child.params[k] != parent.params[k]]
        mutated = child.system_attrs["evolution:mutated"]  # more than one name only to avoid a repeat
        assert set(changed) <= set(mutated) and (changed == mutated or "lr" in mutated)
    assert sum(len(t.system_attrs["evolution:mutated"]) == 1 for t in children) > len(children) / 2


def repeats(sampler, trials=120) -> int:
    """How many of ``trials`` repeat an earlier trial's cell, on a 729-cell space with one optimum (every edge a
    3x3 convolution) that a greedy search keeps coming back to."""
    space = Space({"cell": NB201Cell(ops=("none", "skip_connect", "nor_conv_3x3"))})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(suggest_config(t, space)["cell"].count("nor_conv_3x3")), n_trials=trials)
    configs = [tuple(sorted(t.params.items())) for t in study.trials]
    return len(configs) - len(set(configs))


def test_dedupe_is_on_by_default_and_off_by_option():
    assert repeats(RegularizedEvolutionSampler(population_size=10, sample_size=5, seed=0)) == 0
    assert repeats(RegularizedEvolutionSampler(population_size=10, sample_size=5, seed=0, dedupe=False)) > 0


def test_dedupe_counts_running_trials_as_taken():
    sampler = RegularizedEvolutionSampler(population_size=2, sample_size=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = Space({"op": Categorical(["a", "b", "c", "d"])})
    asked = [suggest_config(study.ask(), space)["op"] for _ in range(4)]  # none told yet: all four running
    assert sorted(asked) == ["a", "b", "c", "d"]


def test_same_seed_same_search_different_seed_different_search():
    def configs(seed):
        study = optuna.create_study(direction="maximize", sampler=RegularizedEvolutionSampler(10, 3, seed=seed))
        study.optimize(lambda t: score(suggest_config(t, SPACE)), n_trials=30)
        return [t.params for t in study.trials]

    assert configs(5) == configs(5)
    assert configs(5) != configs(6)


def test_beats_random_search_on_average_over_seeds():
    seeds = range(6)
    evolution = [best_score(RegularizedEvolutionSampler(population_size=20, sample_size=5, seed=s)) for s in seeds]
    random = [best_score(optuna.samplers.RandomSampler(seed=s)) for s in seeds]
    assert np.mean(evolution) > np.mean(random) + 0.5, (evolution, random)


def test_defaults_beat_the_former_ones_on_average_over_seeds():
    seeds = range(6)
    new = [best_score(RegularizedEvolutionSampler(seed=s), trials=100) for s in seeds]
    old = [best_score(RegularizedEvolutionSampler(20, 5, seed=s, dedupe=False), trials=100) for s in seeds]
    assert np.mean(new) > np.mean(old), (new, old)


@pytest.mark.parametrize("population, sample, dedupe, message", [
    (1, 1, True, "population_size must be an integer >= 2"),
    (5, 6, True, "sample_size must be an integer in"),
    (5, 0, True, "sample_size must be an integer in"),
    (5, 2, "yes", "dedupe must be True or False"),
])
def test_bad_arguments(population, sample, dedupe, message):
    with pytest.raises(ValueError, match=message):
        RegularizedEvolutionSampler(population, sample, dedupe=dedupe)


SETTINGS = {"tpe": {"n_startup_trials": 3}, "cmaes": {"n_startup_trials": 3},
            "evolution": {"population_size": 4, "sample_size": 2}}  # each searcher takes its own settings only


@pytest.mark.parametrize("kind", ["tpe", "random", "cmaes", "evolution", "reinforce", "grid"])
def test_every_searcher_samples_valid_cells(kind):
    space = Space({
        "cell": NB201Cell(ops=("none", "skip_connect", "nor_conv_3x3")) if kind == "grid" else NB201Cell(),
        "darts": DartsCell(nodes=2, ops=("sep_conv_3x3", "skip_connect")),
        "opt": Categorical(["adamw", "sgd"]),
    })
    if kind == "grid":
        space = Space({"cell": space["cell"], "opt": space["opt"]})
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler(SearcherConfig.of(kind, **SETTINGS.get(kind, {})), space, seed=1))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        config = suggest_config(trial, space)
        space.check(config)  # every genotype is valid for its cell
        seen.add(config["cell"])
        study.tell(trial, float(len(set(config["cell"]))))
    assert len(seen) > 3
