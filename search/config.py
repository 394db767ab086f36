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
    metric: {name: val_accuracy, mode: max}        # one objective; or several, searched for their Pareto front:
    # objectives: [{name: val_accuracy, mode: max}, {name: energy_j, mode: min}]   (searcher: motpe, nsga2, nsga3 ...)
    # select: {objective: val_accuracy, subject_to: {energy_j: {max: 500}}}      (or select: knee) picks the winner
    energy: {grid_gco2_per_kwh: 480, cpu_watts_per_core: 6.75}   # CO2e of the measured energy; the CPU estimate's rate
    searcher: {type: tpe, n_startup_trials: 5}       # types and their settings: search.registry.SEARCHERS
    scheduler: {type: asha, max_epochs: 10, grace_period: 1, reduction_factor: 3}  # search.registry.SCHEDULERS
    budget: {trials: 20, max_concurrent: 2, time_budget_s: null}
    resources: {cpus: 1, gpus: 0, trials_per_worker: 1}  # per worker; K > 1: K trials share it (search._tune._batching)
    tracking: {uri: null, experiment: null}    # null: sqlite:///<workdir>/mlflow.db; MLFLOW_TRACKING_URI wins over null
    constraints: {params: {max: 50000}}         # trials violating a bound are infeasible: stopped, never selected
    reproducible: strict                        # or async (default); strict: identical results at any concurrency
    tolerance: {stall_timeout_s: 60, max_retries: 2, fail_fast: false, straggler_factor: 2.0}
    faults: [{trials: [3], hang_at_epoch: 2}]   # chaos drills; off unless configured
    oneshot: {method: darts, search_seeds: 3, epochs: 10, top_k: 3, settings: {order: 1}}  # one-shot NAS first
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from search.constraints import Constraint
from search.redaction import REDACTED, looks_secret_path, redact, remember_secrets, secret_values
from search.registry import SCHEDULERS, SEARCHERS, settings_schema
from spaces import Constant, Int, Space, SpaceError, YamlDocumentError, dump_yaml, load_yaml
from trainers import DEFAULT_SPLIT_SEED, DataSource, DigitsSource, Mnist1dSource, ParquetSource, check_space
from trainers.energy import DEFAULT_CPU_WATTS_PER_CORE, DEFAULT_GRID_GCO2_PER_KWH

EPOCHS = "epochs"  # the space parameter that sets a trial's number of epochs
SEARCH_PHASE, RETRAIN_PHASE = "search", "retrain"  # the two phases of a one-shot experiment
ONESHOT_TRAINER = "oneshot"  # the trainer of a one-shot experiment's supernet searches
# An experiment's name is a folder under the workdir and an MLflow experiment name. Matched whole (fullmatch: a
# trailing newline does not slip through ``$``); with no separator and no ``..`` it can never leave the workdir.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
# Entries of the workdir itself: an experiment of that name would be a folder on top of them.
RESERVED_NAMES = {"mlflow.db": "MLflow store", "mlartifacts": "MLflow artifact folder",
                  "test_ledger.jsonl": "test-split ledger"}
NAME_RULE = "must start with a letter or digit and hold only letters, digits, _ . - (at most 128 characters, no '..')"

# Upper bounds on sizes and times: far above any real experiment, low enough that a slip (three zeros too many,
# .inf) fails here in a second instead of as hours of data generation, a sampler that never ends or a timer that
# overflows. The README's "experiment file" section lists them.
MAX_NUM_SAMPLES = 1_000_000   # data.num_samples (MNIST-1D rows generated in memory)
MAX_TRIALS = 100_000          # budget.trials, and anything counted in trials (startup trials, population, ...)
MAX_CONCURRENT = 10_000       # budget.max_concurrent
MAX_EPOCHS = 10_000           # scheduler.max_epochs, and so every epoch count
MAX_SECONDS = 366 * 24 * 3600  # time_budget_s, stall_timeout_s: a year
MAX_RETRIES = 100             # tolerance.max_retries
MAX_FACTOR = 1_000            # reduction_factor, straggler_factor, faults[].slow
MAX_CPUS, MAX_GPUS = 1_024, 64  # resources per trial (a trial runs on one node)
MAX_TRIALS_PER_WORKER = 1_024  # resources.trials_per_worker
MAX_CUSTOM_RESOURCE = 1_000_000
MAX_SEED = 2**63 - 1          # seeds are recorded as 64-bit integers
MAX_CONFIG_VALUES = 100_000   # values in one config document (a Python dict sharing one list a million times)
MAX_CONFIG_DEPTH = 20         # nesting of one config document (the YAML loader has the same limit)
MAX_CONFIG_BYTES = 1 << 20    # an experiment file is a few kB
_REQUIRED = object()


class ConfigError(ValueError):
    """Bad experiment input. ``path`` names the field (``budget.trials``); the message states the rule.

    Neither shows a secret: under a secret-named path (``space.api_token.choices``) the offending value is not
    shown (the ``(got …)`` part and quoted values), and both go through :func:`~search.redaction.redact`, which
    masks every known secret value (:func:`config_from_dict` makes the config's known first) and URL passwords.
    """

    _HIDDEN = "(got a value that is not shown: the setting looks like a secret)"
    _QUOTED = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")

    def __init__(self, path: str, rule: str) -> None:
        if looks_secret_path(path):
            rule = self._QUOTED.sub(REDACTED, re.sub(r"\(got .*\)", self._HIDDEN, rule, flags=re.DOTALL))
        self.path = redact(path)
        self.rule = redact(rule)
        super().__init__(f"{self.path}: {self.rule}" if path else self.rule)


# --- small checkers: each returns the (normalised) value or raises ConfigError ------------------------------------


def _describe(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, (list, tuple, dict, set)) and len(repr(value)) > 200:
        return f"a {type(value).__name__} of {len(value)} items"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (int, float, str)) else repr(value)


