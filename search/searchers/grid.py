"""Grid search: every point of a finite space once (every Float needs a ``step``); the trial budget is capped at
the grid's size."""

from __future__ import annotations

from typing import Any

from search.registry import SEARCHERS, NoSettings, Searcher


def _check(settings: NoSettings, space: Any) -> None:
    from search.config import err_at
    from spaces import SpaceError

    try:
        space.grid()
    except SpaceError as err:
        raise err_at("space", err) from None


def _make(settings: NoSettings, space: Any, seed: int, constrained: bool) -> Any:
    from search._optuna import _AskTellGridSampler, _optuna_grid

    return _AskTellGridSampler(_optuna_grid(space), seed=seed)


def _size(settings: NoSettings, space: Any) -> int:
    from search._optuna import grid_size

    return grid_size(space)


ENTRY = SEARCHERS.register(Searcher(
    "grid", "every point of a finite space once, in a seeded order (every Float needs a `step`); the trial budget "
            "is capped at the grid's size", NoSettings, _make, check=_check, max_trials=_size,
    multi_objective=True))
