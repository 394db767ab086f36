"""CMA-ES (Optuna's ``CmaEsSampler``) over the numeric parameters; categorical ones are drawn at random."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import MAX_TRIALS, _int
from search.registry import SEARCHERS, Searcher, setting


@dataclass(frozen=True)
class CmaEsSettings:
    n_startup_trials: int = setting(1, _int(0, MAX_TRIALS), "random trials before the evolution strategy starts")


def _make(settings: CmaEsSettings, space: Any, seed: int, constrained: bool) -> Any:
    import optuna

    return optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=settings.n_startup_trials, warn_independent_sampling=False,
        independent_sampler=optuna.samplers.RandomSampler(seed=seed),
    )


ENTRY = SEARCHERS.register(Searcher(
    "cmaes", "CMA-ES (Optuna) over numeric parameters; categorical ones drawn at random", CmaEsSettings, _make))