def _int(low: int | None = None, high: int | None = None) -> Callable[[str, Any], int]:
    rule = "".join((f" >= {low}" if low is not None else "", f"{' and' if low is not None else ''} <= {high:_}"
                    if high is not None else ""))

    def check(path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low) or (
                high is not None and value > high):
            raise ConfigError(path, f"must be an integer{rule} (got {_describe(value)})")
        return value
    return check


def _number(low: float | None, *, inclusive: bool = True, high: float | None = None) -> Callable[[str, Any], float]:
    """A finite int or float (``.inf`` and ``.nan`` never pass) above ``low`` and at most ``high``."""
    rule = "".join((f" {'>=' if inclusive else '>'} {low}" if low is not None else "",
                    f"{' and' if low is not None else ''} <= {high:_}" if high is not None else ""))

    def check(path: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            isinstance(value, int) or math.isfinite(value))  # (an int is finite; isfinite(10**400) would overflow)
        if not ok or (low is not None and not (value >= low if inclusive else value > low)) or (
                high is not None and value > high):
            raise ConfigError(path, f"must be a finite number{rule} (got {_describe(value)})")
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


def _key(key: Any) -> str:
    """A mapping key as it appears in an error's path: as written when it is plain text, else its repr (so a key
    holding a newline or a control character cannot break the one-line message)."""
    return key if isinstance(key, str) and key.isprintable() and key.strip() == key and key else repr(key) \
        if isinstance(key, str) else str(key)


def validate_name(name: Any, field: str = "name") -> str:
    """``name`` if it can name an experiment — a folder directly under the workdir and an MLflow experiment —
    else a :class:`ConfigError` naming ``field``. One rule for the config's ``name``, ``--name`` and every verb's
    NAME: matched whole, so no path separator, no ``..``, nothing absolute and no trailing newline gets through.

    >>> validate_name("quickstart")
    'quickstart'
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ConfigError(field, f"{NAME_RULE} (got {_describe(name)})")
    if name in RESERVED_NAMES:
        raise ConfigError(field, f"{name!r} is the name of the workdir's own {RESERVED_NAMES[name]}; choose another")
    return name


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
            raise ConfigError(self._at(_key(unknown[0])), f"unknown setting (allowed here: {', '.join(self.known)})")


# --- the config objects ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricConfig:
    """The validation metric that selects trials, and its direction."""

    name: str = "val_accuracy"
    mode: str = "max"


# Metrics every trial reports whatever its trainer (the trial's reporter adds them): usable as a metric, an objective
# or a constraint. energy_j: the trial's joules so far (search._tune._trainable; trainers.energy measures them).
TRIAL_METRICS = ("energy_j", "epoch_energy_j", "epoch_wall_s")
MAX_OBJECTIVES = 8
# metrics measured on the machine (times, energy): searching them makes the sampler's proposals machine-dependent
MEASURED_METRICS = (*TRIAL_METRICS, "epoch_time_s", "latency_ms", "measured_latency_ms", "predicted_latency_ms")


@dataclass(frozen=True)
class SelectConfig:
    """How the one winner is chosen from a multi-objective experiment's Pareto front, fixed before the search (see
    :mod:`search.pareto`): the best front point in ``objective`` among those within the ``subject_to`` bounds, or
    (``rule: knee``) the knee of the front. Applied to validation values only."""

    rule: str = "objective"  # "objective" | "knee"
    objective: str | None = None
    subject_to: tuple[Constraint, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.objective is not None:
            out["objective"] = self.objective
        if self.subject_to:
            out["subject_to"] = _bounds_dict(self.subject_to)
        return out

    def describe(self) -> str:
        what = "the knee of the Pareto front" if self.rule == "knee" else f"the best {self.objective} on the Pareto front"
        return what + (f" subject to {' and '.join(b.describe() for b in self.subject_to)}" if self.subject_to else "")


@dataclass(frozen=True)
class EnergyConfig:
    """Energy accounting (``energy:``): the grid's carbon intensity that turns measured joules into CO2e, and the
    watts per busy CPU core the estimate charges where no energy counter is readable (``trainers.energy``)."""

    grid_gco2_per_kwh: float = DEFAULT_GRID_GCO2_PER_KWH  # each default's source is documented in trainers.energy
    cpu_watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE


class _TypedSection:
    """A ``searcher:`` or ``scheduler:`` section: the registered type's name and one instance of that type's
    settings dataclass (see :mod:`search.registry`) — never another type's settings. A setting reads as an
    attribute (``cfg.searcher.population_size``) when the type has it."""

    type: str
    settings: Any

    def __getattr__(self, name: str) -> Any:
        # only reached for names the object lacks; never for dunders or while unpickling (no settings yet)
        if name.startswith("__") or name == "settings" or "settings" not in self.__dict__:
            raise AttributeError(name)
        try:
            return getattr(self.__dict__["settings"], name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} of type {self.type!r} has no setting {name!r}") from None

    def _settings_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self.settings, f.name) for f in settings_schema(type(self.settings))}
        return {k: v for k, v in values.items() if v is not None}


def _check_settings(section: _TypedSection, registry: Any) -> None:
    """Fill in the type's default settings, or insist that the given ones are that type's (value objects check
    themselves; :meth:`SearcherConfig.of` and :meth:`SchedulerConfig.of` validate the values as the config does)."""
    settings = registry[section.type].settings
    if section.settings is None:
        object.__setattr__(section, "settings", settings())
    elif not isinstance(section.settings, settings):
        raise TypeError(f"{registry.kind} {section.type!r} takes {settings.__name__} "
                        f"(got {type(section.settings).__name__})")


@dataclass(frozen=True)
class SearcherConfig(_TypedSection):
    """Which sampler proposes configurations: a name in :data:`search.registry.SEARCHERS` and that searcher's
    own settings (``None``: its defaults). Build one from settings with :meth:`of`, which validates them.

    >>> SearcherConfig.of("evolution", population_size=8).settings
    EvolutionSettings(population_size=8, sample_size=None, dedupe=True)
    """

    type: str = "tpe"
    settings: Any = None

    def __post_init__(self) -> None:
        _check_settings(self, SEARCHERS)

    @classmethod
    def of(cls, type: str, space: Space | None = None, **settings: Any) -> "SearcherConfig":  # noqa: A002
        """A validated searcher config, as the ``searcher:`` section ``{type: ..., **settings}`` parses
        (rules that need the space are checked only when ``space`` is given)."""
        return _parse_searcher({"type": type, **settings}, space)

    def max_trials(self, space: Space) -> int | None:
        """The most distinct trials this searcher can propose over ``space`` (a grid's size); ``None``: no bound."""
        return SEARCHERS[self.type].max_trials(self.settings, space)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type} | self._settings_dict()


