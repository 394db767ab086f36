"""Every use hypernas makes of a Ray private name, in one place, for the one Ray release it was written against.

Ray's public API has no way to do these few things: decide a held trial's rung later (ordered promotion), refill
ASHA's rungs after a driver crash, end a trial Tune still thinks is live, give a restored ``Tuner`` the live
config, ask Tune to stop gracefully, find a cluster started with ``ray start``. Each function here names the Ray
internal it depends on. They change between Ray releases, so importing this module checks the installed version
and fails with a clear message on any other release; ``tests/search/test_internals.py`` runs each function on
Ray's real classes (``TuneController``, ``AsyncHyperBandScheduler``, ``Tuner``), so a change inside a supported
release fails those tests too. No other module of hypernas may touch a Ray private name (that test checks it).
"""

from __future__ import annotations

import bisect
import math
import signal
from typing import Any, Callable, Collection

import ray

from search._versions import require_release

SUPPORTED = "2.60"  # major.minor: the internals below are those of Ray 2.60.x


def check_version(installed: str) -> None:
    """Raise ``ImportError`` unless ``installed`` is a Ray release this module was written against (2.60.x)."""
    require_release("Ray", installed, SUPPORTED, "search/_tune/_ray_internals.py",
                    f"ray[default,tune,train]=={SUPPORTED}.0")


check_version(ray.__version__)

# Imported after the version check: another release may not even have these.
from ray._private import services  # noqa: E402
from ray.tune.execution.tune_controller import TrialRunnerWrapper, TuneController  # noqa: E402
from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandScheduler, TrialScheduler  # noqa: E402
from ray.tune.tune import _setup_signal_catching  # noqa: E402

# -- Tune's controller, as schedulers see it ----------------------------------------------------------------------


def controller_of(tune_controller: Any) -> TuneController:
    """The ``TuneController`` itself. Tune hands schedulers a ``TrialRunnerWrapper`` around it that warns on every
    name outside a short allow-list; this reads the wrapped controller (``TrialRunnerWrapper._tune_controller``)."""
    return tune_controller._tune_controller if isinstance(tune_controller, TrialRunnerWrapper) else tune_controller


def retire_trial(tune_controller: Any, trial: Trial) -> None:
    """Mark ``trial`` TERMINATED and drop it from Tune's live trials, without Tune's stop path (no scheduler,
    searcher or callback events): for a trial that ended before a driver crash, after Tune's last snapshot of it.
    Depends on ``TuneController._live_trials``, the set Tune runs until empty."""
    trial.set_status(Trial.TERMINATED)
    controller_of(tune_controller)._live_trials.discard(trial)


def resume_training(tune_controller: Any, trial: Trial) -> None:
    """Let a trial whose result got ``NOOP`` (held, its actor idle) train on: what Tune does for a CONTINUE decision
    (``TuneController._execute_action`` calls ``TuneController._schedule_trial_train``)."""
    controller_of(tune_controller)._schedule_trial_train(trial)


# -- ASHA's rungs ---------------------------------------------------------------------------------------------------
# AsyncHyperBandScheduler._trial_info maps a trial id to its bracket (a ``_Bracket``); the bracket's ``_rungs`` is a
# list of ``(milestone, {trial id: recorded value})``, highest milestone first; recorded values are the metric times
# ``AsyncHyperBandScheduler._metric_op`` (+1 for max, -1 for min) so that higher is always better.


def _bracket(scheduler: AsyncHyperBandScheduler, trial: Trial) -> Any:
    return scheduler._trial_info.get(trial.trial_id)


def asha_rungs(scheduler: AsyncHyperBandScheduler, trial: Trial) -> list[tuple[int, Collection[str]]]:
    """The rungs of ``trial``'s bracket, highest milestone first: ``(milestone, ids of the trials recorded
    there)`` — a live read-only view of ASHA's own record, not a copy (a rung of a long experiment holds a
    hundred thousand trials). Empty for a trial ASHA does not track (never added, or completed)."""
    bracket = _bracket(scheduler, trial)
    return [(milestone, recorded.keys()) for milestone, recorded in bracket._rungs] if bracket else []


