"""Small building blocks the recipes share (normalisation of inputs, activations by name)."""

from __future__ import annotations

import torch
from torch import nn

from trainers.recipes._declarations import ACTIVATION_NAMES

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
if tuple(ACTIVATIONS) != ACTIVATION_NAMES:  # config checks use the declared names: they must be exactly these
    raise ImportError(f"activations {tuple(ACTIVATIONS)} differ from the declared {ACTIVATION_NAMES}")


class Standardize(nn.Module):
    """``(x - mean) / std`` with statistics taken from the training split and stored in the checkpoint."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
