"""How an experiment runs: config, Optuna samplers, Ray Tune execution, MLflow tracking, selection.

The one call to run a search from Python::

    from search import run_experiment
    result = run_experiment("examples/quickstart.yaml", workdir="hypernas-runs", overrides=["budget.trials=8"])
    print(result.best)

Plain Optuna users can ask a trial for a configuration from a ``spaces.Space`` with :func:`suggest_config`.
"""

from search._optuna import suggest_config
from search._optuna.evolution import RegularizedEvolutionSampler
from search.config import ConfigError, ExperimentConfig, load_config
from search.experiment import ExperimentResult, run_experiment
from search.seeds import derive_seed
from search.selection import SelectionError, TestSetAlreadyOpened, best_trial, run_sealed_test

__all__ = [
    "ConfigError", "RegularizedEvolutionSampler", "ExperimentConfig", "ExperimentResult", "SelectionError", "TestSetAlreadyOpened", "best_trial",
    "derive_seed", "load_config", "run_experiment", "suggest_config", "run_sealed_test",
]
