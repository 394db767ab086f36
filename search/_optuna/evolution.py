"""Regularized (aging) evolution as an Optuna sampler.

Real et al., "Regularized Evolution for Image Classifier Architecture Search" (AmoebaNet, 2019): the population
is the ``population_size`` most recently finished trials; each new trial copies the best of ``sample_size``
members drawn at random (a tournament) and mutates exactly one of its parameters — one op or one input pair of
a cell, or one ordinary hyperparameter. Until the population is full, trials are sampled at random.

Works in any Optuna study, ask/tell or ``optimize``::

    study = optuna.create_study(direction="maximize", sampler=RegularizedEvolutionSampler(seed=0))
    study.optimize(lambda trial: objective(suggest_config(trial, space)), n_trials=200)

Ranking in the tournament: feasible before infeasible (Optuna's ``constraints`` system attribute), then trials
that reached more steps (a trial ASHA let run longer beat its rung peers), then the objective value.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search._optuna._optuna_internals import distribution_contains, set_system_attr

_PLAN = "evolution:plan"
_PARENT = "evolution:parent"
_MUTATED = "evolution:mutated"
_CONSTRAINTS = "constraints"  # the system attribute Optuna's constrained samplers read
_NUMERIC_SPREAD = 0.2  # a numeric mutation moves by N(0, 0.2 × range), on the log scale where the param has one


class RegularizedEvolutionSampler(BaseSampler):
    """Aging evolution with tournament selection and single-parameter mutation.

    Args:
        population_size: how many of the most recently finished trials form the population (≥ 2).
        sample_size: tournament size, drawn from the population without replacement (1 ≤ S ≤ population).
        seed: makes the sequence of suggestions reproducible for a fixed order of asks and tells.
    """

    def __init__(self, population_size: int = 20, sample_size: int = 5, seed: int | None = None) -> None:
        if isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 2:
            raise ValueError(f"population_size must be an integer >= 2 (got {population_size!r})")
        if isinstance(sample_size, bool) or not isinstance(sample_size, int) or not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size must be an integer in [1, population_size={population_size}] "
                             f"(got {sample_size!r})")
        self.population_size = population_size
        self.sample_size = sample_size
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    # -- Optuna's sampler interface -----------------------------------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        population = self._population(study)
        if len(population) < self.population_size:
            return  # still filling the population: every parameter is sampled at random
        picks = self._rng.choice(len(population), size=self.sample_size, replace=False)
        parent = max((population[i] for i in picks), key=lambda t: self._fitness(study, t))
        plan, mutated = self._mutate(parent)
        set_system_attr(study, trial, _PLAN, plan)
        set_system_attr(study, trial, _PARENT, parent.number)
        set_system_attr(study, trial, _MUTATED, mutated)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan = trial.system_attrs.get(_PLAN)
        if plan and param_name in plan and distribution_contains(param_distribution, plan[param_name]):
            return plan[param_name]
        # a parameter the parent did not have (a conditional that became active) or a new trial: at random
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    # -- evolution ----------------------------------------------------------------------------------------------
    def _population(self, study: optuna.Study) -> list[FrozenTrial]:
        finished = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                    if t.value is not None and math.isfinite(t.value)]
        finished.sort(key=lambda t: (t.datetime_complete, t.number))  # aging: oldest first
        return finished[-self.population_size:]

    @staticmethod
    def _fitness(study: optuna.Study, trial: FrozenTrial) -> tuple:
        constraints = trial.system_attrs.get(_CONSTRAINTS)
        feasible = constraints is None or all(c <= 0 for c in constraints)
        value = trial.value if study.direction == StudyDirection.MAXIMIZE else -trial.value
        return feasible, trial.last_step if trial.last_step is not None else 0, value

    def _mutate(self, parent: FrozenTrial) -> tuple[dict[str, Any], str | None]:
        plan = dict(parent.params)
        names = sorted(plan)
        if not names:
            return plan, None
        name = names[int(self._rng.integers(len(names)))]
        plan[name] = self._mutated_value(parent.distributions[name], plan[name])
        return plan, name

    def _mutated_value(self, distribution: BaseDistribution, value: Any) -> Any:
        if isinstance(distribution, CategoricalDistribution):
            others = [c for c in distribution.choices if c != value]
            return others[int(self._rng.integers(len(others)))] if others else value
        if isinstance(distribution, (FloatDistribution, IntDistribution)):
            low, high = distribution.low, distribution.high
            if distribution.log:
                moved = math.exp(math.log(value) + self._rng.normal(0, _NUMERIC_SPREAD * math.log(high / low)))
            else:
                moved = value + self._rng.normal(0, _NUMERIC_SPREAD * (high - low))
            moved = min(max(moved, low), high)
            step = distribution.step
            if step is not None:
                moved = low + round((moved - low) / step) * step
                moved = min(moved, high)
            return int(round(moved)) if isinstance(distribution, IntDistribution) else float(moved)
        return value


__all__: Sequence[str] = ["RegularizedEvolutionSampler"]
