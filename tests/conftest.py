"""Shared fixtures: one local Ray instance for the whole session, and small real experiment configs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # examples.custom_trainer is importable, as from the repo root
    sys.path.insert(0, str(ROOT))

from search._tune import configure  # noqa: E402 - imports no ray

# Ray reads part of its environment (token auth) when ray is imported, and test modules import ray as they are
# collected (directly, or through the Tune adapter's modules): set it first, as a hypernas driver does.
configure()


@pytest.fixture(scope="session")
def ray_session():
    """A private local Ray (never a cluster that happens to run on this machine), started once."""
    import ray  # Ray's environment is set above, before any test module imported it

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def env_without_tracking(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return os.environ
