"""``Space``: a named, ordered collection of parameters — plain data that round-trips through JSON and YAML."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterator, Mapping

from spaces._errors import SpaceError
from spaces._build import Param, param_from_dict
from spaces._params import MAX_GRID_POINTS, Categorical, Constant, Float, Int
from spaces._yaml import dump_yaml, load_yaml

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")  # matched whole (fullmatch): no trailing newline


class Space(Mapping[str, Param]):
    """A search space: parameter name → parameter, with conditions between parameters.

    Build it in Python or from the YAML/JSON dict form; equality and :attr:`fingerprint` are by value and
    ignore key order.

    >>> from spaces import Categorical, Float, Space
    >>> space = Space({
    ...     "optimizer": Categorical(["adamw", "sgd"]),
    ...     "lr": Float(1e-4, 1e-1, log=True),
    ...     "momentum": Float(0.5, 0.99, when={"optimizer": ["sgd"]}),
    ... })
    >>> Space.from_json(space.to_json()) == space
    True
    >>> space.active_names({"optimizer": "adamw", "lr": 0.01})
    ('optimizer', 'lr')
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        if not isinstance(params, Mapping):
            raise SpaceError("", f"a space maps parameter names to parameters (got {type(params).__name__})")
        built: dict[str, Param] = {}
        for name, raw in params.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                where = name if isinstance(name, str) and name.isprintable() else repr(name)  # one line, always
                raise SpaceError(where, "parameter names start with a letter or _ and hold letters, digits, _ . -")
            try:
                built[name] = param_from_dict(raw)
            except SpaceError as err:
                raise err.at(name) from None
            except TypeError as err:  # wrong keyword arguments in the Python API
                raise SpaceError(name, str(err)) from None
        self._params = built
        self._order = self._check_conditions()

    # -- conditions -------------------------------------------------------------------------------------------
    def _check_conditions(self) -> tuple[str, ...]:
        for name, param in self._params.items():
            when = param.when
            if when is None:
                continue
            if when.parent == name:
                raise SpaceError(f"{name}.when", "a parameter cannot be conditioned on itself")
            parent = self._params.get(when.parent)
            if parent is None:
                raise SpaceError(f"{name}.when", f"unknown parent parameter {when.parent!r} (known: {', '.join(self._params)})")
            impossible = [v for v in when.values if not parent.contains(v)]
            if impossible:
                raise SpaceError(f"{name}.when", f"parent {when.parent!r} can never take {impossible[0]!r}")
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = visiting, 2 = done

        def visit(name: str, chain: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = chain[chain.index(name):] + [name]
                raise SpaceError(f"{name}.when", f"conditions form a cycle: {' -> '.join(cycle)}")
            state[name] = 1
            when = self._params[name].when
            if when is not None:
                visit(when.parent, chain + [name])
            state[name] = 2
            order.append(name)

        for name in self._params:
            visit(name, [])
        return tuple(order)

    @property
    def order(self) -> tuple[str, ...]:
        """Parameter names with every parent before its children (otherwise in definition order)."""
        return self._order

    def active_names(self, config: Mapping[str, Any]) -> tuple[str, ...]:
        """Names active under ``config`` (a parameter is active when its parent is active and matches)."""
        active: list[str] = []
        for name in self._order:
            when = self._params[name].when
            if when is None or (when.parent in active and when.parent in config and when.holds(config[when.parent])):
                active.append(name)
        return tuple(active)

    def check(self, config: Mapping[str, Any]) -> None:
        """Raise :class:`SpaceError` unless ``config`` holds exactly the active parameters, each in range."""
        active = self.active_names(config)
        for name in active:
            if name not in config:
                raise SpaceError(name, "is active but missing from the configuration")
            if not self._params[name].contains(config[name]):
                raise SpaceError(name, f"value {config[name]!r} is outside {self._params[name].to_dict()}")
        extra = [k for k in config if k not in active]
        if extra:
            raise SpaceError(extra[0], "is not an active parameter of this space")

    def parse_strings(self, texts: Mapping[str, str]) -> dict[str, Any]:
        """Typed values from their text form (as MLflow stores params): ``{"lr": "0.01"}`` → ``{"lr": 0.01}``.

        Names not in the space are kept as text; a text no value of the parameter has is a :class:`SpaceError`.
        """
        config: dict[str, Any] = {}
        for name, text in texts.items():
            param = self._params.get(name)
            if param is None:
                config[name] = text
                continue
            candidates = param.grid_values() if isinstance(param, (Categorical, Constant)) else None
            if candidates is not None:
                matches = [v for v in candidates if str(v) == text]
                if not matches:
                    raise SpaceError(name, f"{text!r} is not one of {list(candidates)}")
                config[name] = matches[0]
            elif isinstance(param, Float):
                config[name] = float(text)
            elif isinstance(param, Int):
                config[name] = int(text)
            else:  # a cell: its value is its genotype text
                config[name] = text
        return config

    # -- grids ------------------------------------------------------------------------------------------------
    def grid(self) -> dict[str, tuple]:
        """Finite values per searchable parameter, for grid search. Constants are left out."""
        grid: dict[str, tuple] = {}
        for name, param in self._params.items():
            if isinstance(param, Constant):
                continue
            values = param.grid_values()
            if values is None:
                how = "give this Float a step, or make it categorical" if isinstance(param, Float) else \
                    f"this {param.kind} parameter has too many values for a grid"
                raise SpaceError(name, f"grid search needs finite values: {how}")
            if len(values) > MAX_GRID_POINTS:
                raise SpaceError(name, f"grid search: {len(values)} values exceed {MAX_GRID_POINTS}; raise step")
            grid[name] = values
        return grid

    # -- mapping ----------------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Space({self._params!r})"

    # -- value semantics --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict]:
        return {name: param.to_dict() for name, param in self._params.items()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Space":
        return cls(raw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Space":
        return cls(json.loads(text))

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str) -> "Space":
        return cls(load_yaml(text) or {})

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON form: stable across processes, platforms and key order."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return int(self.fingerprint[:16], 16)