@dataclass(frozen=True)
class SchedulerConfig(_TypedSection):
    """Early stopping (Ray's schedulers): a name in :data:`search.registry.SCHEDULERS` and that scheduler's own
    settings (``None``: its defaults). ``max_epochs``, each trial's full budget in epochs, is every scheduler's.

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
    settings: Any = None

    def __post_init__(self) -> None:
        _check_settings(self, SCHEDULERS)

    @classmethod
    def of(cls, type: str, **settings: Any) -> "SchedulerConfig":  # noqa: A002
        """A validated scheduler config, as the ``scheduler:`` section ``{type: ..., **settings}`` parses."""
        return _parse_scheduler({"type": type, **settings})

    @property
    def promotion(self) -> str:
        """How rung decisions are ordered: the type's ``promotion`` setting; ``async`` (on arrival) for a
        scheduler without one."""
        return getattr(self.settings, "promotion", "async")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "max_epochs": self.max_epochs} | self._settings_dict()


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
    # trials sharing one worker process (and its cpus/gpus), trained as one vectorised model when their shapes agree
    trials_per_worker: int = 1

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    @property
    def batched(self) -> bool:
        return self.trials_per_worker > 1

    def ray_request(self) -> dict[str, float]:
        """What one trial asks of a node (one worker, with batched trials), in Ray's resource names."""
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
    ``slow`` times slower. ``first_attempt_only`` limits hang/raise to the first attempt, so a retry recovers.
    ``release_file`` (with ``hang_at_epoch`` only): the hang ends when that path exists on the trial's node — a
    trial held at a known point until a drill (or a test) lets it go, instead of one slowed down and raced."""

    trials: tuple[int, ...] | None = None
    fraction: float | None = None
    node_resource: str | None = None
    hang_at_epoch: int | None = None
    raise_at_epoch: int | None = None
    slow: float | None = None
    first_attempt_only: bool = False
    release_file: str | None = None

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
class OneShotConfig:
    """A one-shot NAS experiment (``oneshot:``): ``search_seeds`` supernet searches with ``method`` (the ``oneshot``
    trainer, ``epochs`` each, ``settings`` its hyperparameters) derive genotypes of the space's ``cell`` parameter;
    then the ``top_k`` distinct ones are retrained as ordinary trials (``budget.trials`` of them, the searcher
    choosing the other hyperparameters), selected on validation like any trial."""

    method: str
    cell: str
    search_seeds: int = 3
    epochs: int = 10
    top_k: int = 3
    settings: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "search_seeds": self.search_seeds, "epochs": self.epochs,
                "top_k": self.top_k, "settings": dict(self.settings)}


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
    searcher: SearcherConfig = dataclasses.field(default_factory=SearcherConfig)  # (the registry loads on use)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    budget: BudgetConfig = BudgetConfig()
    resources: ResourcesConfig = ResourcesConfig()
    tracking: TrackingConfig = TrackingConfig()
    constraints: tuple[Constraint, ...] = ()
    reproducible: ReproducibleConfig = ReproducibleConfig()
    tolerance: ToleranceConfig = ToleranceConfig()
    faults: tuple[FaultRule, ...] = ()
    oneshot: OneShotConfig | None = None
    # several objectives (a Pareto front) instead of one: ``metric`` is then the first, the one early stopping
    # watches; ``select`` fixes how the front's winner is chosen
    objectives: tuple[MetricConfig, ...] = ()
    select: SelectConfig | None = None
    energy: EnergyConfig = EnergyConfig()

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def objective_list(self) -> tuple[MetricConfig, ...]:
        """Every objective, in order: ``objectives``, or the one ``metric``."""
        return self.objectives or (self.metric,)

    def phase_of(self, number: int) -> str | None:
        """What trial ``number`` is in a one-shot experiment: a supernet ``search`` (the first
        ``oneshot.search_seeds`` trials) or a ``retrain`` of a derived genotype; ``None`` in any other experiment."""
        if self.oneshot is None:
            return None
        return SEARCH_PHASE if number < self.oneshot.search_seeds else RETRAIN_PHASE

    def trainer_for(self, number: int) -> str:
        """The trainer trial ``number`` runs: the one-shot trainer for a supernet search, else ``trainer``."""
        return ONESHOT_TRAINER if self.phase_of(number) == SEARCH_PHASE else self.trainer

    def epochs_for(self, params: Mapping[str, Any], number: int | None = None) -> int:
        """Epochs a trial with ``params`` trains: ``oneshot.epochs`` for a supernet search (trial ``number``), else
        its ``epochs`` parameter, else ``scheduler.max_epochs``."""
        if number is not None and self.phase_of(number) == SEARCH_PHASE:
            return self.oneshot.epochs
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
            **({"objectives": [section(o) for o in self.objectives], "select": self.select.to_dict()}
               if self.multi_objective else {"metric": section(self.metric)}),
            "energy": section(self.energy),
            "searcher": self.searcher.to_dict(),
            "scheduler": self.scheduler.to_dict(),
            "budget": section(self.budget),
            "resources": {"cpus": self.resources.cpus, "gpus": self.resources.gpus, "custom": dict(self.resources.custom),
                          "trials_per_worker": self.resources.trials_per_worker},
            "tracking": section(self.tracking),
            "reproducible": self.reproducible.to_dict(),
            "tolerance": section(self.tolerance),
            "faults": [rule.to_dict() for rule in self.faults],
            "constraints": _bounds_dict(self.constraints),
        } | ({"oneshot": self.oneshot.to_dict()} if self.oneshot else {})

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


def _bounds_dict(bounds: Iterable[Constraint]) -> dict[str, dict[str, float]]:
    return {c.metric: {k: v for k, v in (("min", c.min), ("max", c.max)) if v is not None} for c in bounds}


# --- parsing ---------------------------------------------------------------------------------------------------


def _parse_data(raw: Any) -> DataSource:
    section = _Section(raw, "data")
    source = section.take("source", _choice(("mnist1d", "digits", "parquet")), "mnist1d")
    # decides the test rows, for every source, apart from the experiment seed (see trainers.data)
    split_seed = section.take("split_seed", _split_seed, DEFAULT_SPLIT_SEED)
    if source == "mnist1d":
        result: DataSource = Mnist1dSource(
            num_samples=section.take("num_samples", _int(100, MAX_NUM_SAMPLES), 5000),
            validation_fraction=section.take("validation_fraction", _fraction, 0.2),
            split_seed=split_seed,
        )
    elif source == "digits":
        result = DigitsSource(
            test_fraction=section.take("test_fraction", _fraction, 0.2),
            validation_fraction=section.take("validation_fraction", _fraction, 0.2),
            split_seed=split_seed,
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
            split_seed=split_seed,
        )
    section.finish()
    if isinstance(result, ParquetSource):
        _check_parquet(result)
    return result


def _check_parquet(source: ParquetSource) -> None:
    """The table's schema against ``label`` and ``features`` — read from the file's footer (cheap), so that
    ``validate`` and ``submit`` catch what ``run`` would, without reading the data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(source.path) as table:
            schema, rows = table.schema_arrow, table.metadata.num_rows
    except (pa.ArrowException, OSError) as err:
        raise ConfigError("data.path", f"must be a Parquet file ({' '.join(str(err).split())[:200]})") from None
    columns = {field.name: field.type for field in schema}
    if rows == 0:
        raise ConfigError("data.path", "the Parquet file holds no rows")
    if source.label not in columns:
        raise ConfigError("data.label", f"column {source.label!r} is not in the Parquet file "
                                        f"(columns: {', '.join(list(columns)[:20])})")
    if pa.types.is_nested(columns[source.label]):
        raise ConfigError("data.label", f"column {source.label!r} must hold class labels such as integers or "
                                        f"strings (got {columns[source.label]})")
    features = list(source.features) if source.features else [c for c in columns if c != source.label]
    if not features:
        raise ConfigError("data.features", f"the Parquet file has no feature columns besides {source.label!r}")
    for name in features:
        kind = columns.get(name)
        if kind is None:
            raise ConfigError("data.features", f"column {name!r} is not in the Parquet file")
        if name == source.label:
            raise ConfigError("data.features", f"must not include the label column {name!r}")
        if features.count(name) > 1:
            raise ConfigError("data.features", f"column {name!r} is listed twice")
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
                or pa.types.is_decimal(kind)):
            raise ConfigError("data.features", f"every feature column must be numeric (column {name!r} is {kind})")


