"""Experiment configuration: YAML/dict → a frozen, fully validated ``ExperimentConfig``.

Every rule lives here, and every error names the field and the rule (``budget.trials: must be an integer
>= 1 (got 0)``). Nothing is created on disk or in MLflow before :func:`load_config` has returned.

The YAML format (all sections but ``space`` optional)::

    name: quickstart            # folder under the workdir and MLflow experiment name (default: file name)
    seed: 0                     # the experiment seed; every other seed derives from it
    trainer: cnn                # mlp | cnn | package.module:function
    deterministic: true         # deterministic torch kernels
    data: {source: mnist1d, num_samples: 5000, validation_fraction: 0.2}
    space:                      # see spaces.Space; `epochs` sets each trial's epochs
      lr: {type: float, low: 1e-4, high: 1e-1, log: true}
    metric: {name: val_accuracy, mode: max}
    searcher: {type: tpe, n_startup_trials: 5}       # tpe | random | cmaes | grid | evolution
    scheduler: {type: asha, max_epochs: 10, grace_period: 1, reduction_factor: 3}  # asha | hyperband | median | none
                                # asha promotion: async (default: Ray's, on arrival) | ordered (trial-number order, parking)
    budget: {trials: 20, max_concurrent: 2, time_budget_s: null}
    resources: {cpus: 1, gpus: 0}
    tracking: {uri: null, experiment: null}    # null: sqlite:///<workdir>/mlflow.db; MLFLOW_TRACKING_URI wins over null
    constraints: {params: {max: 50000}}         # trials violating a bound are infeasible: stopped, never selected
    reproducible: strict                        # or async (default); strict: identical results at any concurrency
    tolerance: {stall_timeout_s: 60, max_retries: 2, fail_fast: false, straggler_factor: 2.0}
    faults: [{trials: [3], hang_at_epoch: 2}]   # chaos drills; off unless configured
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from search.constraints import Constraint
from search.redaction import looks_secret, redact_text
from spaces import Constant, Int, Space, SpaceError, dump_yaml, load_yaml
from trainers import DataSource, DigitsSource, Mnist1dSource, ParquetSource, check_space, resolve_trainer

SEARCHERS = ("tpe", "random", "cmaes", "grid", "evolution")
# Settings each scheduler takes besides ``type`` (read and written only for that scheduler).
SCHEDULER_SETTINGS = {
    "asha": ("max_epochs", "grace_period", "reduction_factor", "promotion"),
    "hyperband": ("max_epochs", "reduction_factor"),
    "median": ("max_epochs", "grace_period", "min_samples_required"),
    "none": ("max_epochs",),
}
SCHEDULERS = tuple(SCHEDULER_SETTINGS)
PROMOTIONS = ("async", "ordered")  # ASHA: decide a rung on arrival (Ray's), or in trial-number order
EPOCHS = "epochs"  # the space parameter that sets a trial's number of epochs
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_REQUIRED = object()


class ConfigError(ValueError):
    """Bad experiment input. ``path`` names the field (``budget.trials``); the message states the rule."""

    def __init__(self, path: str, rule: str) -> None:
        if looks_secret(path.rsplit(".", 1)[-1]):
            rule = re.sub(r"\(got .*\)$", "(got a value that is not shown: the setting looks like a secret)", rule)
        self.path = path
        self.rule = redact_text(rule)
        super().__init__(f"{path}: {self.rule}" if path else self.rule)


# --- small checkers: each returns the (normalised) value or raises ConfigError ------------------------------------


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (int, float, str)) else repr(value)


def _int(low: int | None = None) -> Callable[[str, Any], int]:
    def check(path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            raise ConfigError(path, f"must be an integer{f' >= {low}' if low is not None else ''} (got {_describe(value)})")
        return value
    return check


def _number(low: float, *, inclusive: bool) -> Callable[[str, Any], float]:
    def check(path: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not (value >= low if inclusive else value > low) or value != value:
            raise ConfigError(path, f"must be a number {'>=' if inclusive else '>'} {low} (got {_describe(value)})")
        return value
    return check


def _fraction(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(path, f"must be a number in (0, 1) (got {_describe(value)})")
    return float(value)


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false (got {_describe(value)})")
    return value


def _str(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"must be a non-empty string (got {_describe(value)})")
    return value


def _choice(choices: Iterable[str]) -> Callable[[str, Any], str]:
    choices = tuple(choices)

    def check(path: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(path, f"must be one of {', '.join(choices)} (got {_describe(value)})")
        return value
    return check


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda path, value: None if value is None else check(path, value)


def _str_list(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(path, f"must be a non-empty list of column names (got {_describe(value)})")
    return tuple(value)


class _Section:
    """One mapping of the config: values are taken by key; leftovers are unknown keys and raise."""

    def __init__(self, raw: Any, path: str) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"must be a mapping of settings (got {_describe(raw)})")
        self.raw = dict(raw)
        self.path = path
        self.known: list[str] = []

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def take(self, key: str, check: Callable[[str, Any], Any], default: Any = _REQUIRED) -> Any:
        self.known.append(key)
        if key not in self.raw or (self.raw[key] is None and default is not _REQUIRED and default is not None):
            if default is _REQUIRED:
                raise ConfigError(self._at(key), "is required")
            return default
        return check(self._at(key), self.raw[key])

    def finish(self) -> None:
        unknown = [k for k in self.raw if k not in self.known]
        if unknown:
            raise ConfigError(self._at(str(unknown[0])), f"unknown setting (allowed here: {', '.join(self.known)})")


# --- the config objects ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricConfig:
    """The validation metric that selects trials, and its direction."""

    name: str = "val_accuracy"
    mode: str = "max"


# Settings each searcher takes besides ``type``.
SEARCHER_SETTINGS = {
    "tpe": ("n_startup_trials",),
    "random": (),
    "cmaes": ("n_startup_trials",),
    "grid": (),
    "evolution": ("population_size", "sample_size"),
}


@dataclass(frozen=True)
class SearcherConfig:
    """Which sampler proposes configurations: Optuna's (tpe, random, cmaes, grid) or regularized evolution.

    ``n_startup_trials``: random trials before the TPE / CMA-ES model (default 10 / 1). Evolution:
    ``population_size`` most recent trials form the population, tournaments of ``sample_size``.
    """

    type: str = "tpe"
    n_startup_trials: int | None = None
    population_size: int = 20
    sample_size: int = 5

    def to_dict(self) -> dict[str, Any]:
        settings = {k: getattr(self, k) for k in SEARCHER_SETTINGS[self.type]}
        return {"type": self.type} | {k: v for k, v in settings.items() if v is not None}


@dataclass(frozen=True)
class SchedulerConfig:
    """Early stopping (Ray's schedulers). Fidelity is epochs; ``max_epochs`` is each trial's full budget.

    ``promotion`` (asha only): ``async`` is Ray's ASHA — a trial reaching a rung is judged against the peers that
    have reported there so far, so arrival order (a slow node, a straggler) changes which trials are promoted.
    ``ordered`` judges every rung in trial-number order, parking a trial that arrives before its lower-numbered
    peers (paused with a checkpoint, its slot given to the next trial) until they have reported: promotions then
    depend on the trials' results only, and no slot waits — but a low-numbered trial is judged against a sparse
    rung (so usually promoted) whatever node it landed on, and a slow node then trains it to the end: measured
    1.7x slower with one node of four 4x slow, against 1.2x for ``async`` (``bench/stragglers.py``), hence the
    default.
    """

    type: str = "asha"
    max_epochs: int = 10
    grace_period: int = 1
    reduction_factor: float = 3
    min_samples_required: int = 3
    promotion: str = "async"  # asha: "async" (Ray's, on arrival) or "ordered" (trial-number order, parking)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type} | {k: getattr(self, k) for k in SCHEDULER_SETTINGS[self.type]}


@dataclass(frozen=True)
class BudgetConfig:
    """How many trials, how many at once (``None``: as many as resources allow), and an optional time limit."""

    trials: int = 20
    max_concurrent: int | None = None
    time_budget_s: float | None = None


@dataclass(frozen=True)
class ResourcesConfig:
    """Per-trial resources on the Ray cluster: CPUs, GPUs (fractions such as 0.25 share a GPU), and custom Ray
    resources (``custom: {accel: 1}``: trials run only on nodes that offer ``accel``)."""

    cpus: float = 1
    gpus: float = 0
    custom: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    def ray_request(self) -> dict[str, float]:
        """What one trial asks of a node, in Ray's resource names."""
        return {"CPU": self.cpus, "GPU": self.gpus, **self.custom}


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow: tracking URI (``None``: ``MLFLOW_TRACKING_URI`` or the workdir's SQLite file) and experiment name."""

    uri: str | None = None
    experiment: str | None = None


@dataclass(frozen=True)
class ToleranceConfig:
    """Straggler and fault tolerance. ``stall_timeout_s``: kill a trial that reports nothing for that long (null:
    never). ``max_retries``: restarts from the last checkpoint after a stall, an exception or a lost node.
    ``fail_fast``: end the experiment at the first trial failure. ``straggler_factor``: flag a trial whose epochs
    take this many times as long as its peers' at the same epochs."""

    stall_timeout_s: float | None = None
    max_retries: int = 2
    fail_fast: bool = False
    straggler_factor: float = 2.0


@dataclass(frozen=True)
class FaultRule:
    """A chaos drill (off unless configured): for the selected trials — by ``trials`` (numbers), a ``fraction`` of
    them (seeded, and exact to within one trial in any run of consecutive trials: see ``search.faults``), or those
    on nodes that offer the custom resource ``node_resource`` — hang at an epoch, raise at an epoch, or train
    ``slow`` times slower. ``first_attempt_only`` limits hang/raise to the first attempt, so a retry recovers."""

    trials: tuple[int, ...] | None = None
    fraction: float | None = None
    node_resource: str | None = None
    hang_at_epoch: int | None = None
    raise_at_epoch: int | None = None
    slow: float | None = None
    first_attempt_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items() if v not in (None, False)}
        return out


@dataclass(frozen=True)
class ReproducibleConfig:
    """``async`` (default): trials are asked and stopped as results arrive — fastest, and exactly repeatable only
    one trial at a time. ``strict``: configurations are asked in generations of ``generation_size`` trials and told
    in trial-number order, ASHA decides each rung in trial-number order, so the whole experiment is identical
    for any concurrency — at the cost of trials waiting for lower-numbered ones."""

    mode: str = "async"
    generation_size: int = 4

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "generation_size": self.generation_size} if self.mode == "strict" else \
            {"mode": self.mode}


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment. Build with :func:`load_config`; ``to_dict()`` gives the resolved YAML form."""

    name: str
    space: Space
    seed: int = 0
    trainer: str = "cnn"
    deterministic: bool = True
    data: DataSource = dataclasses.field(default_factory=Mnist1dSource)
    metric: MetricConfig = MetricConfig()
    searcher: SearcherConfig = SearcherConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    budget: BudgetConfig = BudgetConfig()
    resources: ResourcesConfig = ResourcesConfig()
    tracking: TrackingConfig = TrackingConfig()
    constraints: tuple[Constraint, ...] = ()
    reproducible: ReproducibleConfig = ReproducibleConfig()
    tolerance: ToleranceConfig = ToleranceConfig()
    faults: tuple[FaultRule, ...] = ()

    def epochs_for(self, params: Mapping[str, Any]) -> int:
        """Epochs a trial with ``params`` trains: its ``epochs`` parameter, else ``scheduler.max_epochs``."""
        return int(params.get(EPOCHS, self.scheduler.max_epochs))

    def to_dict(self) -> dict[str, Any]:
        data = {"source": self.data.name} | {
            f.name: (list(v) if isinstance(v, tuple) else v)
            for f in dataclasses.fields(self.data) if f.init and (v := getattr(self.data, f.name)) is not None
        }
        section = dataclasses.asdict
        return {
            "name": self.name,
            "seed": self.seed,
            "trainer": self.trainer,
            "deterministic": self.deterministic,
            "data": data,
            "space": self.space.to_dict(),
            "metric": section(self.metric),
            "searcher": self.searcher.to_dict(),
            "scheduler": self.scheduler.to_dict(),
            "budget": section(self.budget),
            "resources": {"cpus": self.resources.cpus, "gpus": self.resources.gpus, "custom": dict(self.resources.custom)},
            "tracking": section(self.tracking),
            "reproducible": self.reproducible.to_dict(),
            "tolerance": section(self.tolerance),
            "faults": [rule.to_dict() for rule in self.faults],
            "constraints": {c.metric: {k: v for k, v in (("min", c.min), ("max", c.max)) if v is not None}
                            for c in self.constraints},
        }

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


# --- parsing ---------------------------------------------------------------------------------------------------


def _parse_data(raw: Any) -> DataSource:
    section = _Section(raw, "data")
    source = section.take("source", _choice(("mnist1d", "digits", "parquet")), "mnist1d")
    if source == "mnist1d":
        result: DataSource = Mnist1dSource(
            num_samples=section.take("num_samples", _int(100), 5000),
            validation_fraction=section.take("validation_fraction", _fraction, 0.2),
        )
    elif source == "digits":
        result = DigitsSource(
            test_fraction=section.take("test_fraction", _fraction, 0.2),
            validation_fraction=section.take("validation_fraction", _fraction, 0.2),
        )
    else:
        path = section.take("path", _str)
        if not Path(path).is_file():
            raise ConfigError("data.path", f"no such file: {path}")
        result = ParquetSource(
            path=str(Path(path).resolve()),
            label=section.take("label", _str),
            features=section.take("features", _optional(_str_list), None),
            test_fraction=section.take("test_fraction", _fraction, 0.2),
            validation_fraction=section.take("validation_fraction", _fraction, 0.2),
        )
    section.finish()
    return result


def _parse_metric(raw: Any, reported: tuple[str, ...] | None, trainer: str) -> MetricConfig:
    if isinstance(raw, str):
        raw = {"name": raw}
    section = _Section(raw, "metric")
    name = section.take("name", _str, "val_accuracy")
    if reported is not None and name not in reported:
        raise ConfigError("metric.name", f"trainer {trainer!r} does not report {name!r} (it reports: {', '.join(reported)})")
    inferred = "max" if "acc" in name else "min" if "loss" in name or "error" in name else None
    mode = section.take("mode", _choice(("max", "min")), inferred)
    if mode is None:
        raise ConfigError("metric.mode", f"is required for metric {name!r} (max or min)")
    section.finish()
    return MetricConfig(name, mode)


def _parse_searcher(raw: Any, space: Space) -> SearcherConfig:
    if isinstance(raw, str):
        raw = {"type": raw}
    section = _Section(raw, "searcher")
    kind = section.take("type", _choice(SEARCHERS), "tpe")
    checks = {"n_startup_trials": _optional(_int(0)), "population_size": _int(2), "sample_size": _int(1)}
    defaults = SearcherConfig()
    values = {key: section.take(key, checks[key], getattr(defaults, key)) for key in SEARCHER_SETTINGS[kind]}
    section.finish()
    searcher = dataclasses.replace(defaults, type=kind, **values)
    if searcher.sample_size > searcher.population_size:
        raise ConfigError("searcher.sample_size", f"sample_size <= population_size must hold "
                                                  f"(got {searcher.sample_size} > {searcher.population_size})")
    if kind == "grid":
        try:
            space.grid()
        except SpaceError as err:
            raise err_at("space", err) from None
    return searcher


def _parse_scheduler(raw: Any) -> SchedulerConfig:
    if isinstance(raw, str):
        raw = {"type": raw}
    section = _Section(raw, "scheduler")
    kind = section.take("type", _choice(SCHEDULERS), "asha")
    checks = {
        "max_epochs": _int(1),
        "grace_period": _int(1),
        "reduction_factor": _number(1, inclusive=False),
        "min_samples_required": _int(1),
        "promotion": _choice(PROMOTIONS),
    }
    defaults = SchedulerConfig()
    values = {key: section.take(key, checks[key], getattr(defaults, key)) for key in SCHEDULER_SETTINGS[kind]}
    section.finish()
    scheduler = dataclasses.replace(defaults, type=kind, **values)
    if "grace_period" in values and scheduler.grace_period > scheduler.max_epochs:
        raise ConfigError(
            "scheduler.grace_period",
            f"grace_period <= max_epochs must hold (got {scheduler.grace_period} > {scheduler.max_epochs})",
        )
    return scheduler


def _parse_budget(raw: Any) -> BudgetConfig:
    section = _Section(raw, "budget")
    budget = BudgetConfig(
        trials=section.take("trials", _int(1), BudgetConfig.trials),
        max_concurrent=section.take("max_concurrent", _optional(_int(1)), None),
        time_budget_s=section.take("time_budget_s", _optional(_number(0, inclusive=False)), None),
    )
    section.finish()
    return budget


def _parse_resources(raw: Any) -> ResourcesConfig:
    section = _Section(raw, "resources")
    resources = ResourcesConfig(
        cpus=section.take("cpus", _number(0, inclusive=False), 1),
        gpus=section.take("gpus", _number(0, inclusive=True), 0),
        custom=section.take("custom", _custom_resources, {}),
    )
    section.finish()
    return resources


def _custom_resources(path: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must map resource names to amounts, e.g. {{accel: 1}} (got {_describe(value)})")
    out = {}
    for name, amount in value.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_\-]*$", name) or name in ("CPU", "GPU"):
            raise ConfigError(f"{path}.{name}", "custom resource names are identifiers other than CPU and GPU")
        out[name] = _number(0, inclusive=False)(f"{path}.{name}", amount)
    return out


def _parse_tracking(raw: Any) -> TrackingConfig:
    section = _Section(raw, "tracking")
    tracking = TrackingConfig(
        uri=section.take("uri", _optional(_str), None),
        experiment=section.take("experiment", _optional(_str), None),
    )
    section.finish()
    return tracking


def _parse_constraints(raw: Any, reported: tuple[str, ...] | None, trainer: str) -> tuple[Constraint, ...]:
    section = _Section(raw, "constraints")
    constraints = []
    for metric in list(section.raw):
        if reported is not None and metric not in reported:
            raise ConfigError(f"constraints.{metric}", f"trainer {trainer!r} does not report {metric!r} "
                                                       f"(it reports: {', '.join(reported)})")
        bounds = _Section(section.take(metric, lambda p, v: v), f"constraints.{metric}")
        number = _optional(_number(-float("inf"), inclusive=False))
        low, high = bounds.take("min", number, None), bounds.take("max", number, None)
        bounds.finish()
        if low is None and high is None:
            raise ConfigError(f"constraints.{metric}", "needs min, max or both")
        if low is not None and high is not None and low > high:
            raise ConfigError(f"constraints.{metric}", f"min <= max must hold (got min={low}, max={high})")
        constraints.append(Constraint(metric, low, high))
    section.finish()
    return tuple(constraints)


def _parse_reproducible(raw: Any, scheduler: SchedulerConfig) -> ReproducibleConfig:
    if isinstance(raw, str):
        raw = {"mode": raw}
    section = _Section(raw, "reproducible")
    mode = section.take("mode", _choice(("async", "strict")), "async")
    size = section.take("generation_size", _int(1), ReproducibleConfig.generation_size) if mode == "strict" \
        else ReproducibleConfig.generation_size
    section.finish()
    if mode == "strict" and scheduler.type not in ("asha", "none"):
        raise ConfigError("reproducible.mode", f"strict mode works with scheduler asha or none (got "
                                               f"{scheduler.type!r}, whose decisions depend on arrival order)")
    return ReproducibleConfig(mode, size)


def _parse_tolerance(raw: Any) -> ToleranceConfig:
    section = _Section(raw, "tolerance")
    defaults = ToleranceConfig()
    tolerance = ToleranceConfig(
        stall_timeout_s=section.take("stall_timeout_s", _optional(_number(0, inclusive=False)), None),
        max_retries=section.take("max_retries", _int(0), defaults.max_retries),
        fail_fast=section.take("fail_fast", _bool, defaults.fail_fast),
        straggler_factor=section.take("straggler_factor", _number(1, inclusive=False), defaults.straggler_factor),
    )
    section.finish()
    return tolerance


def _int_list(path: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ConfigError(path, f"must be a non-empty list of trial numbers (got {_describe(value)})")
    return tuple(value)


def _parse_faults(raw: Any) -> tuple[FaultRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("faults", f"must be a list of fault rules (got {_describe(raw)})")
    rules = []
    for i, item in enumerate(raw):
        path = f"faults[{i}]"
        section = _Section(item, path)
        rule = FaultRule(
            trials=section.take("trials", _optional(_int_list), None),
            fraction=section.take("fraction", _optional(_fraction), None),
            node_resource=section.take("node_resource", _optional(_str), None),
            hang_at_epoch=section.take("hang_at_epoch", _optional(_int(1)), None),
            raise_at_epoch=section.take("raise_at_epoch", _optional(_int(1)), None),
            slow=section.take("slow", _optional(_number(1, inclusive=False)), None),
            first_attempt_only=section.take("first_attempt_only", _bool, False),
        )
        section.finish()
        selectors = [x for x in (rule.trials, rule.fraction, rule.node_resource) if x is not None]
        if len(selectors) != 1:
            raise ConfigError(path, "select trials with exactly one of trials, fraction, node_resource")
        effects = [x for x in (rule.hang_at_epoch, rule.raise_at_epoch, rule.slow) if x is not None]
        if len(effects) != 1:
            raise ConfigError(path, "give exactly one of hang_at_epoch, raise_at_epoch, slow")
        rules.append(rule)
    return tuple(rules)


def err_at(prefix: str, err: SpaceError) -> ConfigError:
    """A space error located inside the config (``lr.low`` → ``space.lr.low``)."""
    return ConfigError(f"{prefix}.{err.path}" if err.path else prefix, err.rule)


def _check_epochs(space: Space, scheduler: SchedulerConfig) -> None:
    param = space.get(EPOCHS)
    if param is None:
        return
    if param.when is not None:
        raise ConfigError(f"space.{EPOCHS}.when", "the epochs parameter cannot be conditional")
    if isinstance(param, Constant):
        values = [param.value]
    elif isinstance(param, Int):
        values = [param.low, param.high]
    else:
        raise ConfigError(f"space.{EPOCHS}", "must be an integer constant or an int parameter")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"space.{EPOCHS}", f"epochs must be integers >= 1 (got {value!r})")
        if value > scheduler.max_epochs:
            raise ConfigError(f"space.{EPOCHS}", f"epochs <= scheduler.max_epochs must hold (got {value} > {scheduler.max_epochs})")


def config_from_dict(raw: Any, *, default_name: str | None = None) -> ExperimentConfig:
    """Validate a config mapping (the YAML document) into an :class:`ExperimentConfig`."""
    top = _Section(raw, "")
    name = top.take("name", _str, default_name)
    if name is None:
        raise ConfigError("name", "is required (or pass --name)")
    if not _NAME.match(name):
        raise ConfigError("name", f"must start with a letter or digit and hold only letters, digits, _ . - (got {name!r})")
    seed = top.take("seed", _int(0), 0)
    trainer_name = top.take("trainer", _str, "cnn")
    try:
        trainer = resolve_trainer(trainer_name)
    except ValueError as err:
        raise ConfigError("trainer", str(err)) from None
    deterministic = top.take("deterministic", _bool, True)
    data = _parse_data(top.take("data", lambda p, v: v, None))
    raw_space = top.take("space", lambda p, v: v)
    if not isinstance(raw_space, Mapping) or not raw_space:
        raise ConfigError("space", f"must map parameter names to parameters (got {_describe(raw_space)})")
    try:
        space = Space(raw_space)
        if trainer.hyperparameters is not None:
            check_space(trainer.hyperparameters, space, reserved=(EPOCHS,))
    except SpaceError as err:
        raise err_at("space", err) from None
    metric = _parse_metric(top.take("metric", lambda p, v: v, None), trainer.metrics, trainer_name)
    scheduler = _parse_scheduler(top.take("scheduler", lambda p, v: v, None))
    _check_epochs(space, scheduler)
    budget = _parse_budget(top.take("budget", lambda p, v: v, None))
    if scheduler.type == "hyperband" and budget.max_concurrent is not None:
        # Seen on Ray 2.60: the concurrency limiter counts PAUSED trials as running, so a HyperBand bracket
        # waiting for members that cannot start any more stalls the experiment.
        raise ConfigError("budget.max_concurrent", "cannot be combined with scheduler hyperband, which pauses "
                          "trials; bound concurrency with resources.cpus instead (trials per node = cpus / resources.cpus)")
    searcher = _parse_searcher(top.take("searcher", lambda p, v: v, None), space)
    resources = _parse_resources(top.take("resources", lambda p, v: v, None))
    tracking = _parse_tracking(top.take("tracking", lambda p, v: v, None))
    constraints = _parse_constraints(top.take("constraints", lambda p, v: v, None), trainer.metrics, trainer_name)
    reproducible = _parse_reproducible(top.take("reproducible", lambda p, v: v, None), scheduler)
    tolerance = _parse_tolerance(top.take("tolerance", lambda p, v: v, None))
    faults = _parse_faults(top.take("faults", lambda p, v: v, None))
    top.finish()
    return ExperimentConfig(
        name=name, space=space, seed=seed, trainer=trainer_name, deterministic=deterministic, data=data,
        metric=metric, searcher=searcher, scheduler=scheduler, budget=budget, resources=resources, tracking=tracking,
        constraints=constraints, reproducible=reproducible, tolerance=tolerance, faults=faults,
    )


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``["budget.trials=8", "space.lr.high=0.1"]`` applied to a copy of ``raw``; values are parsed as YAML."""
    result = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expects key=value, e.g. budget.trials=8 (got {item!r})")
        try:
            value = load_yaml(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key}", f"value is not valid YAML ({err})") from None
        node = result
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}", f"{'.'.join(parts[:i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The YAML document at ``path`` as a dict; missing files and YAML errors become :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config", f"no such file: {path}")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError("config", f"{path} is not valid YAML ({err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError("config", f"cannot read {path} ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError("config", f"{path} must hold a YAML mapping of settings")
    return raw


def load_config(
    source: str | Path | Mapping[str, Any] | ExperimentConfig,
    *,
    overrides: Iterable[str] = (),
    name: str | None = None,
    seed: int | None = None,
) -> ExperimentConfig:
    """One validated config from a YAML path, a dict, or an existing config, with CLI-style overrides.

    >>> cfg = load_config({"name": "demo", "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}}},
    ...                   overrides=["budget.trials=4"], seed=3)
    >>> cfg.budget.trials, cfg.seed, cfg.scheduler.type
    (4, 3, 'asha')
    """
    default_name = None
    if isinstance(source, ExperimentConfig):
        raw: dict[str, Any] = source.to_dict()
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        raw = read_config_file(source)
        default_name = Path(source).stem
    raw = apply_overrides(raw, overrides)
    if name is not None:
        raw["name"] = name
    if seed is not None:
        raw["seed"] = seed
    return config_from_dict(raw, default_name=default_name)
