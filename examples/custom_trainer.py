"""A user's own training function as a hypernas trainer (``trainer: examples.custom_trainer:train``).

The contract is small: ``train(spec, reporter)`` gets a frozen ``TrialSpec`` (sampled params, seed, data splits
without the test split, epochs, device, threads) and calls ``reporter.report(epoch, metrics, state)`` once per
epoch. Return an object with ``evaluate(split) -> metrics`` so ``hypernas test`` can score the winner.
Optional attributes ``train.hyperparameters`` and ``train.metrics`` let hypernas check a config before it runs.

Run it:  hypernas run examples/custom_trainer.yaml
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainers import Hyper, Split, TrialSpec, resolve, seed_everything
from trainers.reporting import Reporter


class SoftmaxRegression:
    """Multinomial logistic regression on standardised features — small enough to read in one go."""

    def __init__(self, n_features: int, n_classes: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.weight = torch.zeros(n_features, n_classes, requires_grad=True)
        self.bias = torch.zeros(n_classes, requires_grad=True)
        self.mean, self.std = mean, std

    def logits(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x).flatten(1)
        return ((x - self.mean) / self.std) @ self.weight + self.bias

    def evaluate(self, split: Split) -> dict[str, float]:
        with torch.no_grad():
            logits = self.logits(split.x)
            y = torch.as_tensor(split.y)
            return {"loss": F.cross_entropy(logits, y).item(), "accuracy": (logits.argmax(1) == y).float().mean().item()}


def train(spec: TrialSpec, reporter: Reporter) -> SoftmaxRegression:
    hp = resolve(train.hyperparameters, spec.params)
    seed_everything(spec.seed, deterministic=spec.deterministic, threads=spec.threads)
    x = torch.as_tensor(spec.data.train.x).flatten(1)
    y = torch.as_tensor(spec.data.train.y)
    model = SoftmaxRegression(x.shape[1], spec.data.num_classes, x.mean(0), x.std(0).clamp_min(1e-6))
    optimizer = torch.optim.SGD([model.weight, model.bias], lr=hp["lr"], momentum=0.9, weight_decay=hp["l2"])
    generator = torch.Generator().manual_seed(spec.seed)
    first_epoch = 1
    resumed = reporter.restore()  # (epoch, state) when the trial continues from a checkpoint
    if resumed is not None:
        epoch, state = resumed
        model.weight.data, model.bias.data = state["weight"], state["bias"]
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        first_epoch = epoch + 1
    for epoch in range(first_epoch, spec.epochs + 1):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), hp["batch_size"]):
            batch = order[start:start + hp["batch_size"]]
            loss = F.cross_entropy(model.logits(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val = model.evaluate(spec.data.val) if spec.data.val is not None else {}
        reporter.report(
            epoch,
            {f"val_{k}": v for k, v in val.items()},
            {"weight": model.weight.detach(), "bias": model.bias.detach(), "optimizer": optimizer.state_dict(),
             "generator": generator.get_state()},
        )
    return model


train.hyperparameters = {
    "lr": Hyper(0.05, "SGD learning rate", low=1e-6, high=10.0),
    "l2": Hyper(1e-4, "L2 penalty", low=0.0, high=1.0),
    "batch_size": Hyper(64, "mini-batch size", low=1, high=4096, integer=True),
}
train.metrics = ("val_accuracy", "val_loss")