def _split_seed(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(path, f"must be an integer in [0, 2**32) (got {_describe(value)})")
    return value


_MAX_WORDS, _MIN_WORDS = ("acc",), ("loss", "error", "energy", "latency", "time", "params", "macs")


def _parse_metric(raw: Any, reported: tuple[str, ...] | None, trainer: str, path: str = "metric") -> MetricConfig:
    if isinstance(raw, str):
        raw = {"name": raw}
    section = _Section(raw, path)
    name = section.take("name", _str, "val_accuracy" if path == "metric" else _REQUIRED)
    known = None if reported is None else (*reported, *TRIAL_METRICS)
    if known is not None and name not in known:
        raise ConfigError(f"{path}.name", f"trainer {trainer!r} does not report {name!r} (it reports: {', '.join(known)})")
    inferred = "max" if any(w in name for w in _MAX_WORDS) else \
        "min" if any(w in name for w in _MIN_WORDS) else None
    mode = section.take("mode", _choice(("max", "min")), inferred)
    if mode is None:
        raise ConfigError(f"{path}.mode", f"is required for metric {name!r} (max or min)")
    section.finish()
    return MetricConfig(name, mode)


def _parse_objectives(raw: Any, reported: tuple[str, ...] | None, trainer: str) -> tuple[MetricConfig, ...]:
    """``objectives:``: a list of ``{name, mode}`` (or bare names); one entry is the single-objective form."""
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)) or not raw or len(raw) > MAX_OBJECTIVES:
        raise ConfigError("objectives", f"must be a list of 1 to {MAX_OBJECTIVES} objectives such as "
                                        f"{{name: energy_j, mode: min}} (got {_describe(raw)})")
    objectives = tuple(_parse_metric(item, reported, trainer, f"objectives[{i}]") for i, item in enumerate(raw))
    names = [o.name for o in objectives]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"objectives[{i}].name", f"{name!r} is listed twice: each objective once")
    return objectives


