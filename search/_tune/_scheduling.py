"""Early stopping: Ray's own schedulers, configured in epochs, observed — and, on request, ordered.

:class:`ObservedScheduler` delegates every decision to Ray's scheduler and records it in the decision log.

Ray's ASHA decides a trial at a rung against whichever peers happen to have reported there already, so arrival
order — a slow node, a straggler — changes which trials are promoted. With ordered promotion it makes ASHA's
rung decisions *in trial-number order* instead: a trial that reaches a rung before every lower-numbered trial
has either been recorded at that rung or ended gets its decision once they have. Each rung then sees exactly
the results it would see if the trials had run one after another, so which trials are stopped depends on the
trials' results only, never on timing. Meanwhile the trial either

- is *parked* (``scheduler.promotion: ordered``): Tune pauses it with a checkpoint, its slot goes to the next
  trial, and it resumes from the checkpoint if promoted — no slot waits for a slow peer; or
- is *held* (``reproducible: strict``): it keeps its slot but trains no further (Tune's NOOP) — the slot waits,
  which strict mode accepts so that its searcher, too, sees the same history at any concurrency.
"""

from __future__ import annotations

import math
from typing import Any, Collection

from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from search._tune._common import TIME_ATTR
from search._tune._slots import TrialSlots
from search._tune._ray_internals import (
    asha_cutoff,
    asha_record,
    asha_rungs,
    max_t,
    resume_training,
    retire_trial,
    asha_stops_unrecorded_from,
    sorted_asha_cutoffs,
)
from search.config import SEARCH_PHASE, ExperimentConfig, SchedulerConfig
from search.constraints import violations
from search.events import EventLog
from search.registry import SCHEDULERS


def make_scheduler(cfg: SchedulerConfig) -> TrialScheduler:
    """Ray's own scheduler class for ``cfg.type`` (its factory in :data:`search.registry.SCHEDULERS`), configured in
    epochs. Metric and mode are set once, on the TuneConfig."""
    return SCHEDULERS[cfg.type].factory(cfg.settings, cfg.max_epochs)


def _number(trial: Trial) -> int:
    return int(trial.config["trial_number"])


def _searching(trial: Trial) -> bool:
    """A one-shot experiment's supernet search: it trains its epochs to the end, outside every rung."""
    return trial.config.get("phase") == SEARCH_PHASE


