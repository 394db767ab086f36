"""The Ray Tune adapter — the only package of hypernas that runs Ray (the scheduler registry entries in
``search/schedulers/`` import Ray's scheduler classes inside their factories, which only this package calls).

Ray Tune is the executor: trial lifecycle, resources (fractional GPUs), checkpoints, and the early-stopping
schedulers (ASHA = ``AsyncHyperBandScheduler``, ``HyperBandScheduler``, ``MedianStoppingRule``), which we only
configure. What this module adds around it:

* ``trial_entry``: the function trainable — runs a trainers recipe with a Reporter backed by ``tune.report``
  and a checkpoint per epoch;
* ``OptunaSearcher``: a Ray ``Searcher`` over our :class:`~search._optuna.AskTellStudy` that tells Optuna
  PRUNED (not COMPLETE) for trials the scheduler stopped;
* ``EventBridge``: a Tune callback that turns Tune's events into calls on an :class:`~search.monitor.Monitor`
  (records, MLflow, live view), all in the driver.

Importing this package neither imports ray nor changes the environment. A driver calls :func:`configure` first
(Ray reads part of its environment when ray is imported), then uses the other names, which load on first use
(PEP 562)::

    from search._tune import configure
    configure()
    from search._tune import ensure_ray, run_trials
"""

from __future__ import annotations

import importlib
from typing import Any

from search._tune._env import configure

_HOMES = {
    "describe_cluster": "search._tune._cluster",
    "ensure_ray": "search._tune._cluster",
    "running_local_cluster": "search._tune._cluster",
    "unplaceable": "search._tune._cluster",
    "run_trials": "search._tune._run",
}

__all__ = sorted([*_HOMES, "configure"])


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'search._tune' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