def _parse_select(raw: Any, objectives: tuple[MetricConfig, ...]) -> SelectConfig | None:
    """``select:`` for a multi-objective experiment: ``knee``, ``{objective: NAME, subject_to: {...}}`` or
    ``{rule: knee, subject_to: {...}}``; none given: the best first objective on the front."""
    if len(objectives) < 2:
        if raw is not None:
            raise ConfigError("select", "chooses a point of a Pareto front: it needs two or more objectives "
                                        "(objectives:); with one metric the best value wins")
        return None
    names = [o.name for o in objectives]
    if raw is None:
        return SelectConfig("objective", names[0])
    if isinstance(raw, str):
        raw = {"rule": raw} if raw == "knee" else {"objective": raw}
    section = _Section(raw, "select")
    rule = section.take("rule", _choice(("objective", "knee")), None)
    objective = section.take("objective", _str, None)
    raw_bounds = section.take("subject_to", lambda p, v: v, None)
    section.finish()
    rule = rule or ("objective" if objective is not None or raw_bounds is not None else None)
    if rule is None:
        raise ConfigError("select", f"give objective: NAME (one of {', '.join(names)}) or rule: knee")
    if rule == "knee" and objective is not None:
        raise ConfigError("select.objective", "the knee weighs every objective: give rule: knee or an objective, "
                                              "not both")
    if rule == "objective":
        objective = names[0] if objective is None else objective
        if objective not in names:
            raise ConfigError("select.objective", f"must be one of the objectives ({', '.join(names)}); the rule "
                                                  f"sees validation values of the objectives only (got {objective!r})")
    bounds = _parse_constraints(raw_bounds, None, "", path="select.subject_to")
    for bound in bounds:
        if bound.metric not in names:
            raise ConfigError(f"select.subject_to.{_key(bound.metric)}", f"bounds an objective "
                              f"({', '.join(names)}); bound any other metric with constraints: instead")
    return SelectConfig(rule, objective if rule == "objective" else None, bounds)


def _parse_energy(raw: Any) -> EnergyConfig:
    section = _Section(raw, "energy")
    energy = EnergyConfig(
        grid_gco2_per_kwh=section.take("grid_gco2_per_kwh", _number(0, high=10_000), EnergyConfig.grid_gco2_per_kwh),
        cpu_watts_per_core=section.take("cpu_watts_per_core", _number(0, inclusive=False, high=10_000),
                                        EnergyConfig.cpu_watts_per_core),
    )
    section.finish()
    return energy


def _take_settings(section: _Section, settings: type) -> Any:
    """One instance of a registered type's settings dataclass, each field taken with its own checker and default."""
    return settings(**{f.name: section.take(f.name, f.metadata["check"], f.default) for f in settings_schema(settings)})


DEFAULT_MULTI_OBJECTIVE_SEARCHER = "motpe"


def _parse_searcher(raw: Any, space: Space | None, multi_objective: bool = False) -> SearcherConfig:
    if isinstance(raw, str):
        raw = {"type": raw}
    section = _Section(raw, "searcher")
    kind = section.take("type", _choice(SEARCHERS.names()), DEFAULT_MULTI_OBJECTIVE_SEARCHER if multi_objective
                        else "tpe")
    entry = SEARCHERS[kind]
    if multi_objective and not entry.multi_objective:
        able = [e.name for e in SEARCHERS if e.multi_objective]
        raise ConfigError("searcher.type", f"{kind!r} optimises a single objective; objectives: needs a "
                                           f"multi-objective searcher ({', '.join(able)})")
    settings = _take_settings(section, entry.settings)
    section.finish()
    if space is not None:
        entry.check(settings, space)
    return SearcherConfig(kind, settings)


def _parse_scheduler(raw: Any) -> SchedulerConfig:
    if isinstance(raw, str):
        raw = {"type": raw}
    section = _Section(raw, "scheduler")
    kind = section.take("type", _choice(SCHEDULERS.names()), "asha")
    entry = SCHEDULERS[kind]
    max_epochs = section.take("max_epochs", _int(1, MAX_EPOCHS), SchedulerConfig.max_epochs)
    settings = _take_settings(section, entry.settings)
    section.finish()
    entry.check(settings, max_epochs)
    return SchedulerConfig(kind, max_epochs, settings)


def _parse_budget(raw: Any) -> BudgetConfig:
    section = _Section(raw, "budget")
    budget = BudgetConfig(
        trials=section.take("trials", _int(1, MAX_TRIALS), BudgetConfig.trials),
        max_concurrent=section.take("max_concurrent", _optional(_int(1, MAX_CONCURRENT)), None),
        time_budget_s=section.take("time_budget_s", _optional(_number(0, inclusive=False, high=MAX_SECONDS)), None),
    )
    section.finish()
    return budget


def _parse_resources(raw: Any) -> ResourcesConfig:
    section = _Section(raw, "resources")
    resources = ResourcesConfig(
        cpus=section.take("cpus", _number(0, inclusive=False, high=MAX_CPUS), 1),
        gpus=section.take("gpus", _number(0, inclusive=True, high=MAX_GPUS), 0),
        custom=section.take("custom", _custom_resources, {}),
        trials_per_worker=section.take("trials_per_worker", _int(1, MAX_TRIALS_PER_WORKER), 1),
    )
    section.finish()
    if resources.gpus > 1 and resources.gpus != int(resources.gpus):
        # Ray shares a GPU in fractions of one; a request such as 1.5 could never be placed
        raise ConfigError("resources.gpus", f"above 1 must be a whole number of GPUs (got {resources.gpus:g}); "
                          "fractions below 1 share a GPU")
    return resources


def _check_batching(resources: ResourcesConfig, trainer_name: str, oneshot: "OneShotConfig | None") -> None:
    """``trials_per_worker`` > 1 trains trials as one vectorised model: only recipes ``trainers.batched`` can build."""
    if not resources.batched:
        return
    from trainers.batched import BATCHABLE_RECIPES

    if oneshot is not None:
        raise ConfigError("resources.trials_per_worker", "must be 1 for a one-shot experiment (a supernet search "
                          "cannot be vectorised with others)")
    if trainer_name not in BATCHABLE_RECIPES:
        raise ConfigError("resources.trials_per_worker", f"must be 1 for trainer {trainer_name!r}: batched trials "
                          f"train as one vectorised model, which only the built-in "
                          f"{' and '.join(sorted(BATCHABLE_RECIPES))} recipes can build")


