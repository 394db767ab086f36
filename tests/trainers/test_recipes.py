import math

import pytest
import torch

from spaces import SpaceError
from trainers import MemoryReporter, Mnist1dSource, TrialSpec, resolve_trainer, search_data, seed_everything
from trainers.hardware import TIMING_METRICS


@pytest.fixture(scope="module")
def data():
    return search_data(Mnist1dSource(num_samples=1000), seed=0)


def run(recipe, data, params, *, epochs=3, seed=7, reporter=None):
    reporter = reporter or MemoryReporter()
    evaluator = resolve_trainer(recipe).train(TrialSpec(params, data, epochs, seed), reporter)
    return reporter, evaluator


SMALL = {"mlp": {"width": 32}, "cnn": {"width": 8, "depth": 2, "augment_shift": 2},
         "nas": {"channels": 4, "cells": 1, "stages": 2}}


def strip(history):
    """Per-epoch metrics without the ones that time the machine (epoch time, latency)."""
    return [{k: v for k, v in e.items() if k not in TIMING_METRICS} for e in history]


@pytest.mark.parametrize("recipe", ["mlp", "cnn", "nas"])
def test_same_seed_gives_bit_identical_epochs(recipe, data):
    first, _ = run(recipe, data, SMALL[recipe])
    second, _ = run(recipe, data, SMALL[recipe])
    assert strip(first.history) == strip(second.history)  # exact float equality, every metric, every epoch
    other, _ = run(recipe, data, SMALL[recipe], seed=8)
    assert strip(other.history) != strip(first.history)


@pytest.mark.parametrize("recipe", ["mlp", "cnn", "nas"])
def test_resuming_from_a_checkpoint_continues_bit_for_bit(recipe, data):
    full, _ = run(recipe, data, SMALL[recipe], epochs=4, reporter=MemoryReporter(keep_states=True))
    resumed, _ = run(recipe, data, SMALL[recipe], epochs=4,
                     reporter=MemoryReporter(resume_from=(2, full.state_at(2))))
    assert [e["epoch"] for e in resumed.history] == [3, 4]
    assert strip(resumed.history) == strip(full.history[2:])


def test_cnn_learns_mnist1d_and_returns_an_evaluator(data):
    reporter, evaluator = run("cnn", data, {"width": 16, "depth": 2}, epochs=6)
    epochs = reporter.history
    assert [e["epoch"] for e in epochs] == list(range(1, 7))
    assert set(epochs[0]) >= {"train_loss", "val_loss", "val_accuracy", "epoch_time_s"}
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert epochs[-1]["val_accuracy"] > 0.5  # chance is 0.1
    scores = evaluator.evaluate(data.val)
    assert math.isclose(scores["accuracy"], epochs[-1]["val_accuracy"])


def test_final_retrain_without_validation_reports_train_loss_only(data):
    reporter, evaluator = run("mlp", data.merged(), {"width": 16}, epochs=2)
    assert all(set(e) == {"epoch", "train_loss", "epoch_time_s", "params", "macs", "latency_ms"}
               for e in reporter.history)
    assert 0 <= evaluator.evaluate(data.val)["accuracy"] <= 1


# --- precision ------------------------------------------------------------------------------------------------------

BF16 = {recipe: dict(params, precision="bf16") for recipe, params in SMALL.items()}


@pytest.mark.parametrize("recipe", ["mlp", "cnn", "nas"])
def test_bf16_trains_finite_repeatable_and_differs_from_fp32(recipe, data):
    first, _ = run(recipe, data, BF16[recipe])
    assert all(math.isfinite(e[k]) for e in first.history for k in ("train_loss", "val_loss", "val_accuracy"))
    second, _ = run(recipe, data, BF16[recipe])
    assert strip(first.history) == strip(second.history)  # same seed: bit for bit, as in fp32
    fp32, _ = run(recipe, data, SMALL[recipe])
    assert fp32.history[0]["train_loss"] != first.history[0]["train_loss"]  # bf16 really computes otherwise
    # ... but only by rounding: the same curve within bfloat16's precision
    assert first.history[-1]["train_loss"] == pytest.approx(fp32.history[-1]["train_loss"], rel=0.05)
    assert first.history[0]["params"] == fp32.history[0]["params"] and first.history[0]["macs"] == fp32.history[0]["macs"]


