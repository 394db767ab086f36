"""The live progress line while an experiment runs, and the summary table at its end."""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping, TextIO

from search.records import ExperimentRecords


def _format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class ProgressView:
    """Counts per state and the best trial so far; redraws one line on a terminal, else prints on change."""

    def __init__(self, total: int, metric: str, stream: TextIO | None = None, interval_s: float = 10.0) -> None:
        self.total = total
        self.metric = metric
        self.stream = stream or sys.stdout
        self.interval_s = interval_s
        self.started = time.monotonic()
        self._last_line = ""
        self._last_state = ""  # the line without its clock: a change here is news worth printing
        self._last_print = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, records: ExperimentRecords) -> str:
        counts = records.counts()
        best = records.best()
        elapsed = int(time.monotonic() - self.started)
        done = sum(v for k, v in counts.items() if k not in ("RUNNING", "INTERRUPTED"))  # interrupted: not ended
        best_text = f"{self.metric} {_format_value(best.last_value)} (trial {best.number})" if best else "-"
        interrupted = f"  interrupted {counts['INTERRUPTED']}" if counts.get("INTERRUPTED") else ""
        return (f"[{elapsed // 60:02d}:{elapsed % 60:02d}] trials {done}/{self.total}  running {counts['RUNNING']}"
                f"  complete {counts['COMPLETE']}  pruned {counts['PRUNED']}  failed {counts['FAILED']}{interrupted}"
                f"  best {best_text}")

    def update(self, records: ExperimentRecords, *, force: bool = False) -> None:
        line = self.line(records)
        now = time.monotonic()
        state = line.split("] ", 1)[1]
        if not (force or state != self._last_state or now - self._last_print >= self.interval_s):
            return
        if self._tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_line, self._last_state, self._last_print = line, state, now

    def close(self) -> None:
        if self._tty and self._last_line:
            self.stream.write("\n")
            self.stream.flush()


def summary_table(info: Mapping[str, Any]) -> str:
    """The end-of-run report: best trial, counts, where the results are."""
    rows = [(key, str(value)) for key, value in info.items() if value is not None]
    width = max(len(key) for key, _ in rows)
    rule = "-" * min(100, width + 2 + max(len(value) for _, value in rows))
    return "\n".join([rule, *(f"{key:<{width}}  {value}" for key, value in rows), rule])
