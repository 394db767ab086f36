"""Genotypes: architectures as plain data — for each cell, the (op name, input index) edges of every node.

A cell's text form is the NAS-Bench-201 notation: nodes separated by ``+``, each node's edges between ``|``,
an edge written ``op~input``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

A :class:`Genotype` names its cells. With one cell named ``cell`` (NAS-Bench-201) its text is the cell's text;
otherwise ``name:<cell> name:<cell>`` (DARTS: ``normal:|...| reduce:|...|``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from spaces._errors import SpaceError

Edge = tuple[str, int]
_OP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # matched whole (fullmatch)
_SINGLE = "cell"


@dataclass(frozen=True)
class CellGenotype:
    """One cell: ``nodes[k]`` are the incoming edges ``(op, input)`` of the k-th computed node."""

    nodes: tuple[tuple[Edge, ...], ...]

    def __init__(self, nodes: Any) -> None:
        try:
            built = tuple(tuple((str(op), int(index)) for op, index in node) for node in nodes)
        except (TypeError, ValueError):
            raise SpaceError("", f"a cell is a list of nodes, each a list of [op, input] edges (got {nodes!r})") from None
        for node in built:
            for op, _ in node:
                if not _OP_NAME.fullmatch(op):
                    raise SpaceError("", f"op names are identifiers (got {op!r})")
        object.__setattr__(self, "nodes", built)

    def edges(self) -> Iterator[tuple[int, str, int]]:
        """``(node, op, input)`` for every edge, nodes counted from 0."""
        for k, node in enumerate(self.nodes):
            for op, index in node:
                yield k, op, index

    def to_string(self) -> str:
        return "+".join("|" + "|".join(f"{op}~{index}" for op, index in node) + "|" for node in self.nodes)

    @classmethod
    def from_string(cls, text: str) -> "CellGenotype":
        if not isinstance(text, str) or not text.strip():
            raise SpaceError("", f"a cell string looks like |op~0|+|op~0|op~1| (got {text!r})")
        nodes = []
        for part in text.strip().split("+"):
            if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
                raise SpaceError("", f"each node is written |op~input|...| (got {part!r} in {text!r})")
            edges = []
            for edge in part[1:-1].split("|"):
                op, sep, index = edge.partition("~")
                if not sep or not index.isdigit():
                    raise SpaceError("", f"each edge is written op~input with an integer input (got {edge!r})")
                edges.append((op, int(index)))
            nodes.append(edges)
        return cls(nodes)

    def to_list(self) -> list:
        return [[[op, index] for op, index in node] for node in self.nodes]


@dataclass(frozen=True)
class Genotype:
    """A whole architecture: named cells (``cell`` for NAS-Bench-201; ``normal`` and ``reduce`` for DARTS).

    >>> g = Genotype.from_string("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_1x1~2|")
    >>> Genotype.from_json(g.to_json()) == g, g.cells["cell"].nodes[1]
    (True, (('skip_connect', 0), ('avg_pool_3x3', 1)))
    """

    cells: Mapping[str, CellGenotype]

    def __init__(self, cells: Mapping[str, Any]) -> None:
        built = {}
        for name, cell in cells.items():
            if not isinstance(name, str) or not _OP_NAME.fullmatch(name):
                raise SpaceError("", f"cell names are identifiers (got {name!r})")
            built[name] = cell if isinstance(cell, CellGenotype) else CellGenotype(cell)
        if not built:
            raise SpaceError("", "a genotype has at least one cell")
        object.__setattr__(self, "cells", built)

    def __hash__(self) -> int:
        return int(self.fingerprint[:16], 16)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Genotype) and self.to_string() == other.to_string()

    def to_string(self) -> str:
        if list(self.cells) == [_SINGLE]:
            return self.cells[_SINGLE].to_string()
        return " ".join(f"{name}:{cell.to_string()}" for name, cell in self.cells.items())

    @classmethod
    def from_string(cls, text: str) -> "Genotype":
        if not isinstance(text, str):
            raise SpaceError("", f"a genotype is written as a string (got {type(text).__name__})")
        parts = text.split()
        if len(parts) == 1 and ":" not in parts[0]:
            return cls({_SINGLE: CellGenotype.from_string(parts[0])})
        cells = {}
        for part in parts:
            name, sep, body = part.partition(":")
            if not sep:
                raise SpaceError("", f"cells of a multi-cell genotype are written name:|...| (got {part!r})")
            if name in cells:
                raise SpaceError("", f"cell {name!r} appears twice")
            cells[name] = CellGenotype.from_string(body)
        return cls(cells)

    def to_dict(self) -> dict[str, list]:
        return {name: cell.to_list() for name, cell in self.cells.items()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Genotype":
        return cls(dict(raw))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        return cls.from_dict(json.loads(text))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_string().encode()).hexdigest()
