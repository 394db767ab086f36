"""The test-split ledger: every look at a sealed test split in a workdir, in one append-only file.

A test split is identified by its content, not by the experiment folder that happened to open it: its
fingerprint (a hash of its rows) and a digest per row, kept in the ledger. Deleting or ``--overwrite``-ing an
experiment, running the same data under another name or seed, or changing the data section so that the new test
split shares rows with an opened one (another ``test_fraction``, ``num_samples``, a re-ordered table) never makes
those rows look fresh again: a split that shares any row with an opened split is judged as that split.

``<workdir>/test_ledger.jsonl`` holds one JSON event per line, appended under an exclusive lock and fsynced:

* ``open`` — written *before* the split's rows are read (the intent), with the split's row digests. An ``open``
  with no ``complete`` after it is a look whose result was lost (a crash while scoring): it still counts.
* ``complete`` — the scores, written once the winner has been evaluated (self-describing: a ``complete`` whose
  ``open`` line was torn still counts as a look).
* ``abort`` — the split was never read after all (the intent is withdrawn).
* ``repeat`` — the identical model was asked for again and answered from an earlier ``complete``; nothing
  was opened.

The rules (applied by :func:`decide`): the first look at a split is free; the identical model on the identical
split (same trainer, configuration, seed, epochs and training rows) is answered from the ledger; any other model
on a split that shares rows with an opened one is refused unless forced, and a forced look is recorded as forced.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import functools
import getpass
import hashlib
import hmac
import json
import os
import secrets
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

LEDGER_FILE = "test_ledger.jsonl"


class SelectionError(RuntimeError):
    """No winner to select (no trial completed, the search still runs or was interrupted)."""


class TestSetAlreadyOpened(RuntimeError):
    """The sealed test split was opened before for another model; opening it again needs ``force``."""

    __test__ = False  # not a pytest test class


@dataclass
class Look:
    """One ``open`` event folded with what followed it."""

    id: str
    split: str
    experiment: str
    model: str
    trial: int
    at: str
    forced: bool
    record: dict[str, Any]
    result: dict[str, Any] | None = None  # the ``complete`` event
    aborted: bool = False
    repeats: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "aborted" if self.aborted else "complete" if self.result is not None else "incomplete"

    @property
    def counts(self) -> bool:
        """Whether this look may have shown the split's rows."""
        return not self.aborted

    @functools.cached_property
    def rows(self) -> frozenset[bytes]:
        """The opened split's row digests (empty where the ledger line did not keep them)."""
        return unpack_rows(self.record.get("rows", ""))

    def shares(self, split: str, rows: frozenset[bytes]) -> int | None:
        """How many of ``rows`` this look's split holds (``len(rows)`` for the same fingerprint); None if none."""
        if self.split == split:
            return len(rows)
        return len(self.rows & rows) or None


@dataclass(frozen=True)
class Decision:
    """What a request to score ``model`` on a split may do: ``open`` it (``forced`` or not), answer as a
    ``repeat`` of an earlier look, or ``refuse`` (``prior`` names the look that blocks it)."""

    action: str
    forced: bool = False
    prior: Look | None = None


def model_key(salt: str, trainer: str, params: Mapping[str, Any], seed: int, epochs: int, deterministic: bool,
              train_fingerprint: str) -> str:
    """Identity of a retrained winner: two requests with this key would produce the same model. Keyed with the
    ledger's own random ``salt`` (an HMAC): the key is shown in the audit, and a plain hash of parameters that
    hold a weak credential could be checked by guessing."""
    payload = json.dumps({"trainer": trainer, "params": dict(params), "seed": int(seed), "epochs": int(epochs),
                          "deterministic": bool(deterministic), "train": train_fingerprint},
                         sort_keys=True, default=str)
    return hmac.new(salt.encode(), payload.encode(), hashlib.sha256).hexdigest()


