"""Ctrl-C (SIGINT) and SIGTERM while an experiment runs.

The first signal asks the executor to stop gracefully: Tune snapshots its state, running trials keep their
checkpoints and are recorded INTERRUPTED, records and MLflow are flushed, and ``hypernas resume NAME`` continues
the experiment. A second signal stops at once. The process then exits as a shell expects of a process ended by
that signal: 128 + its number (130 for SIGINT, 143 for SIGTERM).

No heavy imports here: the CLI imports this module to map :class:`Interrupted` to its exit code.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """An experiment stopped by SIGINT or SIGTERM. ``result`` is what it recorded (an ``ExperimentResult``) when
    it got as far as closing its records; ``exit_code`` is 128 + the signal's number."""

    def __init__(self, signum: int, message: str | None = None, result: Any = None) -> None:
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.result = result

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class SignalGuard:
    """Handles SIGINT and SIGTERM while entered (in the main thread; elsewhere Python delivers no signals).

    By default a signal raises :class:`Interrupted` at once. Inside :meth:`on_first_signal` the first signal
    calls the given function instead (e.g. "ask Tune to stop"), which returns whether it could stop gracefully;
    if it could, only a second signal raises. ``signum`` is the
    first signal received, or None.

    >>> with SignalGuard() as guard:                                  # doctest: +SKIP
    ...     with guard.on_first_signal(executor.stop):
    ...         executor.run()
    ...     if guard.signum is not None: ...                          # stopped early: record it as interrupted
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._first: Callable[[], bool] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            # None: a handler not installed from Python; the default is the closest we can restore
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous = {}

    @contextmanager
    def on_first_signal(self, react: Callable[[], bool]) -> Iterator["SignalGuard"]:
        """While inside, the first signal calls ``react`` (which must return quickly) instead of raising, unless
        ``react`` returns False."""
        previous, self._first = self._first, react
        try:
            yield self
        finally:
            self._first = previous

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if first and self._first is not None and self._first():
            return
        raise Interrupted(self.signum)
