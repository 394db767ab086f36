"""The driver-side sink of trial events: the journal (through its views, records and decision log), MLflow child
runs and the live view, in one place."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from search import accounting, pareto
from search._mlflow import TrackingWriter, TrialSnapshot
from search.accounting import energy_summary
from search.config import SEARCH_PHASE, EnergyConfig
from search.events import EventLog
from search.oneshot import architecture_weights, heatmap_svg, search_summary
from search.progress import ProgressView
from search.records import ExperimentRecords, TrialRecord
from search.redaction import redact

_WRITE_EVERY_S = 2.0  # Parquet is rewritten at most this often while running (and always at the end)


def trial_run_name(number: int) -> str:
    """A trial's MLflow run name while it runs (:func:`run_display_name` renames it when it ends)."""
    return f"t{number:02d} RUNNING"


def start_tags(record: TrialRecord) -> dict[str, Any]:
    """Tags a trial's child run gets when it starts (also used when back-filling MLflow)."""
    return {"hypernas.trial_number": record.number, "hypernas.seed": record.seed, "hypernas.state": "RUNNING",
            "hypernas.role": "trial", "hypernas.trial_id": record.trial_id,
            # MLflow params are text; the typed copy lets `hypernas replay` rebuild the exact configuration
            "hypernas.params": json.dumps(run_params(record), sort_keys=True)} | (
        {} if record.phase is None else {"hypernas.phase": record.phase})


def run_params(record: TrialRecord) -> dict[str, Any]:
    """A trial's parameters as MLflow gets them (secret-looking values redacted)."""
    return redact({**record.params, "epochs": record.epochs})


def run_display_name(record: TrialRecord) -> str:
    """A trial's MLflow run name once it has ended: number, state and final value, so the runs table reads at a
    glance (``t07 COMPLETE 0.9912``)."""
    value = "-" if record.last_value is None else f"{record.last_value:.4f}"
    return f"t{record.number:02d} {record.state} {value}"


def end_tags(records: ExperimentRecords, record: TrialRecord, reason: str | None = None) -> dict[str, Any]:
    """Tags describing how a trial ended (also used when back-filling MLflow); ``mlflow.runName`` renames the run."""
    tags = {"mlflow.runName": run_display_name(record), "hypernas.stop_reason": reason, "hypernas.state": record.state, "hypernas.epochs_run": record.epochs_run,
            "hypernas.node": record.node, "hypernas.device": record.device, "hypernas.attempts": record.attempt,
            "hypernas.wall_time_s": round(record.wall_time_s, 3), "hypernas.derived_genotype": record.derived_genotype,
            "hypernas.energy_source": record.energy_source}
    for failed in record.failed_attempts:
        tags[f"hypernas.attempt{failed['attempt']}.state"] = failed["state"]
    ratio = records.straggler_ratio(record.number)
    if ratio is not None:
        tags |= {"hypernas.straggler_ratio": round(ratio, 3),
                 "hypernas.straggler": str(ratio >= records.straggler_factor).lower()}
    if record.violations:
        tags |= {"hypernas.feasible": "false", "hypernas.violations": "; ".join(record.violations)}
    if record.best_value is not None:
        tags |= {"hypernas.best_value": record.best_value, "hypernas.last_value": record.last_value}
    return {k: v for k, v in tags.items() if v is not None}


def failure_texts(record: TrialRecord) -> dict[str, str]:
    """The text artifacts a trial's run holds about failures — its traceback, its failed attempts — as
    :func:`search._mlflow.backfill` restores them."""
    texts = {f"attempt-{failed['attempt']}-{failed['state'].lower()}.txt": failed["error"]
             for failed in record.failed_attempts}
    if record.state == "FAILED" and record.error:
        texts["traceback.txt"] = record.error
    return texts


