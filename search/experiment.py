"""Running an experiment end to end: config → data → Ray Tune trials → Parquet + MLflow → summary.

The public entry point is :func:`run_experiment` (the CLI's ``hypernas run`` is a thin wrapper around it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

from search import _mlflow, accounting
from search._optuna import AskTellStudy
from search.config import SEARCH_PHASE, ConfigError, ExperimentConfig, load_config, tracking_uri_rule
from search.environment import capture_environment
from search.events import EVENTS_FILE, EventLog
from search.interruption import Interrupted, SignalGuard
from search.journal import JOURNAL_FILE, Journal
from search.monitor import NOTE_TAG, Monitor, experiment_end, snapshots
from search.plots import PLOTS_DIR
from search.oneshot import OneShotStudy, search_summary
from search.progress import ProgressView, summary_table
from search.redaction import redact, redact_text
from spaces import dump_yaml
from search.records import CURVES_FILE, TRIALS_FILE, ExperimentRecords
from search.sealing import split_change_warnings
from search.seeds import derive_seed
from search.workdir import (DEFAULT_WORKDIR, ExperimentFolder, existing_experiment, hold_experiment,
                            refuse_if_simulated, refuse_taken_name, write_json_atomic)
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
    status: str = "finished"  # or "interrupted" (then raised with :class:`~search.interruption.Interrupted`)


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
    if cfg.oneshot is not None:  # the searches, then at most budget.trials retrains
        return cfg.oneshot.search_seeds + cfg.budget.trials, ()
    cap = cfg.searcher.max_trials(cfg.space)
    if cap is not None and cap < cfg.budget.trials:
        return cap, (f"{cfg.searcher.type} has {cap} points: running {cap} trials, not budget.trials={cfg.budget.trials}",)
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
    for bad input, and :class:`~search.interruption.Interrupted` (a ``KeyboardInterrupt``; ``.result`` holds what
    was recorded) when Ctrl-C or SIGTERM stopped the trials: :func:`resume_experiment` continues them.

    >>> from search import run_experiment                                        # doctest: +SKIP
    >>> result = run_experiment("examples/quickstart.yaml", overrides=["budget.trials=4"])  # doctest: +SKIP
    >>> result.best["params"], result.trials_path                                 # doctest: +SKIP
    """
    stream = stream or sys.stdout
    cfg = load_config(config, overrides=overrides, name=name, seed=seed)
    workdir = Path(workdir).resolve()
    folder = ExperimentFolder(workdir, cfg.name)
    refuse_taken_name(folder, overwrite)
    if folder.path.exists():  # --overwrite of an experiment another process holds: refused before Ray starts
        with hold_experiment(workdir, cfg.name):
            pass
    try:
        data = search_data(cfg.data, derive_seed(cfg.seed, "data"))  # test rows are dropped inside
    except ValueError as err:  # unreadable or unusable user data is bad input too
        raise ConfigError("data", str(err)) from None
    for warning in split_change_warnings(workdir, cfg.data):  # test rows that other splits trained on
        stream.write(f"warning: {warning}\n")
    if cfg.tracking.uri is None and os.environ.get("MLFLOW_TRACKING_URI"):  # checked like tracking.uri, before Ray
        tracking_uri_rule("MLFLOW_TRACKING_URI", os.environ["MLFLOW_TRACKING_URI"])
    trials, notes = trial_budget(cfg)

    from search._tune import configure  # ray loads only when needed, and after its environment is set

    configure()
    # every module the driver needs from here on is imported before Ray starts: a `ray job submit` driver's
    # working directory is Ray's copy, which Ray may replace once the driver has joined
    from search._tune import describe_cluster, ensure_ray, run_trials, unplaceable

    stream.write(f"ray: {describe_cluster(ensure_ray(address))}\n")
    why = unplaceable(cfg.resources.ray_request())
    if why is not None:  # fail now, instead of trials waiting forever for a node that does not exist
        raise ConfigError("resources", why)
    with hold_experiment(workdir, cfg.name):
        return _run_held(cfg, workdir, folder, overwrite, data, trials, notes, stream, run_trials)


