"""The experiment's own record of its trials, written as ``trials.parquet`` and ``curves.parquet`` (pyarrow).

A view of the experiment journal (:mod:`search.journal`), kept in the driver from Tune's events; it is the source
for the live view, the summary, ``status``, ``best``, ``export`` and the MLflow back-fill. Files are written
atomically (temp file + rename), so a reader never sees half a table.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from search.config import SEARCH_PHASE
from search.constraints import Constraint, violations
from search.journal import TRIAL_KINDS, Journal, read_entries
from search.redaction import redact, redactor
from search.pareto import Objective, pareto_rows
from trainers.hardware import HARDWARE_METRICS, TIMING_METRICS

TRIALS_FILE = "trials.parquet"
STRAGGLER_TIME = "epoch_wall_s"  # the per-epoch time stragglers are judged by
CURVES_FILE = "curves.parquet"
# INTERRUPTED: running when the experiment was stopped (Ctrl-C, SIGTERM); not final, `hypernas resume` continues it
STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAILED", "STALLED", "PREEMPTED", "INTERRUPTED")
TRIAL_COLUMNS = (
    "number", "trial_id", "state", "seed", "params", "epochs", "epochs_run", "metric", "best_value", "best_epoch",
    "last_value", "feasible", "violations", "hw_params", "hw_macs", "hw_latency_ms", "attempts",
    "attempt_history", "straggler", "straggler_ratio", "wall_time_s", "node", "device", "started_at", "ended_at",
    "sim_started_s", "sim_ended_s", "error", "phase", "derived_genotype", "energy_j", "energy_spent_j",
    "energy_source", "pareto",
)  # and, in a multi-objective experiment, value_<objective> for each objective (the values Optuna was told)


def _sim(sim_s: float | None) -> dict[str, float]:
    """A journal entry's simulated time, where there is one (a simulation's)."""
    return {} if sim_s is None else {"sim_s": float(sim_s)}


def final_state(epochs_run: int, epochs: int, errored: bool, final_value: float | None = None) -> str:
    """How a trial ended: FAILED on error or when its last reported metric (``final_value``) is NaN or infinite,
    COMPLETE when it trained all its epochs, else PRUNED — stopped early, by the scheduler or by the end of the
    experiment (time budget).

    The one rule for a trial's final state: the records (:meth:`ExperimentRecords.ended`) and the searcher (what
    Optuna is told) both call it with the same four facts — epochs reported, epochs planned, whether the
    trial raised, its last reported metric."""
    if errored or not_finite(final_value):
        return "FAILED"
    return "COMPLETE" if epochs_run >= epochs else "PRUNED"


def not_finite(value: float | None) -> bool:
    """``value`` is a number but not a finite one (NaN, +inf, -inf); ``None`` (nothing reported) is not."""
    return value is not None and not math.isfinite(value)


def final_value(values: Sequence[float | None], complete: bool = True) -> float | None:
    """The one value :func:`final_state` judges for several objectives: the first that is not finite (a trial whose
    any objective ends NaN or infinite FAILS) — and, for a trial that trained its whole budget (``complete``), one
    never reported counts as NaN: it cannot be placed on a front — else the first objective's."""
    values = [math.nan if v is None and complete else v for v in values]
    return next((v for v in values if not_finite(v)), values[0] if values else None)


def final_value_error(metric: str, value: float | None) -> str | None:
    """Why a trial that ran to its end still FAILED: its final metric is not a finite number (else ``None``)."""
    return f"final {metric} is {value}" if not_finite(value) else None


@dataclass
class TrialRecord:
    number: int
    trial_id: str
    seed: int
    params: dict[str, Any]
    epochs: int
    state: str = "RUNNING"
    epochs_run: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    last_value: float | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    node: str | None = None
    device: str | None = None
    error: str | None = None
    violations: list[str] = field(default_factory=list)
    hardware: dict[str, float] = field(default_factory=dict)
    attempt: int = 1
    failed_attempts: list[dict[str, Any]] = field(default_factory=list)  # STALLED / PREEMPTED / FAILED attempts
    phase: str | None = None  # one-shot experiments: "search" (a supernet) or "retrain"; else None
    derived_genotype: str | None = None  # a one-shot search: the genotype its supernet derived (latest epoch)
    objective_last: dict[str, float] = field(default_factory=dict)  # several objectives: each one's last value
    energy_j: float | None = None  # joules of its training so far, along its checkpoint chain (as reported)
    energy_spent_j: float = 0.0  # joules of every epoch it reported, epochs run again after a restart included
    energy_by_source: dict[str, float] = field(default_factory=dict)  # the same, per source of each epoch
    energy_unknown_epochs: int = 0  # epochs whose energy could not be read (NaN): not in the sums above
    sim_started_s: float | None = None  # a simulation's clock when it first started (simulated seconds)
    sim_ended_s: float | None = None  # … and when it ended

    @property
    def energy_source(self) -> str | None:
        """nvml | rapl | estimate (trainers.energy), or mixed: its epochs were measured by more than one source."""
        sources = list(self.energy_by_source)
        return None if not sources else sources[0] if len(sources) == 1 else "mixed"

    @property
    def feasible(self) -> bool:
        return not self.violations

    @property
    def wall_time_s(self) -> float:
        return (self.ended_at or time.time()) - self.started_at


