import pytest
import torch

from spaces import SpaceError
from spaces.nas import DartsCell, NB201Cell
from trainers import MemoryReporter, Mnist1dSource, TrialSpec, resolve_trainer, search_data
from trainers.hardware import TIMING_METRICS, count_parameters
from trainers.nas import OP_NAMES, build_network, check_genotype, make_op
from trainers.nas import oneshot
from trainers.nas.oneshot import arch_gradient, reinforce_step, split_halves
from trainers.nas.supernet import (Controller, MixedOp, Supernet, derive_genotype, expected_cost, search_ops)

DARTS2 = DartsCell(nodes=2)
DARTS_OPS = search_ops(DARTS2)  # none first, then the cell's ops
VARYING = (*TIMING_METRICS, "predicted_latency_ms", "measured_latency_ms")  # measured on the machine


@pytest.fixture(scope="module")
def data():
    return search_data(Mnist1dSource(num_samples=300), seed=0)


def tiny_supernet(cell, stages=2, dim=1):
    torch.manual_seed(0)
    return Supernet(cell, num_classes=10, dim=dim, stages=stages, cells=1, channels=2)


def batch(n=8, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, length, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("dim, shape", [(1, (3, 4, 12)), (2, (3, 4, 6, 6))])
@pytest.mark.parametrize("stride", [1, 2])
def test_mixed_op_is_the_weighted_sum_of_its_ops(dim, shape, stride):
    torch.manual_seed(0)
    edge = MixedOp(OP_NAMES, channels=4, stride=stride, dim=dim).eval()
    x = torch.randn(*shape)
    weights = torch.softmax(torch.randn(len(OP_NAMES)), dim=0)
    expected = sum(w * op(x) for w, op in zip(weights, edge.ops))
    torch.testing.assert_close(edge(x, weights), expected)
    for i, name in enumerate(OP_NAMES):  # each op is the registry's (same type), and forward_one runs it alone
        assert type(edge.ops[i]) is type(make_op(name, 4, stride, dim))
        torch.testing.assert_close(edge.forward_one(x, i), edge.ops[i](x))
    with pytest.raises(ValueError, match="takes 10 weights"):
        edge(x, weights[:3])


def test_nb201_derivation_takes_the_argmax_of_every_edge_none_included():
    ops = NB201Cell().ops  # none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3
    w = torch.full((6, 5), 0.1)
    for edge, op in enumerate([3, 0, 2, 1, 4, 3]):
        w[edge, op] = 0.6
    text = derive_genotype(NB201Cell(), {"cell": w}, ops)
    assert text == "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    assert NB201Cell().contains(text) and check_genotype(text)


def darts_weights(rows):
    """[edges, ops] weights from {edge: {op: weight}}, other entries 0.01."""
    w = torch.full((5, len(DARTS_OPS)), 0.01)
    for edge, ops in rows.items():
        for op, value in ops.items():
            w[edge, DARTS_OPS.index(op)] = value
    return w


def test_darts_derivation_keeps_the_two_strongest_non_none_edges_of_each_node():
    # node 0: edges 0 (input 0), 1 (input 1); node 1: edges 2, 3, 4 (inputs 0, 1, 2)
    w = darts_weights({0: {"none": 0.9, "sep_conv_3x3": 0.05}, 1: {"avg_pool_3x3": 0.5},
                       2: {"none": 0.99}, 3: {"dil_conv_5x5": 0.3}, 4: {"skip_connect": 0.6, "max_pool_3x3": 0.2}})
    cell = DartsCell(nodes=2, reduction=False)
    text = derive_genotype(cell, {"normal": w}, DARTS_OPS)
    # edge 2's only strong op is none: it is the weakest edge of node 1 and is dropped; none is never derived
    assert text == "normal:|sep_conv_3x3~0|avg_pool_3x3~1|+|dil_conv_5x5~1|skip_connect~2|"
    assert cell.contains(text) and check_genotype(text)
    reduce = darts_weights({0: {"max_pool_3x3": 0.4}, 1: {"skip_connect": 0.3}, 2: {"sep_conv_5x5": 0.2},
                            3: {"dil_conv_3x3": 0.5}})
    both = derive_genotype(DartsCell(nodes=2), {"normal": w, "reduce": reduce}, DARTS_OPS)
    assert both.split()[1] == "reduce:|max_pool_3x3~0|skip_connect~1|+|sep_conv_5x5~0|dil_conv_3x3~1|"
    # a space whose cells lack none still derives (none is a search candidate only)
    assert "none" not in DARTS2.ops and DARTS2.contains(both)


def test_skip_cap_replaces_the_weakest_skips_of_the_normal_cell_by_their_next_best_op():
    skips = {0: {"skip_connect": 0.9, "sep_conv_3x3": 0.05}, 1: {"skip_connect": 0.5, "dil_conv_3x3": 0.2},
             3: {"skip_connect": 0.8, "max_pool_3x3": 0.1}, 4: {"skip_connect": 0.6, "sep_conv_5x5": 0.3}}
    w = darts_weights(skips)
    uncapped = derive_genotype(DARTS2, {"normal": w, "reduce": w}, DARTS_OPS)
    assert uncapped.count("skip_connect") == 8
    capped = derive_genotype(DARTS2, {"normal": w, "reduce": w}, DARTS_OPS, skip_cap=2)
    normal, reduce = capped.split()
    # the two weakest skips (edges 1 and 4) take their next-best op; the reduction cell is not capped
    assert normal == "normal:|skip_connect~0|dil_conv_3x3~1|+|skip_connect~1|sep_conv_5x5~2|"
    assert reduce == uncapped.split()[1]
    assert derive_genotype(DARTS2, {"normal": w, "reduce": w}, DARTS_OPS, skip_cap=3).count("skip_connect") == 7
    with pytest.raises(ValueError, match="skip_cap must be >= 0"):
        derive_genotype(DARTS2, {"normal": w}, DARTS_OPS, skip_cap=-1)


def test_supernet_separates_architecture_from_weights_and_runs_discrete_paths():
    net = tiny_supernet(DARTS2)
    arch = {id(p) for p in net.arch_parameters()}
    assert arch and not arch & {id(p) for p in net.weight_parameters()}
    assert len(arch) + len(net.weight_parameters()) == len(list(net.parameters()))
    assert tuple(net.alphas["normal"].shape) == (5, len(DARTS_OPS))
    x, _ = batch()
    genotype = derive_genotype(DARTS2, net.arch_weights(), net.ops)
    assert net(x, net.arch_weights()).shape == net(x, genotype).shape == (8, 10)
    images = tiny_supernet(NB201Cell(), dim=2)
    assert images(torch.randn(2, 8, 8), images.arch_weights()).shape == (2, 10)


@pytest.mark.parametrize("cell", [NB201Cell(), DARTS2], ids=["nb201", "darts"])
def test_a_discrete_path_is_the_supernet_with_one_hot_weights(cell):
    # the derived cell runs exactly the supernet's ops and weights: the mixture with weight 1 on the genotype's
    # (edge, op) pairs and 0 elsewhere gives the same outputs, bit for bit
    net = tiny_supernet(cell)
    with torch.no_grad():
        for alpha in net.alphas.values():
            alpha.normal_(generator=torch.Generator().manual_seed(3))
    genotype = net.genotype(derive_genotype(cell, net.arch_weights(), net.ops))
    one_hot = {name: torch.zeros_like(w) for name, w in net.arch_weights().items()}
    for name, pairs in net.selection(genotype).items():
        for edge, op in pairs:
            one_hot[name][edge, op] = 1.0
    x, _ = batch()
    net.train()
    with torch.no_grad():
        assert torch.equal(net(x, one_hot), net(x, genotype))


@pytest.mark.parametrize("order", [1, 2])
def test_the_architecture_gradient_reaches_every_alpha(order):
    net = tiny_supernet(DARTS2)
    before = [p.detach().clone() for p in net.weight_parameters()]
    arch_gradient(net, batch(seed=1), batch(seed=2), order=order, xi=0.1)
    for name, alpha in net.alphas.items():
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0, name
    # the unrolled step leaves the weights exactly as they were
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, net.weight_parameters()))
    if order == 2:
        second = net.alphas["normal"].grad.clone()
        arch_gradient(net, batch(seed=1), order=1)
        assert not torch.allclose(second, net.alphas["normal"].grad)


