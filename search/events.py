"""The decision log: every sampler ask and tell and every early-stopping decision, in the order they happened.

Written to ``<workdir>/<name>/events.parquet`` (and the MLflow parent run), so a reviewer can see why each
trial was stopped: which rung, its cutoff, the trial's value there. Columns: ``seq`` (order), ``time``,
``kind`` (``ask``, ``tell``, ``decision``, ``wait``, ``stall_kill``, ``attempt``), ``trial``, ``epoch``, ``value``, ``decision``, ``rung``,
``cutoff``, ``state``, ``detail`` (JSON: the asked configuration).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from search.redaction import redact

EVENTS_FILE = "events.parquet"
_TYPES = {
    "seq": pa.int64(), "time": pa.float64(), "kind": pa.string(), "trial": pa.int64(), "epoch": pa.int64(),
    "value": pa.float64(), "decision": pa.string(), "rung": pa.int64(), "cutoff": pa.float64(),
    "state": pa.string(), "detail": pa.string(),
}


JOURNAL_FILE = "events.jsonl"


class EventLog:
    """Append-only list of events; cheap to add to from the driver's Tune loop. With a ``journal`` path each event
    is also appended there as a JSON line, so :meth:`load` brings the log back after a driver crash."""

    def __init__(self, journal: Path | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self._journal = open(journal, "a", encoding="utf-8") if journal is not None else None

    @classmethod
    def load(cls, journal: Path) -> "EventLog":
        log = cls()
        if journal.is_file():
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    log.rows.append(json.loads(line))
                except json.JSONDecodeError:  # a torn last line
                    continue
        log._journal = open(journal, "a", encoding="utf-8")
        return log

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _add(self, **row: Any) -> None:
        row = {"seq": len(self.rows), "time": time.time(), **row}
        self.rows.append(row)
        if self._journal is not None:
            self._journal.write(json.dumps(row) + "\n")
            self._journal.flush()

    def ask(self, trial: int, params: Mapping[str, Any]) -> None:
        self._add(kind="ask", trial=trial, detail=json.dumps(redact(params), sort_keys=True))

    def tell(self, trial: int, state: str, value: float | None) -> None:
        self._add(kind="tell", trial=trial, state=state, value=value)

    def decision(self, trial: int, epoch: int, value: float | None, decision: str, rung: int | None = None,
                 cutoff: float | None = None, reason: str | None = None) -> None:
        self._add(kind="decision", trial=trial, epoch=epoch, value=value, decision=decision, rung=rung,
                  cutoff=cutoff, detail=json.dumps({"reason": reason}) if reason else None)

    def attempt(self, trial: int, attempt: int, state: str, epoch: int) -> None:
        """An attempt of a trial ended badly (STALLED, PREEMPTED, FAILED)."""
        self._add(kind="attempt", trial=trial, epoch=epoch, state=state, detail=json.dumps({"attempt": attempt}))

    def stall(self, trial: int, silent_s: float) -> None:
        """The watchdog killed a trial that had reported nothing for ``silent_s`` seconds."""
        self._add(kind="stall_kill", trial=trial, value=silent_s)

    def wait(self, trial: int, epoch: int, rung: int, waiting_for: list[int], parked: bool = False) -> None:
        """Ordered promotion: a trial waits at a rung (held, or parked without its slot) for lower-numbered
        trials to reach it."""
        self._add(kind="wait", trial=trial, epoch=epoch, rung=rung,
                  detail=json.dumps({"waiting_for": waiting_for, "parked": parked}))

    def table(self) -> pa.Table:
        return pa.table({name: pa.array([row.get(name) for row in self.rows], type_) for name, type_ in _TYPES.items()})

    def write(self, folder: Path) -> Path:
        path = folder / EVENTS_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(self.table(), tmp)
        os.replace(tmp, path)
        return path