def _run_held(cfg: ExperimentConfig, workdir: Path, folder: ExperimentFolder, overwrite: bool, data: Any,
              trials: int, notes: tuple[str, ...], stream: TextIO, run_trials: Any) -> ExperimentResult:
    """``run_experiment`` once it holds the experiment (:func:`~search.workdir.hold_experiment`)."""
    refuse_taken_name(folder, overwrite)  # again: another process may have made it meanwhile
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
    parent_run_id = tracker.start(run_name=cfg.name, **parent_start(cfg, environment))
    folder.write_state(name=cfg.name, status="running", tracking_uri=uri, mlflow_experiment=mlflow_experiment,
                       mlflow_experiment_id=tracker.experiment_id, parent_run_id=parent_run_id,
                       started_at=time.time(), trials_planned=trials, environment=environment)
    records, events = experiment_views(cfg, Journal(folder.path / JOURNAL_FILE))
    study = make_study(cfg, folder, records, events)
    for note in notes:
        stream.write(f"note: {note}\n")
    return _execute(cfg, folder, data, study, records, events, tracker, trials, notes, stream, run_trials)


def parent_start(cfg: ExperimentConfig, environment: Mapping[str, Any], extra_tags: Mapping[str, Any] = {},
                 status: str = "Running.") -> dict[str, Any]:
    """The parent run's params, tags and text artifacts when it is created (``TrackingWriter.start``'s keywords)."""
    return {
        "params": _parent_params(cfg),
        "tags": {"hypernas.role": "experiment", "hypernas.name": cfg.name, "hypernas.experiment_seed": cfg.seed,
                 "hypernas.data_seed": derive_seed(cfg.seed, "data"), "hypernas.split_seed": cfg.data.split_seed,
                 "hypernas.sampler_seed": derive_seed(cfg.seed, "sampler"),
                 "hypernas.reproducible": cfg.reproducible.mode,
                 "hypernas.space_fingerprint": cfg.space.fingerprint, "hypernas.state": "RUNNING",
                 NOTE_TAG: describe_experiment(cfg) + f"\n\n**{status}**",
                 **{f"hypernas.env.{k}": v for k, v in environment.items() if v is not None}, **extra_tags},
        "texts": {"config.yaml": dump_yaml(redact(cfg.to_dict())),
                  "space.json": json.dumps(redact(cfg.space.to_dict()), indent=2),
                  "environment.json": json.dumps(environment, indent=2)},
    }


def make_study(cfg: ExperimentConfig, folder: ExperimentFolder, records: ExperimentRecords, events: EventLog,
               load: bool = False) -> Any:
    """The ask/tell study the searcher drives: an Optuna study over the space, or for a one-shot experiment its two
    phases (:class:`search.oneshot.OneShotStudy`). ``load``: an interrupted experiment's, with its history."""
    if cfg.oneshot is not None:
        def searches() -> list[Any]:
            return [r for r in records.trials.values() if r.phase == SEARCH_PHASE]

        if load:
            return OneShotStudy.load(cfg, folder.study_file, searches, events)
        return OneShotStudy(cfg, folder.study_file, searches)
    if load:
        return AskTellStudy.load(cfg.name, cfg.space, cfg.searcher, derive_seed(cfg.seed, "sampler"),
                                 folder.study_file, constrained=bool(cfg.constraints))
    return AskTellStudy.create(cfg.name, cfg.space, cfg.searcher, derive_seed(cfg.seed, "sampler"),
                               [o.mode for o in cfg.objective_list], folder.study_file,
                               constrained=bool(cfg.constraints))


def experiment_views(cfg: ExperimentConfig, journal: Journal,
                     entries: Iterable[Mapping[str, Any]] = ()) -> tuple[ExperimentRecords, EventLog]:
    """The records and the decision log of one experiment: two views of ``journal``, its single writer, rebuilt
    from the ``entries`` it holds so far."""
    entries = list(entries)
    records = ExperimentRecords(cfg.metric.name, cfg.metric.mode, cfg.constraints, cfg.tolerance.straggler_factor,
                                journal=journal, objectives=cfg.objectives)
    events = EventLog(journal)
    records.replay(entries)
    events.replay(entries)
    return records, events


