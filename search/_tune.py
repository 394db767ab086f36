"""The Ray Tune adapter — the only module of hypernas that imports ray.

Ray Tune is the executor: trial lifecycle, resources (fractional GPUs), checkpoints, and the early-stopping
schedulers (ASHA = ``AsyncHyperBandScheduler``, ``HyperBandScheduler``, ``MedianStoppingRule``), which we only
configure. What this module adds around it:

* ``trial_entry``: the function trainable — runs a trainers recipe with a Reporter backed by ``tune.report``
  and a checkpoint per epoch;
* ``_OptunaSearcher``: a Ray ``Searcher`` over our :class:`~search._optuna.AskTellStudy` that tells Optuna
  PRUNED (not COMPLETE) for trials the scheduler stopped;
* ``_EventBridge``: a Tune callback that turns Tune's events into calls on an :class:`~search.monitor.Monitor`
  (records, MLflow, live view), all in the driver.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

# Our own records replace Tune's per-trial JSON/CSV/TensorBoard loggers (fewer files, less overhead) ...
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# ... so Tune's end-of-run analysis finds no result.json and would warn once per trial; our records are complete.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
# Our live view replaces Tune's console output; its new output engine prints a banner even at verbose=0.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# A checkpoint per epoch makes Tune snapshot its state often; that is expected here, not a warning.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Token authentication is Ray 2.60's default; saying so explicitly keeps it on and silences the notice. Ray reads
# this when it is imported, hence before the import.
os.environ.setdefault("RAY_AUTH_MODE", "token")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.result import AUTO_RESULT_KEYS  # noqa: E402
from ray.tune.schedulers import (  # noqa: E402
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)
from ray.tune.search import Searcher  # noqa: E402

from search._optuna import AskTellStudy  # noqa: E402
from search.config import ExperimentConfig, SchedulerConfig  # noqa: E402
from search.constraints import Constraint, constraint_values, violations  # noqa: E402
from search.records import final_state  # noqa: E402
from search.seeds import derive_seed  # noqa: E402
from trainers import SearchData, TrialSpec, resolve_trainer, state_from_bytes, state_to_bytes  # noqa: E402

TIME_ATTR = "epoch"  # fidelity is counted in epochs, never seconds
_CHECKPOINT_FILE = "state.pt"
_RESERVED = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "epoch", "epochs", "device", "experiment_tag",
                                     "should_checkpoint"}


# --- Ray itself ---------------------------------------------------------------------------------------------------


def running_local_cluster() -> str | None:
    """The address of a live cluster started on this machine with ``ray start``, if there is one.

    Ray records the last ``ray start`` in its temp folder but never removes the record; it counts only while
    that cluster's GCS process is still running. Other programs' private Ray instances are never joined.
    """
    from ray._private import services  # Ray's own discovery, as ray.init() uses it (pinned Ray version)

    started = services.find_bootstrap_address(None)
    return started if started and started in services.find_gcs_addresses() else None


def ensure_ray(address: str | None = None) -> bool:
    """Connect to Ray; True when this call started a private local instance (it ends with the process).

    Joins, in this order: an explicit ``address``; ``RAY_ADDRESS`` (set inside ``ray job submit``); a cluster
    started on this machine with ``ray start``. With none of them, a private local instance starts (laptop mode).
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or running_local_cluster()
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return False
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    return True


def describe_cluster(started_here: bool) -> str:
    """One line on where trials will run: a private local instance or a cluster, with its resources."""
    resources = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    what = "local Ray started for this run" if started_here else \
        f"Ray cluster at {ray.get_runtime_context().gcs_address}"
    return (f"{what}: {nodes} node{'s' if nodes != 1 else ''}, {resources.get('CPU', 0):g} CPUs, "
            f"{resources.get('GPU', 0):g} GPUs")


def node_name(result: Mapping[str, Any]) -> str | None:
    """``hostname/ip`` of the node that produced a result (Ray fills both in)."""
    return result.get("hostname") and f"{result.get('hostname')}/{result.get('node_ip')}"


# --- the trainable ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of an experiment shares (travels with the trainable, not in each config)."""

    trainer: str
    deterministic: bool
    threads: int
    gpus: float
    constraints: tuple[Constraint, ...] = ()


class _Infeasible(Exception):
    """Raised after the report that shows a constraint broken: the trial stops there."""


