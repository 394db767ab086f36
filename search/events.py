"""The decision log: every sampler ask and tell and every early-stopping decision, in the order they happened.

A view of the experiment journal (:mod:`search.journal`). Written to ``<workdir>/<name>/events.parquet`` (and the
MLflow parent run), so a reviewer can see why each trial was stopped: which rung, its cutoff, the trial's value
there. Columns: ``seq`` (order: the journal's sequence number), ``time``, ``kind`` (``ask``, ``tell``,
``decision``, ``wait``, ``stall_kill``, ``attempt``), ``trial``, ``epoch``, ``value``, ``decision``, ``rung``,
``cutoff``, ``state``, ``detail`` (JSON: the asked configuration, secrets masked).

An ``attempt`` row is the journal's ``attempt_failed`` or ``attempt_reclassified`` entry (a trial event the
records apply too): the fact is written once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from search.journal import DECISION_KINDS, Journal, read_entries
from search.redaction import redact

EVENTS_FILE = "events.parquet"
_TYPES = {
    "seq": pa.int64(), "time": pa.float64(), "kind": pa.string(), "trial": pa.int64(), "epoch": pa.int64(),
    "value": pa.float64(), "decision": pa.string(), "rung": pa.int64(), "cutoff": pa.float64(),
    "state": pa.string(), "detail": pa.string(),
}
_ATTEMPT_KINDS = ("attempt_failed", "attempt_reclassified")


class EventLog:
    """The decision rows of an experiment's journal; cheap to add to from the driver's Tune loop. Without a
    ``journal`` an in-memory one is used."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.journal = journal if journal is not None else Journal()
        self.journal.subscribe(self.apply)

    @classmethod
    def read(cls, folder: Path) -> "EventLog":
        """The decision log of the experiment in ``folder``, read from its journal (nothing is written)."""
        log = cls()
        log.replay(read_entries(folder))
        return log

    def replay(self, entries: Iterable[Mapping[str, Any]]) -> None:
        for entry in entries:
            self.apply(entry)

    def apply(self, entry: Mapping[str, Any]) -> None:
        """Show one journal entry, if it is a decision (or an attempt)."""
        kind = entry["kind"]
        if kind in DECISION_KINDS:
            row = {k: v for k, v in entry.items() if k not in ("v", "params")}
            if kind == "ask":
                row["detail"] = json.dumps(redact(entry.get("params") or {}), sort_keys=True)
            self.rows.append(row)
        elif kind in _ATTEMPT_KINDS:
            self.rows.append({"seq": entry["seq"], "time": entry["time"], "kind": "attempt",
                              "trial": entry["number"], "epoch": entry.get("epoch"), "state": entry["state"],
                              "detail": json.dumps({"attempt": entry["attempt"]})})

    def close(self) -> None:
        self.journal.close()

    def ask(self, trial: int, params: Mapping[str, Any]) -> None:
        self.journal.append("ask", trial=trial, params=dict(params))

    def tell(self, trial: int, state: str, value: float | list[float] | None) -> None:
        """What Optuna was told; a multi-objective trial's values go to ``detail`` (``value``: the first)."""
        if isinstance(value, (list, tuple)):
            self.journal.append("tell", trial=trial, state=state, value=value[0], detail=json.dumps({"values": value}))
        else:
            self.journal.append("tell", trial=trial, state=state, value=value)

    def decision(self, trial: int, epoch: int, value: float | None, decision: str, rung: int | None = None,
                 cutoff: float | None = None, reason: str | None = None) -> None:
        self.journal.append("decision", trial=trial, epoch=epoch, value=value, decision=decision, rung=rung,
                            cutoff=cutoff, detail=json.dumps({"reason": reason}) if reason else None)

    def stall(self, trial: int, silent_s: float) -> None:
        """The watchdog killed a trial that had reported nothing for ``silent_s`` seconds."""
        self.journal.append("stall_kill", trial=trial, value=silent_s)

    def wait(self, trial: int, epoch: int, rung: int, waiting_for: list[int], parked: bool = False) -> None:
        """Ordered promotion: a trial waits at a rung (held, or parked without its slot) for lower-numbered
        trials to reach it."""
        self.journal.append("wait", trial=trial, epoch=epoch, rung=rung,
                            detail=json.dumps({"waiting_for": waiting_for, "parked": parked}))

    def asked(self) -> set[int]:
        """Trials whose ask is in the log."""
        return {row["trial"] for row in self.rows if row["kind"] == "ask"}

    def table(self) -> pa.Table:
        return pa.table({name: pa.array([row.get(name) for row in self.rows], type_) for name, type_ in _TYPES.items()})

    def write(self, folder: Path) -> Path:
        path = folder / EVENTS_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(self.table(), tmp)
        os.replace(tmp, path)
        return path