def _custom_resources(path: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must map resource names to amounts, e.g. {{accel: 1}} (got {_describe(value)})")
    out = {}
    for name, amount in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name) or name in ("CPU", "GPU"):
            raise ConfigError(f"{path}.{_key(name)}", "custom resource names are identifiers other than CPU and GPU")
        out[name] = _number(0, inclusive=False, high=MAX_CUSTOM_RESOURCE)(f"{path}.{name}", amount)
    return out


def _parse_tracking(raw: Any) -> TrackingConfig:
    section = _Section(raw, "tracking")
    tracking = TrackingConfig(
        uri=section.take("uri", _optional(tracking_uri_rule), None),
        experiment=section.take("experiment", _optional(_str), None),
    )
    section.finish()
    return tracking


# What MLflow 3.x tracks to (mlflow.tracking._tracking_service.utils._register_tracking_stores): a local path,
# file:, a database through SQLAlchemy (``sqlite:``, ``postgresql+psycopg2:``, ...), a tracking server over http(s),
# or Databricks. Its Unity Catalog schemes (``databricks-uc``, ``uc``) are registered only to refuse tracking.
TRACKING_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
TRACKING_SCHEMES = ("file", "http", "https", "databricks", *TRACKING_DATABASES)


def tracking_uri_rule(path: str, value: Any) -> str:
    """``value`` if MLflow can track to it (see :data:`TRACKING_SCHEMES`), else a ConfigError naming ``path``."""
    from urllib.parse import urlsplit

    value = _str(path, value)
    if value != value.strip() or any(ord(c) < 32 for c in value):
        raise ConfigError(path, "must be a URI or path without surrounding spaces or control characters")
    try:
        parts = urlsplit(value)
    except ValueError as err:
        raise ConfigError(path, f"is not a valid URI ({err})") from None
    scheme = "" if len(parts.scheme) == 1 else parts.scheme  # C:\... is a Windows path, as MLflow reads it
    database, plus, driver = scheme.partition("+")
    if scheme in ("databricks-uc", "uc") or value in ("databricks-uc", "uc"):  # MLflow reads these bare, too
        raise ConfigError(path, "Unity Catalog (databricks-uc, uc) is a model registry MLflow cannot track to; "
                                "use databricks for Databricks tracking")
    if scheme in TRACKING_SCHEMES or (database in TRACKING_DATABASES and plus and re.fullmatch(r"\w+", driver)):
        if scheme in ("http", "https") and not parts.hostname:
            raise ConfigError(path, f"an {scheme} tracking URI needs a host, e.g. {scheme}://mlflow.example.com:5000")
        return value
    if scheme:  # only the scheme is shown: the rest of a URI may hold credentials
        raise ConfigError(path, f"scheme {scheme!r} is not one MLflow can track to (use a path, or a URI "
                                f"starting with {', '.join(s + ':' for s in TRACKING_SCHEMES)} or a database+driver:)")
    return value


def _parse_constraints(raw: Any, reported: tuple[str, ...] | None, trainer: str,
                       path: str = "constraints") -> tuple[Constraint, ...]:
    section = _Section(raw, path)
    constraints = []
    known = None if reported is None else (*reported, *TRIAL_METRICS)
    for metric in list(section.raw):
        where = f"{path}.{_key(metric)}"
        if not isinstance(metric, str) or not metric:
            raise ConfigError(where, f"{path} are keyed by metric names")
        if known is not None and metric not in known:
            raise ConfigError(where, f"trainer {trainer!r} does not report {metric!r} "
                                     f"(it reports: {', '.join(known)})")
        bounds = _Section(section.take(metric, lambda p, v: v), where)
        number = _optional(_number(None))
        low, high = bounds.take("min", number, None), bounds.take("max", number, None)
        bounds.finish()
        if low is None and high is None:
            raise ConfigError(where, "needs min, max or both")
        if low is not None and high is not None and low > high:
            raise ConfigError(where, f"min <= max must hold (got min={low}, max={high})")
        constraints.append(Constraint(metric, low, high))
    section.finish()
    return tuple(constraints)


def _parse_reproducible(raw: Any, scheduler: SchedulerConfig) -> ReproducibleConfig:
    if isinstance(raw, str):
        raw = {"mode": raw}
    section = _Section(raw, "reproducible")
    mode = section.take("mode", _choice(("async", "strict")), "async")
    size = section.take("generation_size", _int(1, MAX_TRIALS), ReproducibleConfig.generation_size) \
        if mode == "strict" else ReproducibleConfig.generation_size
    section.finish()
    if mode == "strict" and not SCHEDULERS[scheduler.type].order_independent:
        able = [entry.name for entry in SCHEDULERS if entry.order_independent]
        raise ConfigError("reproducible.mode", f"strict mode works with scheduler {' or '.join(able)} (got "
                                               f"{scheduler.type!r}, whose decisions depend on arrival order)")
    return ReproducibleConfig(mode, size)


def _parse_tolerance(raw: Any) -> ToleranceConfig:
    section = _Section(raw, "tolerance")
    defaults = ToleranceConfig()
    tolerance = ToleranceConfig(
        stall_timeout_s=section.take("stall_timeout_s", _optional(_number(0, inclusive=False, high=MAX_SECONDS)), None),
        max_retries=section.take("max_retries", _int(0, MAX_RETRIES), defaults.max_retries),
        fail_fast=section.take("fail_fast", _bool, defaults.fail_fast),
        straggler_factor=section.take("straggler_factor", _number(1, inclusive=False, high=MAX_FACTOR),
                                      defaults.straggler_factor),
    )
    section.finish()
    return tolerance


