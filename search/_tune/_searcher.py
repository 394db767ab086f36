"""The Ray searcher over our Optuna ask/tell study.

Trial numbers are Optuna's (ask order) and every trial's seed derives from its number. A trial the scheduler
stopped early is told PRUNED with the value of its last epoch, never COMPLETE.

After a driver crash (``restore``), trials Optuna had handed out that Tune's last snapshot does not know of — asked
just before the crash — are offered again first, under the same number with the same configuration, so every
number from 0 to the budget runs exactly once. Tune's snapshot is several files (the trials; its search generator's
count; this searcher's own state) copied to storage one after another by a background thread, so a crash can leave
them from different moments, or some missing: :class:`TuneSearch` makes the searcher and Tune's count agree with the
trials Tune actually restored before anything new is asked.

In strict mode (``reproducible: strict``) configurations are asked in generations of ``generation_size``, all of a
generation at once and only after every earlier trial has been told, with tells in trial-number order: what the
sampler knows at each ask — and therefore what it suggests — does not depend on concurrency.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher

from search._optuna import AskTellStudy
from search._tune._common import TIME_ATTR
from search._tune._slots import TrialSlots
from search.config import ExperimentConfig
from search.constraints import constraint_values
from search.events import EventLog
from search.oneshot import FINISHED
from search.records import final_state, final_value
from search.seeds import derive_seed


class OptunaSearcher(Searcher):
    """Ray searcher over an Optuna ask/tell study; every ask and tell goes to the decision log."""

    def __init__(self, study: AskTellStudy, cfg: ExperimentConfig, events: EventLog, trials: int,
                 slots: TrialSlots | None = None, finished: frozenset[int] = frozenset()) -> None:
        """``slots``: the concurrency limit and the parked trials (shared with the scheduler; none: no limit).
        ``finished``: after a driver crash, trials the journal saw end (no longer live, whatever Tune's snapshot
        says)."""
        super().__init__(metric=None, mode=None)
        self.study = study
        self.cfg = cfg
        self.events = events
        self.strict = cfg.reproducible.mode == "strict"
        self.generation = cfg.reproducible.generation_size
        self.numbers: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.last_epoch: dict[str, int] = {}  # a PAUSED trial stopped by HyperBand completes with no result
        self.last_metrics: dict[str, dict] = {}  # the constrained metrics of the last result
        self.last_value: dict[str, float] = {}  # the metric of the last result, NaN included (a NaN end FAILS)
        self.objectives = [o.name for o in cfg.objectives]  # several: told as one value each (a Pareto front)
        self.last_objectives: dict[str, dict[str, float]] = {}  # their values in the last result
        self.budget = trials
        self.asked = 0
        self.queue: list[tuple[int, dict]] = []  # strict mode: the current generation's asked configurations
        self.told = 0  # strict mode: every trial below this number has been told
        self.ready: dict[int, tuple[str, float | None, list[float] | None]] = {}  # strict: tells waiting their turn
        self.slots = slots if slots is not None else TrialSlots(None)
        self.finished = frozenset(finished)
        self.reoffer: list[tuple[int, dict]] = []  # after a driver crash: asked trials Tune never learnt of

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        # Tune's ConcurrencyLimiter would count parked trials as running: the slots limit concurrency instead.
        if max_concurrent != self.slots.limit:
            raise ValueError(f"Tune's max_concurrent_trials ({max_concurrent}) must be the slots' limit "
                             f"({self.slots.limit}): one limit, set once")
        return True

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode come from the experiment config, set once

    def _ask(self) -> tuple[int, dict[str, Any]] | str | None:
        """The next trial, or (a one-shot study) ``None`` while it has nothing to ask yet, ``FINISHED`` when it never
        will again."""
        asked = self.study.ask()
        if not isinstance(asked, tuple):
            return asked
        number, params = asked
        self.asked += 1
        self.events.ask(number, params)
        return number, params

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self.slots.free_for_new(len(self.numbers)):
            return None  # as many trials running (or promoted, waiting to resume) as allowed
        if self.reoffer:
            asked = self.reoffer.pop(0)
        elif not self.strict:
            asked = self._ask()
        else:
            if not self.queue:
                if self.told < self.asked:
                    return None  # a new generation waits until every earlier trial has been told (Tune asks again)
                for _ in range(min(self.generation, self.budget - self.asked)):
                    asked = self._ask()
                    if not isinstance(asked, tuple):
                        break
                    self.queue.append(asked)
            asked = self.queue.pop(0) if self.queue else (asked if self.budget > self.asked else None)
        if not isinstance(asked, tuple):
            return Searcher.FINISHED if asked == FINISHED else None
        number, params = asked
        epochs = self.cfg.epochs_for(params, number)
        self.numbers[trial_id], self.epochs[trial_id] = number, epochs
        return {"trial_number": number, "seed": derive_seed(self.cfg.seed, number), "params": params, "epochs": epochs,
                "trainer": self.cfg.trainer_for(number), "phase": self.cfg.phase_of(number)}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.numbers or TIME_ATTR not in result:
            return
        self.last_epoch[trial_id] = int(result[TIME_ATTR])
        if self.cfg.constraints:
            self.last_metrics[trial_id] = {c.metric: result.get(c.metric) for c in self.cfg.constraints}
        if self.objectives:
            last = self.last_objectives.setdefault(trial_id, {})
            last.update({name: float(result[name]) for name in self.objectives if result.get(name) is not None})
        value = result.get(self.cfg.metric.name)
        if value is not None:
            self.last_value[trial_id] = float(value)
            self.study.report(self.numbers[trial_id], int(result[TIME_ATTR]), value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.numbers:
            return
        if result and TIME_ATTR in result:
            # The result that made the scheduler stop a trial never reaches on_trial_result: report it here, so
            # Optuna's PRUNED value is the value at the step where the trial stopped.
            self.on_trial_result(trial_id, result)
        number, epochs = self.numbers.pop(trial_id), self.epochs.pop(trial_id)
        # Same rule as the records (final_state): a trial stopped before its first report is PRUNED unless it
        # errored; one that trained all its epochs is COMPLETE with its last value; a NaN or infinite last value
        # FAILS (Optuna's history keeps only intermediate values, so its last_value would be a stale earlier one).
        last_value = self.last_value.pop(trial_id, None)
        last_epoch = self.last_epoch.pop(trial_id, 0)
        values = None
        if self.objectives:  # every objective must end finite (same rule as the records: final_value)
            last = self.last_objectives.pop(trial_id, {})
            values = [last.get(name) for name in self.objectives]
            last_value = final_value(values, last_epoch >= epochs)
        state = final_state(last_epoch, epochs, error, last_value)
        metrics = self.last_metrics.pop(trial_id, None)
        constraints = constraint_values(self.cfg.constraints, metrics) if self.cfg.constraints and metrics else None
        value = (values if values is not None else self.study.last_value(number)) if state == "COMPLETE" else None
        if self.strict:
            self.ready[number] = (state, value, constraints)
            self._tell_in_order()
        else:
            self._tell(number, state, value, constraints)

    def _tell(self, number: int, state: str, value: float | list[float] | None,
              constraints: list[float] | None) -> None:
        self.study.tell(number, state, value, constraints)
        self.events.tell(number, state, value)

    def _tell_in_order(self, everything: bool = False) -> None:
        while self.ready and (self.told in self.ready or everything):
            number = self.told if self.told in self.ready else min(self.ready)
            self._tell(number, *self.ready.pop(number))
            self.told = number + 1
            while self.told < self.asked and self.told not in self.ready and not self.study.is_open(self.told):
                self.told += 1  # told before the driver was restarted

    def close_open_trials(self, interrupted: bool = False) -> None:
        """Tell Optuna about trials Tune ended without a completion event (e.g. cut by the time budget).

        ``interrupted`` (SIGINT/SIGTERM): trials still live are left open — RUNNING in Optuna, as in Tune's last
        snapshot — for ``hypernas resume`` to continue; only trials that did end are told."""
        if interrupted:
            self._tell_in_order(everything=True)
            return
        for trial_id in list(self.numbers):
            self.on_trial_complete(trial_id, None)
        self._tell_in_order(everything=True)
        self.study.fail_open_trials()

    def __getstate__(self) -> dict:
        # Tune pickles its config (tuner.pkl) for its own restore; the live study is re-attached by the driver.
        return {k: v for k, v in self.__dict__.items() if k not in ("study", "events")}

    def save(self, checkpoint_path: str) -> None:
        # The study itself is durable (Optuna journal); Tune only needs which trial is which number.
        Path(checkpoint_path).write_text(json.dumps(
            {"numbers": self.numbers, "epochs": self.epochs, "last_epoch": self.last_epoch}))

    def restore(self, checkpoint_path: str) -> None:
        saved = json.loads(Path(checkpoint_path).read_text())
        self.numbers, self.epochs, self.last_epoch = saved["numbers"], saved["epochs"], saved["last_epoch"]
        for trial_id, number in list(self.numbers.items()):
            if number in self.finished:  # told before the crash, after Tune's snapshot: no longer live
                self.numbers.pop(trial_id)
                self.epochs.pop(trial_id, None)
                self.last_epoch.pop(trial_id, None)
        # Asked after Tune's last snapshot (Tune will not run them; its sample count leaves room for them): offer
        # them again before asking anything new, instead of failing them at the end.
        self.offer_open_trials(skip=set(self.numbers.values()) | self.finished)

    def reconcile(self, trials: list[Trial]) -> None:
        """Take ``trials`` — every trial Tune restored, as it will run them — as the truth about which trial is
        which number and which are live, whatever this searcher's own saved state said; offer again every trial
        asked and never told that Tune does not hold."""
        numbers = {}
        for trial in trials:
            number = trial.config["trial_number"]
            if trial.status != Trial.TERMINATED and number not in self.finished:
                numbers[trial.trial_id] = number
                self.epochs.setdefault(trial.trial_id, trial.config["epochs"])
                if TIME_ATTR in (trial.last_result or {}):
                    self.last_epoch.setdefault(trial.trial_id, int(trial.last_result[TIME_ATTR]))
        self.numbers = numbers
        self.epochs = {tid: e for tid, e in self.epochs.items() if tid in numbers}
        self.last_epoch = {tid: e for tid, e in self.last_epoch.items() if tid in numbers}
        self.offer_open_trials(skip={t.config["trial_number"] for t in trials} | self.finished)

    def offer_open_trials(self, skip: set[int]) -> None:
        """Suggest the study's open trials (asked, never told) but ``skip`` first, under their own numbers and
        configurations: trials a crashed or interrupted driver asked for that Tune does not know of."""
        self.reoffer = self.study.open_trials(skip=skip)
        logged = self.events.asked()
        for number, params in self.reoffer:
            if number not in logged:  # the crash came before the ask reached the decision log
                self.events.ask(number, params)
        if self.strict:
            # where the generations stood: every trial asked counts towards the budget, and tells go on in number
            # order from the first trial not told yet (a new generation waits for it, as before the restart)
            self.asked = self.study.asked()
            self.told = min((n for n in range(self.asked) if self.study.is_open(n)), default=self.asked)

    def tell_ended(self, number: int, state: str, values: list[float] | None = None) -> None:
        """Tell Optuna how a trial ended that the records saw end (COMPLETE, with its last value — ``values``, the
        recorded last value of each objective, in a multi-objective experiment — or PRUNED) and Optuna was never
        told of: the driver died in between."""
        if self.study.is_open(number):
            value = (values if self.objectives else self.study.last_value(number)) if state == "COMPLETE" else None
            self._tell(number, state, value, None)


class TuneSearch(SearchGenerator):
    """Tune's own search generator over :class:`OptunaSearcher` (behind Tune's ``ConcurrencyLimiter`` when there
    is a limit: what ``TuneConfig(search_alg=searcher, max_concurrent_trials=limit)`` builds), which on a resumed
    run first agrees with the trials Tune restored.

    Tune counts the trials its generator created (``get_state()["counter"]``) and creates no more once the count
    reaches ``num_samples``; the count, the searcher's state and the trial list are restored from separate files
    that a crash can leave from different moments. Until :meth:`reconcile` has run (Tune's first step, before its
    first ask: :class:`ReconcileOnResume`), a resumed search is never finished; then the searcher is reconciled
    (:meth:`OptunaSearcher.reconcile`) and the count is the number of trials Tune holds — as it is on a clean
    snapshot — so the budget is neither short nor exceeded."""

    def __init__(self, searcher: OptunaSearcher, limit: int | None, resumed: bool) -> None:
        super().__init__(ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher)
        self.optuna = searcher
        self.unreconciled = resumed

    def is_finished(self) -> bool:
        return not self.unreconciled and super().is_finished()

    def reconcile(self, trials: list[Trial]) -> None:
        if not self.unreconciled:
            return
        self.unreconciled = False
        self.optuna.reconcile(trials)
        state = self.get_state()
        self.set_state({**state, "counter": len(trials), "finished": state["finished"] and not self.optuna.reoffer})


class ReconcileOnResume(Callback):
    """At Tune's first step (its restored trials all requeued, nothing asked yet), :meth:`TuneSearch.reconcile`."""

    def __init__(self, search: TuneSearch) -> None:
        self.search = search

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        self.search.reconcile(trials)