def test_the_latency_penalty_adds_its_own_gradient():
    net = tiny_supernet(NB201Cell(), stages=1)
    table = {"cell": torch.arange(30, dtype=torch.float32).reshape(6, 5) / 10}
    arch_gradient(net, batch(seed=1))
    plain = net.alphas["cell"].grad.clone()
    arch_gradient(net, batch(seed=1), latency=table, latency_weight=0.5)
    penalty = torch.autograd.grad(0.5 * expected_cost(net.arch_weights(), table), net.alphas["cell"])[0]
    assert not torch.allclose(plain, net.alphas["cell"].grad)
    torch.testing.assert_close(net.alphas["cell"].grad - plain, penalty)


def test_op_costs_price_every_candidate_and_count_the_derived_parameters():
    net = tiny_supernet(NB201Cell(), stages=2)
    costs = net.op_costs(torch.randn(1, 40), repeats=2)
    assert (costs["latency_ms"]["cell"] > 0).all()
    assert costs["params"]["cell"][:, NB201Cell().ops.index("none")].sum() == 0
    genotype = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    chosen = net.selection(genotype)
    derived = float(costs["base_params"]["all"]) + sum(float(costs["params"]["cell"][e, o]) for e, o in chosen["cell"])
    plain = build_network({"cell": genotype, "stages": 2, "cells": 1, "channels": 2, "depth_multiplier": 1.0,
                           "width_multiplier": 1.0, "dropout": 0.0, "pool": "avg"}, 10, (40,), 0.0, 1.0)
    assert derived == count_parameters(plain)  # the discrete path is exactly the stand-alone network


