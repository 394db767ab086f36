"""Running an experiment's trials with a Ray Tune ``Tuner``."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import ray
from ray import tune

from search._optuna import AskTellStudy
from search._tune._batching import SEAT_MEMORY, start_workers
from search._tune._cluster import workers_that_fit
from search._tune._events import EventBridge
from search._tune._ray_internals import replace_restored_config, tune_snapshot_restorable, tune_stop_handler
from search._tune._scheduling import ObservedScheduler, make_scheduler
from search._tune._searcher import OptunaSearcher, ReconcileOnResume, TuneSearch
from search._tune._slots import TrialSlots
from search._tune._trainable import TrialSettings, trial_entry
from search.config import ExperimentConfig
from search.redaction import known_secrets
from search.interruption import SignalGuard
from trainers import SearchData

# Tune would replace our SIGINT handler with its own, which stops the run without telling us. We handle SIGINT and
# SIGTERM ourselves (search.interruption) and ask Tune to stop through :class:`_TuneStop`; the driver's
# search._tune.configure() sets TUNE_DISABLE_SIGINT_HANDLER=1 (read by Tune at fit()).


def run_trials(cfg: ExperimentConfig, study: AskTellStudy, data: SearchData, storage: Path, monitor: Any,
               trials: int, restore: bool = False, signals: SignalGuard | None = None) -> set[int]:
    """Run ``trials`` trials of ``cfg`` on the connected Ray cluster; every event goes to ``monitor``.

    ``restore``: continue the interrupted Tune experiment in ``storage`` (finished trials stay finished, the
    others resume from their latest checkpoints). ``signals``: the first SIGINT/SIGTERM it receives makes Tune
    stop gracefully — running trials stay open (not told to Optuna), resumable from their checkpoints — and this
    returns; ``signals.signum`` then says so. Returns the trial numbers Tune ran or knew of.
    """
    resources = cfg.resources
    limit, workers = cfg.budget.max_concurrent, ()
    if resources.batched:  # K trials per worker process; the workers hold the resources (search._tune._batching)
        count = workers_that_fit(resources.ray_request())
        if limit is not None:
            count = min(count, -(-limit // resources.trials_per_worker))
        limit = min(limit or count * resources.trials_per_worker, count * resources.trials_per_worker)
        workers = start_workers(count, resources.trials_per_worker, data, resources.ray_request(), resources.threads,
                                cfg.deterministic, energy_watts_per_core=cfg.energy.cpu_watts_per_core)
        limit = min(limit, len(workers) * resources.trials_per_worker)  # the workers that did start
    try:
        return _run_tune(cfg, study, data, storage, monitor, trials, restore, signals, limit, tuple(workers))
    finally:
        for worker in workers:
            ray.kill(worker)


def _run_tune(cfg: ExperimentConfig, study: AskTellStudy, data: SearchData, storage: Path, monitor: Any,
              trials: int, restore: bool, signals: SignalGuard | None, limit: int | None,
              workers: tuple[Any, ...]) -> set[int]:
    resources = cfg.resources
    settings = TrialSettings(cfg.trainer, cfg.deterministic, resources.threads, resources.gpus,
                             cfg.constraints, cfg.faults, cfg.seed, secrets=tuple(sorted(known_secrets())),
                             workers=workers, trials_per_worker=resources.trials_per_worker, cpus=resources.cpus,
                             energy_watts_per_core=cfg.energy.cpu_watts_per_core)
    trainable = tune.with_resources(
        # a batched trial's own process needs no data (its worker has it) and no CPU or GPU of its own
        tune.with_parameters(trial_entry, data=None if workers else data, settings=settings),
        {"cpu": 0, "memory": SEAT_MEMORY} if workers else
        {"cpu": resources.cpus, "gpu": resources.gpus, **resources.custom},
    )
    # What the journal says of an interrupted experiment: trials that ended for good (a FAILED one is retried: Tune
    # resumes errored trials) and the values ASHA's rungs held.
    finished = frozenset(n for n, r in monitor.records.trials.items()
                         if r.state in ("COMPLETE", "PRUNED")) if restore else frozenset()
    slots = TrialSlots(limit)  # the one owner of the concurrency limit
    searcher = OptunaSearcher(study, cfg, monitor.events, trials, slots=slots, finished=finished)
    scheduler = ObservedScheduler(make_scheduler(cfg.scheduler), cfg, monitor.events,
                                  strict=cfg.reproducible.mode == "strict",
                                  history=rung_history(monitor.events.rows) if restore else None,
                                  park=cfg.scheduler.promotion == "ordered", slots=slots, finished=finished)
    for number in sorted(finished):  # ended in the journal, not told to Optuna: the driver died in between
        record = monitor.records.trials[number]
        searcher.tell_ended(number, record.state, monitor.records.objective_values(record))
    samples = trials
    if restore and not tune_snapshot_restorable(str(storage.resolve())):
        # stopped before Ray Tune saved any state (e.g. Ctrl-C at the start), or while it copied its first one:
        # Tune starts afresh for what is left of the budget, and the trials asked so far run first, under their
        # numbers (from their first epoch)
        restore = False
        ended = sum(r.state not in ("RUNNING", "INTERRUPTED") for r in monitor.records.trials.values())
        samples = max(0, trials - ended)
        searcher.offer_open_trials(skip=finished)
    # Tune's limiter (it sizes Tune's pending queue; it defers to the searcher, which owns the limit), under a search
    # generator that agrees with what Tune restored before asking anything new
    search = TuneSearch(searcher, slots.limit, resumed=restore)
    tune_config = tune.TuneConfig(
        metric=cfg.metric.name,
        mode=cfg.metric.mode,
        search_alg=search,
        scheduler=scheduler,
        num_samples=samples,
        time_budget_s=cfg.budget.time_budget_s,
        reuse_actors=True,  # one worker process runs many trials: ~7x less per-trial overhead
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    bridge = EventBridge(monitor, cfg.tolerance.stall_timeout_s, scheduler.is_held)
    stop = _TuneStop()
    callbacks = [bridge, stop, ReconcileOnResume(search)]
    if restore:
        tuner = tune.Tuner.restore(str(storage.resolve()), trainable, resume_unfinished=True, resume_errored=True)
        # Tune restores its own pickled config; ours carries the live study, monitor and event log.
        replace_restored_config(tuner, tune_config, callbacks)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune_config,
            run_config=tune.RunConfig(
                name=storage.name,
                storage_path=str(storage.parent.resolve()),
                verbose=0,
                callbacks=callbacks,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                # fail_fast ends the experiment at the first failure, so it leaves nothing to retry
                failure_config=tune.FailureConfig(
                    max_failures=0 if cfg.tolerance.fail_fast else cfg.tolerance.max_retries,
                    fail_fast=cfg.tolerance.fail_fast),
            ),
        )
    signals = signals or SignalGuard()
    try:
        with signals.on_first_signal(stop):
            tuner.fit()
    finally:
        _TUNE_LOG.removeFilter(_HIDE_TUNE_RESUME_HINTS)
        searcher.close_open_trials(interrupted=signals.signum is not None)
        bridge.settle()
    return set(scheduler.trials) | scheduler.searching


_TUNE_LOG = logging.getLogger("ray.tune.tune")


class _HideTuneResumeHints(logging.Filter):
    """Tune's own lines on a stop: "Stop signal received …", "Trials did not complete …", "Resume experiment
    with: Tuner.restore(…)". A hypernas user resumes with ``hypernas resume NAME``, which the driver prints."""

    _MARKERS = ("Stop signal received", "Trials did not complete", "Resume experiment with", "Resume training with")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(marker in record.getMessage() for marker in self._MARKERS)


