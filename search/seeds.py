"""Seed derivation: every seed in an experiment comes from the experiment seed and a *name*, never call order."""

from __future__ import annotations

import hashlib

SEED_BITS = 32  # numpy's legacy RandomState (inside Optuna's samplers) takes seeds below 2**32


def derive_seed(experiment_seed: int, name: str | int) -> int:
    """A seed in ``[0, 2**32)`` determined only by ``experiment_seed`` and ``name``.

    Names used by hypernas: ``"sampler"``, ``"data"``, and the trial number (an int) for each trial — so trial 7
    gets the same seed whatever the concurrency or the order in which trials finish.

    >>> derive_seed(0, 7) == derive_seed(0, 7) != derive_seed(0, 8)
    True
    >>> derive_seed(0, "sampler")
    2878144050
    """
    if isinstance(experiment_seed, bool) or not isinstance(experiment_seed, int) or experiment_seed < 0:
        raise ValueError(f"experiment seed must be an integer >= 0 (got {experiment_seed!r})")
    tag = f"trial:{name}" if isinstance(name, int) else f"name:{name}"
    digest = hashlib.sha256(f"hypernas/{experiment_seed}/{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**SEED_BITS)
