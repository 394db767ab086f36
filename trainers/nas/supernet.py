"""Weight-sharing supernets for one-shot NAS (DARTS, ENAS): every candidate op on every edge, one set of weights.

A :class:`MixedOp` holds one module per candidate op, each built by the op registry (``ops.make_op``; nothing
here implements an op). A :class:`Supernet` mirrors :class:`~trainers.nas.network.CellNetwork`'s macro structure —
stem → ``stages`` stages of ``cells`` mixed cells (a :class:`~trainers.nas.network.ResidualReduction` between
NAS-Bench-201 stages, a mixed reduction cell between DARTS stages) → global average pooling → linear classifier —
in 1-D or 2-D, and runs either

* **continuously** — ``supernet(x, weights)`` with ``weights[cell]`` of shape ``[edges, ops]`` (the softmax of
  the architecture parameters, DARTS), every edge the weighted sum of its ops, or
* **discretely** — ``supernet(x, genotype)``: one op per edge of the genotype (ENAS children, and the derived
  architecture), the other ops not run.

Edges are numbered node by node, inputs in order: NAS-Bench-201 node ``j`` (1..3) has edges from nodes
``0..j-1``; DARTS node ``i`` (0-based) has candidate edges from inputs ``0..i+1`` (the two cell inputs, then
earlier nodes). Architecture parameters (``alphas[cell]``, one row per edge) are kept apart from the weights:
:meth:`Supernet.arch_parameters` and :meth:`Supernet.weight_parameters` never share a tensor.

:func:`derive_genotype` turns architecture weights into an ordinary genotype string (the published rules).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from spaces.nas import DartsCell, Genotype, NB201Cell
from trainers.hardware import count_parameters, measure_latency_ms
from trainers.nas._declarations import check_genotype
from trainers.nas.network import ResidualReduction, _compute_nodes
from trainers.nas.ops import FactorizedReduce, _layers, make_op, relu_conv_bn

NONE, SKIP = "none", "skip_connect"

# The per-edge choices of a cell kind: ``Weights`` (continuous) or a ``Genotype`` (discrete).
Weights = Mapping[str, torch.Tensor]
Selection = dict[str, list[tuple[int, int]]]  # per cell kind: the (edge, op index) pairs a genotype uses


class MixedOp(nn.Module):
    """One edge of a supernet: a module per candidate op (from ``make_op``); ``forward(x, weights)`` is
    Σ_i weights[i]·op_i(x), ``forward_one(x, index)`` runs op ``index`` alone.

    >>> edge = MixedOp(("skip_connect", "avg_pool_3x3"), channels=4, stride=1, dim=1)
    >>> x = torch.randn(2, 4, 8)
    >>> torch.allclose(edge(x, torch.tensor([1.0, 0.0])), x)
    True
    """

    def __init__(self, ops: Sequence[str], channels: int, stride: int, dim: int) -> None:
        super().__init__()
        self.names = tuple(ops)
        self.ops = nn.ModuleList(make_op(name, channels, stride, dim) for name in self.names)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape != (len(self.ops),):
            raise ValueError(f"a mixed op over {len(self.ops)} ops takes {len(self.ops)} weights "
                             f"(got shape {tuple(weights.shape)})")
        # No op is skipped at weight 0: a skipped op would also skip its batch-norm statistics update.
        return sum(w * op(x) for w, op in zip(weights, self.ops))

    def forward_one(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return self.ops[index](x)


def _full_nodes(nodes: int, inputs: int) -> tuple:
    """Every candidate edge of a cell, in ``_compute_nodes``' node form: node ``n`` takes inputs ``0..n+inputs-1``."""
    return tuple(tuple((None, i) for i in range(n + inputs)) for n in range(nodes))


def _edge_offsets(nodes: int, inputs: int) -> list[int]:
    offsets, k = [], 0
    for n in range(nodes):
        offsets.append(k)
        k += n + inputs
    return offsets


