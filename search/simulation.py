"""Learning-curve tables and straggler scenarios for ``hypernas simulate`` (no Ray, no torch: pyarrow and numpy).

A *simulation table* is a Parquet file with one row per (configuration, epoch):

==================  ========================================================================================
column              meaning
==================  ========================================================================================
one per parameter   the configuration: a column per parameter of the experiment's space, named like the
                    parameter (or ``param_<name>``, as in ``trials.parquet``); null where a conditional
                    parameter is inactive. Constants of the space count too: a table recorded with
                    ``batch_size: 128`` does not stand in for ``batch_size: 64``.
``epoch``           1, 2, … (int)
metric columns      what a trial reports at that epoch: at least the experiment's metric (every objective,
                    every constrained metric); any other numeric column is reported too
``epoch_time_s``    seconds the epoch took (float > 0): the simulated clock advances by it
``curve``           optional (int): tells apart several recorded curves of one configuration (seeds); a
                    trial replays the curve its seed picks
==================  ========================================================================================

A finished experiment is a table as it is: pass its folder (or its ``curves.parquet``, with ``trials.parquet``
beside it). Its trials' parameters come from ``trials.parquet``, each trial is a curve, and an epoch's time is
the ``epoch_wall_s`` it reported (the time the epoch held its slot; else ``epoch_time_s``, else the gap between
reports). Record with ``scheduler: {type: fifo}`` so that every curve is complete: a pruned trial's curve ends
where it was stopped.

A configuration the searcher asks for must be in the table (``lookup: exact``; numbers are compared to 12
significant digits) — or, with ``lookup: nearest``, the nearest configuration in the table is replayed: the
distance adds, per parameter, the gap on the parameter's own scale (log for log parameters) as a fraction of its
range, 1 for a different categorical value or for a parameter active in one and not the other. Either way the
curve must reach the epochs the trial trains; a configuration missing, or too short, ends the simulation with an
error naming it (nothing is written).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow.parquet as pq

from search.config import ConfigError, ExperimentConfig
from spaces import Float, Int

EPOCH = "epoch"
EPOCH_TIME = "epoch_time_s"
CURVE = "curve"
LOOKUPS = ("exact", "nearest")
# columns of an experiment's curves.parquet that are not metrics a trial reported
_NOT_METRICS = {"trial", EPOCH, "time_s", "sim_time_s", CURVE, "energy_source"}


class TableError(ConfigError):
    """A simulation table that cannot serve this experiment (the CLI exits 2 with the message)."""

    def __init__(self, rule: str) -> None:
        super().__init__("--curves", rule)


def _canonical(value: Any) -> Any:
    """A parameter value as a lookup key: numbers to 12 significant digits (a float read back from Parquet or
    JSON may differ in its last bits), everything else as it is."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return float(f"{number:.12g}") if math.isfinite(number) else number
    return value


@dataclass
class Curve:
    """One recorded learning curve: per epoch (1 … n) its metrics and its duration."""

    params: dict[str, Any]
    metrics: list[dict[str, float]]  # index e - 1: epoch e
    seconds: list[float]

    @property
    def epochs(self) -> int:
        return len(self.metrics)

    def check_reaches(self, epoch: int, trial: int, source: str) -> None:
        """Raise :class:`TableError` unless this curve has ``epoch`` (trial ``trial`` is about to train it)."""
        if epoch > self.epochs:
            raise TableError(f"trial {trial} replays configuration {_show(self.params)}, whose curve in {source} "
                             f"ends at epoch {self.epochs}; the trial trains epoch {epoch} (record curves that far: "
                             f"scheduler none)")


def _show(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True, default=str)