_HIDE_TUNE_RESUME_HINTS = _HideTuneResumeHints()


class _TuneStop(tune.Callback):
    """Calling it makes Tune end its loop gracefully: it snapshots the experiment state one last time (running
    trials stay RUNNING there, with their latest checkpoints, so ``Tuner.restore`` continues them) and stops the
    actors, without completion events for the trials it stops.

    That is what Tune does on SIGINT; with its SIGINT handler disabled, the same handler stays installed for
    SIGUSR1, just before Tune sets up its callbacks — ``setup`` picks it up from there
    (:func:`~search._tune._ray_internals.tune_stop_handler`). Before that there is nothing to stop gracefully
    yet: the signal interrupts at once.
    """

    def __init__(self) -> None:
        self._stop: Any = None

    def __getstate__(self) -> dict:
        return {"_stop": None}  # Tune pickles its callbacks with the experiment; a handler is process state

    def setup(self, **info: Any) -> None:
        handler = tune_stop_handler()
        if handler is not None:
            self._stop = handler

    def __call__(self) -> bool:
        if self._stop is None:
            return False
        _TUNE_LOG.addFilter(_HIDE_TUNE_RESUME_HINTS)
        self._stop(signal.SIGUSR1, None)
        return True


def _trial_name(trial: Any) -> str:
    return f"trial_{int(trial.config['trial_number']):04d}"


def rung_history(events: list[dict[str, Any]]) -> dict[int, dict[int, float]]:
    """Per trial, the value ASHA recorded at each rung it was decided at, from the journal's decisions: what the rungs
    held before an interruption. A trial parked undecided at a rung is not in it, so it is decided again."""
    history: dict[int, dict[int, float]] = {}
    for event in events:
        if event.get("kind") == "decision" and event.get("rung") is not None and event.get("value") is not None:
            history.setdefault(int(event["trial"]), {})[int(event["rung"])] = float(event["value"])
    return history