class _MixedCell(nn.Module):
    """The computed nodes of a cell with a :class:`MixedOp` on every candidate edge (shared by both kinds)."""

    def __init__(self, kind: str, nodes: int, inputs: int, ops: Sequence[str], channels: int, dim: int,
                 reduction: bool) -> None:
        super().__init__()
        self.kind = kind
        self.full = _full_nodes(nodes, inputs)
        self.offsets = _edge_offsets(nodes, inputs)
        self.edges = nn.ModuleList(
            MixedOp(ops, channels, 2 if reduction and index < 2 else 1, dim) for node in self.full for _, index in node)

    def compute(self, states: list, arch: Any) -> list:
        if isinstance(arch, Genotype):
            nodes = arch.cells[self.kind].nodes
            chosen = [functools.partial(self.edges[self.offsets[n] + index].forward_one,
                                        index=self.edges[0].names.index(op))
                      for n, node in enumerate(nodes) for op, index in node]
            return _compute_nodes(nodes, chosen, states)
        weights = arch[self.kind]
        return _compute_nodes(self.full, [functools.partial(edge, weights=weights[k])
                                          for k, edge in enumerate(self.edges)], states)


class _NB201MixedCell(nn.Module):
    def __init__(self, ops: Sequence[str], channels: int, dim: int) -> None:
        super().__init__()
        self.mixed = _MixedCell("cell", NB201Cell.NODES, 1, ops, channels, dim, False)

    def forward(self, x: torch.Tensor, arch: Any) -> torch.Tensor:
        return self.mixed.compute([x], arch)[-1]


class _DartsMixedCell(nn.Module):
    def __init__(self, nodes: int, ops: Sequence[str], c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, prev_reduction: bool, dim: int) -> None:
        super().__init__()
        self.pre0 = FactorizedReduce(c_prev_prev, channels, dim) if prev_reduction else \
            relu_conv_bn(c_prev_prev, channels, 1, 1, dim)
        self.pre1 = relu_conv_bn(c_prev, channels, 1, 1, dim)
        self.mixed = _MixedCell("reduce" if reduction else "normal", nodes, 2, ops, channels, dim, reduction)
        self.out_channels = channels * nodes

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, arch: Any) -> torch.Tensor:
        return torch.cat(self.mixed.compute([self.pre0(s0), self.pre1(s1)], arch)[2:], dim=1)


def search_ops(cell: NB201Cell | DartsCell) -> tuple[str, ...]:
    """The candidate ops of a supernet for ``cell``: its ops, with ``none`` first for DARTS cells that lack it
    (standard DARTS search has the zero op as a candidate; it is never derived)."""
    if isinstance(cell, DartsCell):
        if not set(cell.ops) - {NONE}:
            raise ValueError(f"a DARTS cell needs an op other than 'none' to derive (got {list(cell.ops)})")
        return cell.ops if NONE in cell.ops else (NONE, *cell.ops)
    return tuple(cell.ops)