def better(a: float, b: float | None, mode: str) -> bool:
    """``a`` beats ``b`` under ``mode`` (``None``, NaN and ±inf never win)."""
    if a is None or not math.isfinite(a):
        return False
    if b is None or not math.isfinite(b):
        return True
    return a > b if mode == "max" else a < b


def pick_best(rows: Iterable[Mapping[str, Any]], mode: str) -> Mapping[str, Any] | None:
    """The winner among trial rows: COMPLETE (a pruned trial never trained its full budget) and feasible (no
    constraint broken) only, best final validation value (``last_value``, what Optuna was told; a NaN or
    infinite one never wins), ties to the lowest trial number; never a one-shot experiment's supernet search."""
    winner = None
    for row in sorted(rows, key=lambda r: r["number"]):
        if row.get("phase") == SEARCH_PHASE:
            continue  # a one-shot search's value is its supernet's: its derived genotype competes once retrained
        if row["state"] == "COMPLETE" and row.get("feasible", True) is not False and better(row["last_value"], winner["last_value"] if winner else None, mode):
            winner = row
    return winner


def _median_without(ordered: Sequence[float], value: float) -> float:
    """The median of ``ordered`` (sorted) with one occurrence of ``value`` taken out, in O(log n)."""
    gone = bisect.bisect_left(ordered, value)

    def at(j: int) -> float:  # the j-th smallest of the values left
        return ordered[j if j < gone else j + 1]

    left = len(ordered) - 1
    middle = left // 2
    return at(middle) if left % 2 else (at(middle - 1) + at(middle)) / 2


