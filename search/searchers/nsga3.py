"""NSGA-III (Optuna's ``NSGAIIISampler``): NSGA-II with reference points in place of crowding distance, which keeps
a front of three or more objectives spread out (Deb & Jain, 2014)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import _int
from search.registry import SEARCHERS, Searcher, setting
from search.searchers.nsga2 import NSGA2Settings


@dataclass(frozen=True)
class NSGA3Settings(NSGA2Settings):
    dividing_parameter: int = setting(3, _int(1, 100), "divisions of each objective axis for the reference points")


def _make(settings: NSGA3Settings, space: Any, seed: int, constrained: bool) -> Any:
    import optuna

    from search._optuna import _stored_constraints

    return optuna.samplers.NSGAIIISampler(
        population_size=settings.population_size, mutation_prob=settings.mutation_prob,
        crossover_prob=settings.crossover_prob, dividing_parameter=settings.dividing_parameter, seed=seed,
        constraints_func=_stored_constraints if constrained else None,
    )


ENTRY = SEARCHERS.register(Searcher(
    "nsga3", "NSGA-III (Optuna): NSGA-II with reference points, for three or more objectives",
    NSGA3Settings, _make, multi_objective=True))