def source_identity(source: Any) -> dict[str, Any]:
    """The data section without ``split_seed`` and ``validation_fraction`` (they only say which rows are test or
    validation rows), as JSON reads it back (tuples as lists), so it compares equal with a ledger line's."""
    described = {"source": source.name, **dataclasses.asdict(source)}
    for name in ("split_seed", "validation_fraction", "name"):
        described.pop(name, None)
    return json.loads(json.dumps(described, default=str))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class TestLedger:
    """The workdir's ledger file. Reads are lock-free snapshots; writes go through :meth:`locked`."""

    __test__ = False  # not a pytest test class

    def __init__(self, workdir: str | Path) -> None:
        self.path = Path(workdir) / LEDGER_FILE
        self._handle: Any = None

    @contextlib.contextmanager
    def locked(self) -> Iterator["TestLedger"]:
        """Hold the ledger exclusively (across processes) while deciding and appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._handle = handle
            try:
                if created:  # the new file's name is durable too, not only its lines
                    folder = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(folder)
                    finally:
                        os.close(folder)
                size = os.fstat(handle.fileno()).st_size
                if size and os.pread(handle.fileno(), 1, size - 1) != b"\n":
                    handle.write(b"\n")  # end a line torn by a crash, so the next event is a line of its own
                yield self
            finally:
                self._handle = None
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Append one event and make it durable before returning (call inside :meth:`locked`)."""
        if self._handle is None:
            raise RuntimeError("TestLedger.append needs the lock: use `with ledger.locked():`")
        line = {"at": now_iso(), "time": time.time(), **event}
        self._handle.write((json.dumps(line, sort_keys=True, default=str) + "\n").encode())
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return line

    def salt(self) -> str:
        """The ledger's random key for :func:`model_key`, made with the ledger."""
        found = next((e["salt"] for e in self.events() if e.get("event") == "salt"), None)
        if found is not None:
            return found
        with self.locked():
            found = next((e["salt"] for e in self.events() if e.get("event") == "salt"), None)
            return found if found is not None else self.append({"event": "salt", "salt": secrets.token_hex(16)})["salt"]

    def events(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        events = []
        for number, text in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                events.append(json.loads(text))
            except json.JSONDecodeError:
                # a line torn by a crash mid-write: the fsynced lines before it are intact
                events.append({"event": "torn", "line": number})
        return events

    def looks(self, split: str | None = None) -> list[Look]:
        """Every ``open`` (optionally of one split), oldest first, with its outcome and repeats."""
        looks: dict[str, Look] = {}
        for event in self.events():
            kind = event.get("event")
            if kind == "open":
                looks[event["id"]] = Look(event["id"], event["split"], event["experiment"], event["model"],
                                          int(event["trial"]), event["at"], bool(event["forced"]), event)
            elif kind == "complete" and event.get("id") not in looks and "split" in event:
                # its open line was torn: the complete still says which split was looked at, by what
                looks[event["id"]] = Look(event["id"], event["split"], event["experiment"], event["model"],
                                          int(event["trial"]), event["at"], False, {}, result=event)
            elif kind in ("complete", "abort", "repeat") and event.get("id") in looks:
                look = looks[event["id"]]
                if kind == "complete":
                    look.result = event
                elif kind == "abort":
                    look.aborted = True
                else:
                    look.repeats.append(event)
        return [look for look in looks.values() if split is None or look.split == split]


def pack_rows(rows: frozenset[bytes]) -> str:
    return base64.b64encode(b"".join(sorted(rows))).decode()


def unpack_rows(text: str, width: int = 16) -> frozenset[bytes]:
    raw = base64.b64decode(text) if text else b""
    return frozenset(raw[i:i + width] for i in range(0, len(raw), width))


def decide(looks: list[Look], model: str, force: bool, split: str | None = None) -> Decision:
    """The ledger's rule for scoring ``model`` on ``split``, given the earlier ``looks`` at it or at splits that
    share rows with it (see module doc). Only a look at the very same split can answer a repeat."""
    seen = [look for look in looks if look.counts]
    if not seen:
        return Decision("open")
    answered = [look for look in seen if look.model == model and look.result is not None
                and (split is None or look.split == split)]
    if answered and not force:
        return Decision("repeat", prior=answered[-1])
    if all(look.model == model for look in seen):
        # only this very model was ever scored, and its result was lost: scoring it again tells nothing new
        return Decision("open", forced=force)
    if force:
        return Decision("open", forced=True)
    return Decision("refuse", prior=next(look for look in reversed(seen) if look.model != model))


def describe(look: Look) -> str:
    """One line naming a look: experiment, trial, model, time and result — for refusals and the audit."""
    result = look.result or {}
    metric = result.get("test_metric")
    value = result.get("test_metrics", {}).get(metric) if metric else None
    outcome = f"{metric}={value:.4f}" if value is not None else {
        "incomplete": "no result recorded (the process ended while scoring)", "aborted": "never opened"}.get(
        look.status, "no result")
    params = json.dumps(look.record.get("params", {}), sort_keys=True, default=str)
    return (f"experiment {look.experiment!r}, trial {look.trial} (model {look.model[:12]}: {params}), "
            f"{'forced ' if look.forced else ''}opened {look.at}: {outcome}")


def new_open(split: str, source: Mapping[str, Any], split_seed: int, experiment: str, parent_run_id: str | None,
             model: str, winner: Mapping[str, Any], forced: bool, rows: frozenset[bytes] = frozenset()) -> dict[str, Any]:
    """The ``open`` event for a look that is about to happen."""
    return {
        "event": "open", "id": uuid.uuid4().hex, "split": split, "rows": pack_rows(rows), "source": dict(source),
        "split_seed": split_seed,
        "experiment": experiment, "parent_run_id": parent_run_id, "model": model, "trial": int(winner["trial"]),
        "seed": int(winner["seed"]), "epochs": int(winner["epochs"]), "params": dict(winner["params"]),
        "forced": forced, "user": getpass.getuser(), "host": socket.gethostname(),
    }


def split_change_warnings(workdir: str | Path, source: Any) -> list[str]:
    """Warnings for a data section whose rows mix with a test split opened before in ``workdir`` under other
    settings: how many of the test rows here were train/validation rows there, and how many of its opened test rows
    are train/validation rows here. A changed ``split_seed`` is always reported, overlap or not."""
    from trainers import make_source, split_digests

    identity = source_identity(source)
    earlier: dict[str, list[Look]] = {}
    for look in TestLedger(workdir).looks():
        setup = {"source": look.record.get("source"), "split_seed": look.record.get("split_seed")}
        if look.counts and setup["source"] is not None and setup != {"source": identity, "split_seed": source.split_seed}:
            earlier.setdefault(json.dumps(setup, sort_keys=True), []).append(look)
    if not earlier:
        return []
    trainval, test = split_digests(source)
    warnings = []
    for key, looks in sorted(earlier.items()):
        setup = json.loads(key)
        old_test = frozenset().union(*(look.rows for look in looks))
        try:
            old_trainval, rebuilt_test = split_digests(make_source({**setup["source"], "split_seed": setup["split_seed"]}))
        except (OSError, TypeError, ValueError):  # e.g. the table was moved: its opened test rows still count
            old_trainval, rebuilt_test = frozenset(), frozenset()
        old_test = old_test or rebuilt_test
        new_seen, old_seen = len(test & old_trainval), len(old_test & trainval)
        names = ", ".join(sorted({repr(look.experiment) for look in looks}))
        if setup["source"] == identity:
            what = (f"data.split_seed is {source.split_seed}, but this data's test split under split_seed "
                    f"{setup['split_seed']} was opened before in this workdir ({names})")
        elif new_seen or old_seen:
            what = (f"the data section shares rows with a test split opened before in this workdir under other "
                    f"settings ({names}: {setup['source']}, split_seed {setup['split_seed']})")
        else:
            continue
        warnings.append(f"{what}: {new_seen} of the {len(test)} new test rows were train/validation rows there, and "
                        f"{old_seen} of its {len(old_test)} opened test rows are train/validation rows now")
    return warnings