class Supernet(nn.Module):
    """The weight-sharing network of a cell space; input ``(batch, length)`` or ``(batch, height, width)``.

    ``alphas[name]`` (``name``: ``cell`` for NAS-Bench-201, ``normal``/``reduce`` for DARTS) are the architecture
    parameters, shape ``[edges, len(ops)]``, initialised as 1e-3·N(0, 1) as in DARTS. ``forward(x, arch)`` takes
    ``arch`` = architecture weights per cell kind (see :meth:`arch_weights`) or a genotype (string or
    :class:`~spaces.nas.Genotype`) of the cell space.

    DARTS spaces with ``reduction: false``, or searched with one stage, have no mixed reduction cell (a residual
    reduction block joins stages instead) and so only ``normal`` alphas (``cell_names``).

    >>> net = Supernet(NB201Cell(), num_classes=3, dim=1, stages=1, cells=1, channels=4)
    >>> net(torch.randn(2, 16), net.arch_weights()).shape, tuple(net.alphas["cell"].shape)
    (torch.Size([2, 3]), (6, 5))
    """

    def __init__(self, cell: NB201Cell | DartsCell, *, num_classes: int, dim: int, stages: int, cells: int,
                 channels: int, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        if not isinstance(cell, (NB201Cell, DartsCell)):
            raise ValueError(f"a supernet takes an nb201_cell or darts_cell parameter (got {type(cell).__name__})")
        conv, bn, _, _ = _layers(dim)
        self.space = cell
        self.ops = search_ops(cell)
        self.darts = isinstance(cell, DartsCell)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(max(float(std), 1e-6)))
        c = channels
        stem_c = c * 3 if self.darts else c
        self.stem = nn.Sequential(conv(1, stem_c, 3, padding=1, bias=False), bn(stem_c))
        self.cells = nn.ModuleList()
        if self.darts:
            self.cell_names = cell.cell_names if stages > 1 else ("normal",)
            self.num_nodes, inputs = cell.nodes, 2
            c_pp, c_p, prev_red = stem_c, stem_c, False
            for stage in range(stages):
                if stage > 0:
                    c *= 2
                    reduction = "reduce" in self.cell_names
                    made = _DartsMixedCell(cell.nodes, self.ops, c_pp, c_p, c, reduction, prev_red, dim) \
                        if reduction else ResidualReduction(c_p, c * cell.nodes, dim)
                    self.cells.append(made)
                    c_pp, c_p, prev_red = c_p, c * cell.nodes, True  # s0 is one resolution up: pre0 halves it
                for _ in range(cells):
                    made = _DartsMixedCell(cell.nodes, self.ops, c_pp, c_p, c, False, prev_red, dim)
                    self.cells.append(made)
                    c_pp, c_p, prev_red = c_p, made.out_channels, False
            out = c_p
        else:
            self.cell_names = ("cell",)
            self.num_nodes, inputs = NB201Cell.NODES, 1
            for stage in range(stages):
                if stage > 0:
                    self.cells.append(ResidualReduction(c, c * 2, dim))
                    c *= 2
                for _ in range(cells):
                    self.cells.append(_NB201MixedCell(self.ops, c, dim))
            out = c
        self.num_edges = sum(n + inputs for n in range(self.num_nodes))
        self.head = nn.Sequential(bn(out), nn.ReLU())
        self.classifier = nn.Linear(out, num_classes)
        # all cells of a kind share one row of architecture parameters per edge
        self.alphas = nn.ParameterDict({
            name: nn.Parameter(1e-3 * torch.randn(self.num_edges, len(self.ops))) for name in self.cell_names})

    # --- parameters -------------------------------------------------------------------------------------------

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def arch_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alphas) over the ops of each edge, per cell kind (differentiable)."""
        return {name: torch.softmax(alpha, dim=-1) for name, alpha in self.alphas.items()}

    def mixed_cells(self) -> list[_MixedCell]:
        return [module for module in self.modules() if isinstance(module, _MixedCell)]

    # --- forward ----------------------------------------------------------------------------------------------

    def genotype(self, value: Any) -> Genotype:
        """``value`` checked against the cell space (and the op registry) as a :class:`Genotype` (cells this
        supernet has no mixed cell for, such as ``reduce`` with one stage, are not used)."""
        genotype = self.space.genotype(value)
        check_genotype(genotype)
        return genotype

    def forward(self, x: torch.Tensor, arch: Weights | Genotype | str) -> torch.Tensor:
        if isinstance(arch, str):
            arch = self.genotype(arch)
        x = self.stem(((x - self.mean) / self.std).unsqueeze(1))
        if self.darts:
            s0 = s1 = x
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, arch) if isinstance(cell, _DartsMixedCell) else cell(s1)
            x = s1
        else:
            for cell in self.cells:
                x = cell(x, arch) if isinstance(cell, _NB201MixedCell) else cell(x)
        x = self.head(x).flatten(2).mean(dim=2)
        return self.classifier(x)

    # --- hardware costs ---------------------------------------------------------------------------------------

    def selection(self, genotype: Genotype | str) -> Selection:
        """The ``(edge, op index)`` pairs ``genotype`` uses, per cell kind of this supernet."""
        genotype = self.genotype(genotype) if isinstance(genotype, str) else genotype
        offsets = _edge_offsets(self.num_nodes, 2 if self.darts else 1)
        return {name: [(offsets[n] + index, self.ops.index(op)) for n, node in enumerate(genotype.cells[name].nodes)
                       for op, index in node] for name in self.cell_names}

    @torch.no_grad()
    def op_costs(self, sample: torch.Tensor, repeats: int = 5) -> dict[str, dict[str, torch.Tensor]]:
        """Per cell kind, ``[edges, ops]`` tables of every candidate op's cost, summed over the cells of that kind:
        ``latency_ms`` (median forward time on ``sample``'s device at the edge's input shape, batch of ``sample``)
        and ``params``. Also ``base_params`` (``{"all": tensor}``): the parameters outside the mixed ops.

        Uses no random numbers (inputs are zeros), so measuring does not move the trial's RNG streams.
        """
        shapes: dict[int, torch.Size] = {}
        hooks = [edge.register_forward_hook(lambda m, args, out: shapes.__setitem__(id(m), args[0].shape))
                 for cell in self.mixed_cells() for edge in cell.edges]
        was_training = self.training
        self.eval()
        try:
            self(sample, self.arch_weights())
        finally:
            for hook in hooks:
                hook.remove()
            self.train(was_training)
        latency = {name: torch.zeros(self.num_edges, len(self.ops)) for name in self.cell_names}
        params = {name: torch.zeros(self.num_edges, len(self.ops)) for name in self.cell_names}
        op_params = 0
        for cell in self.mixed_cells():
            for k, edge in enumerate(cell.edges):
                dummy = torch.zeros(shapes[id(edge)], device=sample.device)
                for j, op in enumerate(edge.ops):
                    latency[cell.kind][k, j] += measure_latency_ms(op, dummy, repeats=repeats, warmup=1)
                    params[cell.kind][k, j] += count_parameters(op)
                    op_params += count_parameters(op)
        base = sum(p.numel() for p in self.weight_parameters()) - op_params
        return {"latency_ms": latency, "params": params, "base_params": {"all": torch.tensor(float(base))}}


def expected_cost(weights: Weights, table: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Σ_cells Σ_edges Σ_ops weight·cost — the differentiable hardware penalty of ProxylessNAS / FBNet."""
    return sum((weights[name] * table[name].to(weights[name].device)).sum() for name in weights)


