"""Networks from genotypes: a genotype plus macro parameters → a torch model (1-D or 2-D).

Macro structure (NAS-Bench-201 style, generalised): stem conv → ``stages`` stages of ``cells`` cells each, the
channels doubling and the resolution halving between stages (a residual reduction block for NAS-Bench-201
genotypes, a reduction cell for DARTS genotypes) → global pooling (average, or average and max) → dropout →
linear classifier.
EfficientNet-style compound scaling: ``depth_multiplier`` scales the cells per stage and ``width_multiplier``
the channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spaces.nas import Genotype
from trainers.nas.ops import FactorizedReduce, _layers, make_op, relu_conv_bn


def _compute_nodes(nodes: tuple, edges: nn.ModuleList, states: list) -> list:
    """Append each node's output, the sum of its edges' ops over their inputs, to ``states`` (edges in node order)."""
    k = 0
    for node in nodes:
        total = 0
        for _op, index in node:
            total = total + edges[k](states[index])
            k += 1
        states.append(total)
    return states


class NB201Cell(nn.Module):
    """node_j = Σ_{i<j} op_ij(node_i); the output is the last node. Shape-preserving."""

    def __init__(self, nodes: tuple, channels: int, dim: int) -> None:
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(make_op(op, channels, 1, dim) for node in nodes for op, _ in node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _compute_nodes(self.nodes, self.edges, [x])[-1]


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction block: a stride-2 residual basic block that doubles the channels."""

    def __init__(self, c_in: int, c_out: int, dim: int) -> None:
        super().__init__()
        conv, _, avg, _ = _layers(dim)
        self.a = relu_conv_bn(c_in, c_out, 3, 2, dim)
        self.b = relu_conv_bn(c_out, c_out, 3, 1, dim)
        self.shortcut = nn.Sequential(avg(2, stride=2, ceil_mode=True), conv(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class DartsCell(nn.Module):
    """A DARTS cell: inputs from the two previous cells, each intermediate node sums two ops, the output
    concatenates the intermediate nodes. A reduction cell applies its ops with stride 2 to the cell inputs."""

    def __init__(self, nodes: tuple, c_prev_prev: int, c_prev: int, channels: int, reduction: bool,
                 prev_reduction: bool, dim: int) -> None:
        super().__init__()
        self.pre0 = FactorizedReduce(c_prev_prev, channels, dim) if prev_reduction else \
            relu_conv_bn(c_prev_prev, channels, 1, 1, dim)
        self.pre1 = relu_conv_bn(c_prev, channels, 1, 1, dim)
        self.nodes = nodes
        self.edges = nn.ModuleList(
            make_op(op, channels, 2 if reduction and index < 2 else 1, dim) for node in nodes for op, index in node)
        self.out_channels = channels * len(nodes)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = _compute_nodes(self.nodes, self.edges, [self.pre0(s0), self.pre1(s1)])
        return torch.cat(states[2:], dim=1)


def scaled(base: int, multiplier: float) -> int:
    return max(1, int(math.ceil(base * multiplier)))


class CellNetwork(nn.Module):
    """The whole network for a genotype; input ``(batch, length)`` (1-D) or ``(batch, height, width)`` (2-D)."""

    def __init__(self, genotype: Genotype, *, num_classes: int, dim: int, stages: int, cells: int, channels: int,
                 depth_multiplier: float = 1.0, width_multiplier: float = 1.0, dropout: float = 0.0,
                 pool: str = "avg", mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        conv, bn, _, _ = _layers(dim)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(max(float(std), 1e-6)))
        self.darts = "normal" in genotype.cells
        per_stage = scaled(cells, depth_multiplier)
        c = scaled(channels, width_multiplier)
        stem_c = c * 3 if self.darts else c
        self.stem = nn.Sequential(conv(1, stem_c, 3, padding=1, bias=False), bn(stem_c))
        self.cells = nn.ModuleList()
        if self.darts:
            c_pp, c_p, prev_red = stem_c, stem_c, False
            for stage in range(stages):
                if stage > 0:
                    c *= 2
                    cell = DartsCell(genotype.cells["reduce"].nodes, c_pp, c_p, c, True, prev_red, dim)
                    self.cells.append(cell)
                    c_pp, c_p, prev_red = c_p, cell.out_channels, True
                for _ in range(per_stage):
                    cell = DartsCell(genotype.cells["normal"].nodes, c_pp, c_p, c, False, prev_red, dim)
                    self.cells.append(cell)
                    c_pp, c_p, prev_red = c_p, cell.out_channels, False
            out = c_p
        else:
            for stage in range(stages):
                if stage > 0:
                    self.cells.append(ResidualReduction(c, c * 2, dim))
                    c *= 2
                for _ in range(per_stage):
                    self.cells.append(NB201Cell(genotype.cells["cell"].nodes, c, dim))
            out = c
        self.head = nn.Sequential(bn(out), nn.ReLU())
        self.pool = pool
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(out * (2 if pool == "avgmax" else 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x - self.mean) / self.std).unsqueeze(1)
        x = self.stem(x)
        if self.darts:
            s0 = s1 = x
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1)
            x = s1
        else:
            for cell in self.cells:
                x = cell(x)
        x = self.head(x).flatten(2)
        # global pooling over positions: mean (and max); both deterministic on CUDA, unlike adaptive pooling
        x = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1) if self.pool == "avgmax" else x.mean(dim=2)
        return self.classifier(self.dropout(x))