def read_records(folder: ExperimentFolder, cfg: ExperimentConfig | None = None) -> ExperimentRecords:
    """The records of the experiment in ``folder``, from its journal (read only)."""
    cfg = cfg or folder.load_config()
    return ExperimentRecords.read(folder.path, cfg.metric.name, cfg.metric.mode, cfg.constraints,
                                  cfg.tolerance.straggler_factor, objectives=cfg.objectives)


def _execute(cfg: ExperimentConfig, folder: ExperimentFolder, data: Any, study: AskTellStudy,
             records: ExperimentRecords, events: EventLog, tracker: _mlflow.TrackingWriter, trials: int,
             notes: tuple[str, ...], stream: TextIO, run_trials: Any, *, resume: bool = False,
             logged_epochs: Mapping[int, int] | None = None) -> ExperimentResult:
    """Run (or resume) the trials, then close everything: Parquet, MLflow parent, state — whatever happened.

    SIGINT/SIGTERM: Tune stops gracefully, the trials that were running are recorded INTERRUPTED (left open in
    Optuna, MLflow runs KILLED), everything is closed as usual with status ``interrupted``, and
    :class:`Interrupted` is raised (exit code 130/143), naming ``hypernas resume``."""
    monitor = Monitor(records, events, tracker, ProgressView(trials, cfg.metric.name, stream), folder.path,
                      logged_epochs)
    running_before = {n for n, r in records.trials.items() if r.state in ("RUNNING", "INTERRUPTED")}
    status, orphans = "failed", set()
    with SignalGuard() as signals:
        try:
            known = run_trials(cfg, study, data, folder.tune_dir, monitor, trials, restore=resume, signals=signals)
            if signals.signum is None:
                # trials the crashed driver had started but Tune never recorded: they were not re-run, nor will be
                orphans = running_before - set(known) if resume else set()
            status = "finished" if signals.signum is None else "interrupted"
        except KeyboardInterrupt:  # a second signal, or one before Tune could stop gracefully
            status = "interrupted"
        finally:
            # Closing is bounded; a first signal now lets it end, a second one stops at once.
            with signals.on_first_signal(lambda: True):
                counts, best, trials_path, curves_path, events_path = _close(
                    cfg, folder, records, events, tracker, monitor, status, orphans, stream)
        signum = signals.signum or signal.SIGINT

    state = folder.read_state()
    best_row = next((r for r in records.trial_rows() if best and r["number"] == best.number), None)
    result = ExperimentResult(
        name=cfg.name, folder=folder.path, counts=counts, best=best_row and {**best_row, "params": best.params},
        tracking_uri=state["tracking_uri"], mlflow_experiment=state["mlflow_experiment"],
        parent_run_id=state["parent_run_id"], trials_path=trials_path, curves_path=curves_path,
        events_path=events_path, notes=notes, status=status,
    )
    stream.write(redact(summary_table(summary_info(result, cfg, records))) + "\n")
    stream.flush()
    if status == "interrupted":
        interrupted = counts.get("INTERRUPTED", 0)
        raise Interrupted(signum, f"interrupted by {signal.Signals(signum).name}: {interrupted} running "
                                  f"trial{'s' if interrupted != 1 else ''} recorded INTERRUPTED, records and MLflow "
                                  f"saved; continue with: {resume_command(result)}", result)
    return result


