"""ReinforceSampler in plain Optuna studies, and ``searcher: {type: reinforce}`` through the registry."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import ReinforceSampler, suggest_config
from search._optuna import make_sampler
from search._optuna._optuna_internals import set_system_attr
from search.config import ConfigError, SearcherConfig, load_config
from spaces import Categorical, Float, Int, Space
from spaces.nas import DartsCell, NB201Cell
from tests.helpers import tiny_config
from tests.search.test_evolution import SPACE, best_score, repeats, score

MIXED = Space({
    "cell": NB201Cell(),
    "darts": DartsCell(nodes=2, ops=("sep_conv_3x3", "skip_connect")),
    "opt": Categorical(["adamw", "sgd"]),
    "lr": Float(1e-4, 1.0, log=True),
    "width": Int(8, 64, step=8),
})


def mixed_score(config) -> float:
    return config["cell"].count("nor_conv_3x3") + (config["opt"] == "sgd") + config["width"] / 64


def test_works_in_a_plain_optuna_study_over_cells_categoricals_floats_and_ints():
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    configs = []

    def objective(trial):
        configs.append(suggest_config(trial, MIXED))
        return mixed_score(configs[-1])

    study.optimize(objective, n_trials=40)
    for config in configs:
        MIXED.check(config)  # every genotype valid for its cell, every number in range and on its step
    assert len({c["lr"] for c in configs}) == 40 and len({c["width"] for c in configs}) > 4  # drawn at random
    policy = sampler.policy(study)
    assert {"cell.node2.in1", "darts.normal.node1.inputs", "darts.reduce.node0.op1", "opt"} <= set(policy.logits)
    assert not {"lr", "width"} & set(policy.logits)  # numeric parameters have no policy
    assert policy.logits["opt"][1] > policy.logits["opt"][0]  # it learnt that sgd scores higher


def test_same_seed_same_search_different_seed_different_search():
    def configs(seed):
        study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=seed))
        study.optimize(lambda t: mixed_score(suggest_config(t, MIXED)), n_trials=30)
        return [t.params for t in study.trials]

    assert configs(5) == configs(5)
    assert configs(5) != configs(6)


def test_a_reloaded_study_gets_the_suggestion_the_running_one_would():
    original = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=original, direction="maximize", sampler=ReinforceSampler(seed=3))
    study.optimize(lambda t: score(suggest_config(t, SPACE)), n_trials=25)
    storage = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=study.study_name, from_storage=original, to_storage=storage,
                      to_study_name="copy")
    reloaded = optuna.load_study(study_name="copy", storage=storage, sampler=ReinforceSampler(seed=3))
    assert suggest_config(reloaded.ask(), SPACE) == suggest_config(study.ask(), SPACE)


def test_the_policy_depends_on_the_finished_trials_not_on_the_order_they_finished_in():
    def policy(tell_order):
        sampler = ReinforceSampler(seed=0, dedupe=False)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        trials = []
        for _ in range(12):
            trials.append(study.ask())
            suggest_config(trials[-1], SPACE)
        for i in tell_order:
            study.tell(trials[i], score(suggest_config(trials[i], SPACE)))
            sampler.policy(study)  # the cache is extended while trials finish in order, rebuilt when they do not
        return sampler.policy(study).logits

    in_order, shuffled = policy(range(12)), policy([3, 0, 11, 5, 1, 2, 10, 4, 7, 6, 9, 8])
    assert in_order.keys() == shuffled.keys()
    assert all(np.array_equal(in_order[k], shuffled[k]) for k in in_order)


def test_beats_random_search_on_average_over_seeds():
    seeds = range(6)
    reinforce = [best_score(ReinforceSampler(seed=s)) for s in seeds]
    random = [best_score(optuna.samplers.RandomSampler(seed=s)) for s in seeds]
    assert np.mean(reinforce) > np.mean(random) + 0.5, (reinforce, random)


@pytest.mark.parametrize("direction, best", [("maximize", "d"), ("minimize", "a")])
def test_learns_in_the_direction_of_the_study(direction, best):
    sampler = ReinforceSampler(seed=0, dedupe=False)
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(lambda t: "abcd".index(t.suggest_categorical("x", list("abcd"))), n_trials=60)
    assert list("abcd")[int(np.argmax(sampler.policy(study).logits["x"]))] == best
    assert sum(t.params["x"] == best for t in study.trials[-20:]) > 10


def test_dedupe_is_on_by_default_and_off_by_option():
    assert repeats(ReinforceSampler(seed=0)) == 0
    assert repeats(ReinforceSampler(seed=0, dedupe=False)) > 0


def test_failed_trials_teach_nothing_and_may_be_retried_pruned_ones_count_with_their_last_value():
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    failed = study.ask()
    failed.suggest_categorical("x", ["a", "b"])
    study.tell(failed, state=TrialState.FAIL)
    assert sampler.policy(study).count == 0
    pruned = study.ask()
    pruned.suggest_categorical("x", ["a", "b"])
    pruned.report(0.25, step=1)
    study.tell(pruned, state=TrialState.PRUNED)
    assert sampler.policy(study).count == 1 and sampler.policy(study).mean == 0.25
    # only the pruned trial's choice is taken: the next trial takes the other one, a failed choice is free again
    following = study.ask()
    assert following.suggest_categorical("x", ["a", "b"]) != pruned.params["x"]


def test_a_trial_outside_its_constraints_is_rewarded_as_the_worst():
    sampler = ReinforceSampler(seed=0, dedupe=False)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for value, constraints in ((1.0, [0.0]), (5.0, [2.0])):
        trial = study.ask()
        trial.suggest_categorical("x", ["a", "b"])
        set_system_attr(study, trial, "constraints", constraints)
        study.tell(trial, value)
    assert sampler.policy(study).worst == 1.0 and sampler.policy(study).mean == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1}, "lr must be a finite number >= 0"),
    ({"entropy_weight": float("nan")}, "entropy_weight must be a finite number >= 0"),
    ({"baseline_decay": 1.0}, r"baseline_decay must be a number in \[0, 1\)"),
    ({"dedupe": 1}, "dedupe must be True or False"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReinforceSampler(**kwargs)


# --- searcher: {type: reinforce} -----------------------------------------------------------------------------------


def test_the_registry_entry_round_trips_through_config_and_builds_the_sampler():
    settings = {"type": "reinforce", "lr": 0.2, "entropy_weight": 0.01, "baseline_decay": 0.8, "dedupe": False}
    cfg = load_config(tiny_config(searcher=settings))
    assert cfg.searcher.to_dict() == settings and load_config(cfg) == cfg
    assert SearcherConfig.of("reinforce").to_dict() == {"type": "reinforce", "lr": 0.5, "entropy_weight": 0.0,
                                                       "baseline_decay": 0.9, "dedupe": True}
    sampler = make_sampler(cfg.searcher, cfg.space, seed=3)
    assert isinstance(sampler, ReinforceSampler)
    assert (sampler.lr, sampler.entropy_weight, sampler.baseline_decay, sampler.dedupe) == (0.2, 0.01, 0.8, False)
    with pytest.raises(ConfigError, match=r"^searcher.baseline_decay: must be a number in \[0, 1\) \(got 1\)$"):
        SearcherConfig.of("reinforce", baseline_decay=1)
    with pytest.raises(ConfigError, match=r"^searcher.lr: must be a finite number >= 0"):
        SearcherConfig.of("reinforce", lr=-0.1)
    with pytest.raises(ConfigError, match=r"^searcher.population_size: unknown setting"):
        SearcherConfig.of("reinforce", population_size=4)