class CurveTable:
    """The curves of a simulation table, looked up by configuration."""

    def __init__(self, curves: Sequence[Curve], source: str, names: Sequence[str]) -> None:
        if not curves:
            raise TableError(f"{source} holds no curves")
        self.curves = list(curves)
        self.source = source
        self.names = tuple(names)  # the configuration columns
        self._by_key: dict[tuple, list[int]] = {}
        for index, curve in enumerate(self.curves):
            self._by_key.setdefault(self._key(curve.params), []).append(index)
        self._matrix: dict[str, Any] | None = None  # for nearest lookups, built on first use
        self._space: dict[str, Any] = {}  # the experiment's parameters (scales and ranges): set by bind()

    def _key(self, params: Mapping[str, Any]) -> tuple:
        return tuple(_canonical(params.get(name)) for name in self.names)

    @property
    def metrics(self) -> set[str]:
        """Every metric some curve reports."""
        return {name for curve in self.curves for row in curve.metrics for name in row}

    # -- reading ------------------------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | Path, cfg: ExperimentConfig) -> "CurveTable":
        """The table at ``path``: a simulation table, an experiment's folder, or its ``curves.parquet``."""
        path = Path(path)
        if path.is_dir():
            path = path / "curves.parquet"
        if not path.is_file():
            raise TableError(f"no such table: {path} (a Parquet file, or a finished experiment's folder)")
        try:
            table = pq.read_table(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is bad input
            raise TableError(f"{path} is not a readable Parquet table ({type(err).__name__}: {err})") from None
        columns = set(table.column_names)
        if EPOCH not in columns:
            raise TableError(f"{path} has no '{EPOCH}' column (one row per configuration and epoch)")
        rows = table.to_pylist()
        if "trial" in columns and not (_config_columns(columns, cfg) - {"epochs"}):
            return cls._from_experiment(path, rows, cfg)
        return cls._from_rows(path, rows, columns, cfg)

    @classmethod
    def _from_rows(cls, path: Path, rows: list[dict], columns: set[str], cfg: ExperimentConfig) -> "CurveTable":
        if EPOCH_TIME not in columns:
            raise TableError(f"{path} has no '{EPOCH_TIME}' column (seconds each epoch took)")
        names = sorted(_config_columns(columns, cfg))
        missing = [n for n in _space_names(cfg) if n not in names]
        if missing:
            raise TableError(f"{path} has no column for the space's parameter(s) {', '.join(missing)} "
                             f"(name them as in the space, or param_<name>)")
        column_of = {n: (n if n in columns else f"param_{n}") for n in names}
        grouped: dict[tuple, dict[int, dict]] = {}
        params_of: dict[tuple, dict] = {}
        for row in rows:
            params = {n: row[column_of[n]] for n in names if row.get(column_of[n]) is not None}
            key = (tuple(_canonical(params.get(n)) for n in names), row.get(CURVE))
            params_of[key] = params
            epoch = _epoch(path, row)
            grouped.setdefault(key, {})[epoch] = row
        skip = {column_of[n] for n in names} | {EPOCH, CURVE, "trial", "time_s", "sim_time_s"}
        curves = [_curve(path, params_of[key], epochs, skip) for key, epochs in sorted(grouped.items(), key=_order)]
        return cls(curves, str(path), names)

    @classmethod
    def _from_experiment(cls, path: Path, rows: list[dict], cfg: ExperimentConfig) -> "CurveTable":
        trials_path = path.with_name("trials.parquet")
        if not trials_path.is_file():
            raise TableError(f"{path} has trial numbers and no configuration columns; its trials.parquet (the "
                             f"configurations) should be beside it, at {trials_path}")
        params = {int(r["number"]): json.loads(r["params"]) for r in pq.read_table(
            trials_path, columns=["number", "params"]).to_pylist()}
        grouped: dict[int, dict[int, dict]] = {}
        for row in rows:
            grouped.setdefault(int(row["trial"]), {})[_epoch(path, row)] = row
        curves = []
        for trial, epochs in sorted(grouped.items()):
            if trial not in params:
                raise TableError(f"{path}: trial {trial} has curves but no row in {trials_path}")
            config = {k: v for k, v in params[trial].items() if k != "epochs"}
            curves.append(_curve(path, config, epochs, _NOT_METRICS, gaps=True))
        names = sorted({n for c in curves for n in c.params})
        missing = [n for n in _space_names(cfg) if n not in names]
        if missing:
            raise TableError(f"{path}: its experiment's trials have no parameter(s) {', '.join(missing)} of this "
                             f"experiment's space")
        return cls(curves, str(path), names)

    # -- lookup ---------------------------------------------------------------------------------------------------
    def lookup(self, params: Mapping[str, Any], epochs: int, seed: int, lookup: str = "exact") -> Curve:
        """The curve a trial with ``params`` (training up to ``epochs`` epochs, seeded ``seed``) replays: one of its
        configuration's curves — those reaching ``epochs`` first — or, with ``lookup: nearest`` and none in the
        table, of the nearest configuration's. A curve shorter than the trial may still do: the trial may be stopped
        early; :meth:`Curve.epoch` says when it does not."""
        config = {k: v for k, v in params.items() if k != "epochs"}
        candidates = list(self._by_key.get(self._key(config), ()))
        if not candidates and lookup == "nearest":
            candidates = self._nearest(config, epochs)
        if not candidates:
            hint = "" if lookup == "nearest" else " (or simulate with --lookup nearest)"
            raise TableError(f"configuration {_show(config)} is not in the table: record it in {self.source}{hint}")
        long_enough = [i for i in candidates if self.curves[i].epochs >= epochs] or candidates
        return self.curves[long_enough[seed % len(long_enough)]]

    def _nearest(self, config: Mapping[str, Any], epochs: int) -> list[int]:
        """The curves (long enough) of the table's configuration nearest to ``config``; every curve of it."""
        if self._matrix is None:
            self._matrix = {name: [_position(self._space.get(name), c.params.get(name)) for c in self.curves]
                            for name in self.names}
        long_enough = np.array([c.epochs >= epochs for c in self.curves])
        distance = np.zeros(len(self.curves))
        for name in self.names:
            mine = _position(self._space.get(name), config.get(name))
            distance += np.array([_gap(mine, theirs) for theirs in self._matrix[name]])
        if long_enough.any():  # the nearest configuration recorded far enough; else the nearest of all
            distance[~long_enough] = np.inf
        best = distance.min()
        nearest = self._key(self.curves[int(np.argmin(distance))].params)
        return [i for i in self._by_key[nearest] if distance[i] == best]

    def bind(self, cfg: ExperimentConfig) -> "CurveTable":
        """Use ``cfg``'s space for distances (scales and ranges); checks the table reports what the experiment
        needs."""
        self._space = {name: cfg.space[name] for name in cfg.space.order}
        needed = [o.name for o in cfg.objective_list] + [c.metric for c in cfg.constraints]
        have = self.metrics
        missing = [n for n in dict.fromkeys(needed) if n not in have]
        if missing:
            raise TableError(f"{self.source} reports no {', '.join(missing)}, which this experiment optimises or "
                             f"bounds (it reports {', '.join(sorted(have)) or 'nothing'})")
        return self


def _order(item: tuple) -> tuple:
    (key, curve), _ = item
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in key), curve if curve is not None else -1


