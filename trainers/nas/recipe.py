"""The ``nas`` recipe: train the network a genotype describes (NAS-Bench-201 or DARTS cells) with macro
parameters — stages, cells per stage, channels and EfficientNet-style depth/width multipliers — on 1-D
signals (MNIST-1D) or 2-D images (8×8 digits)."""

from __future__ import annotations

import torch

from spaces import SpaceError
from trainers.hyper import resolve
from trainers.nas._declarations import NAS_HYPERPARAMETERS as HYPERPARAMETERS
from trainers.nas._declarations import check_genotype
from trainers.nas.network import CellNetwork
from trainers.recipes._declarations import CLASSIFIER_METRICS as METRICS
from trainers.recipes._fit import TorchClassifier, fit_classifier
from trainers.reporting import Reporter
from trainers.seeding import seed_everything
from trainers.spec import TrialSpec

# the declarations (and the genotype check) live in _declarations: configs are checked without torch
__all__ = ["HYPERPARAMETERS", "METRICS", "check_genotype", "train"]


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

