"""NSGA-II (Optuna's ``NSGAIISampler``): a genetic algorithm over generations of ``population_size`` trials, parents
chosen by non-domination rank and crowding distance (Deb et al., 2002); constraints rank infeasible trials last."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import MAX_TRIALS, _fraction, _int, _optional
from search.registry import SEARCHERS, Searcher, setting


@dataclass(frozen=True)
class NSGA2Settings:
    population_size: int = setting(50, _int(2, MAX_TRIALS), "trials per generation (the first is random)")
    mutation_prob: float | None = setting(None, _optional(_fraction), "chance to resample each parameter of a "
                                                                       "child (null: 1 / number of parameters)")
    crossover_prob: float = setting(0.9, _fraction, "chance that a child mixes two parents (else copies one)")


def _make(settings: NSGA2Settings, space: Any, seed: int, constrained: bool) -> Any:
    import optuna

    from search._optuna import _stored_constraints

    return optuna.samplers.NSGAIISampler(
        population_size=settings.population_size, mutation_prob=settings.mutation_prob,
        crossover_prob=settings.crossover_prob, seed=seed,
        constraints_func=_stored_constraints if constrained else None,
    )


ENTRY = SEARCHERS.register(Searcher(
    "nsga2", "NSGA-II (Optuna): a genetic algorithm ranking by Pareto dominance and crowding; for `objectives:`",
    NSGA2Settings, _make, multi_objective=True))
