"""How a recipe talks to whoever runs it: a tiny ``Reporter`` protocol, and an in-memory reporter.

Recipes know nothing of Ray or MLflow. The search package wraps Ray Tune's report/checkpoint API in a
Reporter; tests and the final retrain use :class:`MemoryReporter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from trainers.checkpoint import state_from_bytes, state_to_bytes


class Reporter(Protocol):
    """What a training recipe calls once per epoch.

    ``report(epoch, metrics, state)``: epochs count from 1; ``metrics`` are floats (``val_loss``,
    ``val_accuracy``, ...), apart from the odd string (the ``oneshot`` recipe's ``genotype``); ``state`` is
    everything needed to resume after this epoch (model, optimizer, RNG states) or ``None``. A reporter may stop
    the trial by raising from ``report``.

    ``restore()``: ``(epoch, state)`` of the last saved epoch when the trial resumes, else ``None``.
    """

    def report(self, epoch: int, metrics: Mapping[str, float | str],
               state: Mapping[str, Any] | None = None) -> None: ...

    def restore(self) -> tuple[int, Mapping[str, Any]] | None: ...


@dataclass
class MemoryReporter:
    """Keeps every report in memory; ``resume_from`` makes ``restore()`` return a saved ``(epoch, state)``.

    With ``keep_states=True`` it also keeps a deep copy of each epoch's state (``state_at(epoch)``).

    >>> r = MemoryReporter()
    >>> r.report(1, {"val_loss": 0.5})
    >>> r.history
    [{'epoch': 1, 'val_loss': 0.5}]
    """

    resume_from: tuple[int, Mapping[str, Any]] | None = None
    keep_states: bool = False
    history: list[dict[str, float | str]] = field(default_factory=list)
    _states: dict[int, bytes] = field(default_factory=dict, repr=False)

    def report(self, epoch: int, metrics: Mapping[str, float | str], state: Mapping[str, Any] | None = None) -> None:
        # strings (a derived genotype) stay strings; every other value is a float
        kept = {k: v if isinstance(v, str) else float(v) for k, v in metrics.items()}
        self.history.append({"epoch": epoch, **kept})
        if self.keep_states and state is not None:
            self._states[epoch] = state_to_bytes(state)

    def state_at(self, epoch: int) -> dict[str, Any]:
        return state_from_bytes(self._states[epoch])

    def restore(self) -> tuple[int, Mapping[str, Any]] | None:
        return self.resume_from