@pytest.mark.parametrize("cell", [NB201Cell(), DARTS2], ids=["nb201", "darts"])
def test_enas_controller_learns_by_reinforce_and_its_baseline_moves(cell):
    net = tiny_supernet(cell)
    controller = Controller(net)
    optimizer = torch.optim.Adam(controller.parameters(), lr=0.1)
    first, _, _ = controller.sample(torch.Generator().manual_seed(5))
    again, log_prob, entropy = controller.sample(torch.Generator().manual_seed(5))
    assert first == again and cell.contains(first) and log_prob < 0 and entropy > 0
    assert cell.contains(controller.greedy())
    x, y = batch(n=7, seed=3)  # a reward is k/7, never the initial baseline 0.5
    before = [p.detach().clone() for p in controller.parameters()]
    reward, baseline = reinforce_step(controller, optimizer, net, (x, y), torch.Generator().manual_seed(1), 0.5,
                                      baseline_decay=0.9, entropy_weight=0.0)
    assert baseline == pytest.approx(0.9 * 0.5 + 0.1 * reward) and baseline != 0.5
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in controller.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, controller.parameters()))
    names = controller.probabilities()
    assert sum(v for k, v in names.items() if k.startswith(f"alpha.{net.cell_names[0]}.e0.")
               and not k.endswith(".input")) == pytest.approx(1.0)


