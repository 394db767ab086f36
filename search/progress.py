"""What the terminal shows while an experiment runs, and the summary table at its end.

On a terminal: one live display (rich), redrawn a few times a second at most — a header of counts, best so far,
elapsed and ETA, and a row per running trial; each trial that ends is printed above it. Elsewhere (CI, ``ray job
submit`` logs): one line per trial that ends, and the header line every ``interval_s`` and once at the end.
:class:`RetrainProgress` is the same courtesy for ``hypernas test``'s retrain of the winner: a line per epoch.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Mapping, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from search.records import ExperimentRecords, TrialRecord

NOT_ENDED = ("RUNNING", "INTERRUPTED")  # interrupted: not final, a resume continues it


def _format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _format_duration(seconds: float | None) -> str:
    """``mm:ss``, or ``h:mm:ss`` from an hour on; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def ended_line(record: TrialRecord, metric: str) -> str:
    """One trial's outcome, e.g. ``trial 7 COMPLETE val_accuracy=0.9912 (best 0.9920 @ epoch 10) epochs 12/12 3.4 s``."""
    best = f" (best {_format_value(record.best_value)} @ epoch {record.best_epoch})" \
        if record.best_value is not None else ""
    error = ""
    if record.error and record.state == "FAILED":
        last = record.error.strip().splitlines()[-1] if record.error.strip() else ""
        error = f"  error: {last[:120]}" if last else ""
    return (f"trial {record.number} {record.state} {metric}={_format_value(record.last_value)}{best}"
            f" epochs {record.epochs_run}/{record.epochs} {record.wall_time_s:.1f} s{error}")


class ProgressView:
    """The live view of one experiment, driven by its :class:`~search.monitor.Monitor`.

    ``update(records)`` on every event (redraws the terminal display at most ``refresh_per_second`` times a second,
    or, off a terminal, prints the summary line when ``interval_s`` has passed since the last one);
    ``trial_ended(record)`` prints the trial's outcome, once; ``close(records)`` prints the final state.
    ``clock`` (monotonic seconds) is injectable so the periodic summary can be tested without waiting.
    """

    def __init__(self, total: int, metric: str, stream: TextIO | None = None, interval_s: float = 30.0, *,
                 clock: Callable[[], float] = time.monotonic, refresh_per_second: float = 4.0,
                 max_rows: int = 20, width: int | None = None, per_trial: bool = True) -> None:
        """``width``: the terminal display's width (default: the terminal's own, else 80). ``per_trial`` False: no
        line per trial that ends (a simulation's thousands), the summary only."""
        self.per_trial = per_trial
        self.total = total
        self.metric = metric
        self.stream = stream or sys.stdout
        self.interval_s = interval_s
        self.clock = clock
        self.started = clock()
        self.max_rows = max_rows
        self.width = width
        self._min_redraw_s = 1.0 / refresh_per_second
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._live: Live | None = None
        self._last_draw: float | None = None
        self._last_summary = self.started
        self._records: ExperimentRecords | None = None
        self._done_before: int | None = None  # trials a resumed experiment had already ended: not in the ETA rate
        self._closed = False

    # -- the summary line ----------------------------------------------------------------------------------------
    def line(self, records: ExperimentRecords) -> str:
        """Counts, best so far, elapsed and ETA (elapsed / trials ended here × trials left; ``-`` before one ends)."""
        counts = records.counts()
        best = records.best()
        done = sum(v for k, v in counts.items() if k not in NOT_ENDED)
        self._baseline(records, done)
        elapsed = self.clock() - self.started
        done_here = done - self._done_before
        eta = elapsed / done_here * max(0, self.total - done) if done_here > 0 else None
        best_text = f"{self.metric} {_format_value(best.last_value)} (trial {best.number})" if best else "-"
        interrupted = f"  interrupted {counts['INTERRUPTED']}" if counts.get("INTERRUPTED") else ""
        return (f"trials {done}/{self.total}  running {counts['RUNNING']}  complete {counts['COMPLETE']}"
                f"  pruned {counts['PRUNED']}  failed {counts['FAILED']}{interrupted}  best {best_text}"
                f"  elapsed {_format_duration(elapsed)}  eta {_format_duration(eta)}")

    def _baseline(self, records: ExperimentRecords, done: int | None = None) -> None:
        """Trials already ended when this view first sees the records (a resumed experiment's): the ETA's rate
        counts only the trials ended since."""
        if self._done_before is None:
            self._done_before = done if done is not None else \
                sum(1 for r in records.trials.values() if r.state not in NOT_ENDED)

    # -- events --------------------------------------------------------------------------------------------------
    def update(self, records: ExperimentRecords, *, force: bool = False) -> None:
        """Something changed (or time passed): redraw the terminal display, or print the periodic summary."""
        if self._closed:
            return
        self._records = records
        self._baseline(records)
        now = self.clock()
        if self._tty:
            if force or self._last_draw is None or now - self._last_draw >= self._min_redraw_s:
                self._draw(records)
        elif force or now - self._last_summary >= self.interval_s:
            self._print(self.line(records))
            self._last_summary = now

    def trial_ended(self, record: TrialRecord) -> None:
        """Trial ``record`` ended (any state): its one line — above the live display on a terminal."""
        if self._closed or not self.per_trial:
            return
        text = ended_line(record, self.metric)
        if self._tty:
            self._start_live().console.print(Text(text), soft_wrap=True)
        else:
            self._print(text)

    def close(self, records: ExperimentRecords | None = None) -> None:
        """The experiment is over: the final display on a terminal, else the final summary line (once)."""
        if self._closed:
            return
        records = records if records is not None else self._records
        if self._tty:
            if records is not None:
                self._draw(records)
            if self._live is not None:
                self._live.stop()
        elif records is not None:
            self._print(self.line(records))
        self._closed = True

    # -- output --------------------------------------------------------------------------------------------------
    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _start_live(self) -> Live:
        if self._live is None:
            console = Console(file=self.stream, force_terminal=True, highlight=False, width=self.width)
            # stdout and stderr are routed above the display only when it owns the real stdout
            redirect = self.stream is sys.stdout
            self._live = Live(console=console, auto_refresh=False, transient=False,
                              redirect_stdout=redirect, redirect_stderr=redirect)
            self._live.start()
        return self._live

    def _draw(self, records: ExperimentRecords) -> None:
        self._start_live().update(self.renderable(records), refresh=True)
        self._last_draw = self.clock()

    def renderable(self, records: ExperimentRecords) -> Group:
        """The terminal display: the summary line, then a row per running trial (at most ``max_rows``)."""
        header = Text(self.line(records))
        running = sorted((r for r in records.trials.values() if r.state == "RUNNING"), key=lambda r: r.number)
        if not running:
            return Group(header)
        table = Table(box=None, pad_edge=False, header_style="bold")
        for name in ("trial", "epoch", f"last {self.metric}", "best", "elapsed s", "node"):
            table.add_column(name, justify="left" if name == "node" else "right")
        for r in running[:self.max_rows]:
            table.add_row(str(r.number), f"{r.epochs_run}/{r.epochs}", _format_value(r.last_value),
                          _format_value(r.best_value), f"{r.wall_time_s:.0f}", r.node or "-")
        if len(running) > self.max_rows:
            table.add_row(f"… and {len(running) - self.max_rows} more", "", "", "", "", "")
        return Group(header, table)