def _close(cfg: ExperimentConfig, folder: ExperimentFolder, records: ExperimentRecords, events: EventLog,
           tracker: _mlflow.TrackingWriter, monitor: Monitor, status: str, orphans: set[int],
           stream: TextIO) -> tuple[dict[str, int], Any, Path, Path, Path]:
    """After the trials ran, or stopped: close the trials, records, MLflow and state, whatever happened."""
    trials_path, curves_path, events_path = monitor.finish(orphans=orphans, interrupted=status == "interrupted")
    records.journal.close()  # the views' one writer (fsync-ed on close)
    best = records.best()
    counts = records.counts()
    for path in (trials_path, curves_path, events_path):
        tracker.parent_artifact(path)
    parent_tags, parent_metrics = experiment_end(records, status, cfg.energy.grid_gco2_per_kwh, folder.read_audit(),
                                                 cfg.select, about=describe_experiment(cfg))
    if records.objectives:
        table, plots = front_artifacts(records, folder)
        tracker.parent_table(PARETO_FILE, table)
        for path in plots:
            tracker.parent_artifact(path)
    for path in draw_plots(cfg, folder, records, events, stream):
        tracker.parent_artifact(path, PLOTS_DIR)
    tracker.parent_tags(parent_tags)
    if parent_metrics:
        tracker.parent_metrics(parent_metrics)
    # complete: every write landed, or the back-fill from the records wrote what did not. Interrupted, the user (or
    # a service manager: SIGTERM, then SIGKILL) is waiting: bounded, no back-fill — `hypernas resume` does it.
    interrupted = status == "interrupted"
    complete = tracker.close(_PARENT_STATUS.get(status, "FAILED"),
                             timeout_s=INTERRUPTED_FLUSH_S if interrupted else None)
    if not complete and not interrupted:
        complete = _try_backfill(folder, records, stream, status)
    folder.write_state(status=status, ended_at=time.time(), counts=counts,
                       best_trial=best.number if best else None, tracking_errors=tracker.errors,
                       tracking_dropped=tracker.dropped, tracking_unflushed=tracker.unflushed,
                       tracking_complete=complete)
    return counts, best, trials_path, curves_path, events_path


# experiment status -> the MLflow status of its parent run
_PARENT_STATUS = {"finished": "FINISHED", "interrupted": "KILLED"}
INTERRUPTED_FLUSH_S = 20.0  # how long an interrupted experiment waits for MLflow (within a 30 s SIGTERM grace)


PARETO_FILE = "pareto_front.json"


def describe_experiment(cfg: ExperimentConfig) -> str:
    """What an experiment is, in a few lines of Markdown: the parent run's description in the MLflow UI."""
    objectives = ", ".join(f"{o.name} ({o.mode})" for o in cfg.objective_list)
    space = ", ".join(cfg.space.order)
    return (f"**hypernas experiment `{cfg.name}`**: trainer `{cfg.trainer}` on {cfg.data.name}, "
            f"{cfg.budget.trials} trials ({cfg.searcher.type} searcher, {cfg.scheduler.type} early stopping over "
            f"{cfg.scheduler.max_epochs} epochs), {'objectives' if cfg.multi_objective else 'objective'} "
            f"{objectives}; seed {cfg.seed}. Space: {space}.")


def front_artifacts(records: ExperimentRecords, folder: ExperimentFolder) -> tuple[dict[str, list], list[Path]]:
    """A multi-objective experiment's Pareto front for its parent run: the table (one row per front trial: number,
    objective values, parameters with secrets masked; also written to the folder as ``pareto_front.json``, in
    MLflow's table format) and the plot(s) (:func:`search._optuna.front.plot_front`). A plot that fails leaves a
    note, never a failed experiment."""
    rows = records.trial_rows(redacted=True)
    front = [row for row in rows if row["pareto"]]
    table = {"trial": [row["number"] for row in front],
             **{o.name: [row["objective_values"].get(o.name) for row in front] for o in records.objectives},
             "params": [row["params"] for row in front]}
    write_json_atomic(folder.path / PARETO_FILE, {"columns": list(table), "data": [list(r) for r in zip(*table.values())]})
    try:
        from search._optuna.front import plot_front

        return table, plot_front(rows, records.objectives, folder.path, title=folder.name)
    except Exception as err:  # noqa: BLE001 - a picture must not fail the experiment's close
        sys.stderr.write(f"note: could not draw the Pareto front ({type(err).__name__}: {redact_text(str(err))})\n")
        return table, []


