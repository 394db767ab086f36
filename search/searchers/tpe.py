"""TPE (Optuna's ``TPESampler``): a density model of good against bad configurations, after random start-up trials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import MAX_TRIALS, _int
from search.registry import SEARCHERS, Searcher, setting


@dataclass(frozen=True)
class TPESettings:
    n_startup_trials: int = setting(10, _int(0, MAX_TRIALS), "random trials before the model takes over")


def _make(settings: TPESettings, space: Any, seed: int, constrained: bool) -> Any:
    import optuna

    from search._optuna import _stored_constraints

    # multivariate + group model conditional spaces jointly; constant liar keeps parallel asks apart
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=settings.n_startup_trials, multivariate=True, group=True, constant_liar=True,
        constraints_func=_stored_constraints if constrained else None,
    )


ENTRY = SEARCHERS.register(Searcher(
    "tpe", "Tree-structured Parzen Estimator (Optuna), multivariate over conditional spaces; models feasibility "
           "under `constraints`", TPESettings, _make))
