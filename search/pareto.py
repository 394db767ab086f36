"""Multi-objective results: the Pareto front of an experiment's trials and the one point a fixed rule picks from it.

Torch- and Optuna-free: ``hypernas status``, ``best`` and the Parquet views compute the front from the records
without loading a sampler (Optuna's own front is a property of a live ``Study``; plots and the hypervolume use
Optuna through :mod:`search._optuna.front`).

* A trial is on the front when it is COMPLETE, feasible (no constraint broken), not a one-shot supernet search,
  every objective value is finite, and no other such trial *dominates* it: at least as good in every objective
  and better in one. Trials with identical values are all on the front.
* :func:`select` applies the config's ``select:`` rule to the front, on validation values only (the objectives
  are what the trials reported on the validation split; a test metric is never an objective):

  - ``{objective: NAME}`` — the best front point in that objective (ties: the better in the other objectives, in
    their order, then the lowest trial number), among the points within ``subject_to`` bounds;
  - ``{rule: knee}`` — the knee: each objective is scaled over the front points within the bounds to [0, 1]
    (0 the best value there, 1 the worst), and the point closest (Euclidean) to the ideal point (all 0) wins — the
    usual "balanced compromise" of a front; ties to the lowest trial number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from search.constraints import Constraint


@dataclass(frozen=True)
class Objective:
    """One objective: a reported metric and its direction (``max`` or ``min``)."""

    name: str
    mode: str

    def loss(self, value: float) -> float:
        """``value`` as a quantity to minimise."""
        return -value if self.mode == "max" else value


class SelectionRuleError(ValueError):
    """No front point satisfies the ``select:`` rule (its bounds exclude them all)."""


def _finite(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Loss vector ``a`` dominates ``b``: no worse anywhere, better somewhere.

    >>> dominates([1, 2], [1, 3]), dominates([1, 2], [1, 2]), dominates([0, 3], [1, 2])
    (True, False, False)
    """
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front_numbers(points: Mapping[int, Sequence[float]], objectives: Sequence[Objective]) -> list[int]:
    """Trial numbers of the non-dominated points among ``points`` (number → objective values), ascending.
    Trials with the same values stand or fall together (a simulation replays the same curves thousands of times):
    the distinct loss vectors, sorted, are each compared only with those before them still on the front."""
    trials: dict[tuple, list[int]] = {}
    for n, values in points.items():
        if _finite(values):
            trials.setdefault(tuple(o.loss(v) for o, v in zip(objectives, values)), []).append(n)
    front: list[tuple] = []
    for loss in sorted(trials):
        if not any(dominates(kept, loss) for kept in front):
            front.append(loss)
    return sorted(n for loss in front for n in trials[loss])


def eligible(row: Mapping[str, Any]) -> bool:
    """Whether a trial row competes for the front: COMPLETE, feasible, not a one-shot supernet search."""
    from search.config import SEARCH_PHASE

    return row["state"] == "COMPLETE" and row.get("feasible", True) is not False and row.get("phase") != SEARCH_PHASE


def pareto_rows(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[Mapping[str, Any]]:
    """The rows on the front; each row carries ``objective_values`` (name → value, see ``ExperimentRecords``)."""
    by_number = {row["number"]: row for row in rows if eligible(row)}
    points = {n: [row["objective_values"].get(o.name) for o in objectives] for n, row in by_number.items()}
    return [by_number[n] for n in front_numbers(points, objectives)]


def _within(row: Mapping[str, Any], bounds: Sequence[Constraint]) -> bool:
    return all(all(v <= 0 for v in bound.values(row["objective_values"])) for bound in bounds)


def select(front: Sequence[Mapping[str, Any]], objectives: Sequence[Objective], rule: str,
           objective: str | None = None, subject_to: Sequence[Constraint] = ()) -> Mapping[str, Any]:
    """The front point the rule picks (module doc); :class:`SelectionRuleError` when none is within bounds."""
    candidates = sorted((row for row in front if _within(row, subject_to)), key=lambda r: r["number"])
    if not candidates:
        bounds = " and ".join(b.describe() for b in subject_to)
        raise SelectionRuleError(f"none of the {len(front)} Pareto-front trials satisfies select.subject_to "
                                 f"({bounds})" if front else "the Pareto front is empty: no COMPLETE, feasible trial "
                                                             "with finite values of every objective")
    losses = {row["number"]: [o.loss(row["objective_values"][o.name]) for o in objectives] for row in candidates}
    if rule == "knee":
        low = [min(values[i] for values in losses.values()) for i in range(len(objectives))]
        high = [max(values[i] for values in losses.values()) for i in range(len(objectives))]
        scaled = {n: math.fsum(((v - lo) / (hi - lo) if hi > lo else 0.0) ** 2 for v, lo, hi in zip(values, low, high))
                  for n, values in losses.items()}
        number = min(scaled, key=lambda n: (scaled[n], n))
    else:
        first = [o.name for o in objectives].index(objective)
        order = [first] + [i for i in range(len(objectives)) if i != first]
        number = min(losses, key=lambda n: ([losses[n][i] for i in order], n))
    return next(row for row in candidates if row["number"] == number)
