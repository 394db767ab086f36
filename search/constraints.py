"""Constraints on reported metrics (``constraints: {params: {max: 50000}}``): feasibility and Optuna's encoding.

A trial violating a constraint is *infeasible*: it stops at the report that shows it, is recorded with
``feasible = false`` and is never selected. Optuna gets one value per bound (≤ 0 means satisfied), the
convention of its constrained samplers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Constraint:
    """Bounds on one reported metric (inclusive)."""

    metric: str
    min: float | None = None
    max: float | None = None

    def values(self, metrics: Mapping[str, float]) -> list[float]:
        """Optuna constraint values for the bounds present: ≤ 0 satisfied. A missing metric counts as violated."""
        value = metrics.get(self.metric)
        out = []
        for bound, sign in ((self.min, -1.0), (self.max, 1.0)):
            if bound is None:
                continue
            out.append(math.inf if value is None or value != value else sign * (value - bound))
        return out

    def describe(self) -> str:
        parts = [f"{self.metric} >= {self.min:g}"] if self.min is not None else []
        parts += [f"{self.metric} <= {self.max:g}"] if self.max is not None else []
        return " and ".join(parts)


def constraint_values(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> list[float]:
    return [v for c in constraints for v in c.values(metrics)]


def violations(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> list[str]:
    """Readable list of broken constraints, e.g. ``["params <= 50000 (got 81234)"]``."""
    broken = []
    for constraint in constraints:
        if any(v > 0 for v in constraint.values(metrics)):
            broken.append(f"{constraint.describe()} (got {metrics.get(constraint.metric)!r})")
    return broken
