"""What the ``nas`` recipe declares — its op names, default cell and hyperparameters, and the genotype check —
without importing torch.

A config's cells are checked against the op registry before anything runs (``hypernas validate``): that needs
the registry's op names and the cell shapes ``spaces.nas`` checks, never a torch module, so it is done here.
Each setting is defined here only: ``ops.py`` builds a module for each of ``OP_NAMES`` (and refuses to import
if the two differ), ``recipe.py`` trains with these hyperparameters.
"""

from __future__ import annotations

from typing import Any

from spaces.nas import DARTS_OPS, DartsCell, Genotype, NB201Cell
from trainers.hyper import Hyper
from trainers.recipes._declarations import TRAINING_HYPERPARAMETERS

# The ops the registry (``ops.OPS``) builds, in 1-D and 2-D: NAS-Bench-201's and DARTS' (and ``none``).
OP_NAMES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "max_pool_3x3", "sep_conv_3x3",
            "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
if not set(DARTS_OPS) <= set(OP_NAMES):  # the registry must build every op the default DARTS cell may sample
    raise ImportError(f"DARTS ops {sorted(set(DARTS_OPS) - set(OP_NAMES))} are not in the op registry")

DEFAULT_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def check_genotype(value: Any) -> Genotype:
    """Parse a genotype string and check that the registry can build it (every op known, shapes valid).

    >>> check_genotype(DEFAULT_CELL).to_string() == DEFAULT_CELL
    True
    """
    genotype = value if isinstance(value, Genotype) else Genotype.from_string(value)
    if "normal" in genotype.cells:
        nodes = len(genotype.cells["normal"].nodes)
        DartsCell(nodes=nodes, ops=OP_NAMES, reduction="reduce" in genotype.cells).genotype(genotype)
    else:
        NB201Cell(ops=OP_NAMES).genotype(genotype)
    return genotype


NAS_HYPERPARAMETERS: dict[str, Hyper] = {
    **TRAINING_HYPERPARAMETERS,
    "cell": Hyper(DEFAULT_CELL, "the architecture: a NAS-Bench-201 or DARTS genotype", genotype=check_genotype),
    "stages": Hyper(3, "stages; channels double and resolution halves between stages", low=1, high=5, integer=True),
    "cells": Hyper(2, "cells per stage (before the depth multiplier)", low=1, high=32, integer=True),
    "channels": Hyper(16, "channels of the first stage (before the width multiplier)", low=1, high=1024,
                      integer=True),
    "depth_multiplier": Hyper(1.0, "compound scaling of cells per stage", low=0.1, high=8.0),
    "width_multiplier": Hyper(1.0, "compound scaling of channels", low=0.1, high=8.0),
    "dropout": Hyper(0.0, "dropout before the classifier", low=0.0, high=0.95),
    "pool": Hyper("avg", "global pooling before the classifier", choices=("avg", "avgmax")),
}
