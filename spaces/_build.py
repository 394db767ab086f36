"""Parameter types by name, and building a parameter from its dict (YAML) form."""

from __future__ import annotations

from typing import Any, Mapping, Union

from spaces._errors import SpaceError
from spaces._params import Categorical, Constant, Float, Int
from spaces.nas._cells import DartsCell, NB201Cell

Param = Union[Float, Int, Categorical, Constant, NB201Cell, DartsCell]
PARAM_TYPES: dict[str, type] = {cls.kind: cls for cls in (Float, Int, Categorical, Constant, NB201Cell, DartsCell)}
_PARAM_CLASSES = tuple(PARAM_TYPES.values())


def param_from_dict(raw: Any) -> Param:
    """Build a parameter from its dict form; a bare scalar is a :class:`~spaces.Constant`.

    Errors are located relative to the parameter (``low``, ``when``, ``type``, ...).

    >>> param_from_dict({"type": "int", "low": 1, "high": 4})
    Int(low=1, high=4, log=False, step=1, when=None)
    """
    if isinstance(raw, _PARAM_CLASSES):
        return raw
    if not isinstance(raw, Mapping):
        if isinstance(raw, (list, tuple)):
            raise SpaceError("", f"a list is not a parameter; write {{type: categorical, choices: {list(raw)!r}}}")
        return Constant(raw)
    kind = raw.get("type")
    cls = PARAM_TYPES.get(kind)
    if cls is None:
        raise SpaceError("type", f"must be one of {', '.join(PARAM_TYPES)} (got {kind!r})")
    keys = set(raw) - {"type"}
    unknown = sorted(keys - cls.required_keys - cls.optional_keys, key=str)
    if unknown:
        allowed = ", ".join(sorted(cls.required_keys | cls.optional_keys))
        raise SpaceError(str(unknown[0]), f"unknown key for a parameter of type {kind} (allowed: {allowed})")
    missing = sorted(cls.required_keys - keys)
    if missing:
        raise SpaceError(missing[0], f"is required for a parameter of type {kind}")
    return cls(**{k: v for k, v in raw.items() if k != "type"})
