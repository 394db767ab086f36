"""Multi-objective TPE (Optuna's ``TPESampler`` on a study with several directions): good and bad configurations
are split by non-domination rank and hypervolume contribution instead of one value (Ozaki et al., 2020/2022)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import MAX_TRIALS, _int
from search.registry import SEARCHERS, Searcher, setting


@dataclass(frozen=True)
class MOTPESettings:
    n_startup_trials: int = setting(10, _int(0, MAX_TRIALS), "random trials before the model takes over")


def _make(settings: MOTPESettings, space: Any, seed: int, constrained: bool) -> Any:
    import optuna

    from search._optuna import _stored_constraints

    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=settings.n_startup_trials, multivariate=True, group=True, constant_liar=True,
        constraints_func=_stored_constraints if constrained else None,
    )


ENTRY = SEARCHERS.register(Searcher(
    "motpe", "multi-objective TPE (Optuna): models the Pareto-good configurations; the default for `objectives:`",
    MOTPESettings, _make, multi_objective=True))