def selection_cost(selection: Selection, table: Mapping[str, torch.Tensor]) -> float:
    """The cost of a discrete architecture (:meth:`Supernet.selection`) under a cost table."""
    return float(sum(table[name][edge, op] for name, chosen in selection.items() for edge, op in chosen))


# --- derivation -------------------------------------------------------------------------------------------------


def derive_genotype(cell: NB201Cell | DartsCell, weights: Mapping[str, Any], ops: Sequence[str], *,
                    skip_cap: int = 0) -> str:
    """The discrete genotype that architecture ``weights`` (softmax per edge, ``[edges, len(ops)]`` per cell kind,
    edges numbered as in :class:`Supernet`) stand for, by the published rules:

    * NAS-Bench-201: the argmax op of every edge, over *all* the cell's ops, ``none`` included. This is the
      NAS-Bench-201 paper's protocol for its DARTS baselines, and ``none`` is an op of that space (the benchmark
      scores cells with absent edges), so excluding it would put a fifth of each edge's choices out of reach.
    * DARTS (Liu et al. 2019): for each node, each incoming edge's strength is its strongest non-``none`` op
      weight; the two strongest edges are kept (ties: the lower input), each with that op. ``none`` is never
      derived (DARTS cells have exactly two inputs per node). ``skip_cap > 0`` caps the ``skip_connect`` edges of
      the *normal* cell (after P-DARTS, DARTS+): while over the cap, the kept skip edge with the weakest skip weight
      takes its next-best op other than ``none`` and ``skip_connect`` on the same edge — a simplification of
      P-DARTS, which zeroes the extra skips and derives again (possibly other input edges). ``skip_cap = 0``: no cap.

    A space searched without a reduction cell (one stage) derives its ``reduce`` cell, if the space has one, from
    the normal cell's weights. The result is checked against ``cell`` and the op registry.

    >>> w = torch.zeros(6, 5); w[:, 3] = 1.0  # nor_conv_3x3 strongest everywhere
    >>> derive_genotype(NB201Cell(), {"cell": w}, NB201Cell().ops)
    '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|'
    """
    ops = tuple(ops)
    if skip_cap < 0:
        raise ValueError(f"skip_cap must be >= 0 (0: no cap; got {skip_cap})")
    weights = {name: torch.as_tensor(w).detach().cpu().double() for name, w in weights.items()}
    for name, w in weights.items():
        if w.ndim != 2 or w.shape[1] != len(ops):
            raise ValueError(f"weights[{name!r}] must have shape [edges, {len(ops)}] (got {tuple(w.shape)})")
    if isinstance(cell, NB201Cell):
        w = weights["cell"]
        offsets = _edge_offsets(NB201Cell.NODES, 1)
        nodes = [[(ops[int(w[offsets[n] + i].argmax())], i) for i in range(n + 1)] for n in range(NB201Cell.NODES)]
        text = Genotype({"cell": nodes}).to_string()
    else:
        text = _with_reduce(cell, {name: _derive_darts_cell(w, ops, cell.nodes, skip_cap if name == "normal" else 0)
                                   for name, w in weights.items()})
    check_genotype(cell.genotype(text))
    return text


