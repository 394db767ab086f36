"""Helpers shared by tests (configs for small real experiments)."""

from __future__ import annotations


def tiny_config(name: str = "tiny", **sections) -> dict:
    """A real but small experiment: MLP on 1,000 MNIST-1D rows, a few epochs, ASHA that prunes."""
    config = {
        "name": name,
        "seed": 0,
        "trainer": "mlp",
        "data": {"source": "mnist1d", "num_samples": 1000},
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "width": {"type": "categorical", "choices": [16, 32]},
            "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
            "momentum": {"type": "float", "low": 0.5, "high": 0.95, "when": {"optimizer": "sgd"}},
            "batch_size": 64,
            "schedule": "constant",  # four short epochs: a one-cycle warm-up would take most of them
        },
        "metric": {"name": "val_accuracy", "mode": "max"},
        "searcher": {"type": "tpe", "n_startup_trials": 3},
        "scheduler": {"type": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2},
        "budget": {"trials": 8, "max_concurrent": 2},
        "resources": {"cpus": 1},
    }
    config.update(sections)
    return config


def failing_train(spec, reporter):
    """A trainer for tests: trials with ``x > 0.5`` raise at epoch 2; the rest report a value of ``x``."""
    for epoch in range(1, spec.epochs + 1):
        if spec.params["x"] > 0.5 and epoch == 2:
            raise RuntimeError(f"boom in trial {spec.trial_number} at epoch {epoch}")
        reporter.report(epoch, {"val_loss": spec.params["x"] / epoch})


failing_train.metrics = ("val_loss",)


class _ConstantEvaluator:
    def __init__(self, value):
        self.value = value

    def evaluate(self, split):
        return {"loss": self.value, "accuracy": 1.0 - self.value}


def credential_train(spec, reporter):
    """A trainer for tests that needs a credential-like constant: the trial must receive the real value."""
    assert spec.params["api_token"] == "s3cr3t-value", "trials get the real value; only logs are redacted"
    for epoch in range(1, spec.epochs + 1):
        reporter.report(epoch, {"val_loss": spec.params["x"] / epoch})
    return _ConstantEvaluator(spec.params["x"])


credential_train.metrics = ("val_loss",)


def scored_train(spec, reporter):
    """A quick deterministic trainer for tests of the sealed test: reports ``x / epoch`` and scores ``x``.

    With ``HYPERNAS_TEST_KILL_WHILE_SCORING`` set, scoring the test split kills the process (a crash between
    opening the split and recording its result)."""
    for epoch in range(1, spec.epochs + 1):
        reporter.report(epoch, {"val_loss": spec.params["x"] / epoch})
    return _KillingEvaluator(spec.params["x"])


scored_train.metrics = ("val_loss",)


class _KillingEvaluator(_ConstantEvaluator):
    def evaluate(self, split):
        import os
        import signal

        if os.environ.get("HYPERNAS_TEST_KILL_WHILE_SCORING"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().evaluate(split)


def forbid_ray_adapter(monkeypatch, why: str) -> None:
    """Put a stand-in for ``search._tune`` in ``sys.modules`` that fails any use of it (so a run that should stop
    before Ray exits 1, never the expected code). Module machinery (an import scanning ``sys.modules`` for
    ``__file__``, as torch's does) still gets a plain AttributeError."""
    import sys
    import types

    guard = types.ModuleType("search._tune")

    def refuse(name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AssertionError(f"search._tune.{name} used: {why}")
    guard.__getattr__ = refuse
    monkeypatch.setitem(sys.modules, "search._tune", guard)


def f1_train(spec, reporter):
    """A trainer for tests that reports a metric no built-in recipe does."""
    for epoch in range(1, spec.epochs + 1):
        reporter.report(epoch, {"val_f1": 0.5})


f1_train.metrics = ("val_f1",)


# -- simulation tables (hypernas simulate) ---------------------------------------------------------------------------

SIM_SPACE = {
    "depth": {"type": "int", "low": 1, "high": 4},
    "width": {"type": "categorical", "choices": [16, 32, 64]},
    "lr": {"type": "categorical", "choices": [0.001, 0.003, 0.01, 0.03]},
    "batch_size": 64,
}


def sim_config(name: str = "sim", **sections) -> dict:
    """An experiment over :data:`SIM_SPACE` (48 configurations): :func:`sim_table` holds every one of them."""
    return tiny_config(name, space=dict(SIM_SPACE), **{
        "scheduler": {"type": "asha", "max_epochs": 9, "grace_period": 1, "reduction_factor": 3},
        "budget": {"trials": 40, "max_concurrent": 4}, **sections})


def sim_curve(depth: int, width: int, lr: float, epoch: int, curve: int = 0) -> dict:
    """A made-up but varied learning curve: each configuration has its own ceiling and speed; curves cross."""
    import math

    ceiling = 0.55 + 0.1 * depth - 0.02 * (depth - 2) ** 2 + 0.05 * math.log2(width / 16) - 8 * abs(lr - 0.01) \
        + 0.01 * curve
    speed = 0.25 + 0.2 * math.log10(lr / 0.001)
    accuracy = ceiling * (1 - math.exp(-speed * epoch)) + 0.004 * math.sin(7 * depth + width + 100 * lr + epoch)
    return {"val_accuracy": accuracy, "val_loss": 1.0 - accuracy,
            "epoch_time_s": 0.5 + 0.02 * width * depth / 16}


def sim_table(path, epochs: int = 9, curves: int = 1):
    """Write a simulation table with every configuration of :data:`SIM_SPACE` (``curves`` curves each)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for depth in range(1, 5):
        for width in (16, 32, 64):
            for lr in (0.001, 0.003, 0.01, 0.03):
                for curve in range(curves):
                    for epoch in range(1, epochs + 1):
                        rows.append({"depth": depth, "width": width, "lr": lr, "batch_size": 64, "curve": curve,
                                     "epoch": epoch, **sim_curve(depth, width, lr, epoch, curve)})
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def hypernas_in_process(monkeypatch, capsys, *argv: str):
    """``hypernas ARGV`` run by this test process, as a command-line call would (exit code, stdout, stderr), on the
    session's Ray (the caller holds ``ray_session``) and with no tracking URI or Ray address from the environment.

    The driver that a test kills or interrupts is a real process of its own, with its own local Ray; the run that
    picks up after it (``resume``) needs no process of its own to be what a user gets, and skips one driver's start-up
    and shut-down (imports, a local Ray: ~8 s of a 2-core machine each)."""
    from types import SimpleNamespace

    from search.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    capsys.readouterr()  # what the test printed before is not this command's
    code = main(list(argv))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
