"""MLP recipe: standardised inputs → ``depth`` × (Linear → norm → activation → dropout) → Linear."""

from __future__ import annotations

import torch
from torch import nn

from trainers.hyper import resolve
from trainers.recipes._declarations import CLASSIFIER_METRICS as METRICS
from trainers.recipes._declarations import MLP_HYPERPARAMETERS as HYPERPARAMETERS
from trainers.recipes._fit import TorchClassifier, fit_classifier
from trainers.recipes._layers import ACTIVATIONS, Standardize
from trainers.reporting import Reporter
from trainers.seeding import seed_everything
from trainers.spec import TrialSpec

__all__ = ["HYPERPARAMETERS", "METRICS", "train"]  # the declarations live in _declarations (checked without torch)


def build_mlp(input_size: int, num_classes: int, hp: dict, mean: torch.Tensor, std: torch.Tensor) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten(), Standardize(mean, std)]
    size = input_size
    for _ in range(hp["depth"]):
        layers.append(nn.Linear(size, hp["width"]))
        if hp["norm"] == "batch":
            layers.append(nn.BatchNorm1d(hp["width"]))
        elif hp["norm"] == "layer":
            layers.append(nn.LayerNorm(hp["width"]))
        layers += [ACTIVATIONS[hp["activation"]](), nn.Dropout(hp["dropout"])]
        size = hp["width"]
    layers.append(nn.Linear(size, num_classes))
    return nn.Sequential(*layers)


def train(spec: TrialSpec, reporter: Reporter) -> TorchClassifier:
    """Train an MLP on ``spec.data`` (rows flattened); per-feature standardisation from the training split."""
    hp = resolve(HYPERPARAMETERS, spec.params)
    seed_everything(spec.seed, deterministic=spec.deterministic, threads=spec.threads)
    x = torch.as_tensor(spec.data.train.x).flatten(1)
    model = build_mlp(x.shape[1], spec.data.num_classes, hp, x.mean(0), x.std(0))
    return fit_classifier(spec, reporter, model, hp)
