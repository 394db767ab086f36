"""The Optuna adapter — the only package of hypernas that imports optuna.

* :func:`suggest_config` asks an Optuna trial for a full configuration from a :class:`spaces.Space`
  (define-by-run, so conditional parameters are asked only when active). Plain Optuna users call it directly.
* :func:`make_sampler` builds the configured Optuna sampler, seeded from the experiment seed — Optuna's own, or
  our :class:`~search._optuna.evolution.RegularizedEvolutionSampler` — through the searcher's factory in
  :data:`search.registry.SEARCHERS` (each factory imports Optuna in its body, called only from here).
* :class:`AskTellStudy` is the ask/tell bookkeeping the Ray searcher drives: intermediate values per epoch, and
  the final state — COMPLETE, PRUNED (with its last step's value) or FAIL.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Collection, Sequence

import optuna
from optuna.trial import TrialState

from search._optuna._optuna_internals import StudyFileBackend, running_trial, set_system_attr
from search.config import SearcherConfig
from search.registry import SEARCHERS
from spaces import Categorical, Constant, Float, Int, Space
from spaces.nas import CELL_TYPES

optuna.logging.set_verbosity(optuna.logging.WARNING)

# hypernas state -> Optuna state
_TELL_STATES = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED, "FAILED": TrialState.FAIL}


def suggest_config(trial: optuna.trial.BaseTrial, space: Space) -> dict[str, Any]:
    """A full configuration for ``space`` from an Optuna trial: active parameters only, constants included, each
    NAS cell asked as one categorical per edge op / input pair and returned as its genotype string.

    >>> import optuna
    >>> from spaces import Categorical, Float, Space
    >>> space = Space({"opt": Categorical(["adamw", "sgd"]), "momentum": Float(0.5, 0.99, when={"opt": "sgd"})})
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> configs = [suggest_config(study.ask(), space) for _ in range(5)]
    >>> all(("momentum" in c) == (c["opt"] == "sgd") for c in configs)
    True
    """
    config: dict[str, Any] = {}
    for name in space.order:
        param = space[name]
        when = param.when
        if when is not None and (when.parent not in config or not when.holds(config[when.parent])):
            continue
        if isinstance(param, Constant):
            config[name] = param.value
        elif isinstance(param, Float):
            config[name] = trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, Int):
            config[name] = trial.suggest_int(name, param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, Categorical):
            config[name] = trial.suggest_categorical(name, param.choices)
        elif isinstance(param, CELL_TYPES):  # a cell: one categorical per decision (edge op, input pair)
            chosen = {key: trial.suggest_categorical(f"{name}.{key}", choices) for key, choices in param.decisions()}
            config[name] = param.assemble(chosen)
        else:  # pragma: no cover - a new parameter type must be taught to this adapter
            raise TypeError(f"{name}: no Optuna mapping for {type(param).__name__}")
    return config


class _AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose ``after_trial`` does not call ``Study.stop()``, which raises outside ``optimize()``.
    Under ask/tell the driver caps the trial budget at the grid size instead (``grid_size``)."""

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001 - Optuna's signature
        return None


CONSTRAINTS_ATTR = "constraints"  # the trial system attribute Optuna's constrained samplers read


def _stored_constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    return list(trial.system_attrs.get(CONSTRAINTS_ATTR, [0.0]))


def make_sampler(searcher: SearcherConfig, space: Space, seed: int,
                 constrained: bool = False) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of ``searcher.type`` (its factory in :data:`search.registry.SEARCHERS`), seeded with
    ``seed`` (derived from the experiment seed).

    ``constrained``: trials carry constraint values (``AskTellStudy.tell(..., constraints=...)``); TPE then models
    feasibility and evolution prefers feasible parents.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return SEARCHERS[searcher.type].factory(searcher.settings, space, seed, constrained)


def _optuna_grid(space: Space) -> dict[str, list]:
    """The grid in Optuna's parameter names: a cell contributes one axis per decision (as suggest_config asks)."""
    space.grid()  # raises SpaceError for parameters with no finite grid
    grid: dict[str, list] = {}
    for name, param in space.items():
        if isinstance(param, CELL_TYPES):
            grid |= {f"{name}.{key}": list(choices) for key, choices in param.decisions()}
        elif not isinstance(param, Constant):
            grid[name] = list(param.grid_values())
    return grid


def grid_size(space: Space) -> int:
    size = 1
    for values in _optuna_grid(space).values():
        size *= len(values)
    return size


