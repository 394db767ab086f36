"""The one seeding function every trial calls before it builds anything."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = True, threads: int | None = None) -> int:
    """Seed python, numpy and torch (CPU and CUDA) from ``seed``; optionally force deterministic kernels.

    ``deterministic=True`` turns on ``torch.use_deterministic_algorithms`` and the CUDA settings it needs
    (cuDNN deterministic, no benchmark autotuning, a fixed cuBLAS workspace), so a trial replays bit for bit
    on the same hardware. ``threads`` fixes torch's intra-op thread count (the trial's CPU share); thread
    count changes reduction order, so it is part of what makes a CPU run repeatable. Returns ``seed``.

    >>> seed_everything(7, threads=1)
    7
    """
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63) (got {seed})")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS reads this when CUDA initialises; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1 (got {threads})")
        torch.set_num_threads(threads)
    return seed


def _seed_worker(worker_id: int) -> None:
    # torch seeds each DataLoader worker with base_seed + worker_id, base_seed drawn from the loader's generator;
    # python's and numpy's RNGs in the worker follow that seed too.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def dataloader_seeding(seed: int) -> dict[str, Any]:
    """Keyword arguments for ``torch.utils.data.DataLoader`` that make shuffling and every worker's python,
    numpy and torch RNGs follow ``seed`` (for trainers that use DataLoaders)::

        DataLoader(dataset, batch_size=64, shuffle=True, num_workers=2, **dataloader_seeding(spec.seed))
    """
    return {"generator": torch.Generator().manual_seed(seed), "worker_init_fn": _seed_worker}
