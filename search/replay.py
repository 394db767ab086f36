"""``hypernas replay``: re-run one trial from what was recorded and compare its learning curve bit for bit.

By experiment name and trial number, from the experiment's journal (:mod:`search.journal`): the trial's
hyperparameters, seed, epochs run and per-epoch metrics; the config and environment from the experiment folder.
By MLflow run id: from the child run, the trial's hyperparameters (``hypernas.params``, typed JSON), seed, epochs
run; from its parent run, the experiment config (``config.yaml``), the data-split seed and the environment. The trial trains
again in this process with the same seed, data split, thread count and epochs, and every recorded per-epoch
metric is compared exactly (timings excluded: they measure the machine, not the computation).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from search import _mlflow
from search.config import ConfigError, ExperimentConfig, config_from_dict
from search.environment import capture_environment
from search.records import ExperimentRecords
from search.seeds import derive_seed
from search.workdir import existing_experiment, refuse_if_simulated
from spaces import load_yaml
from trainers import MemoryReporter, TrialSpec, resolve_trainer, search_data
from trainers.hardware import TIMING_METRICS, pick_device

# Environment keys whose difference can change floating-point results (hostname and user cannot).
_RESULT_RELEVANT = ("python", "torch_version", "numpy_version", "mnist1d_version", "cuda", "cudnn", "gpu", "cpu",
                    "platform", "hypernas_version", "git_commit", "git_dirty")


class _EnoughEpochs(Exception):
    """Stops the replay after the epochs the original trial ran (it may have been pruned early)."""


class _StoppingReporter(MemoryReporter):
    def __init__(self, stop_after: int) -> None:
        super().__init__()
        self.stop_after = stop_after

    def report(self, epoch: int, metrics: Mapping[str, float], state: Mapping[str, Any] | None = None) -> None:
        super().report(epoch, metrics, state)
        if epoch >= self.stop_after:
            raise _EnoughEpochs()


@dataclass
class ReplayResult:
    """The comparison: ``identical`` when every recorded value matched exactly."""

    run_id: str
    trial: int
    epochs: int
    compared: int
    differences: list[tuple[int, str, float | None, float | None]] = field(default_factory=list)
    environment_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences and self.compared > 0

    def table(self) -> str:
        rows = [f"{'epoch':>5}  {'metric':<14} {'recorded':>22} {'replayed':>22} {'difference':>12}"]
        for epoch, metric, recorded, replayed in self.differences:
            diff = "-" if recorded is None or replayed is None else f"{replayed - recorded:+.3e}"
            rows.append(f"{epoch:>5}  {metric:<14} {recorded!r:>22} {replayed!r:>22} {diff:>12}")
        return "\n".join(rows)


def child_run_for(workdir: str | Path, name: str, trial: int) -> tuple[str, str]:
    """``(tracking URI, child run id)`` of trial ``trial`` of experiment ``name`` in ``workdir``."""
    folder = existing_experiment(workdir, name)
    state = folder.read_state()
    runs = _mlflow.find_runs(state["tracking_uri"], state["mlflow_experiment"], state["parent_run_id"])
    for run in runs:
        if run.data.tags.get("hypernas.trial_number") == str(trial):
            return state["tracking_uri"], run.info.run_id
    known = sorted(int(r.data.tags["hypernas.trial_number"]) for r in runs if "hypernas.trial_number" in r.data.tags)
    raise ConfigError("--trial", f"experiment {name!r} has no trial {trial} in MLflow (trials: "
                                 f"{known[0]}..{known[-1]})" if known else f"experiment {name!r} has no trials in MLflow")


def replay_trial(workdir: str | Path, name: str, trial: int) -> ReplayResult:
    """Re-run trial ``trial`` of experiment ``name`` from its journal — configuration, seed, epochs run, device and
    per-epoch metrics as recorded there — with the experiment's config and the environment its state file kept.
    MLflow is not needed."""
    folder = existing_experiment(workdir, name)
    refuse_if_simulated(folder, "replay", "its trials replayed a table's curves; no training ran to replay")
    cfg = folder.load_config()
    records = ExperimentRecords.read(folder.path, cfg.metric.name, cfg.metric.mode)
    record = records.trials.get(trial)
    if record is None:
        known = sorted(records.trials)
        raise ConfigError("--trial", f"experiment {name!r} has no trial {trial} in its journal (trials: "
                                     f"{known[0]}..{known[-1]})" if known else f"experiment {name!r} has no trials yet")
    recorded = {(epoch, metric): value for (number, epoch), row in records.curves.items() if number == trial
                for metric, value in row.items()
                if metric not in ("trial", "epoch", "time_s", *TIMING_METRICS) and 1 <= epoch <= record.epochs_run}
    environment = folder.read_state().get("environment") or {}
    params = {k: v for k, v in record.params.items() if k != "epochs"}  # the budget, not a trainer hyperparameter
    return _replay(cfg, f"journal:{name}/{trial}", trial, params, record.epochs, record.epochs_run,
                   record.seed, derive_seed(cfg.seed, "data"), record.device, recorded, _changes(environment))


def replay_run(uri: str, run_id: str) -> ReplayResult:
    """Re-run the trial of child run ``run_id`` and compare its per-epoch metrics with the recorded ones."""
    client = _mlflow.client_for(uri)
    try:
        child = client.get_run(run_id)
    except Exception as err:  # noqa: BLE001 - MLflow raises several types for unknown ids
        raise ConfigError("run_id", f"no MLflow run {run_id!r} at {uri} ({type(err).__name__})") from None
    tags = child.data.tags
    if "hypernas.trial_number" not in tags or _mlflow.PARENT_ID_TAG not in tags:
        raise ConfigError("run_id", f"run {run_id} is not a hypernas trial run (no hypernas.trial_number tag)")
    parent = client.get_run(tags[_mlflow.PARENT_ID_TAG])
    cfg = config_from_dict(load_yaml(_mlflow.read_text_artifact(client, parent.info.run_id, "config.yaml")))
    params = _trial_params(cfg, child)
    epochs = int(params.pop("epochs", cfg.epochs_for(params, int(tags["hypernas.trial_number"]))))
    epochs_run = int(tags.get("hypernas.epochs_run", epochs))
    data_seed = int(parent.data.tags.get("hypernas.data_seed", derive_seed(cfg.seed, "data")))
    return _replay(cfg, run_id, int(tags["hypernas.trial_number"]), params, epochs, epochs_run,
                   int(tags["hypernas.seed"]), data_seed, tags.get("hypernas.device"),
                   _recorded_curves(client, run_id, epochs_run), _environment_changes(client, parent.info.run_id))


def _replay(cfg: ExperimentConfig, source: str, trial: int, params: dict[str, Any], epochs: int, epochs_run: int,
            seed: int, data_seed: int, recorded_device: str | None, recorded: dict[tuple[int, str], float],
            environment_changes: dict[str, tuple[Any, Any]]) -> ReplayResult:
    """Train the trial again in this process and compare every recorded per-epoch value exactly."""
    result = ReplayResult(source, trial, epochs_run, 0, environment_changes=environment_changes)
    if not cfg.deterministic:
        result.notes.append("the experiment ran with deterministic: false — bit-identical replay is not expected")
    on_gpu = recorded_device is not None and recorded_device != "cpu"
    device = pick_device(on_gpu)
    if on_gpu and device == "cpu":
        result.notes.append(f"recorded on {recorded_device}; replaying on the CPU (curves may differ)")
    spec = TrialSpec(params, search_data(cfg.data, data_seed), epochs, seed, device=device,
                     threads=cfg.resources.threads, deterministic=cfg.deterministic, trial_number=trial)
    reporter = _StoppingReporter(epochs_run)
    try:
        if cfg.resources.batched:  # trained in a vectorised batch: replayed through the same path, on its own
            if on_gpu:
                result.notes.append("a batched trial's results are independent of its companions bit for bit on the "
                                    "CPU only: on a GPU, replayed alone, its curve may differ in the last bits")
            from trainers.batched import train_alone

            train_alone(cfg.trainer)(spec, reporter)
        else:
            resolve_trainer(cfg.trainer_for(trial)).train(spec, reporter)
    except _EnoughEpochs:
        pass
    replayed = {row["epoch"]: row for row in reporter.history}
    for (epoch, metric), value in sorted(recorded.items()):
        result.compared += 1
        again = replayed.get(epoch, {}).get(metric)
        if again is None or again != value:
            result.differences.append((epoch, metric, value, again))
    return result


def _trial_params(cfg: ExperimentConfig, child: Any) -> dict[str, Any]:
    typed = child.data.tags.get("hypernas.params")
    if typed:
        return json.loads(typed)
    return cfg.space.parse_strings(child.data.params)  # runs logged without the typed copy


def _recorded_curves(client: Any, run_id: str, epochs_run: int) -> dict[tuple[int, str], float]:
    names = [m for m in client.get_run(run_id).data.metrics if m not in TIMING_METRICS]
    curves: dict[tuple[int, str], float] = {}
    for name in names:
        for point in client.get_metric_history(run_id, name):
            if 1 <= point.step <= epochs_run:
                curves[point.step, name] = point.value
    return curves


def _environment_changes(client: Any, parent_run_id: str) -> dict[str, tuple[Any, Any]]:
    try:
        recorded = json.loads(_mlflow.read_text_artifact(client, parent_run_id, "environment.json"))
    except Exception:  # noqa: BLE001 - an older run without the artifact: nothing to compare
        return {}
    return _changes(recorded)


def _changes(recorded: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Result-relevant differences between the ``recorded`` environment and this one (none if nothing recorded)."""
    if not recorded:
        return {}
    now = capture_environment()
    return {k: (recorded.get(k), now.get(k)) for k in _RESULT_RELEVANT if recorded.get(k) != now.get(k)}


def default_uri(workdir: str | Path, given: str | None) -> str:
    if given:
        return given
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(workdir) / 'mlflow.db').resolve()}"
