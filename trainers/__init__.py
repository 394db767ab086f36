"""How one trial trains: data splits (with the sealed test split), seeding, recipes and the Reporter protocol.

Knows nothing of Ray or MLflow. A recipe is ``train(spec: TrialSpec, reporter: Reporter) -> Evaluator | None``.

The public names load on first use (PEP 562): the data sources, the hyperparameter checks and the built-in
trainers' declarations need no torch, so reading and checking a config does not pay for importing it; a built-in
recipe imports it when it first trains. Which device a trial trains on is :func:`trainers.hardware.pick_device`'s
choice.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    **dict.fromkeys(("state_from_bytes", "state_to_bytes"), "trainers.checkpoint"),
    **dict.fromkeys(("DEFAULT_SPLIT_SEED", "DataSource", "DigitsSource", "Mnist1dSource", "ParquetSource",
                     "SealedTestSplit", "SearchData", "Split", "make_source", "row_digests", "sealed_data",
                     "search_data", "split_digests"), "trainers.data"),
    **dict.fromkeys(("Hyper", "check_space", "resolve"), "trainers.hyper"),
    **dict.fromkeys(("BUILTIN", "Trainer", "resolve_trainer"), "trainers.registry"),
    **dict.fromkeys(("MemoryReporter", "Reporter"), "trainers.reporting"),
    **dict.fromkeys(("dataloader_seeding", "seed_everything"), "trainers.seeding"),
    **dict.fromkeys(("Evaluator", "Recipe", "TrialSpec"), "trainers.spec"),
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'trainers' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