class _TuneReporter:
    """A trainers ``Reporter`` on Ray Tune: metrics via ``tune.report``, state as a checkpoint per epoch."""

    def __init__(self, epochs: int, device: str, constraints: tuple[Constraint, ...] = ()) -> None:
        self.epochs = epochs
        self.device = device
        self.constraints = constraints

    def report(self, epoch: int, metrics: Mapping[str, float], state: Mapping[str, Any] | None = None) -> None:
        result = {**{k: float(v) for k, v in metrics.items()}, "epoch": epoch, "epochs": self.epochs,
                  "device": self.device}
        if state is None:
            tune.report(result)
        else:
            with tempfile.TemporaryDirectory(prefix="hypernas-ckpt-") as folder:
                Path(folder, _CHECKPOINT_FILE).write_bytes(state_to_bytes({"epoch": epoch, "state": state}))
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
        if self.constraints and violations(self.constraints, metrics):
            raise _Infeasible()  # no point training a model that can never be selected

    def restore(self) -> tuple[int, Mapping[str, Any]] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            saved = state_from_bytes(Path(folder, _CHECKPOINT_FILE).read_bytes())
        return saved["epoch"], saved["state"]


def trial_entry(config: dict[str, Any], *, data: SearchData, settings: TrialSettings) -> None:
    """One trial, inside a Ray worker: build the TrialSpec and run the recipe."""
    import torch

    # Ray exposes only the trial's GPU(s) through CUDA_VISIBLE_DEVICES; the first visible one is ours.
    on_gpu = settings.gpus > 0 and torch.cuda.is_available()
    spec = TrialSpec(
        params={k: v for k, v in config["params"].items() if k != "epochs"},
        data=data,
        epochs=config["epochs"],
        seed=config["seed"],
        device="cuda:0" if on_gpu else "cpu",
        threads=settings.threads,
        deterministic=settings.deterministic,
        trial_number=config["trial_number"],
    )
    device_name = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    try:
        resolve_trainer(settings.trainer).train(spec, _TuneReporter(spec.epochs, device_name, settings.constraints))
    except _Infeasible:
        return  # ends like a trial stopped early; the driver records it as infeasible


# --- searcher and schedulers -----------------------------------------------------------------------------------


class _OptunaSearcher(Searcher):
    """Ray searcher over an Optuna ask/tell study. Trial numbers are Optuna's (ask order), seeds derive from them."""

    def __init__(self, study: AskTellStudy, cfg: ExperimentConfig) -> None:
        super().__init__(metric=None, mode=None)
        self.study = study
        self.cfg = cfg
        self.numbers: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.last_epoch: dict[str, int] = {}  # a PAUSED trial stopped by HyperBand completes with no result
        self.last_metrics: dict[str, dict] = {}  # the constrained metrics of the last result

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode come from the experiment config, set once

    def suggest(self, trial_id: str) -> dict[str, Any]:
        number, params = self.study.ask()
        epochs = self.cfg.epochs_for(params)
        self.numbers[trial_id], self.epochs[trial_id] = number, epochs
        return {"trial_number": number, "seed": derive_seed(self.cfg.seed, number), "params": params, "epochs": epochs}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.numbers or TIME_ATTR not in result:
            return
        self.last_epoch[trial_id] = int(result[TIME_ATTR])
        if self.cfg.constraints:
            self.last_metrics[trial_id] = {c.metric: result.get(c.metric) for c in self.cfg.constraints}
        value = result.get(self.cfg.metric.name)
        if value is not None:
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
        # errored; one that trained all its epochs is COMPLETE with its last value.
        state = final_state(self.last_epoch.pop(trial_id, 0), epochs, error)
        metrics = self.last_metrics.pop(trial_id, None)
        constraints = constraint_values(self.cfg.constraints, metrics) if self.cfg.constraints and metrics else None
        self.study.tell(number, state, self.study.last_value(number) if state == "COMPLETE" else None, constraints)

    def close_open_trials(self) -> None:
        """Tell Optuna about trials Tune ended without a completion event (e.g. cut by the time budget)."""
        for trial_id in list(self.numbers):
            self.on_trial_complete(trial_id, None)

    def __getstate__(self) -> dict:
        # Tune pickles its config (tuner.pkl) for its own restore; the live study is re-attached by the driver.
        return {k: v for k, v in self.__dict__.items() if k != "study"}

    def save(self, checkpoint_path: str) -> None:
        # The study itself is durable (Optuna journal); Tune only needs which trial is which number.
        Path(checkpoint_path).write_text(json.dumps(
            {"numbers": self.numbers, "epochs": self.epochs, "last_epoch": self.last_epoch}))

    def restore(self, checkpoint_path: str) -> None:
        saved = json.loads(Path(checkpoint_path).read_text())
        self.numbers, self.epochs, self.last_epoch = saved["numbers"], saved["epochs"], saved["last_epoch"]


