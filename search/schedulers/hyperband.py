"""HyperBand — Ray Tune's ``HyperBandScheduler``: synchronous brackets that pause trials at each milestone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import MAX_FACTOR, _number
from search.registry import SCHEDULERS, Scheduler, setting


@dataclass(frozen=True)
class HyperBandSettings:
    reduction_factor: float = setting(3, _number(1, inclusive=False, high=MAX_FACTOR),
                                      "1/reduction_factor of a bracket's trials continue at each milestone")


def _make(settings: HyperBandSettings, max_epochs: int) -> Any:
    from ray.tune.schedulers import HyperBandScheduler

    from search._tune._common import TIME_ATTR

    return HyperBandScheduler(time_attr=TIME_ATTR, max_t=max_epochs, reduction_factor=settings.reduction_factor)


# Seen on Ray 2.60: the concurrency limiter counts PAUSED trials as running, so a HyperBand bracket waiting for
# members that cannot start any more stalls the experiment — hence pauses_trials (no budget.max_concurrent).
ENTRY = SCHEDULERS.register(Scheduler(
    "hyperband", "synchronous HyperBand brackets (Ray's `HyperBandScheduler`); pauses trials at milestones",
    HyperBandSettings, _make, pauses_trials=True))