def asha_record(scheduler: AsyncHyperBandScheduler, trial: Trial, milestone: int, value: float) -> bool:
    """Record ``value`` (in metric units) for ``trial`` at its bracket's rung ``milestone``, as ASHA would have on
    that result: how a resumed experiment's rungs are refilled. False (nothing changed) if the trial is not tracked,
    the bracket has no such rung, or the trial is recorded there already."""
    bracket = _bracket(scheduler, trial)
    recorded = dict(bracket._rungs).get(milestone) if bracket else None
    if recorded is None or trial.trial_id in recorded:
        return False
    recorded[trial.trial_id] = scheduler._metric_op * value
    return True


def asha_cutoff(scheduler: AsyncHyperBandScheduler, trial: Trial, milestone: int) -> float | None:
    """The cutoff, in metric units, that a result of ``trial`` at rung ``milestone`` is compared with now (ASHA's
    ``_Bracket.cutoff`` over the values recorded there); None while nothing is recorded there."""
    bracket = _bracket(scheduler, trial)
    recorded = dict(bracket._rungs).get(milestone) if bracket else None
    if recorded is None:
        return None
    value = bracket.cutoff(recorded)
    return None if value is None else float(value) * scheduler._metric_op


class AshaCutoffs:
    """ASHA's rung cutoffs, as ``asha_cutoff`` gives them, in O(log n) instead of O(n).

    ``_Bracket.cutoff`` is ``np.nanpercentile`` over every value recorded at the rung, built into a list each time:
    at a rung a hundred thousand trials have reached, that is milliseconds per decision (the decision log asks for it
    before Ray does). Here each rung's values are kept sorted as they are recorded (:meth:`recorded`), and the
    percentile is numpy's own ``linear`` method evaluated on the two order statistics it interpolates — the same
    floating-point operations, so the same number (tested against ``asha_cutoff``). A rung whose size does not match
    what was seen (values recorded another way: ``asha_record``) is sorted afresh."""

    def __init__(self, scheduler: AsyncHyperBandScheduler) -> None:
        self.scheduler = scheduler
        self._sorted: dict[int, tuple[int, list[float]]] = {}  # id(rung dict) -> (its size then, finite values)

    def __getstate__(self) -> dict:
        return {"scheduler": self.scheduler, "_sorted": {}}  # ids mean nothing in another process

    def _rung(self, trial: Trial, milestone: int) -> tuple[Any, dict | None]:
        bracket = _bracket(self.scheduler, trial)
        return bracket, (dict(bracket._rungs).get(milestone) if bracket else None)

    def _values(self, recorded: dict) -> list[float]:
        size, values = self._sorted.get(id(recorded), (-1, []))
        if size != len(recorded):
            values = sorted(v for v in recorded.values() if v == v)
            self._sorted[id(recorded)] = (len(recorded), values)
        return values

    def cutoff(self, trial: Trial, milestone: int) -> float | None:
        """The cutoff, in metric units, a result of ``trial`` at rung ``milestone`` is compared with now."""
        bracket, recorded = self._rung(trial, milestone)
        if not recorded:
            return None
        values = self._values(recorded)
        if not values:
            return float(bracket.cutoff(recorded)) * self.scheduler._metric_op  # all NaN: numpy's own answer
        return _percentile_linear(values, (1 - 1 / bracket.rf) * 100) * self.scheduler._metric_op

    def recorded(self, trial: Trial, milestone: int, value: float) -> None:
        """ASHA has just recorded ``value`` (metric units) for ``trial`` at ``milestone``: keep the rung sorted."""
        _, recorded = self._rung(trial, milestone)
        if recorded is None or id(recorded) not in self._sorted:
            return
        size, values = self._sorted[id(recorded)]
        stored = self.scheduler._metric_op * value
        if size + 1 == len(recorded) and recorded.get(trial.trial_id) == stored:
            if stored == stored:
                bisect.insort(values, stored)
            self._sorted[id(recorded)] = (size + 1, values)


