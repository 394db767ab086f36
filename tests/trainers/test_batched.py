import subprocess
import sys

import pytest
import torch

from trainers import MemoryReporter, Mnist1dSource, TrialSpec, resolve_trainer, search_data
from trainers.batched import BatchTrainer, Member, shape_key, train_alone, train_epoch
from trainers.checkpoint import state_from_bytes, state_to_bytes
from trainers.hardware import TIMING_METRICS

EPOCHS = 3
SHAPES = {
    "mlp-batch": ("mlp", {"width": 30, "norm": "batch", "batch_size": 50}),
    "mlp-layer": ("mlp", {"width": 30, "norm": "layer", "batch_size": 50}),
    "mlp-none": ("mlp", {"width": 30, "depth": 1, "norm": "none", "batch_size": 50}),
    "cnn-batch": ("cnn", {"width": 6, "depth": 2, "norm": "batch", "batch_size": 50}),
    "cnn-none": ("cnn", {"width": 6, "depth": 2, "norm": "none", "batch_size": 50}),
}


@pytest.fixture(scope="module")
def data():
    return search_data(Mnist1dSource(num_samples=400), seed=0)  # 256 train rows (6 of them a last, short batch)


def strip(metrics):
    return {k: v for k, v in metrics.items() if k not in TIMING_METRICS}


def companions(base):
    """Members of one shape that differ in everything batchable: seed, optimiser, schedule, dropout, smoothing."""
    return {
        "A": (dict(base, dropout=0.2, label_smoothing=0.1, augment_shift=3), 7),
        "B": (dict(base, lr=0.01, optimizer="sgd", dropout=0.0), 8),
        "C": (dict(base, optimizer="adam", schedule="constant", dropout=0.5, weight_decay=0.1), 9),
        "D": (dict(base, lr=1e-4, augment_shift=1), 10),
    }


def train(recipe, data, configs, *, epochs=EPOCHS, leave_after=None, trainer=None):
    """Train ``configs`` ({key: (params, seed)}) together for ``epochs``; ``leave_after`` {key: last epoch}.
    Returns {key: [(metrics, state), ...]}."""
    step = (trainer or BatchTrainer(cache=False)).train_epoch
    leave_after = leave_after or {}
    history = {key: [] for key in configs}
    for epoch in range(1, epochs + 1):
        live = [key for key in configs if epoch <= leave_after.get(key, epochs)]
        members = [Member(key, recipe, TrialSpec(configs[key][0], data, epochs, configs[key][1]), epoch,
                          history[key][-1][1] if history[key] else None) for key in live]
        for key, outcome in zip(live, step(members)):
            history[key].append(outcome)
    return history


def same(a, b):
    """Bit for bit: metrics (timings aside) and every byte of the state."""
    return len(a) == len(b) and all(
        strip(ma) == strip(mb) and state_to_bytes(sa) == state_to_bytes(sb) for (ma, sa), (mb, sb) in zip(a, b))


def solo(recipe, data, params, seed, *, epochs=EPOCHS, resume_from=None):
    reporter = MemoryReporter(keep_states=True, resume_from=resume_from)
    resolve_trainer(recipe).train(TrialSpec(params, data, epochs, seed), reporter)
    return reporter


# --- shape_key ------------------------------------------------------------------------------------------------------

def test_shape_key_groups_by_everything_outside_the_batchable_settings():
    assert shape_key("mlp", {"lr": 0.1, "dropout": 0.3}) == shape_key("mlp", {"optimizer": "sgd", "momentum": 0.5})
    assert shape_key("mlp", {}) == shape_key("mlp", {"width": 256})  # defaults filled in
    assert shape_key("mlp", {"width": 32}) != shape_key("mlp", {"width": 64})
    assert shape_key("mlp", {"batch_size": 32}) != shape_key("mlp", {"batch_size": 64})
    assert shape_key("cnn", {"kernel_size": 3}) != shape_key("cnn", {"kernel_size": 5})
    assert shape_key("mlp", {}) != shape_key("cnn", {})
    assert shape_key("nas", {}) is None and shape_key("my.module:train", {}) is None
    assert shape_key("mlp", {"widht": 3}) is None  # invalid: left to the solo path, which says why


def test_precision_is_part_of_the_shape_key():
    assert shape_key("mlp", {"precision": "bf16"}) != shape_key("mlp", {})
    assert shape_key("mlp", {"precision": "fp32"}) == shape_key("mlp", {})
    assert shape_key("cnn", {"precision": "bf16", "lr": 0.1}) == shape_key("cnn", {"precision": "bf16", "lr": 0.2})
    assert shape_key("mlp", {"precision": "fp16"}) is None


