import pytest
import torch
from torch import nn

from spaces import SpaceError
from spaces.nas import DartsCell, Genotype, NB201Cell
from trainers import DigitsSource, MemoryReporter, TrialSpec, resolve_trainer, search_data
from trainers.hardware import count_macs, count_parameters, hardware_profile
from trainers.nas import OP_NAMES, build_network, check_genotype, make_op
from trainers.nas.recipe import HYPERPARAMETERS

PAPER = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
DARTS = DartsCell(nodes=2).assemble({k: c[-1] for k, c in DartsCell(nodes=2).decisions()})


@pytest.mark.parametrize("dim, shape", [(1, (2, 6, 40)), (2, (2, 6, 8, 8))])
@pytest.mark.parametrize("name", OP_NAMES)
def test_every_op_keeps_shape_or_halves_it_with_stride_2(name, dim, shape):
    x = torch.randn(*shape)
    assert make_op(name, 6, 1, dim)(x).shape == x.shape
    halved = make_op(name, 6, 2, dim)(x).shape
    assert halved[:2] == x.shape[:2] and all(h == (s + 1) // 2 for h, s in zip(halved[2:], x.shape[2:]))


def test_unknown_op_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown op 'conv_9x9' for 1-D inputs"):
        make_op("conv_9x9", 4, 1, 1)
    with pytest.raises(SpaceError, match="unknown op 'conv_9x9'"):
        check_genotype(PAPER.replace("avg_pool_3x3", "conv_9x9"))


@pytest.mark.parametrize("genotype", [PAPER, DARTS], ids=["nb201", "darts"])
@pytest.mark.parametrize("input_shape", [(40,), (8, 8)], ids=["1d", "2d"])
def test_networks_from_genotypes_and_macro_parameters(genotype, input_shape):
    hp = {"cell": genotype, "stages": 3, "cells": 1, "channels": 4, "depth_multiplier": 2.0,
          "width_multiplier": 1.5, "dropout": 0.1, "pool": "avgmax"}
    model = build_network(hp, 10, input_shape, 0.0, 1.0)
    out = model(torch.randn(3, *input_shape))
    assert out.shape == (3, 10)
    smaller = build_network({**hp, "depth_multiplier": 1.0, "width_multiplier": 1.0}, 10, input_shape, 0.0, 1.0)
    assert count_parameters(smaller) < count_parameters(model)  # compound scaling changes the network


def test_hardware_metrics():
    model = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 10, 2))
    sample = torch.randn(1, 1, 10)
    assert count_parameters(model) == 4 * 3 + 4 + 40 * 2 + 2
    assert count_macs(model, sample) == 10 * 4 * 3 + 40 * 2
    profile = hardware_profile(model, sample)
    assert profile["params"] == 98 and profile["macs"] == 200 and profile["latency_ms"] > 0


def test_nas_recipe_trains_on_2d_digits_and_reports_hardware_metrics():
    data = search_data(DigitsSource(), seed=0)
    reporter = MemoryReporter()
    evaluator = resolve_trainer("nas").train(
        TrialSpec({"cell": PAPER, "channels": 8, "cells": 1, "stages": 2, "lr": 0.01}, data, 4, seed=1), reporter)
    assert data.input_shape == (8, 8)
    last = reporter.history[-1]
    assert last["val_accuracy"] > 0.5 and last["params"] > 1000 and last["macs"] > last["params"]
    assert evaluator.evaluate(data.val)["accuracy"] == last["val_accuracy"]


def test_genotype_hyperparameter_checks_cells_and_constants():
    hyper = HYPERPARAMETERS["cell"]
    hyper.check("cell", PAPER)
    with pytest.raises(SpaceError, match="cell: .*unknown op 'max_pool_9'"):
        hyper.check("cell", PAPER.replace("avg_pool_3x3", "max_pool_9"))
    assert Genotype.from_string(DARTS) == check_genotype(DARTS)
    assert NB201Cell().contains(HYPERPARAMETERS["cell"].default)
