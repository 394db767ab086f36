"""ASHA — Ray Tune's ``AsyncHyperBandScheduler``: a trial reaching a rung continues only if it is in the top
1/reduction_factor of the trials recorded there. ``promotion: ordered`` decides each rung in trial-number order
(``search._tune._scheduling.ObservedScheduler`` parks early arrivals), so stragglers do not change promotions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.config import MAX_EPOCHS, MAX_FACTOR, ConfigError, _choice, _int, _number
from search.registry import SCHEDULERS, Scheduler, setting

PROMOTIONS = ("async", "ordered")  # decide a rung on arrival (Ray's), or in trial-number order


@dataclass(frozen=True)
class AshaSettings:
    grace_period: int = setting(1, _int(1, MAX_EPOCHS), "epochs before the first rung")
    reduction_factor: float = setting(3, _number(1, inclusive=False, high=MAX_FACTOR),
                                      "1/reduction_factor of a rung's trials are promoted")
    promotion: str = setting("async", _choice(PROMOTIONS), "`async`: Ray's, a rung decides on arrival; `ordered`: "
                                                           "in trial-number order, early arrivals parked")


def check_grace_period(settings: Any, max_epochs: int) -> None:
    """``grace_period <= max_epochs`` (ASHA and the median rule)."""
    if settings.grace_period > max_epochs:
        raise ConfigError("scheduler.grace_period",
                          f"grace_period <= max_epochs must hold (got {settings.grace_period} > {max_epochs})")


def _make(settings: AshaSettings, max_epochs: int) -> Any:
    from ray.tune.schedulers import AsyncHyperBandScheduler

    from search._tune._common import TIME_ATTR

    return AsyncHyperBandScheduler(time_attr=TIME_ATTR, max_t=max_epochs, grace_period=settings.grace_period,
                                   reduction_factor=settings.reduction_factor)


ENTRY = SCHEDULERS.register(Scheduler(
    "asha", "asynchronous successive halving (Ray's `AsyncHyperBandScheduler`); never holds a slot for a slow "
            "trial", AshaSettings, _make, check=check_grace_period, order_independent=True))
