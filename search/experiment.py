"""Running an experiment end to end: config → data → Ray Tune trials → Parquet + MLflow → summary.

The public entry point is :func:`run_experiment` (the CLI's ``hypernas run`` is a thin wrapper around it).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

from search import _mlflow
from search._optuna import AskTellStudy, grid_size
from search.config import ConfigError, ExperimentConfig, load_config
from search.environment import capture_environment
from search.events import EVENTS_FILE, EventLog
from search.events import JOURNAL_FILE as EVENTS_JOURNAL
from search.monitor import Monitor, snapshots
from search.progress import ProgressView, summary_table
from search.redaction import redact, redact_text
from spaces import dump_yaml
from search.records import CURVES_FILE, TRIALS_FILE, ExperimentRecords
from search.records import JOURNAL_FILE as RECORDS_JOURNAL
from search.seeds import derive_seed
from search.workdir import DEFAULT_WORKDIR, ExperimentFolder, existing_experiment
from trainers import search_data


@dataclass(frozen=True)
class ExperimentResult:
    """What a finished experiment produced and where to find it."""

    name: str
    folder: Path
    counts: Mapping[str, int]
    best: Mapping[str, Any] | None
    tracking_uri: str
    mlflow_experiment: str
    parent_run_id: str
    trials_path: Path
    curves_path: Path
    events_path: Path
    notes: tuple[str, ...] = field(default=())


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= _flat(f"{prefix}.{key}" if prefix else str(key), inner)
        return out
    return {prefix: value}


def _parent_params(cfg: ExperimentConfig) -> dict[str, Any]:
    resolved = redact(cfg.to_dict())
    resolved.pop("space")
    params = {k: v for k, v in _flat("", resolved).items() if v is not None}
    return params | {"space.fingerprint": cfg.space.fingerprint, "space.size": len(cfg.space)}


def trial_budget(cfg: ExperimentConfig) -> tuple[int, tuple[str, ...]]:
    """Trials to run, and notes: a grid runs each point once, so its budget is capped at the grid's size."""
    if cfg.searcher.type == "grid":
        size = grid_size(cfg.space)
        if size < cfg.budget.trials:
            return size, (f"grid has {size} points: running {size} trials, not budget.trials={cfg.budget.trials}",)
    return cfg.budget.trials, ()


def run_experiment(
    config: str | Path | Mapping[str, Any] | ExperimentConfig,
    *,
    workdir: str | Path = DEFAULT_WORKDIR,
    name: str | None = None,
    seed: int | None = None,
    overrides: Iterable[str] = (),
    overwrite: bool = False,
    address: str | None = None,
    stream: TextIO | None = None,
) -> ExperimentResult:
    """Run one experiment and return where its results are.

    ``config`` is a YAML path, a dict in the same form, or an :class:`ExperimentConfig`; ``overrides`` are
    ``key=value`` strings like the CLI's ``--set``. Ray: joins ``address``/``RAY_ADDRESS`` if given, else reuses
    an initialised Ray, else starts a private local instance. Raises :class:`ConfigError` (nothing created)
    for bad input.

    >>> from search import run_experiment                                        # doctest: +SKIP
    >>> result = run_experiment("examples/quickstart.yaml", overrides=["budget.trials=4"])  # doctest: +SKIP
    >>> result.best["params"], result.trials_path                                 # doctest: +SKIP
    """
    stream = stream or sys.stdout
    cfg = load_config(config, overrides=overrides, name=name, seed=seed)
    workdir = Path(workdir).resolve()
    folder = ExperimentFolder(workdir, cfg.name)
    if folder.path.exists() and not overwrite:
        raise ConfigError("name", f"experiment {cfg.name!r} already exists in {workdir}; choose another --name, "
                                  "or pass --overwrite to replace it")
    try:
        data = search_data(cfg.data, derive_seed(cfg.seed, "data"))  # test rows are dropped inside
    except ValueError as err:  # unreadable or unusable user data is bad input too
        raise ConfigError("data", str(err)) from None
    trials, notes = trial_budget(cfg)

    from search._tune import describe_cluster, ensure_ray, run_trials, unplaceable  # ray loads only when needed

    stream.write(f"ray: {describe_cluster(ensure_ray(address))}\n")
    why = unplaceable(cfg.resources.ray_request())
    if why is not None:  # fail now, instead of trials waiting forever for a node that does not exist
        raise ConfigError("resources", why)
    workdir.mkdir(parents=True, exist_ok=True)
    uri = _mlflow.resolve_tracking_uri(cfg.tracking.uri, workdir)
    mlflow_experiment = cfg.tracking.experiment or cfg.name
    tracker = _mlflow.TrackingWriter(uri, mlflow_experiment, _mlflow.default_artifact_location(uri, workdir))
    if folder.path.exists():
        _supersede(folder, uri)
        shutil.rmtree(folder.path)
    folder.path.mkdir(parents=True)
    config_yaml = cfg.to_yaml()
    folder.config_file.write_text(config_yaml)
    environment = capture_environment()
    parent_run_id = tracker.start(
        run_name=cfg.name,
        params=_parent_params(cfg),
        tags={"hypernas.role": "experiment", "hypernas.name": cfg.name, "hypernas.experiment_seed": cfg.seed,
              "hypernas.data_seed": derive_seed(cfg.seed, "data"), "hypernas.sampler_seed": derive_seed(cfg.seed, "sampler"),
              "hypernas.reproducible": cfg.reproducible.mode,
              "hypernas.space_fingerprint": cfg.space.fingerprint, "hypernas.state": "RUNNING",
              **{f"hypernas.env.{k}": v for k, v in environment.items() if v is not None}},
        texts={"config.yaml": dump_yaml(redact(cfg.to_dict())),
               "space.json": json.dumps(redact(cfg.space.to_dict()), indent=2),
               "environment.json": json.dumps(environment, indent=2)},
    )
    folder.write_state(name=cfg.name, status="running", tracking_uri=uri, mlflow_experiment=mlflow_experiment,
                       mlflow_experiment_id=tracker.experiment_id, parent_run_id=parent_run_id,
                       started_at=time.time(), trials_planned=trials, environment=environment)
    study = AskTellStudy.create(cfg.name, cfg.space, cfg.searcher, derive_seed(cfg.seed, "sampler"), cfg.metric.mode,
                                folder.study_file, constrained=bool(cfg.constraints))
    records = _new_records(cfg, folder)
    for note in notes:
        stream.write(f"note: {note}\n")
    return _execute(cfg, folder, data, study, records, EventLog(folder.path / EVENTS_JOURNAL), tracker, trials,
                    notes, stream, run_trials)