def journal_storage(path: Path) -> optuna.storages.BaseStorage:
    """Durable study storage in one append-only file (survives a driver crash; no database needed; fsync-ed when a
    trial ends, like the experiment's journal: ``StudyFileBackend``)."""
    return optuna.storages.JournalStorage(StudyFileBackend(str(path)))


def load_study(path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=journal_storage(path))


class AskTellStudy:
    """Ask/tell over one Optuna study, keyed by trial number.

    ``ask()`` returns ``(number, config)``; ``report()`` records one epoch's value as an intermediate value;
    ``tell()`` ends the trial: COMPLETE with ``value``, PRUNED (Optuna then takes the last intermediate value,
    i.e. the step at which the scheduler stopped it), or FAILED.
    """

    def __init__(self, study: optuna.Study, space: Space, history: int | None = None) -> None:
        """``history``: show the sampler only the latest ``history`` to ``2 × history`` finished trials (see
        :meth:`create`); None: all of them."""
        self.study = study
        self.space = space
        # Optuna keeps no intermediate values in a multi-objective study (Trial.report refuses): the steps are
        # still kept here, for last_value and the pruned state
        self.multi_objective = len(study.directions) > 1
        self._trials: dict[int, optuna.Trial] = {}
        self._steps: dict[int, dict[int, float]] = {}  # number -> {step: value} reported so far
        self.history = history
        self._next = len(study.get_trials(deepcopy=False)) if history is not None else 0
        self._window = self._next  # trials in the current study (Optuna's own count copies every trial)
        self._store: Any = None  # where the study lives, when this object made it (create)

    @classmethod
    def create(cls, name: str, space: Space, searcher: SearcherConfig, seed: int, mode: str | Sequence[str],
               storage_path: Path | None, constrained: bool = False, history: int | None = None) -> "AskTellStudy":
        """A new study; ``mode`` ``"max"``/``"min"``, or one per objective (a multi-objective study).

        ``storage_path`` None: the study lives in memory (a simulation; :meth:`save` writes it out). ``history``
        (in memory only): the sampler's cost grows with the trials it has seen — TPE's ask takes ~4 ms per thousand
        — so once the study holds ``2 × history`` trials a fresh one takes over with the latest ``history``
        finished ones (same sampler object, same random state): the sampler then always sees between ``history``
        and ``2 × history`` trials, and an ask costs the same at trial 100,000 as at trial 2,000."""
        modes = [mode] if isinstance(mode, str) else list(mode)
        if history is not None and storage_path is not None:
            raise ValueError("a sampler history window needs an in-memory study (storage_path=None)")
        storage = journal_storage(storage_path) if storage_path is not None else optuna.storages.InMemoryStorage()
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=make_sampler(searcher, space, seed, constrained),
            directions=["maximize" if m == "max" else "minimize" for m in modes],
            load_if_exists=False,
        )
        created = cls(study, space, history)
        created._store = storage
        return created

    def save(self, storage_path: Path) -> int:
        """Write this (in-memory) study to a journal file at ``storage_path``, as a real run keeps it; returns the
        trials written (with a history window: those it holds now)."""
        optuna.copy_study(from_study_name=self.study.study_name, from_storage=self._store,
                          to_storage=journal_storage(storage_path))
        return len(self.study.trials)

    def _move_window(self) -> None:
        """A fresh study with the latest ``history`` finished trials takes over (open trials stay where they were
        asked: :meth:`tell` copies each into the new study when it ends)."""
        finished = [t for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()][-self.history:]
        self._store = optuna.storages.InMemoryStorage()
        fresh = optuna.create_study(study_name=self.study.study_name, storage=self._store,
                                    sampler=self.study.sampler, directions=self.study.directions)
        fresh.add_trials(finished)
        self._window = len(finished)
        self.study = fresh

    @classmethod
    def load(cls, name: str, space: Space, searcher: SearcherConfig, seed: int, storage_path: Path,
             constrained: bool = False) -> "AskTellStudy":
        """The study of an interrupted experiment, from its journal: history kept, running trials re-attached
        (they continue), a fresh sampler seeded as before."""
        study = optuna.load_study(study_name=name, storage=journal_storage(storage_path),
                                  sampler=make_sampler(searcher, space, seed, constrained))
        loaded = cls(study, space)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            loaded._trials[trial.number] = running_trial(study, trial)
            loaded._steps[trial.number] = dict(trial.intermediate_values)
        return loaded

    @staticmethod
    def exists(name: str, storage_path: Path) -> bool:
        """Whether the journal at ``storage_path`` holds a study called ``name``."""
        return storage_path.is_file() and name in optuna.get_all_study_names(journal_storage(storage_path))

    def store(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON) with the study, under ``key`` (an Optuna user attribute)."""
        self.study.set_user_attr(key, value)

    @staticmethod
    def stored(name: str, storage_path: Path, key: str) -> Any:
        """What :meth:`store` kept under ``key`` with study ``name`` (``None`` if nothing)."""
        return load_study(storage_path, name).user_attrs.get(key)

    def enqueue(self, params: dict[str, Any]) -> None:
        """Have a later ``ask()`` return these values (the others sampled as usual): Optuna's ``enqueue_trial``."""
        self.study.enqueue_trial(params, skip_if_exists=True)

    def asked(self) -> int:
        """How many trials were asked so far (every state but WAITING: enqueued, not asked yet)."""
        if self.history is not None:
            return self._next
        return sum(t.state != TrialState.WAITING for t in self.study.get_trials(deepcopy=False))

    def is_open(self, number: int) -> bool:
        """Trial ``number`` was asked and not told yet."""
        return number in self._trials

    def open_trials(self, skip: Collection[int] = ()) -> list[tuple[int, dict[str, Any]]]:
        """``(number, configuration)`` of every trial asked and not told yet (but those in ``skip``), in number
        order: after a driver crash, trials to run again under the same number. Parameters Optuna stored for a
        trial keep their values; any the crash kept from being stored (it came mid-ask) are sampled now, as the
        ask would have."""
        return [(number, suggest_config(self._trials[number], self.space))
                for number in sorted(self._trials) if number not in skip]

    def fail_open_trials(self) -> None:
        """Trials asked but never told (their run was lost before it was recorded): FAIL, so none stays RUNNING."""
        for number in sorted(self._trials):
            self.tell(number, "FAILED")

    def ask(self) -> tuple[int, dict[str, Any]]:
        """The next ``(trial number, configuration)``; numbers count from 0 in ask order."""
        if self.history is not None and self._window >= 2 * self.history:
            self._move_window()
        self._window += 1
        trial = self.study.ask()
        config = suggest_config(trial, self.space)
        # numbers count asks; with a history window Optuna's own restart in every fresh study
        number = self._next if self.history is not None else trial.number
        self._next = number + 1
        self._trials[number] = trial
        self._steps[number] = {}
        return number, config

    def report(self, number: int, step: int, value: float) -> None:
        """Record ``value`` at ``step`` (epoch) once; repeated or unknown reports are ignored."""
        steps = self._steps.get(number)
        if steps is None or step in steps or value != value:
            return
        steps[step] = float(value)
        if not self.multi_objective:
            self._trials[number].report(float(value), step)

    def last_value(self, number: int) -> float | None:
        """The value reported at the trial's latest step (what a COMPLETE trial is told)."""
        steps = self._steps.get(number)
        return steps[max(steps)] if steps else None

    def tell(self, number: int, state: str, value: float | Sequence[float] | None = None,
             constraints: list[float] | None = None) -> None:
        """End trial ``number`` (``value``: one per objective in a multi-objective study); ``constraints`` (≤ 0
        satisfied) are stored where Optuna's samplers look."""
        trial = self._trials.pop(number, None)
        self._steps.pop(number, None)
        if trial is None:
            return
        if constraints is not None:
            set_system_attr(trial.study, trial, CONSTRAINTS_ATTR, list(constraints))
        optuna_state = _TELL_STATES[state]
        values = [value] if value is None or isinstance(value, (int, float)) else list(value)
        if optuna_state is TrialState.COMPLETE and any(v is None or v != v for v in values):
            optuna_state = TrialState.FAIL  # a finished trial with no usable value cannot rank
        values = (values if self.multi_objective else values[0]) if optuna_state is TrialState.COMPLETE else None
        try:
            frozen = trial.study.tell(trial, values, state=optuna_state)
        except (ValueError, RuntimeError) as err:  # e.g. already finished; never take the experiment down
            logging.getLogger(__name__).warning("optuna tell failed for trial %d: %s", number, err)
            return
        if trial.study is not self.study:  # asked before the history window moved on: the window gets it now
            self.study.add_trial(frozen)
            self._window += 1