CONFIGS = {
    "darts-nb201": {"method": "darts", "cell_space": '{"type": "nb201_cell"}', "stages": 1},
    "darts2-cells": {"method": "darts", "order": 2, "cell_space": '{"type": "darts_cell", "nodes": 2}', "stages": 2,
                     "skip_cap": 1},
    "enas-cells": {"method": "enas", "cell_space": '{"type": "darts_cell", "nodes": 2}', "stages": 2,
                   "controller_lr": 0.05},
    "enas-nb201": {"method": "enas", "cell_space": '{"type": "nb201_cell"}', "stages": 1, "controller_lr": 0.05},
}


def search(data, params, *, epochs=2, seed=3, reporter=None):
    reporter = reporter or MemoryReporter()
    params = {"cells": 1, "channels": 2, "batch_size": 32, "augment_shift": 2, **params}
    evaluator = resolve_trainer("oneshot").train(TrialSpec(params, data, epochs, seed), reporter)
    return reporter, evaluator


def steady(history):
    return [{k: v for k, v in e.items() if k not in VARYING} for e in history]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_oneshot_search_is_deterministic_resumable_and_derives_valid_genotypes(name, data):
    params = CONFIGS[name]
    full, evaluator = search(data, params, reporter=MemoryReporter(keep_states=True))
    cell = oneshot.parse_cell_space(params["cell_space"])
    assert [e["epoch"] for e in full.history] == [1, 2]
    last = full.history[-1]
    assert cell.contains(last["genotype"]) and check_genotype(last["genotype"])
    assert evaluator.genotype == last["genotype"]
    assert evaluator.evaluate(data.val)["accuracy"] == last["val_accuracy"]
    assert all(isinstance(v, float) for k, v in last.items() if k not in ("epoch", "genotype"))
    assert last["predicted_latency_ms"] > 0 and last["measured_latency_ms"] > 0
    assert last["derived_params"] == last["params"] > 0
    alphas = [k for k in last if k.startswith("alpha.")]
    first_cell = "cell" if isinstance(cell, NB201Cell) else "normal"
    assert sum(last[k] for k in alphas if k.startswith(f"alpha.{first_cell}.e0.")
               and not k.endswith(".input")) == pytest.approx(1.0)
    if params["method"] == "darts":
        assert {f"alpha.{first_cell}.e0.{op}" for op in search_ops(cell)} <= set(alphas)
    again, _ = search(data, params)
    assert steady(again.history) == steady(full.history)  # bit for bit
    resumed, _ = search(data, params, reporter=MemoryReporter(resume_from=(1, full.state_at(1))))
    assert steady(resumed.history) == steady(full.history[1:])


def test_stability_patience_stops_once_the_genotype_settles(data):
    # with a zero architecture learning rate the alphas, so the derived genotype, never change
    reporter, _ = search(data, {"arch_lr": 0.0, "stages": 1, "stability_patience": 1}, epochs=4)
    assert [e["epoch"] for e in reporter.history] == [1, 2]


@pytest.mark.parametrize("params, message", [
    ({"cell_space": "nb201"}, "cell_space: a cell space is the JSON of a cell parameter"),
    ({"cell_space": '{"type": "float", "low": 0, "high": 1}'}, "cell_space: a cell space is an nb201_cell"),
    ({"cell_space": '{"type": "nb201_cell", "ops": ["conv_9x9"]}'}, "cell_space: unknown ops"),
    ({"method": "darts2"}, "method: must be one of"),
])
def test_bad_oneshot_hyperparameters_fail_before_training(params, message, data):
    with pytest.raises(SpaceError, match=message):
        search(data, params, epochs=1)


def test_registry_and_halves():
    trainer = resolve_trainer("oneshot")
    assert trainer.hyperparameters is oneshot.HYPERPARAMETERS and trainer.metrics is oneshot.METRICS
    weights, arch = split_halves(11, seed=4)
    assert len(weights) == 6 and len(arch) == 5 and sorted(torch.cat([weights, arch]).tolist()) == list(range(11))
    assert torch.equal(weights, split_halves(11, seed=4)[0]) and not torch.equal(weights, split_halves(11, seed=5)[0])
