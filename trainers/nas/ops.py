"""The op registry: op name → factory(channels, stride) → torch module, in 1-D and 2-D variants.

Genotypes name ops by string; only this registry knows which module a name means. NAS-Bench-201 ops
(``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``) and DARTS ops (``max_pool_3x3,
avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5``, and ``none``). The names
are declared in ``_declarations.OP_NAMES`` (torch-free, for config checks); this module builds each of them.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainers.nas._declarations import OP_NAMES

OpFactory = Callable[[int, int], nn.Module]


def _layers(dim: int) -> tuple[type, type, type, type]:
    if dim == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.AvgPool1d, nn.MaxPool1d
    if dim == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d, nn.MaxPool2d
    raise ValueError(f"ops exist for 1-D and 2-D inputs (got dim={dim})")


class Zero(nn.Module):
    """The ``none`` op: no connection (zeros of the output shape)."""

    def __init__(self, stride: int, dim: int) -> None:
        super().__init__()
        self.stride, self.dim = stride, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        index = (slice(None), slice(None)) + (slice(None, None, self.stride),) * self.dim
        return x[index].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1×1 convolutions (DARTS' skip connection under stride 2)."""

    def __init__(self, c_in: int, c_out: int, dim: int) -> None:
        super().__init__()
        conv, bn, _, _ = _layers(dim)
        self.dim = dim
        self.act = nn.ReLU()
        self.conv_a = conv(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = conv(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        a = self.conv_a(x)
        shifted = x[(slice(None), slice(None)) + (slice(1, None),) * self.dim]
        pad = [0, 1] * self.dim
        b = self.conv_b(nn.functional.pad(shifted, pad))
        return self.bn(torch.cat([a, b], dim=1))


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int, dim: int, dilation: int = 1) -> nn.Module:
    conv, bn, _, _ = _layers(dim)
    return nn.Sequential(nn.ReLU(), conv(c_in, c_out, kernel, stride=stride, padding=dilation * (kernel // 2),
                                         dilation=dilation, bias=False), bn(c_out))


def _dil_conv(c: int, kernel: int, stride: int, dim: int, dilation: int) -> nn.Module:
    conv, bn, _, _ = _layers(dim)
    return nn.Sequential(
        nn.ReLU(),
        conv(c, c, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, groups=c, bias=False),
        conv(c, c, 1, bias=False),
        bn(c),
    )


def _sep_conv(c: int, kernel: int, stride: int, dim: int) -> nn.Module:
    return nn.Sequential(_dil_conv(c, kernel, stride, dim, 1), _dil_conv(c, kernel, 1, dim, 1))


def _skip(c: int, stride: int, dim: int) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c, dim)


def _registry(dim: int) -> dict[str, OpFactory]:
    _, _, avg, mx = _layers(dim)
    return {
        "none": lambda c, s: Zero(s, dim),
        "skip_connect": lambda c, s: _skip(c, s, dim),
        "nor_conv_1x1": lambda c, s: relu_conv_bn(c, c, 1, s, dim),
        "nor_conv_3x3": lambda c, s: relu_conv_bn(c, c, 3, s, dim),
        "avg_pool_3x3": lambda c, s: avg(3, stride=s, padding=1, count_include_pad=False),
        "max_pool_3x3": lambda c, s: mx(3, stride=s, padding=1),
        "sep_conv_3x3": lambda c, s: _sep_conv(c, 3, s, dim),
        "sep_conv_5x5": lambda c, s: _sep_conv(c, 5, s, dim),
        "dil_conv_3x3": lambda c, s: _dil_conv(c, 3, s, dim, 2),
        "dil_conv_5x5": lambda c, s: _dil_conv(c, 5, s, dim, 2),
    }


OPS: dict[int, dict[str, OpFactory]] = {1: _registry(1), 2: _registry(2)}
if any(tuple(ops) != OP_NAMES for ops in OPS.values()):  # config checks use the declared names: exactly these
    raise ImportError(f"the op registry {tuple(OPS[1])} differs from the declared op names {OP_NAMES}")


def make_op(name: str, channels: int, stride: int, dim: int) -> nn.Module:
    """The module for op ``name``; an unknown name is a ``ValueError`` naming the known ones."""
    try:
        factory = OPS[dim][name]
    except KeyError:
        raise ValueError(f"unknown op {name!r} for {dim}-D inputs (known: {', '.join(OPS.get(dim, {}))})") from None
    return factory(channels, stride)