class RetrainProgress:
    """A reporter for ``hypernas test``'s retrain of the winner: passes every call to ``inner`` (a
    :class:`~trainers.reporting.MemoryReporter`) unchanged and writes one line per epoch to ``stream`` (stderr: the
    verb's stdout is its JSON), e.g. ``retraining trial 7: epoch 3/12 val_accuracy 0.9812 (5.2 s)``."""

    def __init__(self, inner: Any, trial: int, epochs: int, metric: str, stream: TextIO | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.trial = trial
        self.epochs = epochs
        self.metric = metric
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()

    def begin(self, device: str) -> None:
        self._print(f"retraining trial {self.trial}: {self.epochs} epochs on {device}")

    def report(self, epoch: int, metrics: Mapping[str, float | str], state: Mapping[str, Any] | None = None) -> None:
        self.inner.report(epoch, metrics, state)
        value = metrics.get(self.metric)
        shown = f" {self.metric} {_format_value(float(value))}" if isinstance(value, (int, float)) else ""
        self._print(f"retraining trial {self.trial}: epoch {epoch}/{self.epochs}{shown}"
                    f" ({self.clock() - self.started:.1f} s)")

    def restore(self) -> tuple[int, Mapping[str, Any]] | None:
        return self.inner.restore()

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def summary_table(info: Mapping[str, Any]) -> str:
    """The end-of-run report: best trial, counts, where the results are."""
    rows = [(key, str(value)) for key, value in info.items() if value is not None]
    width = max(len(key) for key, _ in rows)
    rule = "-" * min(100, width + 2 + max(len(value) for _, value in rows))
    return "\n".join([rule, *(f"{key:<{width}}  {value}" for key, value in rows), rule])
