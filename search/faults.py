"""Chaos drills: the ``faults:`` section makes chosen trials hang, raise or run slowly, for tests and drills.

Off unless configured. Evaluated inside the trial (the worker), at each epoch's report. A hang blocks until the
trial is killed (the stall watchdog's job) or, with ``release_file``, until that file exists; a raise is an ordinary exception (retried like any other); ``slow: k``
sleeps ``k − 1`` times the epoch's own duration after each epoch, so the trial takes about ``k`` times as long.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from search.config import FaultRule
from search.seeds import derive_seed


class InjectedFault(RuntimeError):
    """Raised by a ``raise_at_epoch`` drill."""


def _selected(rule: FaultRule, index: int, number: int, experiment_seed: int,
              node_resources: Callable[[], set[str]]) -> bool:
    if rule.trials is not None:
        return number in rule.trials
    if rule.fraction is not None:
        return in_fraction(rule.fraction, number, derive_seed(experiment_seed, f"fault{index}") / 2**32)
    return rule.node_resource in node_resources()


def in_fraction(fraction: float, number: int, phase: float) -> bool:
    """Whether trial ``number`` is in a ``fraction`` of the trials: systematic sampling with a seeded ``phase`` in
    [0, 1). Trial n is chosen when ``floor((n + 1) * fraction + phase)`` steps past ``floor(n * fraction + phase)``,
    so *every* run of consecutive trials holds the fraction to within one trial — a quarter of 24 trials is
    exactly 6, and of the first 4 exactly 1 — whatever the budget, and independent of concurrency and timing.
    (A coin flip per trial would make "a quarter" anything from none to all: 8 of 24 with one seed.)

    >>> [n for n in range(12) if in_fraction(0.25, n, 0.5)]
    [1, 5, 9]
    """
    return int((number + 1) * fraction + phase) > int(number * fraction + phase)


@dataclass
class FaultPlan:
    """The drills that apply to one trial attempt."""

    rules: Sequence[FaultRule]
    attempt: int

    @classmethod
    def for_trial(cls, rules: Sequence[FaultRule], number: int, attempt: int, experiment_seed: int,
                  node_resources: Callable[[], set[str]]) -> "FaultPlan":
        chosen = [rule for i, rule in enumerate(rules) if _selected(rule, i, number, experiment_seed, node_resources)]
        return cls([r for r in chosen if not (r.first_attempt_only and attempt > 1)], attempt)

    def before_report(self, epoch: int, epoch_seconds: float) -> None:
        """Apply the drills due at ``epoch`` (called after the epoch trained, before it is reported)."""
        for rule in self.rules:
            if rule.slow is not None:
                time.sleep((rule.slow - 1) * epoch_seconds)
            elif rule.raise_at_epoch == epoch:
                raise InjectedFault(f"injected fault: raise at epoch {epoch} (attempt {self.attempt})")
            elif rule.hang_at_epoch == epoch and rule.release_file is not None:
                _wait_for(Path(rule.release_file))
            elif rule.hang_at_epoch == epoch:
                threading.Event().wait()  # hang: no more reports until the watchdog kills this trial


def _wait_for(path: Path, poll_s: float = 0.05) -> None:
    """Hold until ``path`` exists (another process creates it; nothing here can signal a worker directly)."""
    released = threading.Event()
    while not path.exists():
        released.wait(poll_s)