def _percentile_linear(ordered: list[float], q: float) -> float:
    """``np.percentile(ordered, q)`` (method ``linear``) of an ascending list, from the two order statistics around
    its virtual index, with numpy's own arithmetic (``_QuantileMethods["linear"]``, ``_get_indexes``, ``_lerp``)."""
    n = len(ordered)
    quantile = q / 100
    virtual = (n - 1) * quantile
    if virtual >= n - 1:
        return ordered[-1]
    if virtual < 0:
        return ordered[0]
    previous = math.floor(virtual)
    gamma = virtual - previous
    a, b = ordered[previous], ordered[previous + 1]
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def asha_stops_unrecorded_from(scheduler: AsyncHyperBandScheduler) -> float:
    """The epoch from which ASHA stops every result without recording it at a rung (``max_t`` unless
    ``stop_last_trials`` is off, then never): ``AsyncHyperBandScheduler._max_t`` and ``_stop_last_trials``."""
    return scheduler._max_t if scheduler._stop_last_trials else math.inf


def max_t(scheduler: TrialScheduler) -> float:
    """The epoch at which ASHA or HyperBand stops every trial (``AsyncHyperBandScheduler._max_t``,
    ``HyperBandScheduler._max_t_attr``); infinity for other schedulers."""
    if isinstance(scheduler, AsyncHyperBandScheduler):
        return scheduler._max_t
    if isinstance(scheduler, HyperBandScheduler):
        return scheduler._max_t_attr
    return math.inf


# -- Tuner ------------------------------------------------------------------------------------------------------------


def replace_restored_config(tuner: ray.tune.Tuner, tune_config: ray.tune.TuneConfig, callbacks: list) -> None:
    """Give a ``Tuner.restore``-d tuner this run's ``tune_config`` and callbacks in place of the pickled ones (they
    hold live driver state: the study, the event log). ``Tuner.restore`` takes neither; this sets the local
    tuner's (``Tuner._local_tuner``, a ``TunerInternal``) ``_tune_config`` and ``_run_config.callbacks``."""
    local = tuner._local_tuner
    if local is None:
        raise RuntimeError("resuming an experiment through Ray Client (a ray:// address) is not supported; "
                           "run the driver on the cluster (hypernas submit) instead")
    local._tune_config = tune_config
    local._run_config.callbacks = callbacks


# -- signals ----------------------------------------------------------------------------------------------------------

_TUNE_STOP_QUALNAME = f"{_setup_signal_catching.__qualname__}.<locals>."


def tune_stop_handler() -> Callable[[int, Any], None] | None:
    """Tune's graceful-stop handler, if it is installed for SIGUSR1 now (else None).

    ``tune.run`` installs it (``ray.tune.tune._setup_signal_catching``) for SIGUSR1 always, and for SIGINT unless
    ``TUNE_DISABLE_SIGINT_HANDLER`` is set; calling it makes Tune snapshot the experiment and end its loop."""
    handler = signal.getsignal(signal.SIGUSR1)
    if callable(handler) and getattr(handler, "__qualname__", "").startswith(_TUNE_STOP_QUALNAME):
        return handler
    return None


# -- cluster discovery ------------------------------------------------------------------------------------------------


def recorded_cluster_address() -> str | None:
    """The GCS address of the last ``ray start`` on this machine, as Ray recorded it in its temp folder
    (``ray._private.services.find_bootstrap_address``, what ``ray.init()`` reads); the record outlives the cluster."""
    return services.find_bootstrap_address(None)


def live_gcs_addresses() -> frozenset[str]:
    """The addresses of the GCS processes running on this machine (``ray._private.services.find_gcs_addresses``)."""
    return frozenset(services.find_gcs_addresses())
