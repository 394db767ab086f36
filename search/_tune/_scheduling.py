"""Early stopping: Ray's own schedulers, configured in epochs."""

from __future__ import annotations

from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from search._tune._common import TIME_ATTR
from search.config import SchedulerConfig


def make_scheduler(cfg: SchedulerConfig) -> TrialScheduler:
    """Ray's own scheduler classes, configured in epochs. Metric and mode are set once, on the TuneConfig."""
    if cfg.type == "asha":
        return AsyncHyperBandScheduler(time_attr=TIME_ATTR, max_t=cfg.max_epochs, grace_period=cfg.grace_period,
                                       reduction_factor=cfg.reduction_factor)
    if cfg.type == "hyperband":
        return HyperBandScheduler(time_attr=TIME_ATTR, max_t=cfg.max_epochs, reduction_factor=cfg.reduction_factor)
    if cfg.type == "median":
        return MedianStoppingRule(time_attr=TIME_ATTR, grace_period=cfg.grace_period,
                                  min_samples_required=cfg.min_samples_required)
    return FIFOScheduler()
