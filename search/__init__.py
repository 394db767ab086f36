"""How an experiment runs: config, Optuna samplers, Ray Tune execution, MLflow tracking, selection.

The one call to run a search from Python::

    from search import run_experiment
    result = run_experiment("examples/quickstart.yaml", workdir="hypernas-runs", overrides=["budget.trials=8"])
    print(result.best)

Plain Optuna users can ask a trial for a configuration from a ``spaces.Space`` with :func:`suggest_config`.

The public names load on first use (PEP 562): ``import search`` — and so the CLI, ``hypernas validate`` among
it — does not pay for mlflow, optuna or torch until a name that needs them is touched.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "suggest_config": "search._optuna",
    "RegularizedEvolutionSampler": "search._optuna.evolution",
    "ReinforceSampler": "search._optuna.reinforce",
    "ConfigError": "search.config",
    "ExperimentConfig": "search.config",
    "load_config": "search.config",
    "ExperimentResult": "search.experiment",
    "run_experiment": "search.experiment",
    "derive_seed": "search.seeds",
    "SelectionError": "search.sealing",
    "TestSetAlreadyOpened": "search.sealing",
    "best_trial": "search.selection",
    "run_sealed_test": "search.selection",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
