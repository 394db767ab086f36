"""Median stopping — Ray Tune's ``MedianStoppingRule``: stop a trial whose best result is below the median of
its peers' running averages at the same epoch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import MAX_EPOCHS, MAX_TRIALS, _int
from search.registry import SCHEDULERS, Scheduler, setting
from search.schedulers.asha import check_grace_period


@dataclass(frozen=True)
class MedianSettings:
    grace_period: int = setting(1, _int(1, MAX_EPOCHS), "epochs before a trial can be stopped")
    min_samples_required: int = setting(3, _int(1, MAX_TRIALS), "peers needed at an epoch before comparing")


def _make(settings: MedianSettings, max_epochs: int) -> Any:
    from ray.tune.schedulers import MedianStoppingRule

    from search._tune._common import TIME_ATTR

    return MedianStoppingRule(time_attr=TIME_ATTR, grace_period=settings.grace_period,
                              min_samples_required=settings.min_samples_required)


ENTRY = SCHEDULERS.register(Scheduler(
    "median", "median stopping rule (Ray's `MedianStoppingRule`): stops a trial whose best result is worse than "
              "the median of its peers' running averages at the same epoch",
    MedianSettings, _make, check=check_grace_period))
