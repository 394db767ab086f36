"""Parameter types: value objects validated at construction, equal and hashable by value.

Every parameter serialises to a plain dict (``to_dict``) and back (``spaces.param_from_dict``); the dict is what
the YAML ``space:`` section holds, e.g. ``{"type": "float", "low": 1e-4, "high": 0.1, "log": true}``.
A parameter may be *conditional*: ``when=When("optimizer", ["sgd"])`` makes it active only when the parent
parameter takes one of the given values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Union

from spaces._errors import SpaceError

Scalar = Union[str, int, float, bool, None]
_SCALARS = (str, int, float, bool, type(None))
# A grid of more points than this is almost certainly a mistake (an Int range meant to be sampled).
MAX_GRID_POINTS = 10_000
# Int bounds: samplers (Optuna's TPE, CMA-ES) compute with ints as floats, which are exact up to 2**53.
MAX_INT = 2**53


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    """A finite float, or an int a float can hold (``math.isfinite(10**400)`` raises OverflowError)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_scalar(path: str, value: Any) -> None:
    if not isinstance(value, _SCALARS):
        raise SpaceError(path, f"values must be str, int, float, bool or null (got {type(value).__name__} {value!r})")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpaceError(path, f"values must be finite (got {value!r})")


@dataclass(frozen=True)
class When:
    """Condition: the owning parameter is active only when ``parent`` takes one of ``values``."""

    parent: str
    values: tuple

    def __init__(self, parent: str, values: Any) -> None:
        if not isinstance(parent, str) or not parent:
            raise SpaceError("when", f"parent must be a parameter name (got {parent!r})")
        if isinstance(values, (list, tuple)):
            values = tuple(values)
        else:
            values = (values,)
        if not values:
            raise SpaceError("when", f"the list of values of parent {parent!r} must not be empty")
        for value in values:
            check_scalar(f"when.{parent}", value)
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "values", values)

    def holds(self, parent_value: Any) -> bool:
        return any(_same(parent_value, v) for v in self.values)

    def to_dict(self) -> dict:
        return {self.parent: list(self.values)}

    @classmethod
    def from_value(cls, raw: Any) -> "When":
        if isinstance(raw, When):
            return raw
        if not isinstance(raw, Mapping) or len(raw) != 1:
            raise SpaceError("when", f"must map exactly one parent name to its values, e.g. {{optimizer: [sgd]}} (got {raw!r})")
        ((parent, values),) = raw.items()
        return cls(parent, values)


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a condition on a bool parent must not match the int 1.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _check_bounds(param: "Float | Int") -> None:
    """The rules Float and Int share: ``low < high``, and ``low > 0`` on a log scale."""
    if not param.low < param.high:
        raise SpaceError("low", f"low < high must hold (got low={param.low}, high={param.high})")
    if not isinstance(param.log, bool):
        raise SpaceError("log", f"must be true or false (got {param.log!r})")
    if param.log and param.low <= 0:
        raise SpaceError("low", f"low > 0 must hold on a log scale (got low={param.low})")


def when_dict(when: When | None) -> dict:
    return {"when": when.to_dict()} if when is not None else {}


