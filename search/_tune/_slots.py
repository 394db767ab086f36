"""The one owner of an experiment's concurrency limit (``budget.max_concurrent``).

Two parts of the Tune adapter decide whether a trial may take a slot: the searcher (a new trial) and, with ordered
promotion, the scheduler (a parked trial promoted at its rung). Both ask :class:`TrialSlots`, which holds the limit
and knows which live trials are parked — paused at a rung, undecided, holding no slot. Ray Tune gets the same
limit as ``max_concurrent_trials`` only to size its queue of pending trials: its ``ConcurrencyLimiter`` asks the
searcher, which defers to these slots (a limiter of its own would count parked trials as running).
"""

from __future__ import annotations


class TrialSlots:
    """How many trials may run at once, and which live trials hold no slot (parked).

    >>> slots = TrialSlots(2)
    >>> slots.park(5); slots.full(occupied=2 - len(slots.parked))
    False
    """

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"a concurrency limit must be >= 1 (or None: no limit), got {limit}")
        self.limit = limit
        self.parked: set[int] = set()  # trial numbers parked at a rung by the scheduler

    def park(self, number: int) -> None:
        self.parked.add(number)

    def unpark(self, number: int) -> None:
        self.parked.discard(number)

    def full(self, occupied: int) -> bool:
        """Whether ``occupied`` trials holding a slot leave none for another."""
        return self.limit is not None and occupied >= self.limit

    def free_for_new(self, live: int) -> bool:
        """A new trial may start, ``live`` trials being asked and not ended (the parked ones among them)."""
        return not self.full(live - len(self.parked))
