"""The supervised training loop both built-in recipes share: optimiser, schedule, epochs, checkpoints.

Recipes build a model; this module trains it. Everything random draws from generators seeded by the trial
seed, and each epoch's state (model, optimiser, schedule, RNG states) goes to the reporter, so a resumed
trial continues bit for bit where it stopped. The hyperparameters it reads and the metrics it reports are declared
in ``_declarations`` (``TRAINING_HYPERPARAMETERS``, ``CLASSIFIER_METRICS``), where config checks find them without
torch.

Precision (``precision: fp32 | bf16``): with ``bf16`` every forward pass -- training, evaluation, the hardware
profile's latency -- runs under ``torch.autocast(<device type>, torch.bfloat16)``, so convolutions and linear layers
compute in bfloat16; the loss is taken on the logits cast back to float32, and the weights, their gradients, the
optimiser state and the checkpoints stay float32 (bfloat16 has float32's range: no loss scaling). With ``fp32`` no
autocast context is entered at all, so fp32 trials compute exactly what they did before the knob existed.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from trainers.data import Split
from trainers.hardware import device_tensor, hardware_profile
from trainers.reporting import Reporter
from trainers.spec import TrialSpec

_EVAL_BATCH = 2048


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a forward pass of a ``precision`` trial runs in: none at all for ``fp32``, bfloat16 autocast on
    ``device``'s type for ``bf16``.

    >>> precision_context(torch.device("cpu"), "bf16").fast_dtype
    torch.bfloat16
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be one of ['fp32', 'bf16'] (got {precision!r})")


class TorchClassifier:
    """A trained classifier: the :class:`trainers.spec.Evaluator` every built-in recipe returns. It evaluates in
    the ``precision`` it was trained in."""

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32") -> None:
        precision_context(device, precision)  # refuses an unknown precision here, not at the first evaluation
        self.model = model
        self.device = device
        self.precision = precision

    @torch.no_grad()
    def evaluate(self, split: Split) -> dict[str, float]:
        self.model.eval()
        total_loss, correct = 0.0, 0
        x_all = device_tensor(split.x, self.device)  # on the GPU once per worker process, not per epoch
        y_all = device_tensor(split.y, self.device)
        for start in range(0, len(split), _EVAL_BATCH):
            x = x_all[start:start + _EVAL_BATCH]
            y = y_all[start:start + _EVAL_BATCH]
            with precision_context(self.device, self.precision):
                logits = self.model(x)
            logits = logits.float()  # the loss in float32 (a no-op for fp32)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
        n = max(len(split), 1)
        return {"loss": total_loss / n, "accuracy": correct / n}


def _optimizer(model: nn.Module, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation parameters (the usual practice; decaying them hurts).
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": hp["weight_decay"]}, {"params": rest, "weight_decay": 0.0}]
    if hp["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=hp["lr"])
    if hp["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=hp["lr"])
    return torch.optim.SGD(groups, lr=hp["lr"], momentum=hp["momentum"], nesterov=hp["momentum"] > 0)


def _schedule(optimizer: torch.optim.Optimizer, hp: Mapping[str, Any], total_steps: int):
    if hp["schedule"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp["lr"], total_steps=max(total_steps, 2))
    if hp["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)


def _shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each row of ``x`` (batch, length) by a random offset in [-max_shift, max_shift], zero-filled."""
    if max_shift <= 0:
        return x
    batch, length = x.shape
    offsets = torch.randint(0, 2 * max_shift + 1, (batch, 1), generator=generator).to(x.device)
    padded = F.pad(x, (max_shift, max_shift))
    index = offsets + torch.arange(length, device=x.device)[None, :]
    return padded.gather(1, index)


def fit_classifier(spec: TrialSpec, reporter: Reporter, model: nn.Module, hp: Mapping[str, Any]) -> TorchClassifier:
    """Train ``model`` on ``spec.data.train`` for ``spec.epochs`` epochs; report validation metrics each epoch.

    The caller seeds (``seed_everything``) *before* building ``model`` so initial weights follow the seed.
    """
    device = torch.device(spec.device)
    model.to(device)
    train = spec.data.train
    x_train = device_tensor(train.x, device)
    y_train = device_tensor(train.y, device)
    batch_size = min(hp["batch_size"], len(train))
    steps_per_epoch = math.ceil(len(train) / batch_size)
    optimizer = _optimizer(model, hp)
    schedule = _schedule(optimizer, hp, steps_per_epoch * spec.epochs)
    # CPU generator for shuffles and augmentation: identical streams on CPU and GPU runs.
    generator = torch.Generator().manual_seed(spec.seed)
    precision = hp["precision"]
    evaluator = TorchClassifier(model, device, precision)

    first_epoch = 1
    restored = reporter.restore()
    if restored is not None:
        last_epoch, state = restored
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        first_epoch = last_epoch + 1

    with precision_context(device, precision):  # latency as the trial runs its forward passes
        profile = hardware_profile(model, x_train[:1])
    for epoch in range(first_epoch, spec.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=generator).to(device)
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            index = order[step * batch_size:(step + 1) * batch_size]
            x = x_train[index]
            if hp["augment_shift"] and x.ndim == 2:
                x = _shift(x, hp["augment_shift"], generator)
            with precision_context(device, precision):
                logits = model(x)
            # the loss in float32 (a no-op for fp32; the cast's backward hands bfloat16 gradients to the model)
            loss = F.cross_entropy(logits.float(), y_train[index], label_smoothing=hp["label_smoothing"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(index)
        metrics = {"train_loss": loss_sum / len(train)}
        if spec.data.val is not None:
            scores = evaluator.evaluate(spec.data.val)
            metrics.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        metrics["epoch_time_s"] = time.perf_counter() - started
        metrics.update(profile)
        if not math.isfinite(metrics["train_loss"]):
            raise FloatingPointError(f"training diverged at epoch {epoch}: train_loss={metrics['train_loss']}")
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        reporter.report(epoch, metrics, state)
    return evaluator
