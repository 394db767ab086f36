"""The test-split ledger: every look at a sealed test split in a workdir, in one append-only file.

A test split is identified by its content (``SealedTestSplit.fingerprint``: a hash of its rows), not by the
experiment folder that happened to open it — so deleting or ``--overwrite``-ing an experiment, or running the
same data under another name or seed, never makes an opened split look fresh again.

``<workdir>/test_ledger.jsonl`` holds one JSON event per line, appended under an exclusive lock and fsynced:

* ``open`` — written *before* the split's rows are read (the intent). An ``open`` with no ``complete`` after it
  is a look whose result was lost (a crash while scoring): it still counts as a look.
* ``complete`` — the scores, written once the winner has been evaluated.
* ``abort`` — the split was never read after all (the intent is withdrawn).
* ``repeat`` — the identical model was asked for again and answered from an earlier ``complete``; nothing
  was opened.

The rules (applied by :func:`decide`): the first look at a split is free; the identical model (same split,
trainer, configuration, seed, epochs and training rows) is answered from the ledger; any other model is refused
unless forced, and a forced look is recorded as forced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import getpass
import hashlib
import json
import os
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


@dataclass(frozen=True)
class Decision:
    """What a request to score ``model`` on a split may do: ``open`` it (``forced`` or not), answer as a
    ``repeat`` of an earlier look, or ``refuse`` (``prior`` names the look that blocks it)."""

    action: str
    forced: bool = False
    prior: Look | None = None


def model_key(trainer: str, params: Mapping[str, Any], seed: int, epochs: int, deterministic: bool,
              train_fingerprint: str) -> str:
    """Identity of a retrained winner: two requests with this key would produce the same model."""
    payload = json.dumps({"trainer": trainer, "params": dict(params), "seed": int(seed), "epochs": int(epochs),
                          "deterministic": bool(deterministic), "train": train_fingerprint},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def source_identity(source: Any) -> dict[str, Any]:
    """The data source without the settings that only decide *which* rows are test or validation rows."""
    described = {"source": source.name, **dataclasses.asdict(source)}
    for name in ("split_seed", "validation_fraction", "name"):
        described.pop(name, None)
    return described


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
        with open(self.path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._handle = handle
            try:
                yield self
            finally:
                self._handle = None
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Append one event and make it durable before returning (call inside :meth:`locked`)."""
        if self._handle is None:
            raise RuntimeError("TestLedger.append needs the lock: use `with ledger.locked():`")
        line = {"at": now_iso(), "time": time.time(), **event}
        self._handle.write(json.dumps(line, sort_keys=True, default=str) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return line

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
            elif kind in ("complete", "abort", "repeat") and event.get("id") in looks:
                look = looks[event["id"]]
                if kind == "complete":
                    look.result = event
                elif kind == "abort":
                    look.aborted = True
                else:
                    look.repeats.append(event)
        return [look for look in looks.values() if split is None or look.split == split]


def decide(looks: list[Look], model: str, force: bool) -> Decision:
    """The ledger's rule for scoring ``model`` on a split whose earlier ``looks`` are given (see module doc)."""
    seen = [look for look in looks if look.counts]
    if not seen:
        return Decision("open")
    answered = [look for look in seen if look.model == model and look.result is not None]
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
             model: str, winner: Mapping[str, Any], forced: bool) -> dict[str, Any]:
    """The ``open`` event for a look that is about to happen."""
    return {
        "event": "open", "id": uuid.uuid4().hex, "split": split, "source": dict(source), "split_seed": split_seed,
        "experiment": experiment, "parent_run_id": parent_run_id, "model": model, "trial": int(winner["trial"]),
        "seed": int(winner["seed"]), "epochs": int(winner["epochs"]), "params": dict(winner["params"]),
        "forced": forced, "user": getpass.getuser(), "host": socket.gethostname(),
    }


def split_change_warnings(workdir: str | Path, source: Any) -> list[str]:
    """Warnings for a source whose ``split_seed`` differs from one whose test split was opened in ``workdir``:
    how many of the new test rows were train/validation rows there, and the other way round."""
    from trainers import split_digests

    identity = source_identity(source)
    earlier: dict[int, list[Look]] = {}
    for look in TestLedger(workdir).looks():
        old_seed = look.record.get("split_seed")
        if look.counts and look.record.get("source") == identity and old_seed != source.split_seed:
            earlier.setdefault(int(old_seed), []).append(look)
    if not earlier:
        return []
    new_trainval, new_test = split_digests(source)
    warnings = []
    for old_seed, looks in sorted(earlier.items()):
        old_trainval, old_test = split_digests(dataclasses.replace(source, split_seed=old_seed))
        names = ", ".join(sorted({repr(look.experiment) for look in looks}))
        warnings.append(
            f"data.split_seed is {source.split_seed}, but this data's test split under split_seed {old_seed} was "
            f"opened before in this workdir ({names}): {len(new_test & old_trainval)} of the {len(new_test)} new "
            f"test rows were train/validation rows there, and {len(old_test & new_trainval)} of its "
            f"{len(old_test)} opened test rows are train/validation rows now")
    return warnings
