"""REINFORCE as an Optuna sampler: a policy over the categorical decisions, trained on the trials' results.

Zoph & Le (2017) and NASNet (Zoph et al., 2018) search architectures with a controller trained by policy
gradient: sample a cell, train it, use its accuracy as the reward. This sampler is that loop for a black-box
study: every categorical parameter — each decision of a NAS cell, ``cell.node2.in1``, ``cell.normal.node0.inputs``,
asked by :func:`search._optuna.suggest_config` as an ordinary categorical — gets a vector of logits, and a trial
draws each decision from their softmax.

Why a factorised policy and not NASNet's LSTM: the LSTM shares parameters across decisions and conditions each on
the earlier ones, which pays off over the tens of thousands of samples NASNet trained on (with 450 GPUs). A
hyperparameter or NAS study here sees ~100 rewards; an LSTM's thousands of weights cannot be fitted from them, and
a per-decision softmax is what the tabular NAS benchmarks' REINFORCE baselines use (Ying et al., NAS-Bench-101,
2019; Dong & Yang, NAS-Bench-201, 2020).

Training. The finished trials are replayed in trial-number order; for each, every categorical parameter it asked
moves its logits by ``lr × (A × ∇log π(choice) + entropy_weight × ∇H(π))``. The advantage ``A = (r - b) / s``:
``r`` the value (negated when minimising), ``b`` an exponential moving average of earlier rewards (decay
``baseline_decay``, started at the first reward), ``s`` the standard deviation of the rewards so far — so ``lr``
does not depend on the metric's scale.

* COMPLETE trials give their value; PRUNED ones the value Optuna keeps for them (the last reported step's): the
  scheduler stopped them because that value was worse than their peers', which the reward then says.
* A trial outside its constraints (Optuna's ``constraints`` system attribute, any value > 0) is rewarded as no
  better than the worst reward so far.
* FAILed trials (and ones with no finite value) teach nothing; they are not counted as taken either (below), so a
  configuration whose run was lost may be tried again.

Non-categorical parameters (float, int) are drawn uniformly at random — log-uniformly where ``log=True``, on their
step grid — as Optuna's ``RandomSampler`` draws them: the policy covers the architecture, and a study that wants a
model over numeric hyperparameters is better served by TPE.

Reproducible and stateless: the policy is a function of the study's finished trials (cached between calls and
extended while trials finish in number order), and each trial draws from its own stream seeded by ``(seed, trial
number)``. So the same history gives the same suggestions — with ``optimize``, ask/tell, or a study reloaded from
storage by a fresh sampler.

``dedupe`` (default on): a configuration already evaluated or running is not proposed again; the draw is
repeated at a rising temperature (the policy flattened towards uniform) and after ``_MAX_TRIES`` draws a repeat is
accepted. Turn it off to re-evaluate a noisy objective.

    study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    study.optimize(lambda trial: objective(suggest_config(trial, space)), n_trials=100)
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search._optuna._optuna_internals import distribution_contains, set_system_attr
from search._optuna.evolution import TakenConfigurations, random_value, search_space

_PLAN = "reinforce:plan"
_CONSTRAINTS = "constraints"  # the system attribute Optuna's constrained samplers read
_MAX_TRIES = 100  # draws before a repeated configuration is accepted
_HEAT_PER_TRY = 0.1  # the k-th redraw samples from softmax(logits / (1 + 0.1 k))


@dataclass
class Policy:
    """The controller's state after replaying ``replayed`` (finished trials' numbers and values, in number order)."""

    replayed: tuple[tuple[int, float], ...] = ()
    logits: dict[str, np.ndarray] = field(default_factory=dict)
    choices: dict[str, tuple] = field(default_factory=dict)
    baseline: float | None = None
    count: int = 0  # rewards seen, with their running mean and sum of squared deviations (Welford)
    mean: float = 0.0
    m2: float = 0.0
    worst: float = math.inf

    def probabilities(self, name: str, distribution: CategoricalDistribution, temperature: float = 1.0) -> np.ndarray:
        logits = self.logits.get(name) if self.choices.get(name) == tuple(distribution.choices) else None
        if logits is None:
            return np.full(len(distribution.choices), 1.0 / len(distribution.choices))
        return _softmax(logits / temperature)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


class ReinforceSampler(BaseSampler):
    """A factorised softmax policy over the categorical parameters, trained with REINFORCE (see the module).

    Args:
        lr: step size of each policy-gradient update (on advantages normalised to unit scale).
        entropy_weight: weight of the entropy bonus, which keeps the policy from collapsing too early.
        baseline_decay: decay of the moving-average reward baseline, in [0, 1).
        seed: seeds every trial's draw (with its number); ``None``: a fresh seed per sampler.
        dedupe: never propose a configuration already evaluated or running; ``False`` allows re-evaluation.

    >>> import optuna
    >>> study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    >>> study.optimize(lambda t: float(t.suggest_categorical("op", ["conv", "pool", "skip"]) == "conv"), n_trials=3)
    >>> len({t.params["op"] for t in study.trials})  # dedupe: three trials, three different ops
    3
    """

    def __init__(self, lr: float = 0.5, entropy_weight: float = 0.0, baseline_decay: float = 0.9,
                 seed: int | None = None, dedupe: bool = True) -> None:
        for name, value in (("lr", lr), ("entropy_weight", entropy_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
        if isinstance(baseline_decay, bool) or not isinstance(baseline_decay, (int, float)) or not (
                0 <= baseline_decay < 1):
            raise ValueError(f"baseline_decay must be a number in [0, 1) (got {baseline_decay!r})")
        if not isinstance(dedupe, bool):
            raise ValueError(f"dedupe must be True or False (got {dedupe!r})")
        self.lr = float(lr)
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.dedupe = dedupe
        self._seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
        self._cache: dict[str, Policy] = {}  # study name -> the policy last replayed for it

    def reseed_rng(self) -> None:
        self._seed = int(np.random.SeedSequence().generate_state(1)[0])

    # -- Optuna's sampler interface -----------------------------------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        space = search_space(study, trial.number)
        if not space:
            return  # the first trial: parameters are drawn as they are asked
        policy = self.policy(study)
        rng = np.random.default_rng([self._seed, trial.number])
        taken = TakenConfigurations(study, trial.number, _PLAN) if self.dedupe else None
        names = sorted(space)
        for attempt in range(_MAX_TRIES if taken is not None else 1):
            temperature = 1.0 + _HEAT_PER_TRY * attempt
            plan = {n: self._draw(policy, n, space[n], rng, temperature) for n in names}
            if taken is None or plan not in taken:
                break
        set_system_attr(study, trial, _PLAN, plan)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan = trial.system_attrs.get(_PLAN)
        if plan and param_name in plan and distribution_contains(param_distribution, plan[param_name]):
            return plan[param_name]
        # not planned (the first trial, or a parameter no trial asked before): from the policy, in its own stream
        rng = np.random.default_rng([self._seed, trial.number, zlib.crc32(param_name.encode())])
        return self._draw(self.policy(study), param_name, param_distribution, rng)

    # -- the policy ---------------------------------------------------------------------------------------------
    def policy(self, study: optuna.Study) -> Policy:
        """The policy trained on ``study``'s finished trials (replayed in number order; cached while the new
        finished trials come after those already replayed)."""
        finished = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                                 TrialState.PRUNED))
                           if t.value is not None and math.isfinite(t.value)), key=lambda t: t.number)
        replayed = tuple((t.number, t.value) for t in finished)
        policy = self._cache.get(study.study_name)
        if policy is None or replayed[:len(policy.replayed)] != policy.replayed:
            policy = Policy()  # a trial finished out of number order (or another study): replay from scratch
        maximize = study.direction == StudyDirection.MAXIMIZE
        for trial in finished[len(policy.replayed):]:
            self._learn(policy, trial, trial.value if maximize else -trial.value)
        policy.replayed = replayed
        self._cache[study.study_name] = policy
        return policy

    def _learn(self, policy: Policy, trial: FrozenTrial, reward: float) -> None:
        constraints = trial.system_attrs.get(_CONSTRAINTS)
        if constraints is not None and any(c > 0 for c in constraints):
            reward = min(reward, policy.worst)  # infeasible: no better than the worst so far
        policy.worst = min(policy.worst, reward)
        policy.count += 1
        delta = reward - policy.mean
        policy.mean += delta / policy.count
        policy.m2 += delta * (reward - policy.mean)
        if policy.baseline is None:
            policy.baseline = reward
            return  # the first reward only sets the baseline
        scale = math.sqrt(policy.m2 / policy.count)
        advantage = (reward - policy.baseline) / scale if scale > 0 else 0.0
        policy.baseline = self.baseline_decay * policy.baseline + (1 - self.baseline_decay) * reward
        for name, distribution in trial.distributions.items():
            if not isinstance(distribution, CategoricalDistribution):
                continue
            choices = tuple(distribution.choices)
            if policy.choices.get(name) != choices:  # new, or its choices changed: start from uniform
                policy.choices[name] = choices
                policy.logits[name] = np.zeros(len(choices))
            probs = _softmax(policy.logits[name])
            grad = -advantage * probs
            grad[distribution.to_internal_repr(trial.params[name])] += advantage  # A × ∇ log π(choice)
            if self.entropy_weight:
                log_probs = np.log(np.maximum(probs, 1e-300))
                entropy = -float(np.sum(probs * log_probs))
                grad += self.entropy_weight * (-probs * (log_probs + entropy))  # ∇H
            policy.logits[name] = policy.logits[name] + self.lr * grad

    @staticmethod
    def _draw(policy: Policy, name: str, distribution: BaseDistribution, rng: np.random.Generator,
              temperature: float = 1.0) -> Any:
        if isinstance(distribution, CategoricalDistribution):
            probs = policy.probabilities(name, distribution, temperature)
            return distribution.choices[int(rng.choice(len(probs), p=probs))]
        return random_value(distribution, rng)


__all__: Sequence[str] = ["ReinforceSampler"]
