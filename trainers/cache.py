"""hypernas's cache: what it can rebuild at any time, kept so an experiment does not pay for it each time.

Two things live here: generated data sets (MNIST-1D takes ~0.3 s per 1,000 rows to generate, 1.5 s at its default
size, on every run, test and replay) and MLflow's empty SQLite schema (a fresh store costs ~0.7 s of migrations;
a copy of an empty one takes milliseconds). Nothing here is ever the only copy of anything: a missing, unreadable or
corrupt entry is rebuilt, and a cache that cannot be written is simply not used.

The folder is ``$HYPERNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hypernas``, else ``~/.cache/hypernas``. Entries are
written to a temporary file and renamed into place, so a reader never sees half an entry and concurrent writers
(several experiments starting at once) are harmless.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

CACHE_ENV = "HYPERNAS_CACHE_DIR"

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The cache folder (not created here). Without a home folder (a container's arbitrary user), one in the
    system's temporary folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "hypernas"
    try:
        return Path.home() / ".cache" / "hypernas"
    except RuntimeError:  # no HOME and no passwd entry
        return Path(tempfile.gettempdir()) / f"hypernas-cache-{os.getuid()}"


def cached_file(name: str, build: Callable[[Path], None]) -> Path | None:
    """``cache_dir()/name``, built by ``build(path)`` the first time; ``None`` when the cache cannot be written
    (the caller then does without it)."""
    path = cache_dir() / name
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{name}.") as folder:
            built = Path(folder) / name
            build(built)
            with open(built, "rb") as done:  # whole on disk before it is visible under its name
                os.fsync(done.fileno())
            os.replace(built, path)
    except OSError as err:
        log.debug("cache entry %s not written: %s", path, err)
        return None
    return path


def _digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def cached_arrays(name: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``build()`` returns, kept in ``cache_dir()/name`` (``.npz``, with a SHA-256 over them that is
    checked on every read: an entry that does not match is rebuilt, never used)."""
    path = cache_dir() / name
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as saved:
                arrays = {key: saved[key] for key in saved.files if key != "sha256"}
                if str(saved["sha256"]) == _digest(arrays):
                    return arrays
        except Exception as err:  # noqa: BLE001 - a bad zip, a truncated file, a missing digest: all rebuilt
            log.debug("cache entry %s unreadable (%s): rebuilt", path, err)
    arrays = build()

    def write(target: Path) -> None:
        with open(target, "wb") as out:
            np.savez(out, sha256=np.array(_digest(arrays)), **arrays)

    if path.is_file():
        path.unlink(missing_ok=True)  # a corrupt entry: replaced below
    cached_file(name, write)
    return arrays