def _new_records(cfg: ExperimentConfig, folder: ExperimentFolder) -> ExperimentRecords:
    return ExperimentRecords(cfg.metric.name, cfg.metric.mode, cfg.constraints, cfg.tolerance.straggler_factor,
                             journal=folder.path / RECORDS_JOURNAL)


def _execute(cfg: ExperimentConfig, folder: ExperimentFolder, data: Any, study: AskTellStudy,
             records: ExperimentRecords, events: EventLog, tracker: _mlflow.TrackingWriter, trials: int,
             notes: tuple[str, ...], stream: TextIO, run_trials: Any, *, resume: bool = False,
             logged_epochs: Mapping[int, int] | None = None) -> ExperimentResult:
    """Run (or resume) the trials, then close everything: Parquet, MLflow parent, state — whatever happened."""
    monitor = Monitor(records, events, tracker, ProgressView(trials, cfg.metric.name, stream), folder.path,
                      logged_epochs)
    running_before = {n for n, r in records.trials.items() if r.state == "RUNNING"}
    status, orphans = "failed", set()
    try:
        known = run_trials(cfg, study, data, folder.tune_dir, monitor, trials, restore=resume)
        # trials the crashed driver had started but Tune never recorded: they were not re-run and will not be
        orphans = running_before - set(known) if resume else set()
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        trials_path, curves_path, events_path = monitor.finish(orphans=orphans)
        records.close()
        events.close()
        best = records.best()
        counts = records.counts()
        for path in (trials_path, curves_path, events_path):
            tracker.parent_artifact(path)
        tracker.parent_tags({"hypernas.state": status.upper(), "hypernas.best_trial": best.number if best else "none",
                             **{f"hypernas.trials.{k.lower()}": v for k, v in counts.items()}})
        if best is not None:
            tracker.parent_metrics({f"best_{cfg.metric.name}": best.last_value})
        tracker.close("FINISHED" if status == "finished" else "FAILED")
        complete = tracker.dropped == 0 or _try_backfill(folder, records, stream)
        folder.write_state(status=status, ended_at=time.time(), counts=counts,
                           best_trial=best.number if best else None, tracking_errors=tracker.errors,
                           tracking_complete=complete)

    state = folder.read_state()
    best_row = next((r for r in records.trial_rows() if best and r["number"] == best.number), None)
    result = ExperimentResult(
        name=cfg.name, folder=folder.path, counts=counts, best=best_row and {**best_row, "params": best.params},
        tracking_uri=state["tracking_uri"], mlflow_experiment=state["mlflow_experiment"],
        parent_run_id=state["parent_run_id"], trials_path=trials_path, curves_path=curves_path,
        events_path=events_path, notes=notes,
    )
    stream.write(summary_table(summary_info(result, cfg)) + "\n")
    stream.flush()
    return result


def _try_backfill(folder: ExperimentFolder, records: ExperimentRecords, stream: TextIO) -> bool:
    """After a tracking outage: write what MLflow missed, if it answers now. True when MLflow is complete."""
    try:
        counts = sync_tracking(folder, records)
    except Exception as err:  # noqa: BLE001 - still unreachable: the records are complete, sync later
        stream.write(f"note: MLflow missed some writes and is still unreachable ({type(err).__name__}); "
                     f"run `hypernas sync {folder.name}` when it is back\n")
        return False
    stream.write(f"note: MLflow back-filled after an outage: {counts}\n")
    return True


