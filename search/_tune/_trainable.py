"""The function trainable: one trial inside a Ray worker, running a trainers recipe."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ray import tune

from search.constraints import Constraint, violations
from trainers import SearchData, TrialSpec, resolve_trainer, state_from_bytes, state_to_bytes

_CHECKPOINT_FILE = "state.pt"


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of an experiment shares (travels with the trainable, not in each config)."""

    trainer: str
    deterministic: bool
    threads: int
    gpus: float
    constraints: tuple[Constraint, ...] = ()


class _Infeasible(Exception):
    """Raised after the report that shows a constraint broken: the trial stops there."""


class _TuneReporter:
    """A trainers ``Reporter`` on Ray Tune: metrics via ``tune.report``, state as a checkpoint per epoch."""

    def __init__(self, epochs: int, device: str, constraints: tuple[Constraint, ...] = ()) -> None:
        self.epochs = epochs
        self.device = device
        self.constraints = constraints

    def report(self, epoch: int, metrics: Mapping[str, float], state: Mapping[str, Any] | None = None) -> None:
        result = {**{k: float(v) for k, v in metrics.items()}, "epoch": epoch, "epochs": self.epochs,
                  "device": self.device}
        if state is None:
            tune.report(result)
        else:
            with tempfile.TemporaryDirectory(prefix="hypernas-ckpt-") as folder:
                Path(folder, _CHECKPOINT_FILE).write_bytes(state_to_bytes({"epoch": epoch, "state": state}))
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
        if self.constraints and violations(self.constraints, metrics):
            raise _Infeasible()  # no point training a model that can never be selected

    def restore(self) -> tuple[int, Mapping[str, Any]] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            saved = state_from_bytes(Path(folder, _CHECKPOINT_FILE).read_bytes())
        return saved["epoch"], saved["state"]


def trial_entry(config: dict[str, Any], *, data: SearchData, settings: TrialSettings) -> None:
    """One trial, inside a Ray worker: build the TrialSpec and run the recipe."""
    import torch

    # Ray exposes only the trial's GPU(s) through CUDA_VISIBLE_DEVICES; the first visible one is ours.
    on_gpu = settings.gpus > 0 and torch.cuda.is_available()
    spec = TrialSpec(
        params={k: v for k, v in config["params"].items() if k != "epochs"},
        data=data,
        epochs=config["epochs"],
        seed=config["seed"],
        device="cuda:0" if on_gpu else "cpu",
        threads=settings.threads,
        deterministic=settings.deterministic,
        trial_number=config["trial_number"],
    )
    device_name = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    try:
        resolve_trainer(settings.trainer).train(spec, _TuneReporter(spec.epochs, device_name, settings.constraints))
    except _Infeasible:
        return  # ends like a trial stopped early; the driver records it as infeasible
