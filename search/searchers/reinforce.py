"""REINFORCE — :class:`search._optuna.reinforce.ReinforceSampler`: a softmax policy per categorical decision (each
op and input pair of a cell), trained by policy gradient on the trials' results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import ConfigError, _bool, _describe, _number
from search.registry import SEARCHERS, Searcher, setting


def _decay(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(path, f"must be a number in [0, 1) (got {_describe(value)})")
    return value


@dataclass(frozen=True)
class ReinforceSettings:
    lr: float = setting(0.5, _number(0), "policy-gradient step size (on rewards normalised to unit scale)")
    entropy_weight: float = setting(0.0, _number(0), "entropy bonus weight: higher keeps the policy exploring")
    baseline_decay: float = setting(0.9, _decay, "decay of the moving-average reward baseline")
    dedupe: bool = setting(True, _bool, "never propose a configuration already evaluated or running (false: allow "
                                        "re-evaluating, e.g. a noisy objective)")


def _make(settings: ReinforceSettings, space: Any, seed: int, constrained: bool) -> Any:
    from search._optuna.reinforce import ReinforceSampler

    return ReinforceSampler(lr=settings.lr, entropy_weight=settings.entropy_weight,
                            baseline_decay=settings.baseline_decay, seed=seed, dedupe=settings.dedupe)


ENTRY = SEARCHERS.register(Searcher(
    "reinforce", "REINFORCE (NASNet-style policy gradient): a softmax policy per categorical decision, e.g. each op "
                 "and input pair of a cell; float/int parameters drawn at random; penalises trials outside "
                 "`constraints`", ReinforceSettings, _make))