def _space_names(cfg: ExperimentConfig) -> list[str]:
    return [n for n in cfg.space.order if n != "epochs"]


def _config_columns(columns: set[str], cfg: ExperimentConfig) -> set[str]:
    names = set(cfg.space.order)
    found = {c for c in columns if c in names} | {c[len("param_"):] for c in columns
                                                   if c.startswith("param_") and c[len("param_"):] in names}
    return found - {"epochs"}


def _epoch(path: Path, row: Mapping[str, Any]) -> int:
    epoch = row.get(EPOCH)
    if not isinstance(epoch, int) or epoch < 1:
        raise TableError(f"{path}: '{EPOCH}' must be an integer >= 1, got {epoch!r}")
    return epoch


def _curve(path: Path, params: dict, epochs: Mapping[int, Mapping[str, Any]], skip: set[str],
           gaps: bool = False) -> Curve:
    last = max(epochs)
    if sorted(epochs) != list(range(1, last + 1)):
        raise TableError(f"{path}: the curve of {json.dumps(params, sort_keys=True, default=str)} skips epochs "
                         f"(has {sorted(epochs)})")
    metrics, seconds, before = [], [], 0.0
    for epoch in range(1, last + 1):
        row = epochs[epoch]
        metrics.append({k: float(v) for k, v in row.items() if k not in skip and k not in params
                        and not k.startswith("param_") and isinstance(v, (int, float)) and not isinstance(v, bool)})
        took = row.get("epoch_wall_s") if gaps else row.get(EPOCH_TIME)
        if took is None and gaps:
            took = row.get(EPOCH_TIME)
        if took is None and gaps and row.get("time_s") is not None:
            took = float(row["time_s"]) - before
        if not isinstance(took, (int, float)) or not math.isfinite(took) or took <= 0:
            raise TableError(f"{path}: epoch {epoch} of {json.dumps(params, sort_keys=True, default=str)} has no "
                             f"positive {EPOCH_TIME} (got {took!r})")
        seconds.append(float(took))
        before = float(row["time_s"]) if gaps and row.get("time_s") is not None else before + float(took)
    return Curve(params, metrics, seconds)


