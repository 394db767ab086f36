"""Regularized (aging) evolution — :class:`search._optuna.evolution.RegularizedEvolutionSampler`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import MAX_TRIALS, ConfigError, _bool, _int, _optional
from search.registry import SEARCHERS, Searcher, setting


@dataclass(frozen=True)
class EvolutionSettings:
    population_size: int = setting(20, _int(2, MAX_TRIALS), "the most recent trials that form the population")
    sample_size: int | None = setting(None, _optional(_int(1, MAX_TRIALS)), "tournament size: the best of this many "
                                      "parents is mutated (default: half the population)")
    dedupe: bool = setting(True, _bool, "never propose a configuration already evaluated or running (false: allow "
                                        "re-evaluating, e.g. a noisy objective)")


def _check(settings: EvolutionSettings, space: Any) -> None:
    if settings.sample_size is not None and settings.sample_size > settings.population_size:
        raise ConfigError("searcher.sample_size", f"sample_size <= population_size must hold "
                                                  f"(got {settings.sample_size} > {settings.population_size})")


def _make(settings: EvolutionSettings, space: Any, seed: int, constrained: bool) -> Any:
    from search._optuna.evolution import RegularizedEvolutionSampler

    return RegularizedEvolutionSampler(population_size=settings.population_size,
                                       sample_size=settings.sample_size, seed=seed, dedupe=settings.dedupe)


ENTRY = SEARCHERS.register(Searcher(
    "evolution", "regularized (aging) evolution: mutate the tournament winner, retire the oldest; prefers feasible "
                 "parents under `constraints`", EvolutionSettings, _make, check=_check))
