"""The hardware a trial runs on: which device it trains on, what that device is, and the hardware-aware metrics
of a model (parameter count, multiply-accumulates, measured inference latency).

The one place that chooses a device: the search package (trials, the final retrain, replays) asks
:func:`pick_device` and never looks at CUDA itself. torch loads on the first call that needs it, not at import,
so the metric names below cost nothing to import (records and config checks use them).
"""

from __future__ import annotations

import statistics
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

# Metrics of how a run went on a machine, not of what it computed: they vary run to run and are left out of
# bit-for-bit comparisons. Measured times (a one-shot search's predicted latency comes from a measured op table),
# how many trials shared a batched trial's vectorised epoch (search._tune._batching; its results do not depend on it),
# and the energy used and where it was read (trainers.energy; the source is a string: it depends on the machine).
TIMING_METRICS = ("epoch_time_s", "epoch_wall_s", "latency_ms", "measured_latency_ms", "predicted_latency_ms",
                  "batch_members", "energy_j", "epoch_energy_j", "energy_source")
HARDWARE_METRICS = ("params", "macs", "latency_ms")


def pick_device(want_gpu: bool) -> str:
    """``"cuda:0"`` when a GPU is wanted and CUDA is available, else ``"cpu"``.

    Under Ray a trial sees only its own GPU(s) (``CUDA_VISIBLE_DEVICES``), so the first visible one is the trial's.

    >>> pick_device(False)
    'cpu'
    """
    if not want_gpu:
        return "cpu"
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


_ON_DEVICE: dict[tuple[int, str], Any] = {}


def device_tensor(array: Any, device: Any) -> torch.Tensor:
    """``array`` (a numpy array of a data split) as a tensor on ``device``, copied there once per process: a worker
    that trains many trials or epochs over one split (reused Ray actors, a batched worker) moves it to the GPU once,
    not per trial or epoch. On the CPU it is a view of the array (no copy at all). The copy is dropped when the array
    is.

    >>> import numpy as np
    >>> device_tensor(np.zeros(3, np.float32), "cpu").shape
    torch.Size([3])
    """
    import torch

    device = torch.device(device)
    if device.type == "cpu":
        return torch.as_tensor(array)
    key = (id(array), str(device))
    tensor = _ON_DEVICE.get(key)
    if tensor is None:
        tensor = _ON_DEVICE[key] = torch.as_tensor(array).to(device)
        weakref.finalize(array, _ON_DEVICE.pop, key, None)
    return tensor


def device_name(device: str) -> str:
    """What ``device`` (from :func:`pick_device`) is: the GPU's model name, or ``"cpu"``."""
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    return torch.cuda.get_device_name(device)


def describe_accelerators() -> dict[str, Any]:
    """CUDA and cuDNN versions, the first GPU's name and the GPU count of this machine (for the run's record)."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
    }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, sample: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``sample`` (batch of one), from convolutions and linear layers
    (normalisation, activations and pooling are not counted: an estimate, as is usual)."""
    import torch
    from torch import nn

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
        with torch.no_grad():
            model(sample)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total


def measure_latency_ms(model: nn.Module, sample: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of one inference on ``sample`` (batch of one) on the sample's device, in milliseconds."""
    import torch

    was_training = model.training
    model.eval()
    cuda = sample.device.type == "cuda"
    times = []
    try:
        with torch.no_grad():
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
