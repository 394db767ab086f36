"""Architectures from genotypes: the op registry (1-D and 2-D), the cell network builder, and the ``nas`` recipe.

The public names load on first use (PEP 562): the op names and the genotype check need no torch, so checking a
config's cells does not import it; the registry, the network and the recipe do.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "OP_NAMES": "trainers.nas._declarations",
    "check_genotype": "trainers.nas._declarations",
    "CellNetwork": "trainers.nas.network",
    "OPS": "trainers.nas.ops",
    "make_op": "trainers.nas.ops",
    "build_network": "trainers.nas.recipe",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'trainers.nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
