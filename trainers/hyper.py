"""Declared hyperparameters of a recipe: defaults, allowed values, and checks against a search space.

A recipe publishes ``HYPERPARAMETERS = {"lr": Hyper(1e-3, low=0, high=10), ...}``. The experiment config is
checked against it before anything runs (an unknown or misspelt name is an error, not a silently ignored
setting), and a trial fills in defaults for whatever the space leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from spaces import Categorical, Constant, Float, Int, Space, SpaceError
from spaces.nas import CELL_TYPES


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: ``default``, and either ``choices``, numeric bounds ``[low, high]``, or a ``genotype``
    check (a callable raising :class:`SpaceError` for genotypes the trainer cannot build)."""

    default: Any
    help: str = ""
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False
    genotype: Callable[[Any], None] | None = None

    def check(self, name: str, value: Any) -> None:
        if self.genotype is not None:
            try:
                self.genotype(value)
            except SpaceError as err:
                raise SpaceError(name, err.rule) from None
            return
        if self.choices is not None:
            if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
                raise SpaceError(name, f"must be one of {list(self.choices)} (got {value!r})")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpaceError(name, f"must be a number (got {value!r})")
        if self.integer and not isinstance(value, int):
            raise SpaceError(name, f"must be an integer (got {value!r})")
        if self.low is not None and value < self.low:
            raise SpaceError(name, f"must be >= {self.low} (got {value!r})")
        if self.high is not None and value > self.high:
            raise SpaceError(name, f"must be <= {self.high} (got {value!r})")


def check_space(hypers: Mapping[str, Hyper], space: Space, *, reserved: tuple[str, ...] = ()) -> None:
    """Every parameter of ``space`` must be a declared hyperparameter, and every value it can take allowed."""
    for name, param in space.items():
        if name in reserved:
            continue
        hyper = hypers.get(name)
        if hyper is None:
            known = ", ".join(sorted(set(hypers) | set(reserved)))
            raise SpaceError(name, f"is not a hyperparameter of this trainer (known: {known})")
        if isinstance(param, CELL_TYPES):
            if hyper.genotype is None:
                raise SpaceError(name, f"is not an architecture hyperparameter: a {param.kind} cannot set it")
            for op in param.ops:  # every op a sampled genotype may use must be buildable
                hyper.check(name, _probe(param, op))
        elif hyper.genotype is not None and not isinstance(param, (Constant, Categorical)):
            raise SpaceError(name, "takes a genotype: use a cell parameter (nb201_cell, darts_cell) or a constant")
        elif isinstance(param, (Categorical, Constant)):
            for value in param.grid_values():
                hyper.check(name, value)
        elif isinstance(param, (Float, Int)):
            if hyper.choices is not None:
                raise SpaceError(name, f"takes one of {list(hyper.choices)}: use a categorical parameter")
            if hyper.integer and isinstance(param, Float):
                raise SpaceError(name, "is an integer hyperparameter: use type int")
            hyper.check(name, param.low)
            hyper.check(name, param.high)


def _probe(cell: Any, op: str) -> str:
    """The genotype of ``cell``'s shape with ``op`` on every edge (and the first inputs): checks ``op`` is known."""
    return cell.assemble({key: op if choices == cell.ops else choices[0] for key, choices in cell.decisions()})


def resolve(hypers: Mapping[str, Hyper], params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``; unknown names and out-of-range values raise :class:`SpaceError`."""
    values = {name: hyper.default for name, hyper in hypers.items()}
    for name, value in params.items():
        if name not in hypers:
            raise SpaceError(name, f"is not a hyperparameter of this trainer (known: {', '.join(sorted(hypers))})")
        hypers[name].check(name, value)
        values[name] = value
    return values