def make_scheduler(cfg: SchedulerConfig) -> TrialScheduler:
    """Ray's own scheduler classes, configured in epochs. Metric and mode are set once, on the TuneConfig."""
    if cfg.type == "asha":
        return AsyncHyperBandScheduler(time_attr=TIME_ATTR, max_t=cfg.max_epochs, grace_period=cfg.grace_period,
                                       reduction_factor=cfg.reduction_factor)
    if cfg.type == "hyperband":
        return HyperBandScheduler(time_attr=TIME_ATTR, max_t=cfg.max_epochs, reduction_factor=cfg.reduction_factor)
    if cfg.type == "median":
        return MedianStoppingRule(time_attr=TIME_ATTR, grace_period=cfg.grace_period,
                                  min_samples_required=cfg.min_samples_required)
    return FIFOScheduler()


# --- events ----------------------------------------------------------------------------------------------------


class _EventBridge(tune.Callback):
    """Tune callback → :class:`search.monitor.Monitor` calls, keyed by our trial numbers."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor

    def __getstate__(self) -> dict:
        return {}  # the monitor is driver state (threads, open stores); Tune's pickled config does not need it

    @staticmethod
    def _number(trial: Any) -> int:
        return int(trial.config["trial_number"])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        config = trial.config
        self.monitor.trial_started(self._number(trial), trial.trial_id, int(config["seed"]), dict(config["params"]),
                                   int(config["epochs"]))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if TIME_ATTR not in result:
            return
        metrics = {k: v for k, v in result.items()
                   if k not in _RESERVED and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.monitor.trial_result(self._number(trial), int(result[TIME_ATTR]), metrics, node_name(result),
                                  result.get("device"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        state = final_state(int(last.get(TIME_ATTR, 0)), int(trial.config["epochs"]), errored=False)
        self.monitor.trial_ended(self._number(trial), state)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = None
        if trial.error_file and os.path.exists(trial.error_file):
            error = Path(trial.error_file).read_text(errors="replace")
        self.monitor.trial_ended(self._number(trial), "FAILED", error=error or "trial failed (no traceback recorded)")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.monitor.tick()


# --- running ---------------------------------------------------------------------------------------------------


def run_trials(cfg: ExperimentConfig, study: AskTellStudy, data: SearchData, storage: Path, monitor: Any,
               trials: int) -> None:
    """Run ``trials`` trials of ``cfg`` on the connected Ray cluster; every event goes to ``monitor``."""
    settings = TrialSettings(cfg.trainer, cfg.deterministic, cfg.resources.threads, cfg.resources.gpus,
                             cfg.constraints)
    trainable = tune.with_resources(
        tune.with_parameters(trial_entry, data=data, settings=settings),
        {"cpu": cfg.resources.cpus, "gpu": cfg.resources.gpus},
    )
    searcher = _OptunaSearcher(study, cfg)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=cfg.metric.name,
            mode=cfg.metric.mode,
            search_alg=searcher,
            scheduler=make_scheduler(cfg.scheduler),
            num_samples=trials,
            max_concurrent_trials=cfg.budget.max_concurrent,
            time_budget_s=cfg.budget.time_budget_s,
            reuse_actors=True,  # one worker process runs many trials: ~7x less per-trial overhead
            trial_name_creator=lambda t: f"trial_{int(t.config['trial_number']):04d}",
            trial_dirname_creator=lambda t: f"trial_{int(t.config['trial_number']):04d}",
        ),
        run_config=tune.RunConfig(
            name=storage.name,
            storage_path=str(storage.parent.resolve()),
            verbose=0,
            callbacks=[_EventBridge(monitor)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    try:
        tuner.fit()
    finally:
        searcher.close_open_trials()
