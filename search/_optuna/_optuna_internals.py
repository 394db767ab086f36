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
from typing import Any

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


from optuna.storages.journal import JournalFileBackend  # noqa: E402
from optuna.storages.journal._file import get_lock_file  # noqa: E402
from optuna.storages.journal._storage import JournalOperation  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

_ENDED = frozenset(state.value for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
_STUDY_OPS = frozenset({JournalOperation.CREATE_STUDY, JournalOperation.DELETE_STUDY, JournalOperation.DISCARD_TRIALS,
                        JournalOperation.SET_STUDY_USER_ATTR, JournalOperation.SET_STUDY_SYSTEM_ATTR})


class StudyFileBackend(JournalFileBackend):
    """Optuna's journal file, made durable the way hypernas's own journal is (``search/journal.py``): every log is
    written and flushed to the OS at once (a killed driver loses nothing), but ``fsync``-ed only when it ends a trial
    or changes the study. Optuna's ``JournalFileBackend`` fsyncs every log — each epoch's intermediate value, each
    parameter of each trial asked —, which was ~9 % of a trivial trial's driver time (``bench/overhead.py``).

    Uses ``JournalFileBackend``'s private ``_lock`` and ``_file_path`` and its module's ``get_lock_file``, as its own
    ``append_logs`` does; only the fsync differs."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        durable = any(log.get("op_code") in _STUDY_OPS or (
            log.get("op_code") == JournalOperation.SET_TRIAL_STATE_VALUES and log.get("state") in _ENDED)
            for log in logs)
        with get_lock_file(self._lock):
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with open(self._file_path, "ab") as out:
                out.write(text.encode("utf-8"))
                out.flush()
                if durable:
                    os.fsync(out.fileno())


def hypervolume(losses: Any, reference: Any) -> float:
    """The hypervolume dominated by the points ``losses`` (an n×k array, every objective minimised) up to
    ``reference``: ``optuna._hypervolume.compute_hypervolume`` (exact; WFG beyond two objectives), which Optuna's
    public API offers only inside its hypervolume-history plot."""
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(losses, reference))
