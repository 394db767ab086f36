"""No early stopping — Ray Tune's ``FIFOScheduler``: every trial trains its full budget."""

from __future__ import annotations

from typing import Any

from search.registry import SCHEDULERS, NoSettings, Scheduler


def _make(settings: NoSettings, max_epochs: int) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


ENTRY = SCHEDULERS.register(Scheduler("none", "no early stopping: every trial trains its full budget",
                                      NoSettings, _make, order_independent=True))
