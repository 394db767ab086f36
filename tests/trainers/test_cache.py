"""hypernas's cache (``trainers.cache``): generated data and MLflow's empty store, kept but never trusted blindly."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.cache import CACHE_ENV, cache_dir, cached_arrays
from trainers.data import Mnist1dSource


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_generated_data_is_cached_and_identical_to_a_fresh_generation(cache, monkeypatch):
    first = Mnist1dSource(num_samples=300).load()
    files = list(cache.glob("mnist1d-*.npz"))
    assert len(files) == 1
    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda args: pytest.fail("regenerated despite the cache"))
    second = Mnist1dSource(num_samples=300).load()
    assert [s.fingerprint for s in first] == [s.fingerprint for s in second]
    assert second[0].x.dtype == np.float32 and second[0].y.dtype == np.int64
    monkeypatch.undo()
    monkeypatch.setenv(CACHE_ENV, str(cache))
    other = Mnist1dSource(num_samples=300, split_seed=7).load()  # every generator argument is in the key
    assert len(list(cache.glob("mnist1d-*.npz"))) == 2 and other[0].fingerprint != first[0].fingerprint


def test_a_corrupt_or_tampered_entry_is_rebuilt_not_used(cache):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(10, dtype=np.float32)}

    assert cached_arrays("a.npz", build)["x"].sum() == 45
    path = cache / "a.npz"
    with np.load(path) as saved:  # rows changed, digest kept: a tampered entry
        np.savez(path, sha256=saved["sha256"], x=np.zeros(10, np.float32))
    assert cached_arrays("a.npz", build)["x"].sum() == 45 and len(calls) == 2
    path.write_bytes(path.read_bytes()[:40])  # truncated: zipfile.BadZipFile, not an OSError
    assert cached_arrays("a.npz", build)["x"].sum() == 45 and len(calls) == 3
    path.write_bytes(b"not a zip")
    assert cached_arrays("a.npz", build)["x"].sum() == 45 and len(calls) == 4
    assert cached_arrays("a.npz", build)["x"].sum() == 45 and len(calls) == 4  # the rebuilt entry is used


def test_an_unwritable_cache_is_done_without(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # under a file: cannot be created
    assert cache_dir() == blocker / "cache"
    assert cached_arrays("a.npz", lambda: {"x": np.ones(2)})["x"].sum() == 2