def _int_list(path: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_TRIALS or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_TRIALS for v in value):
        raise ConfigError(path, f"must be a non-empty list of trial numbers, each >= 0 and < {MAX_TRIALS:_} "
                                f"(got {_describe(value)})")
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
            hang_at_epoch=section.take("hang_at_epoch", _optional(_int(1, MAX_EPOCHS)), None),
            raise_at_epoch=section.take("raise_at_epoch", _optional(_int(1, MAX_EPOCHS)), None),
            slow=section.take("slow", _optional(_number(1, inclusive=False, high=MAX_FACTOR)), None),
            first_attempt_only=section.take("first_attempt_only", _bool, False),
            release_file=section.take("release_file", _optional(_str), None),
        )
        section.finish()
        selectors = [x for x in (rule.trials, rule.fraction, rule.node_resource) if x is not None]
        if len(selectors) != 1:
            raise ConfigError(path, "select trials with exactly one of trials, fraction, node_resource")
        effects = [x for x in (rule.hang_at_epoch, rule.raise_at_epoch, rule.slow) if x is not None]
        if len(effects) != 1:
            raise ConfigError(path, "give exactly one of hang_at_epoch, raise_at_epoch, slow")
        if rule.release_file is not None and rule.hang_at_epoch is None:
            raise ConfigError(f"{path}.release_file", "only releases a hang_at_epoch drill")
        if rule.release_file is not None and not os.path.isabs(rule.release_file):
            # a trial runs in its own folder on its node: a relative path would never be found
            raise ConfigError(f"{path}.release_file", f"must be an absolute path (got {rule.release_file!r})")
        rules.append(rule)
    return tuple(rules)


# set by hypernas for every search trial, never in ``oneshot.settings``
ONESHOT_FIXED = ("method", "cell_space")


def _parse_oneshot(raw: Any, space: Space, metric: MetricConfig, budget: BudgetConfig) -> OneShotConfig | None:
    if raw is None:
        return None
    from trainers import resolve_trainer  # torch-free declarations
    from spaces.nas import CELL_TYPES

    oneshot_trainer = resolve_trainer(ONESHOT_TRAINER)
    hypers = oneshot_trainer.hyperparameters
    section = _Section(raw, "oneshot")
    method = section.take("method", _choice(hypers["method"].choices))
    search_seeds = section.take("search_seeds", _int(1, MAX_TRIALS), OneShotConfig.search_seeds)
    epochs = section.take("epochs", _int(1, MAX_EPOCHS), OneShotConfig.epochs)
    top_k = section.take("top_k", _int(1, MAX_TRIALS), OneShotConfig.top_k)
    raw_settings = section.take("settings", lambda p, v: v, None)
    section.finish()
    settings = _Section(raw_settings, "oneshot.settings")
    for key in settings.raw:
        where = f"oneshot.settings.{_key(key)}"
        if key in ONESHOT_FIXED:
            raise ConfigError(where, f"is set by hypernas for every search (from oneshot.method and the space's cell)")
        if key not in hypers:
            known = ", ".join(k for k in hypers if k not in ONESHOT_FIXED)
            raise ConfigError(where, f"is not a setting of the one-shot trainer (known: {known})")
        try:
            hypers[key].check(key, settings.raw[key])
        except SpaceError as err:
            raise ConfigError(where, err.rule) from None
    if top_k > budget.trials:
        raise ConfigError("oneshot.top_k", f"top_k <= budget.trials must hold: each derived genotype is retrained at "
                                           f"least once (got {top_k} > {budget.trials})")
    if metric.name not in oneshot_trainer.metrics:
        raise ConfigError("metric.name", f"a one-shot experiment ranks its searches by the metric too: the one-shot "
                                         f"trainer reports {', '.join(oneshot_trainer.metrics)} (got {metric.name!r})")
    cells = [name for name, param in space.items() if isinstance(param, CELL_TYPES)]
    if len(cells) != 1:
        raise ConfigError("oneshot", f"a one-shot search derives one cell: the space must hold exactly one "
                                     f"nb201_cell or darts_cell parameter (got {len(cells)})")
    if space[cells[0]].when is not None:
        raise ConfigError(f"space.{cells[0]}.when", "the cell a one-shot search derives cannot be conditional")
    return OneShotConfig(method, cells[0], search_seeds, epochs, top_k, tuple(sorted(settings.raw.items())))


def retrain_placeholder(space: Space, oneshot: OneShotConfig) -> Space:
    """The retrain space's shape before any genotype is derived: the cell a choice among ``top_k`` of them."""
    from spaces import Categorical

    return Space({name: Categorical([f"genotype-{i}" for i in range(oneshot.top_k)]) if name == oneshot.cell
                  else param for name, param in space.items()})


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


@dataclass(frozen=True)
class RecordSettings:
    """What reading an experiment's records needs from its config: the metric, the constraints, the straggler
    factor. Parsed from a saved config without importing its trainer or touching its data (``hypernas status``
    works when the data file has moved or a custom trainer's module is not importable from here)."""

    metric: MetricConfig
    constraints: tuple[Constraint, ...]
    straggler_factor: float
    objectives: tuple[MetricConfig, ...] = ()
    energy: EnergyConfig = EnergyConfig()


def record_settings(raw: Any) -> RecordSettings:
    """:class:`RecordSettings` from a config mapping, with the same rules as :func:`config_from_dict` for these
    sections (the metric names are not checked against the trainer: it was checked when the experiment ran)."""
    top = raw if isinstance(raw, Mapping) else {}
    trainer = str(top.get("trainer", "cnn"))
    metric, objectives = _metric_and_objectives(top.get("metric"), top.get("objectives"), None, trainer)
    return RecordSettings(metric, _parse_constraints(top.get("constraints"), None, trainer),
                          _parse_tolerance(top.get("tolerance")).straggler_factor, objectives,
                          _parse_energy(top.get("energy")))


def _metric_and_objectives(raw_metric: Any, raw_objectives: Any, reported: tuple[str, ...] | None,
                           trainer: str) -> tuple[MetricConfig, tuple[MetricConfig, ...]]:
    """``metric`` (one objective) or ``objectives`` (several; their first is the metric early stopping watches)."""
    objectives = _parse_objectives(raw_objectives, reported, trainer)
    if objectives and raw_metric is not None:
        raise ConfigError("objectives", "give metric: (one objective) or objectives: (several), not both; with "
                                        "objectives, early stopping watches the first")
    if len(objectives) == 1:
        return objectives[0], ()  # one objective is the single-objective form
    if objectives:
        return objectives[0], objectives
    return _parse_metric(raw_metric, reported, trainer), ()