def oneshot_texts(records: ExperimentRecords, record: TrialRecord) -> dict[str, str]:
    """The text artifacts of a one-shot search's run once it has ended: its derived genotype and a heatmap of its
    final architecture weights (also used when back-filling MLflow)."""
    texts: dict[str, str] = {}
    if record.phase == SEARCH_PHASE and record.epochs_run:
        last = records.curves.get((record.number, record.epochs_run), {})
        weights = architecture_weights(last)
        if weights:
            texts["architecture.svg"] = heatmap_svg(weights, f"trial {record.number}: architecture weights, "
                                                             f"epoch {record.epochs_run}")
        if record.derived_genotype:
            texts["genotype.txt"] = record.derived_genotype + "\n"
    return texts


def experiment_end(records: ExperimentRecords, status: str, grid_gco2_per_kwh: float = EnergyConfig.grid_gco2_per_kwh,
                   audit: Iterable[Mapping[str, Any]] = (), select: Any = None,
                   about: str | None = None) -> tuple[dict[str, Any], dict[str, float]]:
    """Tags and metrics of the experiment's parent run once it has ended with ``status`` (also used when
    back-filling MLflow): counts, the best trial, the energy bill (:mod:`search.accounting`; ``audit``: the sealed
    test's retrains so far), the Pareto front of a multi-objective experiment and the trial its ``select`` rule
    picks (``hypernas.best_trial`` is the best first objective); a one-shot experiment's parent also gets the spread
    over its search seeds."""
    best, counts = records.best(), records.counts()
    tags = {"hypernas.state": status.upper(), "hypernas.best_trial": best.number if best else "none",
            **{f"hypernas.trials.{k.lower()}": v for k, v in counts.items()}}
    metrics = {f"best_{records.metric}": best.last_value} if best is not None else {}
    bill = energy_summary(records.energy_totals(), audit, grid_gco2_per_kwh)
    if bill is not None:
        metrics |= accounting.parent_metrics(bill)
        tags |= {"hypernas.energy_sources": ",".join(bill["by_source"]),
                 "hypernas.energy_estimated": str(bill["estimated"]).lower()}
    if records.objectives:
        front = records.pareto_front()
        tags |= {"hypernas.objectives": ",".join(f"{o.name}:{o.mode}" for o in records.objectives),
                 "hypernas.pareto_front": ",".join(str(row["number"]) for row in front) or "none"}
        metrics["pareto_front_size"] = float(len(front))
        if select is not None:
            try:
                chosen = pareto.select(front, records.objectives, select.rule, select.objective, select.subject_to)
                tags["hypernas.selected_trial"] = chosen["number"]
            except pareto.SelectionRuleError as err:
                tags["hypernas.selected_trial"] = f"none: {err}"[:500]
    searches = [r for r in records.trials.values() if r.phase == SEARCH_PHASE]
    if searches:
        spread = search_summary(searches)
        metrics |= {f"oneshot.search_{records.metric}_{k}": float(v) for k, v in spread.items()
                    if k in ("mean", "std", "min", "max")}
        metrics["oneshot.distinct_genotypes"] = float(spread["distinct_genotypes"])
    if about is not None:  # the parent run's description in the MLflow UI: what it was, then how it ended
        tags[NOTE_TAG] = about + "\n\n" + outcome_note(records, status, tags, metrics)
    return tags, metrics


NOTE_TAG = "mlflow.note.content"  # what the MLflow UI shows as a run's description


def outcome_note(records: ExperimentRecords, status: str, tags: Mapping[str, Any], metrics: Mapping[str, float]) -> str:
    """How an experiment ended, in a few lines of Markdown (the end of the parent run's description)."""
    counts = ", ".join(f"{n} {state.lower()}" for state, n in records.counts().items() if n)
    best = records.best()
    lines = [f"**Ended {status}**: {counts or 'no trials'}."]
    if best is not None:
        lines.append(f"Best {records.metric}: **{best.last_value:.4f}** (trial {best.number}).")
    if "hypernas.pareto_front" in tags:
        lines.append(f"Pareto front: trials {tags['hypernas.pareto_front']}; selected by the config's rule: trial "
                     f"{tags.get('hypernas.selected_trial', '-')}.")
    if "energy_total_j" in metrics:
        lines.append(f"Energy: {metrics['energy_total_j']:.1f} J ({tags.get('hypernas.energy_sources')}), "
                     f"{metrics['co2e_total_g']:.4g} g CO2e.")
    return " ".join(lines)