def test_shape_key_needs_no_torch():
    code = ("import sys; from trainers.batched import shape_key; shape_key('cnn', {'lr': 0.1}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- companion independence -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_member_trains_bit_identically_whatever_its_companions(shape, data):
    recipe, base = SHAPES[shape]
    configs = companions(base)
    alone = train(recipe, data, {"A": configs["A"]})["A"]
    # other companions, other positions, a companion pruned after epoch 1
    assert same(alone, train(recipe, data, configs)["A"])
    assert same(alone, train(recipe, data, {k: configs[k] for k in "CBA"})["A"])
    assert same(alone, train(recipe, data, {k: configs[k] for k in "DA"}, leave_after={"D": 1})["A"])
    # and the companions really trained differently (one seed, one data stream, one model per member)
    together = train(recipe, data, {k: configs[k] for k in "AB"})
    assert strip(together["A"][-1][0]) != strip(together["B"][-1][0])


def test_members_of_different_shapes_are_never_vectorised_together(data, monkeypatch):
    import trainers.batched as batched

    sizes = []
    original = batched._train_group
    monkeypatch.setattr(batched, "_train_group", lambda runs: sizes.append(len(runs)) or original(runs))
    narrow = ("mlp", {"width": 20, "batch_size": 50})
    wide = ("mlp", {"width": 30, "batch_size": 50})
    specs = [(narrow, 1), (wide, 2), (narrow, 3), (("cnn", SHAPES["cnn-none"][1]), 4)]
    members = [Member(f"t{i}", recipe, TrialSpec(params, data, 1, seed), 1, None)
               for i, ((recipe, params), seed) in enumerate(specs)]
    together = train_epoch(members)
    assert sorted(sizes) == [1, 1, 2]
    for member, outcome in zip(members, together):  # each exactly as if trained on its own
        assert same([outcome], train_epoch([member]))
    assert strip(together[0][0]) != strip(together[2][0])  # same shape, other seed


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_bf16_member_trains_bit_identically_whatever_its_companions(shape, data):
    recipe, base = SHAPES[shape]
    configs = companions(dict(base, precision="bf16"))
    alone = train(recipe, data, {"A": configs["A"]})["A"]
    assert same(alone, train(recipe, data, configs)["A"])
    assert same(alone, train(recipe, data, {k: configs[k] for k in "CBA"})["A"])
    assert same(alone, train(recipe, data, {k: configs[k] for k in "DA"}, leave_after={"D": 1})["A"])
    replay = MemoryReporter(keep_states=True)
    train_alone(recipe)(TrialSpec(configs["A"][0], data, EPOCHS, configs["A"][1]), replay)
    assert same(alone, [({k: v for k, v in metrics.items() if k != "epoch"}, replay.state_at(metrics["epoch"]))
                        for metrics in replay.history])
    fp32 = train(recipe, data, {"A": (dict(configs["A"][0], precision="fp32"), configs["A"][1])})["A"]
    assert strip(fp32[0][0]) != strip(alone[0][0])  # bf16 really computes otherwise


def test_fp32_and_bf16_members_train_in_separate_groups_each_as_alone(data, monkeypatch):
    import trainers.batched as batched

    sizes = []
    original = batched._train_group
    monkeypatch.setattr(batched, "_train_group", lambda runs: sizes.append(len(runs)) or original(runs))
    recipe, base = SHAPES["cnn-batch"]
    specs = [(dict(base, precision="bf16"), 1), (base, 2), (dict(base, precision="bf16", lr=0.01), 3)]
    members = [Member(f"t{i}", recipe, TrialSpec(params, data, 1, seed), 1, None)
               for i, (params, seed) in enumerate(specs)]
    together = train_epoch(members)
    assert sorted(sizes) == [1, 2]
    for member, outcome in zip(members, together):
        assert same([outcome], train_epoch([member]))


# --- resuming -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["mlp-batch", "cnn-batch"])
def test_resuming_from_a_returned_state_continues_bit_for_bit(shape, data):
    recipe, base = SHAPES[shape]
    configs = {k: v for k, v in companions(base).items() if k in "AC"}
    straight = train(recipe, data, configs)
    cached = train(recipe, data, configs, trainer=BatchTrainer(cache=True))
    for key in configs:
        assert same(straight[key], cached[key])
        params, seed = configs[key]
        state = state_from_bytes(state_to_bytes(straight[key][0][1]))  # as a checkpoint round trip gives it back
        resumed = train_epoch([Member(key, recipe, TrialSpec(params, data, EPOCHS, seed), 2, state)])
        assert same(resumed, straight[key][1:2])


def test_epoch_and_state_must_agree_and_a_member_that_cannot_be_built_fails_alone(data):
    spec = TrialSpec(SHAPES["mlp-none"][1], data, 2, 0)
    (outcome,) = train_epoch([Member("a", "mlp", spec, 2, None)])
    assert isinstance(outcome, ValueError) and "needs the state of epoch 1" in str(outcome)
    bad, good = train_epoch([Member("a", "mlp", spec, 3, {}), Member("b", "mlp", spec, 1, None)])
    assert isinstance(bad, ValueError) and "outside 1..2" in str(bad)
    alone = train_epoch([Member("b", "mlp", spec, 1, None)])
    assert same([good], alone)  # its companion's failure changed nothing for it
    with pytest.raises(ValueError, match="cannot train batched"):
        train_epoch([Member("a", "nas", spec, 1, None)])


def test_a_diverging_member_fails_alone(data):
    base = SHAPES["mlp-none"][1]
    configs = {"good": (base, 0), "bad": (dict(base, optimizer="sgd", lr=10.0, momentum=0.99, schedule="constant",
                                                     weight_decay=0.0), 0)}
    history = train("mlp", data, configs, epochs=4)  # bad's loss overflows to nan in epoch 4
    assert [isinstance(outcome, FloatingPointError) for outcome in history["bad"]] == [False, False, False, True]
    assert "diverged at epoch 4" in str(history["bad"][-1])
    assert same(history["good"], train("mlp", data, {"good": configs["good"]}, epochs=4)["good"])


# --- against the solo training loop ---------------------------------------------------------------------------------

# Measured max |batched - solo| over train_loss, val_loss, val_accuracy in 3 epochs: <= 4.8e-7 (module docstring).
TOLERANCE = 2e-6


@pytest.mark.parametrize("shape, extra", [
    ("mlp-none", {}), ("mlp-layer", {"label_smoothing": 0.1}), ("mlp-batch", {"optimizer": "sgd", "lr": 0.05}),
    ("cnn-batch", {"augment_shift": 2, "label_smoothing": 0.1}), ("cnn-none", {}),
    ("cnn-batch", {"dropout": 0.3}),  # masks drawn as the solo run draws them: same curve, not just same law
])
def test_batched_matches_the_solo_loop_within_rounding(shape, extra, data):
    recipe, base = SHAPES[shape]
    params = {**base, "dropout": 0.0, **extra}
    batched = train(recipe, data, {"A": (params, 7), "B": (dict(params, lr=1e-3), 8)})["A"]
    reference = solo(recipe, data, params, 7)
    assert len(reference.history) == len(batched) == EPOCHS
    assert set(batched[0][0]) == set(reference.history[0]) - {"epoch"}
    for epoch, (metrics, state) in enumerate(batched, start=1):
        expected = reference.history[epoch - 1]
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert metrics[key] == pytest.approx(expected[key], abs=TOLERANCE), (epoch, key)
        for key in ("params", "macs"):
            assert metrics[key] == expected[key]
        assert set(state) == set(reference.state_at(epoch))
    # a solo run resumes from a batched state, and a member from a solo state
    resumed = solo(recipe, data, params, 7, resume_from=(2, batched[1][1]))
    assert resumed.history[-1]["val_loss"] == pytest.approx(batched[2][0]["val_loss"], abs=TOLERANCE)
    member = Member("A", recipe, TrialSpec(params, data, EPOCHS, 7), 3, reference.state_at(2))
    (metrics, _state), = train_epoch([member])
    assert metrics["val_loss"] == pytest.approx(reference.history[2]["val_loss"], abs=TOLERANCE)


# bf16: the vectorised forward is bit-identical to the solo autocast forward; measured max |batched - solo| in 3
# epochs: <= 2.4e-7 for mlp norm none and cnn norm none, else <= 7.1e-4 on the losses and at most one flipped
# validation prediction (module docstring).
BF16_TOLERANCE = 2e-3


@pytest.mark.parametrize("shape, extra", [
    ("mlp-none", {}), ("mlp-layer", {"label_smoothing": 0.1}), ("mlp-batch", {"optimizer": "sgd", "lr": 0.05}),
    ("cnn-batch", {"augment_shift": 2, "dropout": 0.3}), ("cnn-none", {"dropout": 0.2}),
])
def test_a_bf16_member_matches_the_solo_bf16_loop_within_its_rounding(shape, extra, data):
    recipe, base = SHAPES[shape]
    params = {**base, "dropout": 0.0, **extra, "precision": "bf16"}
    batched = train(recipe, data, {"A": (params, 7), "B": (dict(params, lr=1e-3), 8)})["A"]
    reference = solo(recipe, data, params, 7)
    assert set(batched[0][0]) == set(reference.history[0]) - {"epoch"}
    for epoch, (metrics, state) in enumerate(batched, start=1):
        expected = reference.history[epoch - 1]
        for key in ("train_loss", "val_loss"):
            assert metrics[key] == pytest.approx(expected[key], abs=BF16_TOLERANCE), (epoch, key)
        assert abs(metrics["val_accuracy"] - expected["val_accuracy"]) <= 1.01 / len(data.val), epoch
        assert all(t.dtype == torch.float32 for t in state["model"].values() if t.is_floating_point())
    # a solo bf16 run resumes from a batched state
    resumed = solo(recipe, data, params, 7, resume_from=(2, batched[1][1]))
    assert resumed.history[-1]["val_loss"] == pytest.approx(batched[2][0]["val_loss"], abs=BF16_TOLERANCE)


def test_vmap_runs_under_deterministic_algorithms(data):
    recipe, base = SHAPES["cnn-batch"]
    train_epoch([Member("a", recipe, TrialSpec(base, data, 1, 0, deterministic=True), 1, None)])
    assert torch.are_deterministic_algorithms_enabled()
