"""Shared fixtures: one local Ray instance for the whole session, and small real experiment configs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # examples.custom_trainer is importable, as from the repo root
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def ray_session():
    """A private local Ray (never a cluster that happens to run on this machine), started once."""
    import search._tune  # noqa: F401 - sets Ray's environment (auth mode, loggers) before ray is imported
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def env_without_tracking(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return os.environ