def config_from_dict(raw: Any, *, default_name: str | None = None) -> ExperimentConfig:
    """Validate a config mapping (the YAML document) into an :class:`ExperimentConfig`."""
    remember_secrets(secret_values(raw))  # masked from here on: in errors below, logs, and the trials' exceptions
    top = _Section(raw, "")
    name = top.take("name", _str, default_name)
    if name is None:
        raise ConfigError("name", "is required (or pass --name)")
    validate_name(name)
    seed = top.take("seed", _int(0, MAX_SEED), 0)
    trainer_name = top.take("trainer", _str, "cnn")
    from trainers import resolve_trainer  # built-ins are checked without torch; a user's trainer module loads here

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
    metric, objectives = _metric_and_objectives(top.take("metric", lambda p, v: v, None),
                                                top.take("objectives", lambda p, v: v, None), trainer.metrics,
                                                trainer_name)
    select = _parse_select(top.take("select", lambda p, v: v, None), objectives)
    energy = _parse_energy(top.take("energy", lambda p, v: v, None))
    scheduler = _parse_scheduler(top.take("scheduler", lambda p, v: v, None))
    _check_epochs(space, scheduler)
    budget = _parse_budget(top.take("budget", lambda p, v: v, None))
    if SCHEDULERS[scheduler.type].pauses_trials and budget.max_concurrent is not None:
        # Seen on Ray 2.60: the concurrency limiter counts PAUSED trials as running, so a bracket waiting for
        # members that cannot start any more stalls the experiment.
        raise ConfigError("budget.max_concurrent", f"cannot be combined with scheduler {scheduler.type}, which pauses "
                          "trials; bound concurrency with resources.cpus instead (trials per node = cpus / resources.cpus)")
    oneshot = _parse_oneshot(top.take("oneshot", lambda p, v: v, None), space, metric, budget)
    # a one-shot experiment's searcher chooses among at most top_k derived genotypes, not the whole cell space
    if oneshot is not None and objectives:
        raise ConfigError("objectives", "a one-shot experiment ranks its supernet searches by one metric: use "
                                        "metric:, or search the objectives without oneshot:")
    searcher = _parse_searcher(top.take("searcher", lambda p, v: v, None),
                               space if oneshot is None else retrain_placeholder(space, oneshot),
                               multi_objective=len(objectives) > 1)
    resources = _parse_resources(top.take("resources", lambda p, v: v, None))
    _check_batching(resources, trainer_name, oneshot)
    tracking = _parse_tracking(top.take("tracking", lambda p, v: v, None))
    constraints = _parse_constraints(top.take("constraints", lambda p, v: v, None), trainer.metrics, trainer_name)
    reproducible = _parse_reproducible(top.take("reproducible", lambda p, v: v, None), scheduler)
    measured = [o.name for o in (objectives or (metric,)) if o.name in MEASURED_METRICS]
    if reproducible.mode == "strict" and measured:
        raise ConfigError("reproducible.mode", f"strict promises identical results, but {measured[0]} is measured "
                          "(it differs run to run, and the sampler's proposals follow it); use async, or bound it "
                          "with constraints: instead of searching it")
    tolerance = _parse_tolerance(top.take("tolerance", lambda p, v: v, None))
    faults = _parse_faults(top.take("faults", lambda p, v: v, None))
    top.finish()
    return ExperimentConfig(
        name=name, space=space, seed=seed, trainer=trainer_name, deterministic=deterministic, data=data,
        metric=metric, searcher=searcher, scheduler=scheduler, budget=budget, resources=resources, tracking=tracking,
        constraints=constraints, reproducible=reproducible, tolerance=tolerance, faults=faults, oneshot=oneshot,
        objectives=objectives, select=select, energy=energy,
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
    """A copy of the document's mappings and lists that refuses an absurd one (more than
    :data:`MAX_CONFIG_VALUES` values or :data:`MAX_CONFIG_DEPTH` levels) before it is expanded: a Python dict can
    share one list a billion times over, as a YAML alias bomb would (the YAML loader refuses aliases)."""
    count = 0

    def copy(item: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError("config", f"holds more than {MAX_CONFIG_VALUES:_} values (an experiment needs a few "
                                        "hundred); is one part of it repeated by reference?")
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError("config", f"nests deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(item, Mapping):
            return {k: copy(v, depth + 1) for k, v in item.items()}
        if isinstance(item, list):
            return [copy(v, depth + 1) for v in item]
        return item
    return copy(value, 0)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The YAML document at ``path`` as a dict; missing files and YAML errors become :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config", f"no such file: {path}")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError("config", f"{path} is {path.stat().st_size:_} bytes; an experiment file is at most "
                                        f"{MAX_CONFIG_BYTES:_} bytes")
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except YamlDocumentError as err:  # a rule broken at a place in the document: name that place
        raise ConfigError(err.path or "config", f"{err.rule} in {path}" if err.path else
                          f"{path} is not valid YAML ({err.rule})") from None
    except yaml.YAMLError as err:
        raise ConfigError("config", f"{path} is not valid YAML ({' '.join(str(err).split())})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError("config", f"cannot read {path} as UTF-8 text ({err})") from None
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
    elif not isinstance(source, (str, os.PathLike)):
        raise ConfigError("config", "must be a YAML file path, a mapping or an ExperimentConfig "
                                    f"(got {_describe(source)})")
    else:
        raw = read_config_file(source)
        default_name = Path(source).stem
    raw = apply_overrides(raw, overrides)
    if name is not None:
        raw["name"] = name
    if seed is not None:
        raw["seed"] = seed
    return config_from_dict(raw, default_name=default_name)