class ObservedScheduler(TrialScheduler):
    """Ray's scheduler with every decision logged; with ``strict``, rung decisions in trial-number order."""

    def __init__(self, inner: TrialScheduler, cfg: ExperimentConfig, events: EventLog, strict: bool = False,
                 history: dict[int, dict[int, float]] | None = None, park: bool = False,
                 slots: TrialSlots | None = None, finished: frozenset[int] = frozenset()) -> None:
        """``slots``: the concurrency limit, and where parked trials are registered (shared with the searcher).
        After a driver crash, from the journal: ``history``, each trial's values at the rungs it was decided at
        (to refill ASHA's rungs as the trials come back); ``finished``, the trials that ended."""
        super().__init__()
        self.history = history or {}
        self.finished = frozenset(finished)
        self.inner = inner
        self.metric_name = cfg.metric.name
        self.constraints = cfg.constraints
        self.events = events
        self.strict = strict  # hold trials at rungs until their turn
        # pause them (freeing the slot) until their turn; only ASHA decides at rungs
        self.park = park and not strict and isinstance(inner, AsyncHyperBandScheduler)
        self.slots = slots if slots is not None else TrialSlots(None)
        self.trials: dict[int, Trial] = {}
        self.live: dict[int, Trial] = {}  # the trials among them not ended (rung peers that may still report)
        self.searching: set[int] = set()  # a one-shot experiment's supernet searches (Tune runs them; we don't decide)
        self.ended: set[int] = set()
        self.pending: dict[int, tuple[int, Trial, dict]] = {}  # number -> (rung, trial, result) held back
        self.verdicts: dict[int, str] = {}  # parked trials decided meanwhile: STOP or CONTINUE, to act on
        self._draining = False
        if isinstance(inner, AsyncHyperBandScheduler):
            sorted_asha_cutoffs(inner)  # ASHA's cutoffs kept sorted: a rung of 100,000 trials is not re-read per result

    def __getstate__(self) -> dict:
        # Tune pickles its config (tuner.pkl); the event log is live driver state (an open journal).
        return {k: v for k, v in self.__dict__.items() if k != "events"}

    @property
    def ordered(self) -> bool:
        return self.strict or self.park

    def is_held(self, trial: Trial) -> bool:
        """Whether ``trial`` waits at a rung for its turn (it reports nothing meanwhile, on purpose)."""
        return _number(trial) in self.pending

    def parked(self) -> int:
        """How many trials are parked at a rung, paused and undecided: they hold no slot and count as not running."""
        return len(self.slots.parked) if self.park else 0

    # -- plain delegation ---------------------------------------------------------------------------------------
    @property
    def metric(self) -> str | None:
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return False  # one decision per result: a buffered batch of epochs would take several epochs per decision

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        # a one-shot supernet search first: the inner scheduler never saw it (HyperBand runs only its brackets')
        search = next((t for t in tune_controller.get_trials() if t.status == Trial.PENDING and _searching(t)), None)
        if search is not None:
            return search
        if not self.park:
            return self.inner.choose_trial_to_run(tune_controller)
        self._act_on_verdicts(tune_controller)
        trials = tune_controller.get_trials()
        promoted = [t for t in trials if t.status == Trial.PAUSED and self.verdicts.get(_number(t)) == self.CONTINUE]
        busy = sum(t.status in (Trial.RUNNING, Trial.PENDING) for t in trials)
        if promoted and not self.slots.full(busy):
            return min(promoted, key=_number)  # promotions first, oldest first; a parked trial never resumes undecided
        return next((t for t in trials if t.status == Trial.PENDING), None)

    def debug_string(self) -> str:
        return self.inner.debug_string()

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if _number(trial) in self.finished and trial.status != Trial.TERMINATED:
            retire_trial(tune_controller, trial)  # ended before a driver crash, after Tune's last snapshot of it
        if _searching(trial):
            self.searching.add(_number(trial))
            return  # never early-stopped, never a rung peer: not the inner scheduler's business
        self.trials[_number(trial)] = trial
        if getattr(trial, "status", None) in (Trial.TERMINATED, Trial.ERROR):
            self.ended.add(_number(trial))  # a resumed experiment's finished trial: it will never reach a rung
        elif _number(trial) not in self.ended:
            self.live[_number(trial)] = trial
        self.inner.on_trial_add(tune_controller, trial)
        if isinstance(self.inner, AsyncHyperBandScheduler):
            for milestone, value in self.history.get(_number(trial), {}).items():  # a resumed experiment's rungs
                asha_record(self.inner, trial, milestone, value)

    def _ended(self, tune_controller: Any, trial: Trial) -> None:
        self.ended.add(_number(trial))
        self.live.pop(_number(trial), None)
        self.pending.pop(_number(trial), None)
        self.slots.unpark(_number(trial))
        self.verdicts.pop(_number(trial), None)
        self._drain(tune_controller)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        if _searching(trial):
            return
        self.inner.on_trial_error(tune_controller, trial)
        self._ended(tune_controller, trial)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        if _searching(trial):
            return
        self.inner.on_trial_complete(tune_controller, trial, result)
        self._ended(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        if _searching(trial):
            return
        self.inner.on_trial_remove(tune_controller, trial)
        self._ended(tune_controller, trial)

    # -- decisions ------------------------------------------------------------------------------------------------
    def rungs(self, trial: Trial) -> list[tuple[int, Collection[str]]]:
        """ASHA's rungs for this trial's bracket, highest milestone first: ``(milestone, ids of the trials recorded
        there)``; empty for other schedulers."""
        return asha_rungs(self.inner, trial) if isinstance(self.inner, AsyncHyperBandScheduler) else []

    def _rung_to_record(self, trial: Trial, result: dict) -> int | None:
        """The rung this result will be recorded at (ASHA's own rule), or None if it is not a rung decision."""
        if not isinstance(self.inner, AsyncHyperBandScheduler):
            return None  # only ASHA decides at rungs
        if TIME_ATTR not in result or self.metric_name not in result:
            return None
        epoch = result[TIME_ATTR]
        if epoch >= asha_stops_unrecorded_from(self.inner):
            return None  # stopped for reaching max_t, recorded nowhere
        for milestone, recorded in self.rungs(trial):  # the same walk as ASHA's _Bracket.on_result
            if epoch < milestone or trial.trial_id in recorded:
                continue
            return int(milestone)
        return None

    def _decide(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        rung = self._rung_to_record(trial, result)
        cutoff = asha_cutoff(self.inner, trial, rung) if rung is not None else None
        decision = self.inner.on_trial_result(tune_controller, trial, result)
        epoch = int(result.get(TIME_ATTR, 0))
        if rung is not None:
            reason = "below the rung cutoff" if decision == TrialScheduler.STOP else "at or above the rung cutoff"
        elif decision == TrialScheduler.STOP and epoch >= max_t(self.inner):
            reason = "reached max_epochs"
        elif decision == TrialScheduler.CONTINUE:
            reason = "no decision point at this epoch"
        else:
            reason = f"{type(self.inner).__name__} decided"
        self.events.decision(_number(trial), epoch, result.get(self.metric_name), decision, rung, cutoff, reason)
        return decision

    def _waiting_for(self, number: int, rung: int) -> list[int]:
        """Lower-numbered trials that have neither been recorded at ``rung`` nor ended."""
        return sorted(other for other in self._unrecorded(rung) if other < number)

    def _unrecorded(self, rung: int) -> list[int]:
        """The trials not ended that have not been recorded at ``rung`` (a held or parked trial is one of them)."""
        return [number for number, trial in self.live.items()
                if trial.trial_id not in dict(self.rungs(trial)).get(rung, frozenset())]

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        if _searching(trial):
            value = result.get(self.metric_name)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                self.events.decision(_number(trial), int(result.get(TIME_ATTR, 0)), value, TrialScheduler.STOP,
                                     reason=f"one-shot search: {self.metric_name} is {value}")
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE
        self.verdicts.pop(_number(trial), None)  # a resumed trial reports again: its verdict has been acted on
        broken = violations(self.constraints, result) if self.constraints and TIME_ATTR in result else []
        if broken:  # never selectable: stopped here, and kept out of the rungs (the trial ends too)
            self.events.decision(_number(trial), int(result.get(TIME_ATTR, 0)), result.get(self.metric_name),
                                 TrialScheduler.STOP, reason=f"infeasible: {'; '.join(broken)}")
            return TrialScheduler.STOP
        value = result.get(self.metric_name)
        if (isinstance(value, (int, float)) and not math.isfinite(value) and TIME_ATTR in result
                and isinstance(self.inner, (AsyncHyperBandScheduler, HyperBandScheduler, MedianStoppingRule))):
            # Ray's ASHA would promote it (NaN < cutoff is False) and record it at the rung; a trial compared with
            # its peers needs a number. It stops here, out of the rungs, and ends FAILED (records.final_state).
            self.events.decision(_number(trial), int(result[TIME_ATTR]), value, TrialScheduler.STOP,
                                 reason=f"{self.metric_name} is {value}")
            return TrialScheduler.STOP
        if not self.ordered:
            return self._decide(tune_controller, trial, result)
        rung = self._rung_to_record(trial, result)
        blockers = self._waiting_for(_number(trial), rung) if rung is not None else []
        if blockers:
            self.pending[_number(trial)] = (rung, trial, result)
            if self.park:
                self.slots.park(_number(trial))
            self.events.wait(_number(trial), int(result[TIME_ATTR]), rung, blockers, parked=self.park)
            # park: pause with a checkpoint, freeing the slot; hold: keep the slot, train no further
            return TrialScheduler.PAUSE if self.park else TrialScheduler.NOOP
        decision = self._decide(tune_controller, trial, result)
        self._drain(tune_controller)
        return decision

    def _act_on_verdicts(self, tune_controller: Any) -> None:
        """Stop parked trials decided STOP once Tune has paused them (a CONTINUE waits for a slot).

        Stopping one ends it, which decides others (``_ended`` drains): those are acted on by this same loop, not
        by a nested one — hundreds of parked trials would otherwise nest as deep as Python allows."""
        if getattr(self, "_acting", False):
            return
        self._acting = True
        try:
            acted = True
            while acted:
                acted = False
                for number, verdict in list(self.verdicts.items()):
                    trial = self.trials[number]
                    if self.verdicts.get(number) == TrialScheduler.STOP == verdict and trial.status == Trial.PAUSED:
                        del self.verdicts[number]
                        tune_controller.stop_trial(trial)
                        acted = True
        finally:
            self._acting = False

    def _drain(self, tune_controller: Any) -> None:
        """Decide waiting trials whose turn has come, lowest number first, and act on the decision."""
        if not self.ordered or self._draining:
            return
        self._draining = True
        try:
            progress = True
            while progress:
                progress = False
                lowest: dict[int, int] = {}  # rung -> the lowest trial not recorded there (a waiting trial counts)
                for number in sorted(self.pending):
                    rung, trial, result = self.pending[number]
                    if rung not in lowest:
                        lowest[rung] = min(self._unrecorded(rung), default=number)
                    if lowest[rung] < number:  # a lower trial has not reached the rung: not its turn yet
                        continue
                    del self.pending[number]
                    self.slots.unpark(number)
                    decision = self._decide(tune_controller, trial, result)
                    progress = True
                    if self.park:  # acted on once Tune has paused the trial (it may still be saving)
                        self.verdicts[number] = decision
                        break
                    # Tune waits for a decision on a held trial; these are the actions it takes for one
                    if decision == TrialScheduler.STOP:
                        tune_controller.stop_trial(trial)
                    else:
                        resume_training(tune_controller, trial)
                    break
        finally:
            self._draining = False
        if self.park:
            self._act_on_verdicts(tune_controller)