def _derive_darts_cell(w: torch.Tensor, ops: tuple[str, ...], nodes: int, skip_cap: int) -> list:
    usable = [j for j, op in enumerate(ops) if op != NONE]
    offsets = _edge_offsets(nodes, 2)
    chosen: list[list[list]] = []  # per node: [edge, op index, input]
    for n in range(nodes):
        edges = [(offsets[n] + i, i) for i in range(n + 2)]
        best = [(max(usable, key=lambda j, k=k: (w[k, j], -j)), k, i) for k, i in edges]
        # strongest two edges; stable sort keeps the lower input first on ties
        top = sorted(best, key=lambda b: -w[b[1], b[0]])[:2]
        chosen.append(sorted([[k, j, i] for j, k, i in top], key=lambda e: e[2]))
    if skip_cap and SKIP in ops:
        skip = ops.index(SKIP)
        others = [j for j in usable if j != skip]
        while others:
            skips = [e for node in chosen for e in node if e[1] == skip]
            if len(skips) <= skip_cap:
                break
            weakest = min(skips, key=lambda e: (w[e[0], skip], -e[0]))
            weakest[1] = max(others, key=lambda j: (w[weakest[0], j], -j))
    return [[(ops[j], i) for _k, j, i in node] for node in chosen]


def _with_reduce(space: NB201Cell | DartsCell, cells: dict[str, list]) -> str:
    """The genotype text of ``cells``, a ``reduce`` cell the supernet has no alphas for copied from ``normal``."""
    if isinstance(space, DartsCell):
        cells = {name: cells.get(name, cells["normal"]) for name in space.cell_names}
    return Genotype(cells).to_string()


