"""Cell parameters: a NAS cell is a parameter like any other in a ``Space``.

Its value is the genotype's text form (so configs, MLflow params and Parquet stay plain strings). For samplers,
a cell is a set of categorical *decisions* — one op per edge, and for DARTS one input pair per node —
``decisions()`` lists them and ``assemble()`` turns chosen values back into the genotype text.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from spaces._errors import SpaceError
from spaces._params import MAX_GRID_POINTS, When, normalise_when, when_dict
from spaces.nas._genotype import _OP_NAME, CellGenotype, Genotype

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DARTS_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5")


def _check_ops(ops: Any) -> tuple[str, ...]:
    if isinstance(ops, str) or not isinstance(ops, (list, tuple)) or not ops:
        raise SpaceError("ops", f"must be a non-empty list of op names (got {ops!r})")
    ops = tuple(ops)
    for op in ops:
        if not isinstance(op, str) or not _OP_NAME.fullmatch(op):
            raise SpaceError("ops", f"op names are identifiers (got {op!r})")
    if len(set(ops)) != len(ops):
        raise SpaceError("ops", f"must be unique (got {list(ops)})")
    return ops


def _check_op(ops: tuple[str, ...], op: str, where: str) -> None:
    if op not in ops:
        raise SpaceError("", f"{where}: unknown op {op!r} (this cell's ops: {', '.join(ops)})")


class _Cell:
    """What every cell parameter shares: a value belongs to the cell when it validates as its genotype."""

    def genotype(self, value: Any) -> Genotype:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        try:
            self.genotype(value)
        except SpaceError:
            return False
        return True


@dataclass(frozen=True)
class NB201Cell(_Cell):
    """The NAS-Bench-201 cell: 4 nodes, 6 edges (every node takes every earlier node), one op per edge.

    >>> cell = NB201Cell()
    >>> cell.contains("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    True
    >>> cell.size
    15625
    """

    ops: tuple = NB201_OPS
    when: When | None = None
    kind: ClassVar[str] = "nb201_cell"
    required_keys: ClassVar[frozenset] = frozenset()
    optional_keys: ClassVar[frozenset] = frozenset({"ops", "when"})
    NODES: ClassVar[int] = 3  # computed nodes; node 0 is the cell input

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", _check_ops(self.ops))
        normalise_when(self, self.when)

    @property
    def size(self) -> int:
        return len(self.ops) ** (self.NODES * (self.NODES + 1) // 2)

    def genotype(self, value: Any) -> Genotype:
        """Parse and validate ``value`` (arch string, Genotype or dict form); raises :class:`SpaceError`."""
        genotype = _as_genotype(value)
        if list(genotype.cells) != ["cell"]:
            raise SpaceError("", f"a NAS-Bench-201 genotype has one cell (got {', '.join(genotype.cells)})")
        nodes = genotype.cells["cell"].nodes
        if len(nodes) != self.NODES:
            raise SpaceError("", f"a NAS-Bench-201 cell has {self.NODES} computed nodes (got {len(nodes)})")
        for k, node in enumerate(nodes, start=1):
            if len(node) != k:
                raise SpaceError("", f"node {k} must have {k} edges, one from each earlier node (got {len(node)})")
            for expected, (op, index) in enumerate(node):
                if index != expected:
                    raise SpaceError("", f"node {k} edge {expected + 1}: input index must be {expected} (got {index})")
                _check_op(self.ops, op, f"node {k} edge {expected + 1}")
        return genotype

    def decisions(self) -> tuple[tuple[str, tuple], ...]:
        """One categorical per edge: ``("node2.in1", ops)`` is the op on the edge from node 1 into node 2."""
        return tuple((f"node{k}.in{i}", self.ops) for k in range(1, self.NODES + 1) for i in range(k))

    def assemble(self, chosen: Mapping[str, Any]) -> str:
        nodes = [[(chosen[f"node{k}.in{i}"], i) for i in range(k)] for k in range(1, self.NODES + 1)]
        return Genotype({"cell": nodes}).to_string()

    def all_values(self) -> list[str]:
        """Every cell, in a fixed order (15,625 with the standard five ops)."""
        names = [name for name, _ in self.decisions()]
        return [self.assemble(dict(zip(names, combo))) for combo in itertools.product(self.ops, repeat=len(names))]

    def grid_values(self) -> tuple | None:
        return tuple(self.all_values()) if self.size <= MAX_GRID_POINTS else None

    def to_dict(self) -> dict:
        d: dict = {"type": self.kind}
        if self.ops != NB201_OPS:
            d["ops"] = list(self.ops)
        return d | when_dict(self.when)


@dataclass(frozen=True)
class DartsCell(_Cell):
    """DARTS-style cells: ``nodes`` intermediate nodes, each taking two distinct inputs among the two cell
    inputs (0, 1) and earlier nodes, with an op per input. With ``reduction`` (default) the genotype holds a
    ``normal`` and a ``reduce`` cell; the cell output concatenates the intermediate nodes.
    """

    nodes: int = 4
    ops: tuple = DARTS_OPS
    reduction: bool = True
    when: When | None = None
    kind: ClassVar[str] = "darts_cell"
    required_keys: ClassVar[frozenset] = frozenset()
    optional_keys: ClassVar[frozenset] = frozenset({"nodes", "ops", "reduction", "when"})

    def __post_init__(self) -> None:
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or not 1 <= self.nodes <= 16:
            raise SpaceError("nodes", f"must be an integer in [1, 16] (got {self.nodes!r})")
        if not isinstance(self.reduction, bool):
            raise SpaceError("reduction", f"must be true or false (got {self.reduction!r})")
        object.__setattr__(self, "ops", _check_ops(self.ops))
        normalise_when(self, self.when)

    @property
    def cell_names(self) -> tuple[str, ...]:
        return ("normal", "reduce") if self.reduction else ("normal",)

    @property
    def size(self) -> int:
        per_cell = math.prod(math.comb(i + 2, 2) * len(self.ops) ** 2 for i in range(self.nodes))
        return per_cell ** len(self.cell_names)

    def genotype(self, value: Any) -> Genotype:
        genotype = _as_genotype(value)
        if tuple(genotype.cells) != self.cell_names:
            raise SpaceError("", f"this DARTS genotype has cells {', '.join(self.cell_names)} "
                                 f"(got {', '.join(genotype.cells)})")
        for name, cell in genotype.cells.items():
            if len(cell.nodes) != self.nodes:
                raise SpaceError("", f"{name} cell: expected {self.nodes} intermediate nodes (got {len(cell.nodes)})")
            for i, node in enumerate(cell.nodes):
                where = f"{name} cell node {i}"
                if len(node) != 2:
                    raise SpaceError("", f"{where}: must have 2 edges (got {len(node)})")
                inputs = [index for _, index in node]
                for op, index in node:
                    if not 0 <= index <= i + 1:
                        raise SpaceError("", f"{where}: input index {index} out of range 0..{i + 1}")
                    _check_op(self.ops, op, where)
                if inputs[0] == inputs[1]:
                    raise SpaceError("", f"{where}: the two inputs must be distinct (got {inputs})")
        return genotype

    def decisions(self) -> tuple[tuple[str, tuple], ...]:
        """Per cell and node: the input pair (``"0,2"``), then the op of each of the two inputs."""
        out: list[tuple[str, tuple]] = []
        for cell in self.cell_names:
            for i in range(self.nodes):
                pairs = tuple(f"{a},{b}" for a, b in itertools.combinations(range(i + 2), 2))
                out += [(f"{cell}.node{i}.inputs", pairs), (f"{cell}.node{i}.op0", self.ops),
                        (f"{cell}.node{i}.op1", self.ops)]
        return tuple(out)

    def assemble(self, chosen: Mapping[str, Any]) -> str:
        cells = {}
        for cell in self.cell_names:
            nodes = []
            for i in range(self.nodes):
                a, b = (int(x) for x in chosen[f"{cell}.node{i}.inputs"].split(","))
                nodes.append([(chosen[f"{cell}.node{i}.op0"], a), (chosen[f"{cell}.node{i}.op1"], b)])
            cells[cell] = nodes
        return Genotype(cells).to_string()

    def grid_values(self) -> tuple | None:
        return None  # far too many for a grid

    def to_dict(self) -> dict:
        d: dict = {"type": self.kind}
        if self.nodes != 4:
            d["nodes"] = self.nodes
        if self.ops != DARTS_OPS:
            d["ops"] = list(self.ops)
        if not self.reduction:
            d["reduction"] = False
        return d | when_dict(self.when)


def _as_genotype(value: Any) -> Genotype:
    if isinstance(value, Genotype):
        return value
    if isinstance(value, str):
        return Genotype.from_string(value)
    if isinstance(value, Mapping):
        return Genotype.from_dict(value)
    raise SpaceError("", f"a genotype is a string, a Genotype or a dict of cells (got {type(value).__name__})")


CELL_TYPES = (NB201Cell, DartsCell)