def _position(param: Any, value: Any) -> Any:
    """Where ``value`` lies on ``param``'s scale: a fraction of its range for numbers, the value itself otherwise;
    None for an inactive parameter."""
    if value is None:
        return None
    if isinstance(param, (Float, Int)) and isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high, x = float(param.low), float(param.high), float(value)
        if param.log and low > 0 and x > 0:
            low, high, x = math.log(low), math.log(high), math.log(x)
        return ("number", (x - low) / (high - low) if high > low else 0.0)
    return ("value", _canonical(value))


def _gap(a: Any, b: Any) -> float:
    if a is None or b is None:
        return 0.0 if a is b else 1.0
    if a[0] == "number" and b[0] == "number":
        return abs(a[1] - b[1])
    return 0.0 if a == b else 1.0


# -- straggler scenarios -------------------------------------------------------------------------------------------

STRAGGLER_FORMS = ("slow:FRACTION:FACTOR", "node:FRACTION:FACTOR", "hang:FRACTION[:EPOCH]", "lost:FRACTION@SECONDS")
_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


@dataclass(frozen=True)
class Stragglers:
    """What ``--straggler`` injects into a simulation. Trial-level drills (``slow``, ``hang``) become the
    experiment's ``faults:`` rules — the same seeded choice of trials as in a real run. Worker-level ones are the
    simulated cluster's: ``slow_nodes`` (a fraction of the workers, each FACTOR× slower for every epoch trained
    there) and ``lost`` (at a simulated second, a fraction of the workers is lost: their trials are PREEMPTED and
    retried on the others)."""

    faults: tuple[dict[str, Any], ...] = ()
    slow_nodes: tuple[tuple[float, float], ...] = ()  # (fraction of workers, factor)
    lost: tuple[tuple[float, float], ...] = ()  # (fraction of workers, at simulated second)

    @classmethod
    def parse(cls, specs: Sequence[str]) -> "Stragglers":
        faults, nodes, lost = [], [], []
        for spec in specs:
            text = spec.strip()
            if m := re.fullmatch(rf"slow:{_NUMBER}:{_NUMBER}", text):
                faults.append({"fraction": _straggler_fraction(spec, m[1]), "slow": _straggler_factor(spec, m[2])})
            elif m := re.fullmatch(rf"node:{_NUMBER}:{_NUMBER}", text):
                nodes.append((_straggler_fraction(spec, m[1]), _straggler_factor(spec, m[2])))
            elif m := re.fullmatch(rf"hang:{_NUMBER}(?::(\d+))?", text):
                faults.append({"fraction": _straggler_fraction(spec, m[1]), "hang_at_epoch": int(m[2] or 1),
                               "first_attempt_only": True})
            elif m := re.fullmatch(rf"lost:{_NUMBER}@{_NUMBER}", text):
                lost.append((_straggler_fraction(spec, m[1]), float(m[2])))
            else:
                raise ConfigError("--straggler", f"{spec!r} is not one of {', '.join(STRAGGLER_FORMS)}")
        return cls(tuple(faults), tuple(nodes), tuple(lost))

    def to_dict(self) -> dict[str, Any]:
        return {"faults": list(self.faults), "slow_nodes": [list(x) for x in self.slow_nodes],
                "lost": [list(x) for x in self.lost]}


def _straggler_fraction(spec: str, text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise ConfigError("--straggler", f"{spec!r}: the fraction must be in (0, 1], got {value}")
    return value


def _straggler_factor(spec: str, text: str) -> float:
    value = float(text)
    if not 1.0 <= value <= 1000.0:
        raise ConfigError("--straggler", f"{spec!r}: the slow-down factor must be in [1, 1000], got {value}")
    return value


@dataclass(frozen=True)
class SimulationSettings:
    """How one simulation runs: the table, the simulated workers, the stragglers, the lookup rule, and how many
    of the latest finished trials the sampler is shown (``history``; None: all)."""

    curves: str
    workers: int
    stragglers: Stragglers = Stragglers()
    lookup: str = "exact"
    history: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or not 1 <= self.workers <= 1_000_000:
            raise ConfigError("--workers", f"must be an integer in [1, 1000000], got {self.workers!r}")
        if self.lookup not in LOOKUPS:
            raise ConfigError("--lookup", f"must be one of {', '.join(LOOKUPS)}, got {self.lookup!r}")
        if self.history is not None and (not isinstance(self.history, int) or self.history < 10):
            raise ConfigError("--sampler-history", f"must be an integer >= 10 (or left out: all), got {self.history!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "stragglers": self.stragglers.to_dict()}

