"""Every use hypernas makes of an Optuna private name, in one place, for the one Optuna release it was written against.

Optuna's public API has no way to do these few things: write a trial's system attributes (``Trial.set_system_attr``
is gone; samplers and ask/tell code store state there), re-attach to a RUNNING trial after a driver crash, ask a
distribution whether it contains a value. Each function here names the Optuna internal it depends on. They may change
between releases, so importing this module checks the installed version and fails with a clear message on any other
release; ``tests/search/test_internals.py`` runs each function on a real ``Study``. No other module of hypernas may
touch an Optuna private name (that test checks it).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import optuna

from search._versions import require_release

SUPPORTED = "5.0"  # major.minor: the internals below are those of Optuna 5.0.x


def check_version(installed: str) -> None:
    """Raise ``ImportError`` unless ``installed`` is a Optuna release this module was written against (5.0.x)."""
    require_release("Optuna", installed, SUPPORTED, "search/_optuna/_optuna_internals.py", f"optuna=={SUPPORTED}.0")


check_version(optuna.__version__)

from optuna.distributions import BaseDistribution  # noqa: E402
from optuna.trial import FrozenTrial  # noqa: E402


def set_system_attr(study: optuna.Study, trial: FrozenTrial | optuna.Trial, key: str, value: Any) -> None:
    """Store ``key: value`` in ``trial``'s system attributes (read back as ``FrozenTrial.system_attrs``), through the
    study's storage: ``Study._storage.set_trial_system_attr(trial._trial_id, ...)``, as Optuna's own samplers do."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def running_trial(study: optuna.Study, trial: FrozenTrial) -> optuna.Trial:
    """A live ``optuna.Trial`` for a RUNNING trial of ``study`` (after a driver crash, to report to and tell it).
    ``optuna.Trial(study, trial_id)`` is public; the id, ``FrozenTrial._trial_id``, is not. As every new ``Trial``,
    it calls the sampler's ``before_trial`` again."""
    return optuna.Trial(study, trial._trial_id)


