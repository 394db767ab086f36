import optuna
import pytest
from optuna.trial import TrialState

from search import suggest_config
from search._optuna import AskTellStudy, grid_size, load_study, make_sampler
from search.config import SearcherConfig
from spaces import Categorical, Constant, Float, Int, Space

SPACE = Space({
    "optimizer": Categorical(["adamw", "sgd"]),
    "lr": Float(1e-4, 1e-1, log=True),
    "momentum": Float(0.5, 0.99, when={"optimizer": "sgd"}),
    "width": Int(16, 256, log=True),
    "epochs": Constant(5),
})


def test_plain_optuna_study_over_a_space():
    def objective(trial):
        config = suggest_config(trial, SPACE)
        assert ("momentum" in config) == (config["optimizer"] == "sgd")
        assert config["epochs"] == 5 and "epochs" not in trial.params  # constants are not sampled
        SPACE.check(config)
        return config["lr"]

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    study.optimize(objective, n_trials=15)
    assert len(study.trials) == 15
    assert any("momentum" in t.params for t in study.trials) and any("momentum" not in t.params for t in study.trials)


@pytest.mark.parametrize("kind, settings", [("tpe", {"n_startup_trials": 2}), ("random", {}),
                                            ("cmaes", {"n_startup_trials": 2})])
def test_samplers_are_reproducible_for_a_seed(kind, settings):
    def sequence(seed):
        study = optuna.create_study(sampler=make_sampler(SearcherConfig.of(kind, **settings), SPACE, seed))
        out = []
        for _ in range(6):
            trial = study.ask()
            config = suggest_config(trial, SPACE)
            study.tell(trial, config["lr"])
            out.append(config)
        return out

    assert sequence(11) == sequence(11)
    assert sequence(11) != sequence(12)


def test_grid_sampler_visits_each_point_once():
    space = Space({"w": Categorical([8, 16]), "d": Int(1, 3)})
    study = optuna.create_study(sampler=make_sampler(SearcherConfig("grid"), space, 0))
    seen = []
    for _ in range(grid_size(space)):
        trial = study.ask()
        seen.append(tuple(sorted(suggest_config(trial, space).items())))
        study.tell(trial, 0.0)
    assert len(set(seen)) == grid_size(space) == 6


def test_ask_tell_states_and_pruned_value_is_the_last_step(tmp_path):
    study = AskTellStudy.create("s", SPACE, SearcherConfig("random"), 0, "max", tmp_path / "study.journal")
    numbers = [study.ask()[0] for _ in range(3)]
    assert numbers == [0, 1, 2]
    for step, value in [(1, 0.5), (2, 0.6), (2, 0.9)]:  # a repeated step (resumed trial) is ignored
        study.report(0, step, value)
    study.tell(0, "PRUNED")
    study.report(1, 1, 0.7)
    study.tell(1, "COMPLETE", 0.8)
    study.tell(2, "FAILED")
    trials = load_study(tmp_path / "study.journal", "s").trials  # durable: read back from the journal file
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.FAIL]
    assert trials[0].intermediate_values == {1: 0.5, 2: 0.6} and trials[0].last_step == 2
    assert trials[0].value == 0.6 and trials[1].value == 0.8


def test_complete_without_a_value_is_failed(tmp_path):
    study = AskTellStudy.create("s", SPACE, SearcherConfig("random"), 0, "min", tmp_path / "j")
    number, _ = study.ask()
    study.tell(number, "COMPLETE", float("nan"))
    assert study.study.trials[0].state == TrialState.FAIL
