"""The ``nas`` recipe: train the network a genotype describes (NAS-Bench-201 or DARTS cells) with macro
parameters — stages, cells per stage, channels and EfficientNet-style depth/width multipliers — on 1-D
signals (MNIST-1D) or 2-D images (8×8 digits)."""

from __future__ import annotations

from typing import Any

import torch

from spaces import SpaceError
from spaces.nas import DARTS_OPS, DartsCell, Genotype, NB201Cell
from trainers.hyper import Hyper, resolve
from trainers.nas.network import CellNetwork
from trainers.nas.ops import OP_NAMES
from trainers.recipes._fit import METRICS, TRAINING_HYPERPARAMETERS, TorchClassifier, fit_classifier
from trainers.reporting import Reporter
from trainers.seeding import seed_everything
from trainers.spec import TrialSpec

__all__ = ["HYPERPARAMETERS", "METRICS", "check_genotype", "train"]

DEFAULT_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def check_genotype(value: Any) -> Genotype:
    """Parse a genotype string and check that this registry can build it (every op known, shapes valid)."""
    genotype = value if isinstance(value, Genotype) else Genotype.from_string(value)
    if "normal" in genotype.cells:
        nodes = len(genotype.cells["normal"].nodes)
        DartsCell(nodes=nodes, ops=OP_NAMES, reduction="reduce" in genotype.cells).genotype(genotype)
    else:
        NB201Cell(ops=OP_NAMES).genotype(genotype)
    return genotype


HYPERPARAMETERS: dict[str, Hyper] = {
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


def build_network(params: dict, num_classes: int, input_shape: tuple[int, ...], mean: float, std: float) -> CellNetwork:
    """The model for resolved hyperparameters; raises ``SpaceError`` for a genotype this registry cannot build."""
    if len(input_shape) not in (1, 2):
        raise SpaceError("data", f"the nas recipe takes 1-D signals or 2-D images (got rows of shape {input_shape})")
    return CellNetwork(
        check_genotype(params["cell"]), num_classes=num_classes, dim=len(input_shape), stages=params["stages"],
        cells=params["cells"], channels=params["channels"], depth_multiplier=params["depth_multiplier"],
        width_multiplier=params["width_multiplier"], dropout=params["dropout"], pool=params["pool"], mean=mean,
        std=std,
    )


def train(spec: TrialSpec, reporter: Reporter) -> TorchClassifier:
    """Build the genotype's network (before seeding nothing random happens) and train it like the CNN recipe."""
    hp = resolve(HYPERPARAMETERS, spec.params)
    seed_everything(spec.seed, deterministic=spec.deterministic, threads=spec.threads)
    x = torch.as_tensor(spec.data.train.x)
    model = build_network(hp, spec.data.num_classes, spec.data.input_shape, float(x.mean()), float(x.std()))
    return fit_classifier(spec, reporter, model, hp)


assert set(DARTS_OPS) <= set(OP_NAMES)  # the registry builds every op the default DARTS cell may sample
