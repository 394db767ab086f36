"""Every use hypernas makes of an Optuna private name, in one place, for the one Optuna release it was written against.

Optuna's public API has no way to do these few things: write a trial's system attributes (``Trial.set_system_attr``
is gone; samplers and ask/tell code store state there), re-attach to a RUNNING trial after a driver crash, ask a
distribution whether it contains a value. Each function here names the Optuna internal it depends on. They may change
between releases, so importing this module checks the installed version and fails with a clear message on any other
release; ``tests/search/test_internals.py`` runs each function on a real ``Study``. No other module of hypernas may
touch an Optuna private name (that test checks it).
"""

from __future__ import annotations

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
