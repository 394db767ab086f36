"""The experiment journal: one append-only file, ``journal.jsonl``, that every other record of an experiment is a
view of.

One writer (:class:`Journal`, owned by the driver) appends one JSON object per line::

    {"v": 1, "seq": 17, "time": 1764668400.12, "kind": "result", "number": 3, "epoch": 2, ...}

``kind`` says what happened:

* trial events, applied by :class:`~search.records.ExperimentRecords`: ``started``, ``result``,
  ``attempt_failed`` (one attempt ended STALLED, PREEMPTED or FAILED), ``attempt_reclassified``, ``ended``,
  ``forget`` (a trial a crashed driver started and Tune never learnt of);
* sampler and scheduler decisions, shown by :class:`~search.events.EventLog`: ``ask`` (with the configuration),
  ``tell``, ``decision``, ``wait``, ``stall_kill``.

``trials.parquet``, ``curves.parquet``, ``events.parquet``, the MLflow back-fill, ``status``, ``best``,
``replay NAME --trial N`` (``replay RUN_ID`` reads MLflow) and ``resume`` (which trials ended and must be told to
Optuna, ASHA's rungs) read this file and nothing else of ours. The one other store resume reads is Optuna's own
``optuna.journal``: the configurations of trials asked but not yet started (Optuna is the only store that has a
trial cut off mid-ask; an ``ask`` missing here is re-logged). It keeps the user's inputs as given (configurations in ``ask`` and ``started``), like ``config.yaml``.

Durability. Every line is flushed as it is written, so a killed driver (``kill -9``) loses nothing the OS has.
Lines that end a trial (``ended``, ``forget``) are also ``fsync``-ed, and so is the file on close: those are
the lines resume and selection act on, so they survive a power cut too, while the many per-epoch lines cost
only a ``write``: ``bench/journal.py`` measured ~10 µs per flushed line against ~200–300 µs per fsync-ed one
(25x) on a local VM disk, and network disks take milliseconds per fsync — in the driver's single Tune loop, per
result of every trial. A power cut may therefore lose the last epochs' results, which resume re-runs from the
trial's checkpoint anyway. A torn last line — the crash came mid-write — is dropped on reading, and cut off
before a resumed writer appends (a whole last line that only lacks its newline is kept, by both).

Versions. ``v`` is the format version (:data:`VERSION`). Version 0 is the layout before this file existed: a
folder with ``records.jsonl`` (trial events, ``op`` instead of ``kind``) and ``events.jsonl`` (decisions); it
is read as if it were one journal (its trial events first, then its decisions), and an experiment resumed
from it continues in ``journal.jsonl``. A line of a newer version than this hypernas reads is refused with a
:class:`JournalVersionError` naming both versions.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from search.config import ConfigError

JOURNAL_FILE = "journal.jsonl"
VERSION = 1
# Version 0: the two journals hypernas wrote before this one.
V0_RECORDS_FILE, V0_EVENTS_FILE = "records.jsonl", "events.jsonl"
DURABLE_KINDS = frozenset({"ended", "forget"})  # fsync-ed as written (see the module doc)
TRIAL_KINDS = frozenset({"started", "result", "derived", "attempt_failed", "attempt_reclassified", "ended",
                         "forget"})
DECISION_KINDS = frozenset({"ask", "tell", "decision", "wait", "stall_kill"})

Entry = dict[str, Any]


class JournalVersionError(ConfigError):
    """The journal was written by a newer hypernas than this one (the CLI exits 2 with the message)."""

    def __init__(self, path: Path, version: Any) -> None:
        super().__init__("journal", f"{path} has entries of journal version {version}; this hypernas reads "
                                    f"versions 0 to {VERSION} — upgrade hypernas to read this experiment")


class Journal:
    """The single writer of an experiment's journal; views (records, decision log) subscribe to what it appends.

    Without a ``path`` it keeps nothing on disk (tests, dry runs): views behave the same.

    >>> journal = Journal()                                           # doctest: +SKIP
    >>> journal.subscribe(print)                                      # doctest: +SKIP
    >>> journal.append("tell", trial=0, state="COMPLETE", value=0.9)  # doctest: +SKIP
    """

    def __init__(self, path: Path | None = None, *, next_seq: int = 0, durable: bool = True) -> None:
        """``durable`` False: no fsync until :meth:`close` (a simulation, which is run again rather than resumed)."""
        self.path = path
        self.seq = next_seq
        self.durable = durable
        self._listeners: list[Callable[[Entry], None]] = []
        self._file = open(path, "a", encoding="utf-8") if path is not None else None

    def subscribe(self, listener: Callable[[Entry], None]) -> None:
        """Call ``listener(entry)`` for every entry appended from now on."""
        self._listeners.append(listener)

    def append(self, kind: str, **fields: Any) -> Entry:
        """Write one entry (flushed; fsync-ed when it ends a trial) and hand it to the views; returns it."""
        entry = {"v": VERSION, "seq": self.seq, "time": time.time(), "kind": kind, **fields}
        self.seq += 1
        if self._file is not None:
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()
            if self.durable and kind in DURABLE_KINDS:
                os.fsync(self._file.fileno())
        for listener in self._listeners:
            listener(entry)
        return entry

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    # -- reading ------------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path) -> tuple["Journal", list[Entry]]:
        """The experiment's entries so far, and the writer that appends to ``folder``'s journal from there on. A
        version-0 folder's entries are first copied into ``journal.jsonl`` (its old files are left as they were)."""
        path = folder / JOURNAL_FILE
        if path.is_file():
            read_entries(folder)  # a journal of an unknown version is refused before anything is written to it
        _drop_torn_tail(path)
        if not path.is_file() and has_v0_journal(folder):
            entries = read_entries(folder)
            tmp = path.with_name(f".{path.name}.tmp")  # all or nothing: a half copy would hide the rest
            with open(tmp, "w", encoding="utf-8") as out:
                for entry in entries:
                    out.write(json.dumps(entry) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        else:
            entries = read_entries(folder)
        return cls(path, next_seq=entries[-1]["seq"] + 1 if entries else 0), entries


def _drop_torn_tail(path: Path) -> None:
    """Cut a torn last line (the writer died mid-write) before appending: the next entry would be glued to it. A
    last line that is whole JSON but lacks its newline (the crash came between the two) is kept, as every reader
    keeps it, and given its newline."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as file:
        data = file.read()
        if data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
        except ValueError:
            file.truncate(start)
        else:
            file.write(b"\n")


def has_journal(folder: Path) -> bool:
    """``folder`` holds a journal (of any version)."""
    return (folder / JOURNAL_FILE).is_file() or has_v0_journal(folder)


def has_v0_journal(folder: Path) -> bool:
    return (folder / V0_RECORDS_FILE).is_file() or (folder / V0_EVENTS_FILE).is_file()


def read_entries(folder: Path) -> list[Entry]:
    """Every entry of ``folder``'s journal in order (version 0 converted; a torn last line dropped)."""
    path = folder / JOURNAL_FILE
    if path.is_file():
        entries = list(_lines(path))
        for entry in entries:
            if not isinstance(entry.get("v"), int) or entry["v"] > VERSION:
                raise JournalVersionError(path, entry.get("v"))
        return entries
    return _v0_entries(folder)


def _lines(path: Path) -> Iterator[Entry]:
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a torn last line: the writer died mid-write
            continue
        if isinstance(entry, dict):
            yield entry


def _v0_entries(folder: Path) -> list[Entry]:
    """A version-0 folder (``records.jsonl`` + ``events.jsonl``) read as one journal: the trial events first, then
    the decisions. The old decision log's ``attempt`` rows are left out: the trial events' ``attempt_failed`` and
    ``attempt_reclassified`` carry the same facts (their epoch is the trial's epochs run so far, as the old rows
    said)."""
    entries: list[Entry] = []
    epochs_run: dict[int, int] = {}
    if (folder / V0_RECORDS_FILE).is_file():
        for old in _lines(folder / V0_RECORDS_FILE):
            kind = old.pop("op", None)
            if kind not in TRIAL_KINDS:
                continue
            number = old.get("number")
            if kind == "result":
                epochs_run[number] = max(epochs_run.get(number, 0), int(old["epoch"]))
            elif kind in ("attempt_failed", "attempt_reclassified"):
                old["epoch"] = epochs_run.get(number, 0)
            entries.append({"v": 0, "seq": len(entries), "time": old.get("at", 0.0), "kind": kind, **old})
    if (folder / V0_EVENTS_FILE).is_file():
        for old in _lines(folder / V0_EVENTS_FILE):
            kind = old.get("kind")
            if kind not in DECISION_KINDS:
                continue
            old.pop("seq", None)
            if kind == "ask":  # version 0 kept only the redacted configuration
                old["params"] = json.loads(old.pop("detail") or "{}")
            entries.append({**old, "v": 0, "seq": len(entries), "time": old.get("time", 0.0), "kind": kind})
    return entries
