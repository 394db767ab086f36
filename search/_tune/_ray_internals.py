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
import itertools
import math
import signal
from pathlib import Path
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
from ray.tune.search import SearchGenerator  # noqa: E402
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


class _SortedRungCutoff:
    """A bracket's ``cutoff(recorded)``, the same number as ``_Bracket.cutoff`` in O(log n) instead of O(n).

    ``_Bracket.cutoff`` is ``np.nanpercentile`` over every value recorded at the rung, built into a list on every
    decision: at a rung a hundred thousand trials have reached, that is milliseconds per result. Here each rung's
    values are kept sorted. ASHA only ever adds to a rung (``_Bracket.on_result``, and ``asha_record`` on resume), and
    a dict keeps insertion order, so the values added since the last call are the rung's last ones. The percentile is
    numpy's own ``linear`` method evaluated on the two order statistics it interpolates: the same floating-point
    operations, so the same number to the last bit (tested against ``np.nanpercentile``). A rung that shrank or is
    not known is sorted afresh; a rung of NaNs only gets numpy's own answer."""

    def __init__(self, bracket: Any) -> None:
        self.bracket = bracket
        self._sorted: dict[int, tuple[int, list[float]]] = {}  # id(rung dict) -> (its size then, its non-NaN values)

    def __getstate__(self) -> dict:
        return {"bracket": self.bracket, "_sorted": {}}  # ids mean nothing in another process

    def __call__(self, recorded: dict) -> Any:
        if not recorded:
            return None
        size, values = self._sorted.get(id(recorded), (-1, []))
        if size == -1 or len(recorded) < size:
            values = sorted(v for v in recorded.values() if v == v)
        else:
            for value in itertools.islice(reversed(recorded.values()), len(recorded) - size):
                if value == value:
                    bisect.insort(values, value)
        self._sorted[id(recorded)] = (len(recorded), values)
        if not values:
            return type(self.bracket).cutoff(self.bracket, recorded)  # all NaN: numpy's own answer (nan)
        return _percentile_linear(values, (1 - 1 / self.bracket.rf) * 100)


def sorted_asha_cutoffs(scheduler: AsyncHyperBandScheduler) -> AsyncHyperBandScheduler:
    """Give each of ``scheduler``'s brackets (``AsyncHyperBandScheduler._brackets``) the kept-sorted cutoff above in
    place of ``_Bracket.cutoff``: ASHA's own decisions, at a cost that does not grow with the rung. Idempotent."""
    for bracket in scheduler._brackets:
        if not isinstance(bracket.__dict__.get("cutoff"), _SortedRungCutoff):
            bracket.cutoff = _SortedRungCutoff(bracket)
    return scheduler


def _percentile_linear(ordered: list[float], q: float) -> float:
    """``np.percentile(ordered, q)`` (method ``linear``) of an ascending list, from the two order statistics around
    its virtual index, with numpy's own arithmetic step for step (``_QuantileMethods["linear"]``, ``_get_indexes``,
    ``_get_gamma``, ``_lerp``): past the last index both neighbours are the last value and gamma is measured from
    index -1, as numpy does, so a rung topped by an infinity gives numpy's NaN too."""
    n = len(ordered)
    virtual = (n - 1) * (q / 100)
    previous = math.floor(virtual)
    following = previous + 1
    if virtual >= n - 1:
        previous = following = -1
    elif virtual < 0:
        previous = following = 0
    gamma = virtual - previous
    a, b = ordered[previous], ordered[following]
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


def tune_snapshot_restorable(path: str) -> bool:
    """Ray Tune can continue the experiment saved at ``path``: its trial list (``Tuner.can_restore``) and its search
    generator's state are there (``SearchGenerator.CKPT_FILE_TMPL``). Tune copies them to storage one after the
    other; without the second, a restored run holds no experiment to create trials from (``tune.run`` ignores the
    one it is given when it resumes) and would end with the budget unspent."""
    pattern = SearchGenerator.CKPT_FILE_TMPL.format("*")
    return ray.tune.Tuner.can_restore(path) and any(Path(path).glob(pattern))


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