class Controller(nn.Module):
    """ENAS' controller as a *factorised* policy: an independent categorical distribution per decision — the op
    of each edge, and for DARTS cells each node's two inputs (drawn without replacement from the node's candidate
    inputs) — rather than Pham et al.'s autoregressive LSTM.

    Why: with independent decisions the controller's parameters have the shape of DARTS' alphas, so its
    probabilities are reported under the same ``alpha.<cell>.e<edge>.<op>`` names and its greedy architecture is
    derived edge by edge as DARTS' is; an LSTM's probabilities depend on the decisions before them and have no
    such per-edge reading. TuNAS (Bender et al. 2020) found a factorised REINFORCE policy as good as the LSTM on
    these cell spaces. Logits start at zero (the uniform policy), so building a controller draws no random numbers.

    ``none`` is sampled on NAS-Bench-201 edges (an op of that space), never on DARTS edges (each node has exactly
    two inputs there).
    """

    def __init__(self, supernet: Supernet) -> None:
        super().__init__()
        self.space = supernet.space
        self.darts = supernet.darts
        self.cell_names = supernet.cell_names
        self.num_nodes = supernet.num_nodes
        self.offsets = _edge_offsets(self.num_nodes, 2 if self.darts else 1)
        # indices into the supernet's ops of the ops this policy draws from
        self.choices = tuple(j for j, op in enumerate(supernet.ops) if not (self.darts and op == NONE))
        self.op_names = tuple(supernet.ops[j] for j in self.choices)
        self.op_logits = nn.ParameterDict({
            name: nn.Parameter(torch.zeros(supernet.num_edges, len(self.choices))) for name in self.cell_names})
        self.input_logits = nn.ParameterDict({
            name: nn.Parameter(torch.zeros(supernet.num_edges)) for name in (self.cell_names if self.darts else ())})

    def _node_edges(self, n: int) -> list[int]:
        return [self.offsets[n] + i for i in range(n + (2 if self.darts else 1))]

    def sample(self, generator: torch.Generator) -> tuple[str, torch.Tensor, torch.Tensor]:
        """A child architecture drawn with ``generator`` (CPU): ``(genotype text, log-probability, entropy)``.
        The entropy is the sum of the decisions' entropies (for an input pair, that of its first draw)."""
        log_prob, entropy = torch.zeros(()), torch.zeros(())

        def draw(logits: torch.Tensor) -> int:
            nonlocal log_prob
            logp = torch.log_softmax(logits, dim=-1)
            index = int(torch.multinomial(logp.detach().exp(), 1, generator=generator))
            log_prob = log_prob + logp[index]
            return index

        def spread(logits: torch.Tensor) -> None:
            nonlocal entropy
            logp = torch.log_softmax(logits, dim=-1)
            entropy = entropy - (logp.exp() * logp).sum()

        cells = {}
        for name in self.cell_names:
            ops = self.op_logits[name]
            nodes = []
            for n in range(self.num_nodes):
                edges = self._node_edges(n)
                if self.darts:
                    logits = self.input_logits[name][edges]
                    spread(logits)
                    first = draw(logits)
                    second = draw(logits.masked_fill(torch.arange(len(edges)) == first, float("-inf")))
                    inputs = sorted((first, second))
                else:
                    inputs = list(range(len(edges)))
                node = []
                for i in inputs:
                    spread(ops[edges[i]])
                    node.append((self.op_names[draw(ops[edges[i]])], i))
                nodes.append(node)
            cells[name] = nodes
        return _with_reduce(self.space, cells), log_prob, entropy

    @torch.no_grad()
    def greedy(self) -> str:
        """The most probable decision everywhere (ties: the first op, the lower input): ENAS' derived cell."""
        cells = {}
        for name in self.cell_names:
            ops = self.op_logits[name]
            nodes = []
            for n in range(self.num_nodes):
                edges = self._node_edges(n)
                if self.darts:
                    logits = self.input_logits[name][edges]
                    inputs = sorted(sorted(range(len(edges)), key=lambda i: -float(logits[i]))[:2])
                else:
                    inputs = list(range(len(edges)))
                nodes.append([(self.op_names[int(ops[edges[i]].argmax())], i) for i in inputs])
            cells[name] = nodes
        return _with_reduce(self.space, cells)

    @torch.no_grad()
    def probabilities(self) -> dict[str, float]:
        """``alpha.<cell>.e<edge>.<op>``: each edge's op probabilities; DARTS cells also ``alpha.<cell>.e<edge>.input``,
        the probability that the edge is its node's first drawn input."""
        out = {}
        for name in self.cell_names:
            probs = torch.softmax(self.op_logits[name], dim=-1)
            for k in range(probs.shape[0]):
                out.update({f"alpha.{name}.e{k}.{op}": float(p) for op, p in zip(self.op_names, probs[k])})
            if self.darts:
                for n in range(self.num_nodes):
                    edges = self._node_edges(n)
                    chance = torch.softmax(self.input_logits[name][edges], dim=-1)
                    out.update({f"alpha.{name}.e{k}.input": float(p) for k, p in zip(edges, chance)})
        return out


def alpha_metrics(weights: Weights, ops: Sequence[str]) -> dict[str, float]:
    """Architecture weights as metrics ``alpha.<cell>.e<edge>.<op>``."""
    return {f"alpha.{name}.e{k}.{op}": float(p) for name, w in weights.items()
            for k in range(w.shape[0]) for op, p in zip(ops, w[k])}


class DiscretePath(nn.Module):
    """The supernet run as one discrete architecture (``genotype``): a plain ``model(x)`` for evaluation,
    latency measurement and :class:`~trainers.recipes._fit.TorchClassifier`. Shares the supernet's weights."""

    def __init__(self, supernet: Supernet, genotype: Genotype | str) -> None:
        super().__init__()
        self.supernet = supernet
        self.genotype = supernet.genotype(genotype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.genotype)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Sequence[torch.Tensor]) -> None:
    """Re-estimate every batch-norm layer's running statistics as the plain average over ``batches`` run through
    ``model`` in training mode (as SPOS, Guo et al. 2020, does for each path of a supernet): statistics gathered
    while the supernet trained mixed or other paths do not fit the path being evaluated. No random numbers."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
