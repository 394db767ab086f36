"""Random search (Optuna's ``RandomSampler``): every configuration drawn independently."""

from __future__ import annotations

from typing import Any

from search.registry import SEARCHERS, NoSettings, Searcher


def _make(settings: NoSettings, space: Any, seed: int, constrained: bool) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


ENTRY = SEARCHERS.register(Searcher("random", "independent uniform draws (Optuna)", NoSettings, _make, multi_objective=True))
