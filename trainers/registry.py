"""Trainer lookup: built-in recipe names (``mlp``, ``cnn``, ``nas``, ``oneshot``) or a user's
``package.module:function``.

A built-in's declarations (hyperparameters, metrics) come from torch-free modules; its recipe module, which
imports torch, loads only when the trainer first trains. So checking a config against a built-in needs no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from trainers.hyper import Hyper
from trainers.nas._declarations import NAS_HYPERPARAMETERS
from trainers.nas._oneshot_declarations import ONESHOT_HYPERPARAMETERS, ONESHOT_METRICS
from trainers.recipes._declarations import CLASSIFIER_METRICS, CNN_HYPERPARAMETERS, MLP_HYPERPARAMETERS
from trainers.reporting import Reporter
from trainers.spec import Evaluator, Recipe, TrialSpec


@dataclass(frozen=True)
class Trainer:
    """A resolved trainer: its ``train`` callable and, where declared, its hyperparameters and the metric
    names it reports (used to check an experiment config before anything runs)."""

    name: str
    train: Recipe
    hyperparameters: Mapping[str, Hyper] | None
    metrics: tuple[str, ...] | None


@dataclass(frozen=True)
class _BuiltinRecipe:
    """A built-in recipe's ``train``, imported from ``module`` on the first call (the module imports torch)."""

    module: str

    def __call__(self, spec: TrialSpec, reporter: Reporter) -> Evaluator | None:
        return importlib.import_module(self.module).train(spec, reporter)


BUILTIN: Mapping[str, Trainer] = MappingProxyType({
    "mlp": Trainer("mlp", _BuiltinRecipe("trainers.recipes.mlp"), MLP_HYPERPARAMETERS, CLASSIFIER_METRICS),
    "cnn": Trainer("cnn", _BuiltinRecipe("trainers.recipes.cnn"), CNN_HYPERPARAMETERS, CLASSIFIER_METRICS),
    "nas": Trainer("nas", _BuiltinRecipe("trainers.nas.recipe"), NAS_HYPERPARAMETERS, CLASSIFIER_METRICS),
    "oneshot": Trainer("oneshot", _BuiltinRecipe("trainers.nas.oneshot"), ONESHOT_HYPERPARAMETERS,
                       ONESHOT_METRICS),
})


def resolve_trainer(name: str) -> Trainer:
    """``"cnn"`` → the built-in recipe; ``"pkg.mod:fn"`` → that function. A user function may carry the
    attributes ``hyperparameters`` (a dict of :class:`~trainers.hyper.Hyper`, checked against the space like a
    built-in's) and ``metrics`` (the metric names it reports).

    Raises ``ValueError`` naming what is wrong (unknown name, module not importable, no such function).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"must be a built-in trainer ({', '.join(BUILTIN)}) or 'package.module:function' (got {name!r})")
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" not in name:
        raise ValueError(f"unknown trainer {name!r}: use one of {', '.join(BUILTIN)} or 'package.module:function'")
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure to import the user's module ('.x': TypeError) is bad input
        raise ValueError(f"cannot import module {module_name!r} for trainer {name!r} "
                         f"({type(err).__name__}: {' '.join(str(err).split())})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"module {module_name!r} has no function {attr!r} (trainer {name!r})")
    hypers = getattr(fn, "hyperparameters", None)
    if hypers is not None and not (isinstance(hypers, Mapping) and all(isinstance(h, Hyper) for h in hypers.values())):
        raise ValueError(f"{name}.hyperparameters must map names to trainers.Hyper")
    metrics = getattr(fn, "metrics", None)
    if metrics is not None and not (isinstance(metrics, (list, tuple)) and all(isinstance(m, str) for m in metrics)):
        raise ValueError(f"{name}.metrics must be a list of metric names")
    return Trainer(name, fn, hypers, tuple(metrics) if metrics is not None else None)