class _NoTracking:
    """Stands in for the MLflow writer when nothing is sent while the trials run."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


class Monitor:
    """Receives trial events from the executor adapter and fans them out. All calls come from the driver."""

    def __init__(self, records: ExperimentRecords, events: EventLog, tracker: TrackingWriter | None, view: ProgressView,
                 folder: Path, logged_epochs: Mapping[int, int] | None = None, *,
                 sim_clock: Callable[[], float] | None = None, write_every_s: float = _WRITE_EVERY_S) -> None:
        """``tracker`` None: nothing is written to MLflow while the trials run (a simulation writes it at the end,
        from the records). ``sim_clock``: a simulation's clock (simulated seconds since it started), recorded with
        every trial event next to the wall clock. ``write_every_s``: how often the Parquet views are rewritten
        while trials run."""
        self.records = records
        self.events = events  # sampler asks/tells and scheduler decisions: the same journal's decision view
        self.tracker = tracker if tracker is not None else _NoTracking()
        self.tracking = tracker is not None
        self.view = view
        self.folder = folder
        self.sim_clock = sim_clock
        self.write_every_s = write_every_s
        self._last_write = 0.0
        # epochs MLflow already has per trial: a restarted or resumed trial re-reports some of them
        self._logged_epoch: dict[int, int] = dict(logged_epochs or {})

    def trial_started(self, number: int, trial_id: str, seed: int, params: Mapping[str, Any], epochs: int,
                      attempt: int = 1, phase: str | None = None) -> None:
        first_start = number not in self.records.trials
        interrupted = not first_start and self.records.trials[number].state == "INTERRUPTED"
        record = self.records.started(number, trial_id, seed, params, epochs, attempt, phase=phase, sim_s=self._sim())
        if first_start:  # a restarted, paused or resumed trial keeps its child run
            self.tracker.trial_started(number, trial_run_name(number), run_params(record), start_tags(record))
        elif interrupted:  # resumed: its run (KILLED until it ends) says it runs again
            self.tracker.trial_notes(number, {"hypernas.state": "RUNNING"})
        self.view.update(self.records)

    def trial_result(self, number: int, epoch: int, metrics: Mapping[str, float], node: str | None,
                     device: str | None = None, energy_source: str | None = None) -> None:
        self.records.result(number, epoch, metrics, node, device, energy_source=energy_source, sim_s=self._sim())
        self.view.update(self.records)  # a running trial's row: its epoch and values
        if epoch > self._logged_epoch.get(number, 0):
            self._logged_epoch[number] = epoch
            self.tracker.trial_metrics(number, epoch, metrics, int(time.time() * 1000))

    def trial_derived(self, number: int, epoch: int, genotype: str) -> None:
        """A one-shot search derived ``genotype`` after ``epoch``: journaled and tagged when it changes."""
        if self.records.trials[number].derived_genotype != genotype:
            self.records.derived(number, epoch, genotype)
            self.tracker.trial_notes(number, {"hypernas.derived_genotype": genotype})

    def attempt_failed(self, number: int, attempt: int, state: str, error: str) -> None:
        """One attempt of a trial ended badly (STALLED, PREEMPTED or FAILED); the trial may be retried."""
        error = redact(error)  # masked in the worker already; here too for errors raised outside it
        self.records.attempt_failed(number, attempt, state, error)  # one journal entry: records and decision log
        self.tracker.trial_notes(number, {"hypernas.attempts": attempt, f"hypernas.attempt{attempt}.state": state},
                                 {f"attempt-{attempt}-{state.lower()}.txt": error})
        self.view.update(self.records)

    def attempt_reclassified(self, number: int, attempt: int, state: str) -> None:
        """An attempt first recorded as FAILED turned out to have lost its node: PREEMPTED."""
        self.records.attempt_reclassified(number, attempt, state)
        self.tracker.trial_notes(number, {f"hypernas.attempt{attempt}.state": state})

    def stall_killed(self, number: int, silent_s: float) -> None:
        self.events.stall(number, silent_s)

    def trial_ended(self, number: int, state: str | None = None, error: str | None = None,
                    reason: str | None = None) -> None:
        """Trial ``number`` ended: ``state`` ``None`` when it ended without an error (the records decide
        COMPLETE, PRUNED or FAILED with :func:`~search.records.final_state`), else how it ended."""
        error = redact(error)
        record = self.records.ended(number, state, error, sim_s=self._sim())
        if self.tracking:  # the tags read every trial's curves (straggler ratios): only when they are sent
            self.tracker.trial_ended(number, record.state, end_tags(self.records, record, reason),
                                     ({"traceback.txt": record.error} if record.error and record.state == "FAILED"
                                      else {}) | oneshot_texts(self.records, record))
        self.view.trial_ended(record)
        self.view.update(self.records)
        self._write(force=False)

    def _sim(self) -> float | None:
        return None if self.sim_clock is None else float(self.sim_clock())

    def tick(self) -> None:
        self.view.update(self.records)
        self._write(force=False)

    def _write(self, *, force: bool) -> tuple[Path, Path, Path] | None:
        if not force and time.monotonic() - self._last_write < self.write_every_s:
            return None
        self._last_write = time.monotonic()
        return (*self.records.write(self.folder), self.events.write(self.folder))

    def finish(self, reason: str = "the experiment ended while it ran",
               orphans: set[int] = frozenset(), interrupted: bool = False) -> tuple[Path, Path, Path]:
        """Close trials Tune ended without an event (time budget), forget ``orphans`` (trials a crashed driver
        started but Tune never recorded: they will not run), then write everything. ``interrupted`` (Ctrl-C,
        SIGTERM): trials still running end INTERRUPTED — not final, ``hypernas resume`` continues them."""
        for number in sorted(orphans):
            self.records.forget(number)
            self.tracker.trial_discarded(number)
        for record in list(self.records.trials.values()):
            if interrupted:  # an INTERRUPTED one a resume had not restarted yet stays so: still not final
                if record.state == "RUNNING":
                    self.trial_ended(record.number, "INTERRUPTED", reason="the experiment was interrupted")
            elif record.state in ("RUNNING", "INTERRUPTED"):  # INTERRUPTED: one a resumed run never continued
                self.trial_ended(record.number, reason=reason)
        self.view.close(self.records)  # the final state, once
        return self._write(force=True)


def snapshots(records: ExperimentRecords) -> list[TrialSnapshot]:
    """What MLflow should hold for every recorded trial, for :func:`search._mlflow.backfill`."""
    by_trial: dict[int, dict[int, dict[str, float]]] = {}
    stamps: dict[int, dict[int, int]] = {}
    for (number, epoch), row in records.curves.items():
        by_trial.setdefault(number, {})[epoch] = {k: v for k, v in row.items() if k not in ("trial", "epoch", "time_s")
                                                  and not isinstance(v, str)}  # energy_source is a tag, not a metric
        started = records.trials[number].started_at if number in records.trials else 0.0
        stamps.setdefault(number, {})[epoch] = int((started + row["time_s"]) * 1000)
    out = []
    for record in sorted(records.trials.values(), key=lambda r: r.number):
        ended = record.state != "RUNNING"
        out.append(TrialSnapshot(
            number=record.number, run_name=trial_run_name(record.number), params=run_params(record),
            start_tags=start_tags(record), curves=by_trial.get(record.number, {}),
            timestamps_ms=stamps.get(record.number, {}), state=record.state,
            end_tags=end_tags(records, record) if ended else None,
            texts=failure_texts(record) | (oneshot_texts(records, record) if ended else {}),
        ))
    return out