def draw_plots(cfg: ExperimentConfig, folder: ExperimentFolder, records: ExperimentRecords, events: EventLog,
               stream: TextIO) -> list[Path]:
    """The experiment's pictures (:mod:`search.plots`) in its folder; a failure to draw is a note, never an error."""
    try:
        from search.plots import experiment_plots

        paths, _ = experiment_plots(folder.path, cfg, records, events.rows, folder.study_file)
        return paths
    except Exception as err:  # noqa: BLE001 - e.g. matplotlib missing a font: the run's records are complete
        stream.write(f"note: the experiment's plots were not drawn ({type(err).__name__}: {redact_text(str(err))})\n")
        return []


def resume_command(result: ExperimentResult) -> str:
    """The command that continues ``result``'s experiment (``--workdir`` only when it is not the default)."""
    return f"hypernas resume {result.name}{_workdir_option(result.folder.parent)}"


def _workdir_option(workdir: Path) -> str:
    return "" if workdir.resolve() == Path(DEFAULT_WORKDIR).resolve() else f" --workdir {workdir}"


def _try_backfill(folder: ExperimentFolder, records: ExperimentRecords, stream: TextIO, status: str) -> bool:
    """After a tracking outage: write what MLflow missed, if it answers now. True when MLflow is complete (the
    back-fill ran to its end)."""
    try:
        counts = sync_tracking(folder, records, status)
    except Exception as err:  # noqa: BLE001 - still unreachable: the records are complete, sync later
        stream.write(f"note: MLflow missed some writes and is still unreachable ({type(err).__name__}); "
                     f"run `hypernas sync {folder.name}` when it is back\n")
        return False
    stream.write(f"note: MLflow back-filled after an outage: {counts}\n")
    return True


def sync_tracking(folder: ExperimentFolder, records: ExperimentRecords | None = None,
                  status: str | None = None) -> dict[str, int]:
    """Back-fill MLflow from the experiment's records (runs, per-epoch metrics, failure texts, final tags, parent
    artifacts; once the experiment has ended — ``status``, else the state's — the parent's final tags, metrics and
    status). Idempotent; raises when the tracking store is unreachable."""
    state = folder.read_state()
    status = status or state.get("status")
    if records is None:
        records = read_records(folder)
    _, counts = _mlflow.backfill(state["tracking_uri"], state["mlflow_experiment"], state["parent_run_id"],
                                 snapshots(records))
    paths = [folder.path / name for name in (TRIALS_FILE, CURVES_FILE, EVENTS_FILE)]
    if records.objectives and status != "running":
        table, plots = front_artifacts(records, folder)
        _mlflow.log_table(state["tracking_uri"], state["parent_run_id"], PARETO_FILE, table)
        paths += plots
    if status != "running":
        _mlflow.upload_artifacts(state["tracking_uri"], state["parent_run_id"],
                                 draw_plots(folder.load_config(), folder, records, EventLog.read(folder.path),
                                            sys.stderr), PLOTS_DIR)
    _mlflow.upload_artifacts(state["tracking_uri"], state["parent_run_id"], [p for p in paths if p.is_file()])
    if status != "running":
        cfg = folder.load_config()
        _mlflow.parent_end(state["tracking_uri"], state["parent_run_id"],
                           *experiment_end(records, status, cfg.energy.grid_gco2_per_kwh, folder.read_audit(),
                                           cfg.select, about=describe_experiment(cfg)))
        _mlflow.finish_parent(state["tracking_uri"], state["parent_run_id"], _PARENT_STATUS.get(status, "FAILED"))
    folder.write_state(tracking_complete=True)
    return counts


