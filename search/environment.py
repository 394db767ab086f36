"""What the experiment ran on: versions, git commit, hardware — recorded on the MLflow parent run."""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

from trainers.hardware import describe_accelerators

_PACKAGES = ("hypernas", "torch", "ray", "optuna", "mlflow", "numpy", "pyarrow", "mnist1d")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def capture_environment(source_dir: Path | None = None) -> dict[str, Any]:
    """Versions of the stack, the hypernas git commit (and whether the tree was dirty), CPU/GPU, host."""
    source_dir = source_dir or Path(__file__).resolve().parent.parent
    commit = _git(["rev-parse", "HEAD"], source_dir)
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], source_dir)
    return {
        "python": platform.python_version(),
        **{f"{name}_version": _version(name) for name in _PACKAGES},
        "git_commit": commit,
        "git_dirty": None if dirty is None else bool(dirty),
        **describe_accelerators(),  # cuda, cudnn, gpu, gpu_count
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "user": getpass.getuser(),
    }