def normalise_when(obj: Any, when: Any) -> None:
    object.__setattr__(obj, "when", None if when is None else When.from_value(when))


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``; ``log=True`` samples on a log scale, ``step`` makes it discrete.

    >>> Float(1e-4, 1e-1, log=True)
    Float(low=0.0001, high=0.1, log=True, step=None, when=None)
    """

    low: float
    high: float
    log: bool = False
    step: float | None = None
    when: When | None = None
    kind: ClassVar[str] = "float"
    required_keys: ClassVar[frozenset] = frozenset({"low", "high"})
    optional_keys: ClassVar[frozenset] = frozenset({"log", "step", "when"})

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if not _is_number(value) or not _is_finite(value):
                shown = f"an integer of {len(str(abs(value)))} digits" if _is_int(value) else repr(value)
                raise SpaceError(name, f"must be a finite number (got {shown})")
            object.__setattr__(self, name, float(value))
        _check_bounds(self)
        if self.step is not None:
            if not _is_number(self.step) or not _is_finite(self.step) or not self.step > 0:
                raise SpaceError("step", f"must be a finite number > 0 (got {self.step!r})")
            if self.log:
                raise SpaceError("step", "a log-scale Float cannot have a step")
            object.__setattr__(self, "step", float(self.step))
            n = (self.high - self.low) / self.step
            if abs(n - round(n)) > 1e-9 * max(1.0, n):
                raise SpaceError("step", f"high - low must be a multiple of step (got low={self.low}, high={self.high}, step={self.step})")
        normalise_when(self, self.when)

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        n = (value - self.low) / self.step
        return abs(n - round(n)) < 1e-9 * max(1.0, abs(n))

    def grid_values(self) -> tuple | None:
        if self.step is None:
            return None
        n = int(round((self.high - self.low) / self.step))
        return tuple(self.low + i * self.step for i in range(n + 1))

    def to_dict(self) -> dict:
        d: dict = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step is not None:
            d["step"] = self.step
        return d | when_dict(self.when)


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (both included) with an optional ``step`` and log scale.

    >>> Int(16, 256, log=True).contains(64)
    True
    """

    low: int
    high: int
    log: bool = False
    step: int = 1
    when: When | None = None
    kind: ClassVar[str] = "int"
    required_keys: ClassVar[frozenset] = frozenset({"low", "high"})
    optional_keys: ClassVar[frozenset] = frozenset({"log", "step", "when"})

    def __post_init__(self) -> None:
        for name in ("low", "high", "step"):
            value = getattr(self, name)
            if not _is_int(value) or abs(value) > MAX_INT:
                shown = f"an integer of {len(str(abs(value)))} digits" if _is_int(value) else repr(value)
                raise SpaceError(name, f"must be an integer between -2**53 and 2**53 (got {shown})")
        _check_bounds(self)
        if self.step < 1:
            raise SpaceError("step", f"step >= 1 must hold (got step={self.step})")
        if self.log and self.step != 1:
            raise SpaceError("step", f"a log-scale Int must have step 1 (got step={self.step})")
        if (self.high - self.low) % self.step:
            raise SpaceError("step", f"high - low must be a multiple of step (got low={self.low}, high={self.high}, step={self.step})")
        normalise_when(self, self.when)

    def contains(self, value: Any) -> bool:
        return _is_int(value) and self.low <= value <= self.high and (value - self.low) % self.step == 0

    def grid_values(self) -> tuple:
        return tuple(range(self.low, self.high + 1, self.step))

    def to_dict(self) -> dict:
        d: dict = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step != 1:
            d["step"] = self.step
        return d | when_dict(self.when)


@dataclass(frozen=True)
class Categorical:
    """One of a fixed list of choices (str, int, float, bool or null).

    >>> Categorical(["adamw", "sgd"]).choices
    ('adamw', 'sgd')
    """

    choices: tuple
    when: When | None = None
    kind: ClassVar[str] = "categorical"
    required_keys: ClassVar[frozenset] = frozenset({"choices"})
    optional_keys: ClassVar[frozenset] = frozenset({"when"})

    def __post_init__(self) -> None:
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, (list, tuple)):
            raise SpaceError("choices", f"must be a list (got {self.choices!r})")
        choices = tuple(self.choices)
        if not choices:
            raise SpaceError("choices", "must not be empty")
        for value in choices:
            check_scalar("choices", value)
        seen: list = []
        for value in choices:
            if any(_same(value, s) for s in seen):
                raise SpaceError("choices", f"must be unique ({value!r} appears twice)")
            seen.append(value)
        object.__setattr__(self, "choices", choices)
        normalise_when(self, self.when)

    def contains(self, value: Any) -> bool:
        return any(_same(value, c) for c in self.choices)

    def grid_values(self) -> tuple:
        return self.choices

    def to_dict(self) -> dict:
        return {"type": self.kind, "choices": list(self.choices)} | when_dict(self.when)


@dataclass(frozen=True)
class Constant:
    """A fixed value. In YAML a bare scalar (``epochs: 12``) is a Constant."""

    value: Any
    when: When | None = None
    kind: ClassVar[str] = "constant"
    required_keys: ClassVar[frozenset] = frozenset({"value"})
    optional_keys: ClassVar[frozenset] = frozenset({"when"})

    def __post_init__(self) -> None:
        check_scalar("value", self.value)
        normalise_when(self, self.when)

    def contains(self, value: Any) -> bool:
        return _same(value, self.value)

    def grid_values(self) -> tuple:
        return (self.value,)

    def to_dict(self) -> dict:
        return {"type": self.kind, "value": self.value} | when_dict(self.when)
