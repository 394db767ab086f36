"""Running an experiment's trials with a Ray Tune ``Tuner``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from search._optuna import AskTellStudy
from search._tune._events import EventBridge
from search._tune._scheduling import ObservedScheduler, make_scheduler
from search._tune._searcher import OptunaSearcher
from search._tune._trainable import TrialSettings, trial_entry
from search.config import ExperimentConfig
from trainers import SearchData


def run_trials(cfg: ExperimentConfig, study: AskTellStudy, data: SearchData, storage: Path, monitor: Any,
               trials: int, restore: bool = False) -> set[int]:
    """Run ``trials`` trials of ``cfg`` on the connected Ray cluster; every event goes to ``monitor``.

    ``restore``: continue the interrupted Tune experiment in ``storage`` (finished trials stay finished, the
    others resume from their latest checkpoints). Returns the trial numbers Tune ran or knew of.
    """
    settings = TrialSettings(cfg.trainer, cfg.deterministic, cfg.resources.threads, cfg.resources.gpus,
                             cfg.constraints, cfg.faults, cfg.seed)
    trainable = tune.with_resources(
        tune.with_parameters(trial_entry, data=data, settings=settings),
        {"cpu": cfg.resources.cpus, "gpu": cfg.resources.gpus, **cfg.resources.custom},
    )
    searcher = OptunaSearcher(study, cfg, monitor.events, trials)
    # trials that ended for good before a crash (a FAILED one is retried: Tune resumes errored trials)
    finished = {n for n, r in monitor.records.trials.items() if r.state in ("COMPLETE", "PRUNED")} if restore else set()
    scheduler = ObservedScheduler(make_scheduler(cfg.scheduler), cfg, monitor.events,
                                  strict=cfg.reproducible.mode == "strict",
                                  history=rung_history(monitor.events.rows) if restore else None,
                                  park=cfg.scheduler.promotion == "ordered", max_concurrent=cfg.budget.max_concurrent,
                                  finished=finished)
    searcher.parked, searcher.finished = scheduler.parked, finished
    tune_config = tune.TuneConfig(
        metric=cfg.metric.name,
        mode=cfg.metric.mode,
        search_alg=searcher,
        scheduler=scheduler,
        num_samples=trials,
        max_concurrent_trials=cfg.budget.max_concurrent,
        time_budget_s=cfg.budget.time_budget_s,
        reuse_actors=True,  # one worker process runs many trials: ~7x less per-trial overhead
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    bridge = EventBridge(monitor, cfg.tolerance.stall_timeout_s, scheduler.is_held)
    callbacks = [bridge]
    if restore:
        tuner = tune.Tuner.restore(str(storage.resolve()), trainable, resume_unfinished=True, resume_errored=True)
        # Tune restores its own pickled config; ours carries the live study, monitor and event log.
        tuner._local_tuner._tune_config = tune_config
        tuner._local_tuner._run_config.callbacks = callbacks
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
    try:
        tuner.fit()
    finally:
        searcher.close_open_trials()
        bridge.settle()
    return set(scheduler.trials)


def _trial_name(trial: Any) -> str:
    return f"trial_{int(trial.config['trial_number']):04d}"


def rung_history(events: list[dict[str, Any]]) -> dict[int, dict[int, float]]:
    """Per trial, the value ASHA recorded at each rung it was decided at, from the decision log: what the rungs
    held before an interruption. A trial parked undecided at a rung is not in it, so it is decided again."""
    history: dict[int, dict[int, float]] = {}
    for event in events:
        if event.get("kind") == "decision" and event.get("rung") is not None and event.get("value") is not None:
            history.setdefault(int(event["trial"]), {})[int(event["rung"])] = float(event["value"])
    return history