def test_fp32_is_the_default_and_enters_no_autocast(data, monkeypatch):
    assert resolve_trainer("mlp").hyperparameters["precision"].default == "fp32"
    default, _ = run("mlp", data, SMALL["mlp"], epochs=2)
    explicit, _ = run("mlp", data, dict(SMALL["mlp"], precision="fp32"), epochs=2)
    assert strip(default.history) == strip(explicit.history)

    def refuse(*args, **kwargs):
        raise AssertionError("an fp32 trial entered autocast")

    monkeypatch.setattr(torch, "autocast", refuse)
    run("cnn", data, SMALL["cnn"], epochs=1)


@pytest.mark.parametrize("recipe", ["mlp", "cnn"])
def test_bf16_resume_continues_bit_for_bit(recipe, data):
    full, _ = run(recipe, data, BF16[recipe], epochs=4, reporter=MemoryReporter(keep_states=True))
    assert all(t.dtype == torch.float32 for t in full.state_at(2)["model"].values() if t.is_floating_point())
    resumed, _ = run(recipe, data, BF16[recipe], epochs=4, reporter=MemoryReporter(resume_from=(2, full.state_at(2))))
    assert [e["epoch"] for e in resumed.history] == [3, 4]
    assert strip(resumed.history) == strip(full.history[2:])


def test_the_evaluator_evaluates_in_the_precision_it_was_trained_in(data):
    from trainers.recipes._fit import TorchClassifier

    reporter, evaluator = run("cnn", data, BF16["cnn"])
    assert evaluator.precision == "bf16"
    scores = evaluator.evaluate(data.val)
    assert scores["loss"] == reporter.history[-1]["val_loss"]  # exactly what the last epoch reported
    assert scores["accuracy"] == reporter.history[-1]["val_accuracy"]
    assert TorchClassifier(evaluator.model, evaluator.device).evaluate(data.val)["loss"] != scores["loss"]
    with pytest.raises(ValueError, match="precision must be one of"):
        TorchClassifier(evaluator.model, evaluator.device, "fp16")


def test_precision_is_a_searchable_hyperparameter():
    from spaces import Space
    from trainers.hyper import check_space
    from trainers.recipes._declarations import CNN_HYPERPARAMETERS, MLP_HYPERPARAMETERS

    for hypers in (MLP_HYPERPARAMETERS, CNN_HYPERPARAMETERS, resolve_trainer("nas").hyperparameters):
        check_space(hypers, Space({"precision": {"type": "categorical", "choices": ["fp32", "bf16"]}}))
        check_space(hypers, Space({"precision": {"type": "constant", "value": "bf16"}}))
        with pytest.raises(SpaceError, match=r"precision: must be one of \['fp32', 'bf16'\] \(got 'fp16'\)"):
            check_space(hypers, Space({"precision": {"type": "categorical", "choices": ["fp32", "fp16"]}}))


@pytest.mark.parametrize("params, message", [
    ({"precision": "fp16"}, r"precision: must be one of \['fp32', 'bf16'\]"),
    ({"optimizer": "lion"}, "optimizer: must be one of"),
    ({"widht": 3}, "widht: is not a hyperparameter"),
    ({"dropout": 2.0}, "dropout: must be <= 0.95"),
])
def test_bad_hyperparameters_fail_before_training(params, message, data):
    with pytest.raises(SpaceError, match=message):
        run("mlp", data, params, epochs=1)


def test_seed_everything_sets_threads_and_determinism():
    seed_everything(3, threads=1)
    assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    a = torch.rand(3)
    seed_everything(3, threads=1, deterministic=False)
    assert torch.equal(a, torch.rand(3)) and not torch.are_deterministic_algorithms_enabled()
    seed_everything(0, threads=1)


class _Noisy(torch.utils.data.Dataset):
    """Items that draw from numpy's global RNG inside the worker: only a seeded worker makes them repeatable."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        import numpy as np

        return index, float(np.random.rand())


def test_dataloader_seeding_repeats_shuffles_and_worker_randomness():
    from trainers import dataloader_seeding

    def epoch(seed):
        loader = torch.utils.data.DataLoader(_Noisy(), batch_size=4, shuffle=True, num_workers=2,
                                             **dataloader_seeding(seed))
        return [(b[0].tolist(), b[1].tolist()) for b in loader]

    assert epoch(5) == epoch(5)
    assert epoch(5) != epoch(6)