class ExperimentRecords:
    """Trials and their per-epoch curves for one experiment: a view of the experiment's
    :class:`~search.journal.Journal`.

    Every change is a journal entry (``started``, ``result``, ``attempt_failed``, ``attempt_reclassified``,
    ``ended``, ``forget``) applied by :meth:`apply` — live as the journal writes it, or replayed from the file by
    :meth:`read`, so the records of a driver killed mid-run come back exactly. Parquet files are views rewritten
    from memory. Without a ``journal`` an in-memory one is used.
    """

    def __init__(self, metric: str, mode: str, constraints: Sequence[Constraint] = (),
                 straggler_factor: float = 2.0, journal: Journal | None = None,
                 objectives: Sequence[Any] = ()) -> None:
        """``objectives``: a multi-objective experiment's objectives (``name``/``mode`` pairs, the first being
        ``metric``); empty for one metric."""
        self.metric = metric
        self.mode = mode
        self.objectives = [Objective(o.name, o.mode) for o in objectives] if len(objectives) > 1 else []
        self.constraints = tuple(constraints)
        self.straggler_factor = straggler_factor
        self.trials: dict[int, TrialRecord] = {}
        # (trial, epoch) -> row: a resumed trial that reports an epoch again replaces the row
        self.curves: dict[tuple[int, int], dict[str, Any]] = {}
        # (phase, epoch) -> every trial's epoch wall time there, sorted: the straggler yardstick, kept up to date
        # with ``curves`` so that judging one trial does not go over every trial's curve (O(n²) over a search)
        self._epoch_times: dict[tuple[str | None, int], list[float]] = {}
        self.journal = journal if journal is not None else Journal()
        self.journal.subscribe(self.apply)

    @classmethod
    def read(cls, folder: Path, metric: str, mode: str, constraints: Sequence[Constraint] = (),
             straggler_factor: float = 2.0, objectives: Sequence[Any] = ()) -> "ExperimentRecords":
        """The records of the experiment in ``folder``, read from its journal (nothing is written)."""
        records = cls(metric, mode, constraints, straggler_factor, objectives=objectives)
        records.replay(read_entries(folder))
        return records

    def replay(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Apply journal entries written before (the trial events among them)."""
        for entry in entries:
            self.apply(entry)

    def apply(self, entry: Mapping[str, Any]) -> None:
        """Apply one journal entry; entries of other kinds (decisions) are not the records' business."""
        kind = entry["kind"]
        if kind in TRIAL_KINDS:
            getattr(self, f"_on_{kind}")(**{k: v for k, v in entry.items() if k not in ("v", "seq", "time", "kind")})

    def close(self) -> None:
        self.journal.close()

    # -- events: each is one journal entry ----------------------------------------------------------------------
    def forget(self, number: int) -> None:
        """Drop a trial entirely (one the executor never learnt of before a crash: it will not run)."""
        self.journal.append("forget", number=number)

    def started(self, number: int, trial_id: str, seed: int, params: Mapping[str, Any], epochs: int,
                attempt: int = 1, at: float | None = None, phase: str | None = None,
                sim_s: float | None = None) -> TrialRecord:
        """``sim_s`` (here and in :meth:`result`, :meth:`ended`): a simulation's clock, simulated seconds since it
        started, recorded next to the wall clock ``at``."""
        self.journal.append("started", number=number, trial_id=trial_id, seed=seed, params=dict(params),
                            epochs=epochs, attempt=attempt, at=time.time() if at is None else at,
                            **({"phase": phase} if phase else {}), **_sim(sim_s))
        return self.trials[number]

    def derived(self, number: int, epoch: int, genotype: str) -> None:
        """A one-shot search derived ``genotype`` after ``epoch`` (written when it changes)."""
        if number not in self.trials:
            raise KeyError(f"a genotype for trial {number}, which has not started")
        if self.trials[number].derived_genotype != genotype:
            self.journal.append("derived", number=number, epoch=epoch, genotype=genotype)

    def attempt_failed(self, number: int, attempt: int, state: str, error: str) -> TrialRecord:
        self.journal.append("attempt_failed", number=number, attempt=attempt, state=state, error=error[-2000:],
                            epoch=self.trials[number].epochs_run)
        return self.trials[number]

    def attempt_reclassified(self, number: int, attempt: int, state: str) -> None:
        self.journal.append("attempt_reclassified", number=number, attempt=attempt, state=state,
                            epoch=self.trials[number].epochs_run)

    def result(self, number: int, epoch: int, metrics: Mapping[str, float], node: str | None,
               device: str | None = None, at: float | None = None, energy_source: str | None = None,
               sim_s: float | None = None) -> None:
        if number not in self.trials:  # refused before it reaches the journal, which every later reader replays
            raise KeyError(f"a result for trial {number}, which has not started")
        self.journal.append("result", number=number, epoch=epoch, metrics={k: float(v) for k, v in metrics.items()},
                            node=node, device=device, at=time.time() if at is None else at,
                            **({"energy_source": energy_source} if energy_source else {}), **_sim(sim_s))

    def ended(self, number: int, state: str | None = None, error: str | None = None,
              at: float | None = None, sim_s: float | None = None) -> TrialRecord:
        """Trial ``number`` ended. ``state`` ``None`` (or COMPLETE, PRUNED): it ended without an error, and
        :func:`final_state` decides from what it reported — COMPLETE, PRUNED, or FAILED when its last metric is
        NaN or infinite (with the reason as its error). Otherwise ``state`` is how it ended (FAILED, INTERRUPTED …)."""
        record = self.trials[number]
        if state in (None, "COMPLETE", "PRUNED"):
            values = self.objective_values(record)
            last = record.last_value if values is None else \
                final_value(values, record.epochs_run >= record.epochs)
            state = final_state(record.epochs_run, record.epochs, False, last)
            if state == "FAILED" and values is None:
                error = final_value_error(self.metric, last)
            elif state == "FAILED":
                name, value = next((o.name, v) for o, v in zip(self.objectives, values)
                                   if v is None or not math.isfinite(v))
                error = f"objective {name} was never reported" if value is None else final_value_error(name, value)
        self.journal.append("ended", number=number, state=state, error=error, at=time.time() if at is None else at,
                            **_sim(sim_s))
        return record

    # -- applying entries -----------------------------------------------------------------------------------------
    def _on_forget(self, number: int) -> None:
        for key in [key for key in self.curves if key[0] == number]:
            self._set_curve_row(key, None)
        self.trials.pop(number, None)

    def _set_curve_row(self, key: tuple[int, int], row: dict[str, Any] | None) -> None:
        """Put (or with ``None`` take out) the curve row of (trial, epoch), and its wall time in ``_epoch_times``."""
        old = self.curves.pop(key, None) if row is None else self.curves.get(key)
        record = self.trials.get(key[0])
        times = self._epoch_times.setdefault((record.phase if record is not None else None, key[1]), [])
        if old is not None and old.get(STRAGGLER_TIME) is not None:
            del times[bisect.bisect_left(times, old[STRAGGLER_TIME])]
        if row is not None:
            self.curves[key] = row
            if row.get(STRAGGLER_TIME) is not None:
                bisect.insort(times, row[STRAGGLER_TIME])

    def _on_started(self, number: int, trial_id: str, seed: int, params: Mapping[str, Any], epochs: int,
                    attempt: int = 1, at: float = 0.0, phase: str | None = None, sim_s: float | None = None) -> None:
        record = self.trials.get(number)
        if record is None:
            record = self.trials[number] = TrialRecord(number, trial_id, seed, dict(params), epochs, started_at=at,
                                                       phase=phase, sim_started_s=sim_s)
        record.state = "RUNNING"
        record.attempt = attempt

    def _on_attempt_failed(self, number: int, attempt: int, state: str, error: str, epoch: int | None = None) -> None:
        record = self.trials[number]
        record.failed_attempts.append({"attempt": attempt, "state": state, "epochs_run": record.epochs_run,
                                       "error": error})

    def _on_attempt_reclassified(self, number: int, attempt: int, state: str, epoch: int | None = None) -> None:
        for failed in self.trials[number].failed_attempts:
            if failed["attempt"] == attempt:
                failed["state"] = state

    def _on_result(self, number: int, epoch: int, metrics: Mapping[str, float], node: str | None,
                   device: str | None = None, at: float = 0.0, energy_source: str | None = None,
                   sim_s: float | None = None) -> None:
        record = self.trials[number]
        record.epochs_run = max(record.epochs_run, epoch)
        record.node = node or record.node
        record.device = device or record.device
        self._set_curve_row((number, epoch), {
            "trial": number, "epoch": epoch, "time_s": at - record.started_at, **metrics,
            **({"energy_source": energy_source} if energy_source else {}),
            **({"sim_time_s": sim_s} if sim_s is not None else {})})
        if "energy_j" in metrics:
            record.energy_j = metrics["energy_j"]
        spent = metrics.get("epoch_energy_j")
        if spent is not None and math.isfinite(spent):
            record.energy_spent_j += spent
            source = energy_source or "unknown"
            record.energy_by_source[source] = record.energy_by_source.get(source, 0.0) + spent
        elif spent is not None:
            record.energy_unknown_epochs += 1
        for objective in self.objectives:
            if objective.name in metrics:
                record.objective_last[objective.name] = metrics[objective.name]
        record.hardware |= {k: float(metrics[k]) for k in HARDWARE_METRICS if k in metrics}
        record.violations = violations(self.constraints, metrics) if self.constraints and \
            record.phase != SEARCH_PHASE else []  # a supernet search is never selected: nothing to bound
        value = metrics.get(self.metric)
        if value is not None:
            # the value as reported, NaN included: a stale earlier value must not stand in for a diverged end
            record.last_value = float(value)
            if better(float(value), record.best_value, self.mode):
                record.best_value, record.best_epoch = float(value), epoch

    def _on_derived(self, number: int, epoch: int, genotype: str) -> None:
        self.trials[number].derived_genotype = genotype

    def _on_ended(self, number: int, state: str, error: str | None = None, at: float = 0.0,
                  sim_s: float | None = None) -> None:
        record = self.trials[number]
        record.state = state
        record.ended_at = at
        record.sim_ended_s = sim_s
        record.error = error

    def straggler_ratio(self, number: int) -> float | None:
        """Trial ``number``'s straggler ratio: the median over its epochs of its epoch wall time (``epoch_wall_s``,
        as its worker saw it) divided by its *peers'* median wall time at that epoch (the other trials', so a
        straggler never pulls its own yardstick up), counting epochs that at least two peers reached; ``None``
        without such an epoch. A one-shot search's peers are the other searches. Fidelity is counted in epochs, so
        a slow node changes these ratios, not the rungs (with ``promotion: ordered``, not which trials are promoted
        either). O(epochs × log n): the peers' times are kept sorted as results arrive."""
        record = self.trials.get(number)
        if record is None:
            return None
        ratios = []
        for epoch in range(1, record.epochs_run + 1):
            row = self.curves.get((number, epoch))
            own = row.get(STRAGGLER_TIME) if row is not None else None
            times = self._epoch_times.get((record.phase, epoch), ())
            if own is not None and len(times) >= 3:
                ratios.append(own / max(_median_without(times, own), 1e-9))
        return statistics.median(ratios) if ratios else None

    def straggler_ratios(self) -> dict[int, float]:
        """:meth:`straggler_ratio` of every trial that has one."""
        ratios = {number: self.straggler_ratio(number) for number in self.trials}
        return {number: ratio for number, ratio in ratios.items() if ratio is not None}

    # -- queries -------------------------------------------------------------------------------------------------
    def objective_values(self, record: TrialRecord) -> list[float | None] | None:
        """A multi-objective trial's last value of each objective, in order (what Optuna is told); ``None`` in a
        single-objective experiment."""
        return [record.objective_last.get(o.name) for o in self.objectives] if self.objectives else None

    def energy_totals(self) -> dict[str, Any]:
        """Joules of every epoch every trial reported (pruned, failed and re-run epochs included), in all and per
        source: a measurement (nvml, rapl) and an estimate are never added up silently."""
        by_source: dict[str, float] = {}
        for record in self.trials.values():
            for source, joules in record.energy_by_source.items():
                by_source[source] = by_source.get(source, 0.0) + joules
        unknown = sum(record.energy_unknown_epochs for record in self.trials.values())
        return {"energy_j": math.fsum(by_source.values()), "by_source": dict(sorted(by_source.items())),
                "unknown_epochs": unknown}

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for record in self.trials.values():
            counts[record.state] = counts.get(record.state, 0) + 1
        return counts

    def best(self) -> TrialRecord | None:
        """The winner so far (see :func:`pick_best`)."""
        winner = pick_best(({"number": r.number, "state": r.state, "last_value": r.last_value, "feasible": r.feasible,
                             "phase": r.phase} for r in self.trials.values()), self.mode)
        return None if winner is None else self.trials[winner["number"]]

    # -- files ---------------------------------------------------------------------------------------------------
    def trial_rows(self, redacted: bool = False) -> list[dict[str, Any]]:
        """One dict per trial (the ``trials.parquet`` columns); ``redacted`` masks secrets (params, errors)."""
        mask = redactor() if redacted else (lambda value: value)
        rows = []
        ratios = self.straggler_ratios()
        for r in sorted(self.trials.values(), key=lambda r: r.number):
            ratio = ratios.get(r.number)
            rows.append({
                "number": r.number, "trial_id": r.trial_id, "state": r.state, "seed": r.seed,
                "params": json.dumps(mask(r.params), sort_keys=True), "epochs": r.epochs,
                "epochs_run": r.epochs_run,
                "metric": self.metric, "best_value": r.best_value, "best_epoch": r.best_epoch,
                "last_value": r.last_value, "feasible": r.feasible, "violations": "; ".join(r.violations) or None,
                "hw_params": r.hardware.get("params"), "hw_macs": r.hardware.get("macs"),
                "hw_latency_ms": r.hardware.get("latency_ms"), "attempts": r.attempt,
                "attempt_history": json.dumps(mask(r.failed_attempts)) if r.failed_attempts else None,
                "straggler": None if ratio is None else ratio >= self.straggler_factor, "straggler_ratio": ratio,
                "wall_time_s": r.wall_time_s, "node": r.node,
                "device": r.device,
                "started_at": r.started_at, "ended_at": r.ended_at, "sim_started_s": r.sim_started_s,
                "sim_ended_s": r.sim_ended_s, "error": mask(r.error),
                "phase": r.phase, "derived_genotype": mask(r.derived_genotype),
                "energy_j": r.energy_j, "energy_spent_j": r.energy_spent_j if r.energy_source else None,
                "energy_source": r.energy_source,
                "objective_values": self._values_by_name(r),
                **{f"value_{o.name}": r.objective_last.get(o.name) for o in self.objectives},
            })
        front = {row["number"] for row in pareto_rows(rows, self.objective_list)}
        for row in rows:
            row["pareto"] = row["number"] in front
        return rows

    @property
    def objective_list(self) -> list[Objective]:
        """Every objective: the several of a multi-objective experiment, or the one metric."""
        return self.objectives or [Objective(self.metric, self.mode)]

    def _values_by_name(self, record: TrialRecord) -> dict[str, float | None]:
        return dict(record.objective_last) if self.objectives else {self.metric: record.last_value}

    def pareto_front(self) -> list[dict[str, Any]]:
        """The rows (:meth:`trial_rows`) of the trials on the Pareto front (:mod:`search.pareto`), by number."""
        return [row for row in self.trial_rows() if row["pareto"]]

    def write(self, folder: Path) -> tuple[Path, Path]:
        ordered = sorted(self.trials.values(), key=lambda r: r.number)
        trials = trials_table(self.trial_rows(redacted=True), [redact(r.params) for r in ordered])
        rows = [self.curves[key] for key in sorted(self.curves)]
        # every key of every row (pyarrow would take the first row's only: a metric missing there would vanish)
        names = list(dict.fromkeys(k for row in rows for k in row))
        curves = pa.Table.from_pylist([{k: row.get(k) for k in names} for row in rows]) if rows else pa.table(
            {"trial": pa.array([], pa.int64()), "epoch": pa.array([], pa.int64()), "time_s": pa.array([], pa.float64())})
        return _write_atomic(trials, folder / TRIALS_FILE), _write_atomic(curves, folder / CURVES_FILE)


_TRIAL_TYPES = {
    "number": pa.int64(), "trial_id": pa.string(), "state": pa.string(), "seed": pa.int64(), "params": pa.string(),
    "epochs": pa.int64(), "epochs_run": pa.int64(), "metric": pa.string(), "best_value": pa.float64(),
    "best_epoch": pa.int64(), "last_value": pa.float64(), "feasible": pa.bool_(), "violations": pa.string(),
    "hw_params": pa.float64(), "hw_macs": pa.float64(), "hw_latency_ms": pa.float64(), "attempts": pa.int64(),
    "attempt_history": pa.string(), "straggler": pa.bool_(), "straggler_ratio": pa.float64(),
    "wall_time_s": pa.float64(), "node": pa.string(),
    "device": pa.string(),
    "started_at": pa.float64(), "ended_at": pa.float64(), "sim_started_s": pa.float64(), "sim_ended_s": pa.float64(),
    "error": pa.string(), "phase": pa.string(),
    "derived_genotype": pa.string(), "energy_j": pa.float64(), "energy_spent_j": pa.float64(),
    "energy_source": pa.string(), "pareto": pa.bool_(),
}


def _param_column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types (e.g. a categorical of ints and strings)
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def trials_table(rows: list[dict[str, Any]], params: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Fixed columns (``TRIAL_COLUMNS``) plus one ``param_<name>`` column per hyperparameter (null when inactive)."""
    params = list(params)
    columns = {name: pa.array([row[name] for row in rows], type_) for name, type_ in _TRIAL_TYPES.items()}
    for name in (k for k in (rows[0] if rows else {}) if k.startswith("value_")):
        columns[name] = pa.array([row[name] for row in rows], pa.float64())
    names = sorted({k for p in params for k in p})
    for name in names:
        columns[f"param_{name}"] = _param_column([p.get(name) for p in params])
    return pa.table(columns)


def _write_atomic(table: pa.Table, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


# Columns that describe when, where and under which id a trial ran — not what it computed.
RUN_SPECIFIC_COLUMNS = ("trial_id", "wall_time_s", "node", "device", "started_at", "ended_at", "hw_latency_ms",
                        "straggler", "straggler_ratio", "energy_j", "energy_spent_j", "energy_source", "sim_started_s",
                        "sim_ended_s")


def reproducible_view(table: pa.Table) -> list[dict[str, Any]]:
    """``trials.parquet`` rows without the run-specific columns (times, hosts, ids, measured latency and energy, and
    the Pareto flags when an objective is such a measurement): what must be identical when an experiment is
    reproduced."""
    measured = [c for c in table.column_names if c.startswith("value_") and c[len("value_"):] in TIMING_METRICS]
    keep = [c for c in table.column_names
            if c not in RUN_SPECIFIC_COLUMNS and c not in measured and not (measured and c == "pareto")]
    return sorted(table.select(keep).to_pylist(), key=lambda r: r["number"])


def read_trials(folder: Path) -> list[dict[str, Any]]:
    """Rows of ``trials.parquet`` (``params`` decoded), ordered by trial number."""
    rows = pq.read_table(folder / TRIALS_FILE).to_pylist()
    for row in rows:
        row["params"] = json.loads(row["params"])
    return sorted(rows, key=lambda r: r["number"])
