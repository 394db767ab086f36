"""Hardware-aware metrics of a model: parameter count, multiply-accumulates, measured inference latency."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

# Metrics that measure time on a machine: they vary run to run and are left out of bit-for-bit comparisons.
TIMING_METRICS = ("epoch_time_s", "epoch_wall_s", "latency_ms")
HARDWARE_METRICS = ("params", "macs", "latency_ms")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, sample: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``sample`` (batch of one), from convolutions and linear layers
    (normalisation, activations and pooling are not counted: an estimate, as is usual)."""
    total = 0

    def conv_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kernel = 1
        for k in module.kernel_size:
            kernel *= k
        total += output.numel() * (module.in_channels // module.groups) * kernel

    def linear_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    hooks = []
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        model(sample)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total


@torch.no_grad()
def measure_latency_ms(model: nn.Module, sample: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of one inference on ``sample`` (batch of one) on the sample's device, in milliseconds."""
    was_training = model.training
    model.eval()
    cuda = sample.device.type == "cuda"
    times = []
    try:
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize(sample.device)
            started = time.perf_counter()
            model(sample)
            if cuda:
                torch.cuda.synchronize(sample.device)
            if i >= warmup:
                times.append((time.perf_counter() - started) * 1000)
    finally:
        model.train(was_training)
    return statistics.median(times)


def hardware_profile(model: nn.Module, sample: torch.Tensor) -> dict[str, float]:
    """``params``, ``macs`` and ``latency_ms`` for ``model`` on ``sample``'s device. Uses no random numbers."""
    return {"params": float(count_parameters(model)), "macs": float(count_macs(model, sample)),
            "latency_ms": measure_latency_ms(model, sample)}
