"""``hypernas simulate``: an experiment's searcher and scheduler over recorded learning curves, on a simulated clock.

:func:`simulate_experiment` runs the experiment's own Optuna sampler and Ray scheduler classes
(:mod:`search._tune._simulator`) against a table of curves (:mod:`search.simulation`) on ``workers`` simulated
workers — no Ray cluster, no training — and leaves an ordinary experiment: ``config.yaml`` (``budget.max_concurrent``
is the workers, the ``--straggler`` drills are in ``faults:``), the journal, ``trials.parquet``, ``curves.parquet``
(with ``sim_time_s``, the simulated clock, next to the wall clock's ``time_s``), ``events.parquet``, the plots, the
Optuna study, and an MLflow parent with a child run per trial, written in one batch at the end (``tracking=False``:
none). ``hypernas status``, ``best``, ``report`` and ``ui`` read it as any other; ``state.json``'s ``simulated``
section says how it was made. Nothing was trained, so ``test``, ``replay`` and ``resume`` refuse it.

Everything is written to a hidden folder first and moved into place at the end: a simulation that stops on bad
input (a configuration the table lacks) or Ctrl-C leaves nothing behind. The same seed gives the same simulation.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

import numpy as np

from search import _mlflow
from search.config import ConfigError, ExperimentConfig, load_config
from search.environment import capture_environment
from search.events import EVENTS_FILE
from search.experiment import (ExperimentResult, _supersede, draw_plots, experiment_views, parent_start,
                               summary_info, sync_tracking, trial_budget)
from search.journal import JOURNAL_FILE, Journal
from search.monitor import Monitor
from search.plots import PLOTS_MAX_TRIALS
from search.progress import ProgressView, summary_table
from search.records import CURVES_FILE, TRIALS_FILE
from search.redaction import redact
from search.seeds import derive_seed
from search.simulation import CurveTable, SimulationSettings, Stragglers
from search.workdir import DEFAULT_WORKDIR, ExperimentFolder, hold_experiment, refuse_taken_name

SIMULATED = "simulated"  # state.json's section describing a simulation


def simulated_config(config: str | Path | Mapping[str, Any] | ExperimentConfig, workers: int,
                     stragglers: Stragglers, overrides: Iterable[str] = (), name: str | None = None,
                     seed: int | None = None) -> ExperimentConfig:
    """The experiment as simulated: ``budget.max_concurrent`` is the number of workers (none for a scheduler that
    pauses trials: the workers bound it), and the trial-level
    straggler drills are added to ``faults:`` (the same seeded choice of trials as a real run's drills)."""
    cfg = load_config(config, overrides=overrides, name=name, seed=seed)
    if cfg.oneshot is not None:
        raise ConfigError("oneshot", "a one-shot (weight-sharing) experiment is not simulated: its supernet has no "
                                     "per-configuration learning curve to replay")
    from search.registry import SCHEDULERS

    raw = cfg.to_dict()
    # a scheduler that pauses trials (HyperBand) takes no trial limit: the workers bound it, as a real run's CPUs do
    pauses = SCHEDULERS[cfg.scheduler.type].pauses_trials
    raw["budget"] = {**raw["budget"], "max_concurrent": None if pauses else workers}
    raw["faults"] = [*raw.get("faults", []), *stragglers.faults]
    cfg = load_config(raw)
    if cfg.tolerance.stall_timeout_s is None:
        hung = [i for i, rule in enumerate(cfg.faults) if rule.hang_at_epoch is not None]
        if hung:
            raise ConfigError("tolerance.stall_timeout_s", f"faults[{hung[0]}] hangs trials, and with no stall "
                                                           "timeout nothing would ever end them: set one")
    return cfg


def simulate_experiment(
    config: str | Path | Mapping[str, Any] | ExperimentConfig,
    *,
    curves: str | Path,
    workers: int,
    stragglers: Iterable[str] = (),
    lookup: str = "exact",
    sampler_history: int | None = None,
    tracking: bool = True,
    plots: bool = True,
    workdir: str | Path = DEFAULT_WORKDIR,
    name: str | None = None,
    seed: int | None = None,
    overrides: Iterable[str] = (),
    overwrite: bool = False,
    stream: TextIO | None = None,
    latencies: list[float] | None = None,
) -> ExperimentResult:
    """Simulate one experiment over the curves in ``curves`` on ``workers`` workers and return where its results
    are. ``stragglers``: ``--straggler`` specs (:data:`search.simulation.STRAGGLER_FORMS`). ``lookup``: ``exact``
    or ``nearest`` (:class:`search.simulation.CurveTable`). ``sampler_history``: show the sampler only the latest
    that many finished trials (:meth:`search._optuna.AskTellStudy.create`). ``plots`` False: no pictures (a sweep
    of many simulations; ``hypernas report`` draws them later). ``latencies``: appended with the wall
    seconds each decision point took. Raises :class:`ConfigError` (nothing written) for bad input."""
    stream = stream or sys.stdout
    from search.config import MAX_CONCURRENT

    if not isinstance(workers, int) or not 1 <= workers <= MAX_CONCURRENT:
        raise ConfigError("--workers", f"must be an integer in [1, {MAX_CONCURRENT}], got {workers!r}")
    settings = SimulationSettings(str(curves), workers, Stragglers.parse(list(stragglers)), lookup, sampler_history)
    cfg = simulated_config(config, workers, settings.stragglers, overrides, name, seed)
    table = CurveTable.read(curves, cfg).bind(cfg)
    trials, notes = trial_budget(cfg)
    for note in notes:
        stream.write(f"note: {note}\n")
    workdir = Path(workdir).resolve()
    final = ExperimentFolder(workdir, cfg.name)
    refuse_taken_name(final, overwrite)
    made_workdir = not workdir.exists()
    with hold_experiment(workdir, cfg.name):
        refuse_taken_name(final, overwrite)  # again: another process may have made it meanwhile
        return _simulate_held(cfg, workdir, final, made_workdir, table, settings, trials, notes, stream, latencies,
                              plots, tracking)


def _simulate_held(cfg: ExperimentConfig, workdir: Path, final: ExperimentFolder, made_workdir: bool,
                   table: CurveTable, settings: SimulationSettings, trials: int, notes: tuple[str, ...],
                   stream: TextIO, latencies: Any, plots: bool, tracking: bool) -> ExperimentResult:
    """``simulate_experiment`` once it holds the experiment (:func:`~search.workdir.hold_experiment`)."""
    staging = workdir / f".simulating-{cfg.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    folder = ExperimentFolder(staging, cfg.name)
    folder.path.mkdir(parents=True)
    try:
        sim, wall = _simulate(cfg, folder, table, settings, trials, stream, latencies)
        result_notes = _finish_files(cfg, folder, sim, stream, plots)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # bad input, Ctrl-C: a simulation is run again, not resumed
        if made_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    environment = capture_environment()
    folder.write_state(name=cfg.name, status="finished", started_at=time.time() - wall, ended_at=time.time(),
                       trials_planned=trials, environment=environment, counts=sim.monitor.records.counts(),
                       best_trial=getattr(sim.monitor.records.best(), "number", None), tracking_uri=None,
                       mlflow_experiment=None, parent_run_id=None, tracking_complete=not tracking,
                       **{SIMULATED: {**settings.to_dict(), "makespan_s": sim.makespan, "wall_s": wall,
                                      "trials": len(sim.monitor.records.trials)}})
    uri = _mlflow.resolve_tracking_uri(cfg.tracking.uri, workdir) if tracking else None
    if final.path.exists():
        if uri is not None:
            _supersede(final, uri)
        shutil.rmtree(final.path)
    os.replace(folder.path, final.path)
    shutil.rmtree(staging, ignore_errors=True)
    if uri is not None:
        _track(cfg, final, uri, environment, settings, sim.makespan, stream)
    state = final.read_state()
    records = sim.monitor.records
    best = records.best()
    best_row = next((r for r in records.trial_rows() if best and r["number"] == best.number), None)
    result = ExperimentResult(
        name=cfg.name, folder=final.path, counts=records.counts(),
        best=best_row and {**best_row, "params": best.params}, tracking_uri=state.get("tracking_uri") or "",
        mlflow_experiment=state.get("mlflow_experiment") or "", parent_run_id=state.get("parent_run_id") or "",
        trials_path=final.path / TRIALS_FILE, curves_path=final.path / CURVES_FILE,
        events_path=final.path / EVENTS_FILE, notes=tuple(notes) + tuple(result_notes))
    info = {"simulated": f"{_duration(sim.makespan)} of simulated time on {settings.workers} workers, in "
                         f"{wall:.1f} s (curves: {settings.curves})"} | summary_info(result, cfg, records)
    info["energy"] = None  # nothing was trained: the curves' own energy is in the tables, if they had it
    if uri is None:
        info["MLflow"], info["tracking URI"] = "not written (--no-tracking)", None
    where = "" if final.path.parent == Path(DEFAULT_WORKDIR).resolve() else f" --workdir {final.path.parent}"
    info["next"] = f"hypernas best {cfg.name}{where} | hypernas report {cfg.name}{where}" + (
        f" | hypernas ui {cfg.name}{where}" if uri is not None else "")
    stream.write(redact(summary_table(info)) + "\n")
    stream.flush()
    return result


def _simulate(cfg: ExperimentConfig, folder: ExperimentFolder, table: CurveTable, settings: SimulationSettings,
              trials: int, stream: TextIO, latencies: list[float] | None) -> tuple[Any, float]:
    from search._optuna import AskTellStudy
    from search._tune._simulator import Simulation

    folder.config_file.write_text(cfg.to_yaml())
    records, events = experiment_views(cfg, Journal(folder.path / JOURNAL_FILE, durable=False))
    study = AskTellStudy.create(cfg.name, cfg.space, cfg.searcher, derive_seed(cfg.seed, "sampler"),
                                [o.mode for o in cfg.objective_list], None, constrained=bool(cfg.constraints),
                                history=settings.history)
    clock: list[Any] = []
    monitor = Monitor(records, events, None, ProgressView(trials, cfg.metric.name, stream, per_trial=False),
                      folder.path, sim_clock=lambda: clock[0].now, write_every_s=math.inf)
    # Ray's ASHA draws each new trial's bracket from numpy's global generator: seeded here, and put back after
    saved = np.random.get_state()
    np.random.seed(derive_seed(cfg.seed, "scheduler") % 2**32)
    started = time.perf_counter()
    try:
        sim = Simulation(cfg, study, monitor, trials, table, settings, latencies)
        clock.append(sim)
        sim.run()
    finally:
        np.random.set_state(saved)
    wall = time.perf_counter() - started
    monitor.finish(reason="the time budget ran out")
    records.journal.close()
    return sim, wall


def _finish_files(cfg: ExperimentConfig, folder: ExperimentFolder, sim: Any, stream: TextIO,
                  plots: bool = True) -> list[str]:
    """The study file and the pictures, unless the simulation is too long for them to be worth drawing."""
    records = sim.monitor.records
    if len(records.trials) > PLOTS_MAX_TRIALS:
        note = (f"{len(records.trials)} trials: the Optuna study file and the plots are skipped above "
                f"{PLOTS_MAX_TRIALS}")
        stream.write(f"note: {note}\n")
        (folder.path / "plots").mkdir(exist_ok=True)
        return [note]
    sim.study.save(folder.study_file)
    if plots:
        draw_plots(cfg, folder, records, sim.monitor.events, stream)
    return []


def _track(cfg: ExperimentConfig, folder: ExperimentFolder, uri: str, environment: Mapping[str, Any],
           settings: SimulationSettings, makespan: float, stream: TextIO) -> None:
    """MLflow, in one batch at the end: the parent run, then every trial's run and the files (``sync_tracking``)."""
    experiment = cfg.tracking.experiment or cfg.name
    try:
        client = _mlflow.client_for(uri)
        experiment_id = _mlflow.experiment_id(client, experiment, _mlflow.default_artifact_location(
            uri, folder.workdir))
        start = parent_start(cfg, environment, {"hypernas.simulated": "true", "hypernas.sim.workers": settings.workers,
                                                "hypernas.sim.curves": settings.curves}, status="Simulated.")
        run = client.create_run(experiment_id, tags=_mlflow._text_tags(start["tags"]), run_name=cfg.name)
        _mlflow.log_batch(client, run.info.run_id, params=start["params"])
        for name, text in start["texts"].items():
            client.log_text(run.info.run_id, redact(text), name)
        folder.write_state(tracking_uri=uri, mlflow_experiment=experiment, mlflow_experiment_id=experiment_id,
                           parent_run_id=run.info.run_id, tracking_complete=False)
        with _quiet():
            sync_tracking(folder)
        _mlflow.log_to_run(uri, run.info.run_id, metrics={"sim_makespan_s": makespan})
    except Exception as err:  # noqa: BLE001 - the records are complete: `hypernas sync` writes MLflow later
        stream.write(f"note: MLflow was not written ({type(err).__name__}: {redact(str(err))[:300]}); the "
                     f"simulation's records are complete — run `hypernas sync {cfg.name}` when it answers\n")


class _quiet:
    """Plot notes from the MLflow sync's redraw go nowhere (the simulation drew and noted them already)."""

    def __enter__(self) -> None:
        self._stderr, sys.stderr = sys.stderr, io.StringIO()

    def __exit__(self, *exc: Any) -> None:
        sys.stderr = self._stderr


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