def sync_tracking(folder: ExperimentFolder, records: ExperimentRecords | None = None) -> dict[str, int]:
    """Back-fill MLflow from the experiment's records (runs, per-epoch metrics, final tags, parent artifacts).
    Idempotent; raises when the tracking store is unreachable."""
    state = folder.read_state()
    if records is None:
        cfg = folder.load_config()
        records = ExperimentRecords.load(folder.path / RECORDS_JOURNAL, cfg.metric.name, cfg.metric.mode,
                                         cfg.constraints, cfg.tolerance.straggler_factor)
        records.close()
    _, counts = _mlflow.backfill(state["tracking_uri"], state["mlflow_experiment"], state["parent_run_id"],
                                 snapshots(records))
    paths = [folder.path / name for name in (TRIALS_FILE, CURVES_FILE, EVENTS_FILE)]
    _mlflow.upload_artifacts(state["tracking_uri"], state["parent_run_id"], [p for p in paths if p.is_file()])
    if state.get("status") != "running":
        _mlflow.finish_parent(state["tracking_uri"], state["parent_run_id"],
                              "FINISHED" if state.get("status") == "finished" else "FAILED")
    folder.write_state(tracking_complete=True)
    return counts


def resume_experiment(workdir: str | Path, name: str, *, address: str | None = None,
                      stream: TextIO | None = None) -> ExperimentResult:
    """Finish an experiment whose driver died: completed trials stay, running ones continue from their
    checkpoints, the sampler keeps its history, MLflow runs are reattached (and back-filled), and the trial
    count ends at the budget."""
    stream = stream or sys.stdout
    folder = existing_experiment(Path(workdir).resolve(), name)
    state = folder.read_state()
    if state.get("status") == "finished":
        raise ConfigError("name", f"experiment {name!r} has finished; nothing to resume")
    cfg = folder.load_config()
    data = search_data(cfg.data, derive_seed(cfg.seed, "data"))
    trials, notes = trial_budget(cfg)

    from search._tune import describe_cluster, ensure_ray, run_trials

    stream.write(f"ray: {describe_cluster(ensure_ray(address))}\n")
    records = ExperimentRecords.load(folder.path / RECORDS_JOURNAL, cfg.metric.name, cfg.metric.mode,
                                     cfg.constraints, cfg.tolerance.straggler_factor)
    events = EventLog.load(folder.path / EVENTS_JOURNAL)
    study = AskTellStudy.load(cfg.name, cfg.space, cfg.searcher, derive_seed(cfg.seed, "sampler"), folder.study_file,
                              constrained=bool(cfg.constraints))
    tracker = _mlflow.TrackingWriter(state["tracking_uri"], state["mlflow_experiment"], None)
    tracker.start(run_name=cfg.name, params={}, tags={}, texts={}, resume_run_id=state["parent_run_id"])
    run_ids, counts = _mlflow.backfill(state["tracking_uri"], state["mlflow_experiment"], state["parent_run_id"],
                                       snapshots(records))  # MLflow now holds everything recorded before the crash
    for number, run_id in run_ids.items():
        tracker.adopt(number, run_id)
    stream.write(f"resuming {name}: {len(records.trials)} trials recorded, MLflow back-filled {counts}\n")
    folder.write_state(status="running", resumed_at=time.time())
    logged = {}
    for number, epoch in records.curves:
        logged[number] = max(logged.get(number, 0), epoch)
    return _execute(cfg, folder, data, study, records, events, tracker, trials, notes, stream, run_trials,
                    resume=True, logged_epochs=logged)


def _supersede(folder: ExperimentFolder, uri: str) -> None:
    """Mark the replaced experiment's MLflow parent run, so the UI tells the old run from the new one."""
    if not folder.state_file.is_file():
        return
    old = folder.read_state()
    if old.get("parent_run_id") and old.get("tracking_uri") == uri:
        try:
            _mlflow.log_to_run(uri, old["parent_run_id"], tags={"hypernas.superseded": "true"})
        except Exception as err:  # noqa: BLE001 - a missing old run must not block the new experiment
            sys.stderr.write(f"note: could not mark the replaced MLflow run {old['parent_run_id']}: {err}\n")


def summary_info(result: ExperimentResult, cfg: ExperimentConfig) -> dict[str, Any]:
    best = result.best
    where = "" if result.folder.parent == Path(DEFAULT_WORKDIR) else f" --workdir {result.folder.parent}"
    counts = ", ".join(f"{k.lower()} {v}" for k, v in result.counts.items() if v)
    return {
        "experiment": result.name,
        "trials": counts or "none",
        "best trial": best and f"{best['number']}  {cfg.metric.name}={best['last_value']:.4f}  (seed {best['seed']})",
        "best params": best and json.dumps(redact(best["params"]), sort_keys=True),
        "MLflow": f"experiment '{result.mlflow_experiment}', parent run {result.parent_run_id}",
        "tracking URI": redact_text(result.tracking_uri),
        "trials table": str(result.trials_path),
        "curves table": str(result.curves_path),
        "decision log": str(result.events_path),
        "next": f"hypernas best {result.name}{where} | hypernas test {result.name}{where} | hypernas ui{where}",
    }