def distribution_contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) is a valid value of ``distribution``: in range, on its step, one
    of its choices (``BaseDistribution._contains``)."""
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


from optuna.storages.journal import BaseJournalBackend  # noqa: E402
from optuna.storages.journal._storage import JournalOperation  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

_ENDED = frozenset(state.value for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
_STUDY_OPS = frozenset({JournalOperation.CREATE_STUDY, JournalOperation.DELETE_STUDY, JournalOperation.DISCARD_TRIALS,
                        JournalOperation.SET_STUDY_USER_ATTR, JournalOperation.SET_STUDY_SYSTEM_ATTR})


class StudyFileBackend(BaseJournalBackend):
    """Optuna's journal file (the very format of ``JournalFileBackend``: one JSON log per line, which Optuna's own
    backend reads back), written the way hypernas's own journal is (``search/journal.py``) and read without going
    back to the disk for what this process wrote itself.

    Optuna's ``JournalStorage`` appends a log and then reads the file for logs it has not applied yet, on every
    operation, and reads it again on every query. ``JournalFileBackend`` answers each with a symlink lock, an open,
    a write, an fsync, a close, another open and a read — most of a trivial trial's driver time in
    ``bench/overhead.py``. Here:

    - a write is one ``os.write`` of whole lines on a descriptor opened ``O_APPEND`` (the kernel puts each at the
      end of the file, never torn by another process's write on a local file system) and fsync-ed only when it
      ends a trial or changes the study. Every log reaches the OS at once, so a killed driver loses nothing;
    - the logs this process wrote are handed to ``read_logs`` from memory (the last ones only: ``JournalStorage``
      asks from the first log it has not applied). Logs another process appended — a reader sees the driver's; a
      second writer is refused by the experiment's lock, but would not be lost — are read from the file: the file's
      size, compared with the end of what this backend has seen, says whether there are any;
    - a last line without its newline (a write cut short: never a whole log) is not read, as Optuna's reader does
      not read it, and the next writer cuts it off before appending (the experiment's lock makes it the only
      writer), so that the file stays readable by Optuna's own backend.

    Uses no private name of Optuna's backend; only :data:`JournalOperation` (the op codes) is private.
    """

    def __init__(self, file_path: str) -> None:
        self._path = file_path
        if not os.path.exists(file_path):
            open(file_path, "ab").close()
        self._fd: int | None = None  # the append descriptor, opened at the first write
        self._end = 0  # bytes of the file read or written so far (whole lines only)
        self._count = 0  # logs in those bytes
        self._tail: list[dict[str, Any]] = []  # the last logs seen, numbered from _tail_from
        self._tail_from = 0

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        # Kept in memory: the logs from _tail_from to _count (_count: the logs in the file's first _end bytes).
        if log_number_from < self._tail_from:  # from before what is kept: read the file again from its start
            self._end = self._count = 0
            self._tail, self._tail_from = [], 0
        kept = self._tail[log_number_from - self._tail_from:]
        # JournalStorage applies all it is given: what it asks for next starts after these. If it stopped short,
        # it asks from before _tail_from, and the file is read again.
        self._tail, self._tail_from = [], self._count
        return self._stream(kept, log_number_from)

    def _stream(self, kept: list[dict[str, Any]], log_number_from: int) -> Iterator[dict[str, Any]]:
        yield from kept
        for log in self._read_new():  # one line at a time: a large study is never held twice in memory
            self._tail_from = self._count
            if self._count > log_number_from:  # read again from the start: the logs before are not asked for
                yield log

    def _read_new(self) -> Iterator[dict[str, Any]]:
        """The complete lines appended to the file since ``_end`` (by another process, or all of it at first), one
        log at a time, counting each in ``_end`` and ``_count`` as it is read."""
        size = os.stat(self._path).st_size
        if size <= self._end:
            return
        with open(self._path, "rb") as source:
            source.seek(self._end)
            for line in source:
                # a last line without its newline is still being written (or torn); lines past the size seen at the
                # start are left for the next read
                if not line.endswith(b"\n") or self._end + len(line) > size:
                    return
                try:
                    log = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{self._path}: log {self._count + 1} is not JSON ({err})") from None
                self._end += len(line)
                self._count += 1
                yield log

    def _catch_up(self) -> None:
        """Keep what another process appended since ``_end``: it comes before this process's next logs."""
        self._tail.extend(self._read_new())

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        durable = any(log.get("op_code") in _STUDY_OPS or (
            log.get("op_code") == JournalOperation.SET_TRIAL_STATE_VALUES and log.get("state") in _ENDED)
            for log in logs)
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            self._cut_torn_line()
        self._catch_up()  # another process's logs come before this one's in the file, and here
        before = os.fstat(self._fd).st_size
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        if durable:
            os.fsync(self._fd)
        if before == self._end and os.fstat(self._fd).st_size == before + len(data):
            self._tail.extend(logs)  # nobody else wrote in between: these are the file's next logs
            self._count += len(logs)
            self._end += len(data)
        # else: read them back from the file, in the order the file has them

    def _cut_torn_line(self) -> None:
        """Cut off a last line without its newline (a write a crash or a full disk cut short)."""
        size = os.fstat(self._fd).st_size
        if not size or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        keep = size
        while keep > 0:
            start = max(0, keep - 65536)
            newline = os.pread(self._fd, keep - start, start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        os.ftruncate(self._fd, keep)

    def __getstate__(self) -> dict[str, Any]:  # a descriptor and a cache are this process's: only the path travels
        return {"path": self._path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


def hypervolume(losses: Any, reference: Any) -> float:
    """The hypervolume dominated by the points ``losses`` (an n×k array, every objective minimised) up to
    ``reference``: ``optuna._hypervolume.compute_hypervolume`` (exact; WFG beyond two objectives), which Optuna's
    public API offers only inside its hypervolume-history plot."""
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(losses, reference))