def resume_experiment(workdir: str | Path, name: str, *, address: str | None = None,
                      stream: TextIO | None = None) -> ExperimentResult:
    """Finish an experiment whose driver died or was interrupted (Ctrl-C, SIGTERM): completed trials stay, running
    and interrupted ones continue from their checkpoints, trials asked but never started run under their number,
    the sampler keeps its history, MLflow runs are reattached (and back-filled), and the trial count ends at the
    budget."""
    stream = stream or sys.stdout
    folder = existing_experiment(Path(workdir).resolve(), name)
    with hold_experiment(folder.workdir, folder.name):
        return _resume_held(folder, name, address, stream)


def _resume_held(folder: ExperimentFolder, name: str, address: str | None, stream: TextIO) -> ExperimentResult:
    """``resume_experiment`` once it holds the experiment (:func:`~search.workdir.hold_experiment`)."""
    refuse_if_simulated(folder, "resume", "a simulation is not resumed: simulate it again (the same seed gives the "
                                          "same result)")
    state = folder.read_state()
    if state.get("status") == "finished":
        raise ConfigError("name", f"experiment {name!r} has finished; nothing to resume")
    cfg = folder.load_config()
    data = search_data(cfg.data, derive_seed(cfg.seed, "data"))
    trials, notes = trial_budget(cfg)

    # before Ray starts: a journal this hypernas cannot read is refused with nothing started
    journal, entries = Journal.open(folder.path)  # a version-0 folder's two journals are copied into one first
    from search._tune import configure

    configure()  # before ray is imported
    from search._tune import describe_cluster, ensure_ray, run_trials

    stream.write(f"ray: {describe_cluster(ensure_ray(address))}\n")
    records, events = experiment_views(cfg, journal, entries)
    study = make_study(cfg, folder, records, events, load=True)
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
            sys.stderr.write(f"note: could not mark the replaced MLflow run {old['parent_run_id']}: {redact_text(str(err))}\n")


def summary_info(result: ExperimentResult, cfg: ExperimentConfig,
                 records: ExperimentRecords | None = None) -> dict[str, Any]:
    best = result.best
    where = _workdir_option(result.folder.parent)
    counts = ", ".join(f"{k.lower()} {v}" for k, v in result.counts.items() if v)
    # an interrupted experiment has budget left: it is resumed, not tested
    after = (f"{resume_command(result)}  (interrupted: finishes the budget)" if result.status == "interrupted"
             else f"hypernas best {result.name}{where} | hypernas test {result.name}{where} | "
                  f"hypernas report {result.name}{where} | hypernas ui {result.name}{where}")
    searches = [r for r in records.trials.values() if r.phase == SEARCH_PHASE] if records is not None else []
    spread = search_summary(searches) if searches else None
    return {
        "experiment": result.name,
        "trials": counts or "none",
        "one-shot": spread and (
            f"{spread['searches']} {cfg.oneshot.method} searches, {spread['completed']} completed"
            + (f": supernet {cfg.metric.name} {spread['mean']:.4f} ± {spread['std']:.4f} "
               f"(min {spread['min']:.4f}, max {spread['max']:.4f})" if spread["completed"] else "")
            + f"; {spread['distinct_genotypes']} distinct genotypes, top {cfg.oneshot.top_k} retrained"),
        "best trial": best and f"{best['number']}  {cfg.metric.name}={best['last_value']:.4f}  (seed {best['seed']})",
        "best params": best and json.dumps(redact(best["params"]), sort_keys=True),
        "Pareto front": (
            f"trials {', '.join(str(r['number']) for r in records.pareto_front()) or 'none'} "
            f"({', '.join(f'{o.name} {o.mode}' for o in records.objectives)}): hypernas best {result.name}{where}"
        ) if records is not None and records.objectives else None,
        "energy": records is not None and accounting.describe(
            accounting.energy_summary(records.energy_totals(), (), cfg.energy.grid_gco2_per_kwh)),
        "MLflow": f"experiment '{result.mlflow_experiment}', parent run {result.parent_run_id}",
        "tracking URI": redact_text(result.tracking_uri),
        "trials table": str(result.trials_path),
        "curves table": str(result.curves_path),
        "decision log": str(result.events_path),
        "next": after,
    }
