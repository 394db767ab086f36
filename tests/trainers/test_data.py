import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dataclasses

from trainers import DigitsSource, Mnist1dSource, ParquetSource, row_digests, sealed_data, search_data, split_digests
from trainers.data import stratified_split


@pytest.fixture(scope="module")
def mnist():
    return Mnist1dSource(num_samples=1000)


def test_mnist1d_generates_offline_and_leaves_global_rng_alone(mnist):
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    trainval, test = mnist.load()
    assert (random.random(), np.random.rand()) == expected  # make_dataset reseeds globals; we put them back
    assert trainval.x.shape == (800, 40) and test.x.shape == (200, 40)
    assert trainval.x.dtype == np.float32 and trainval.y.dtype == np.int64


def test_search_data_is_train_and_validation_only(mnist):
    data = search_data(mnist, seed=5)
    assert len(data.train) + len(data.val) == 800 and abs(len(data.val) - 160) <= 5 and data.num_classes == 10
    assert set(vars(data)) == {"train", "val", "num_classes", "name"}  # nothing else rides along
    _, test = mnist.load()
    test_rows = {row.tobytes() for row in test.x}
    assert not any(row.tobytes() in test_rows for row in np.concatenate([data.train.x, data.val.x]))


def test_validation_is_carved_from_train_stratified_and_seeded(mnist):
    a, b, c = search_data(mnist, seed=1), search_data(mnist, seed=1), search_data(mnist, seed=2)
    assert a.val.fingerprint == b.val.fingerprint and a.train.fingerprint == b.train.fingerprint
    assert a.val.fingerprint != c.val.fingerprint
    trainval, _ = mnist.load()
    assert sorted((a.train + a.val).y.tolist()) == sorted(trainval.y.tolist())
    counts = np.bincount(a.val.y, minlength=10)
    assert counts.min() >= 14 and counts.max() <= 18  # about 20 % of each class's ~80 rows


def test_sealed_split_opens_once_and_matches_search_splits(mnist):
    data, sealed = sealed_data(mnist, seed=3)
    assert data.val.fingerprint == search_data(mnist, seed=3).val.fingerprint
    assert "fingerprint" in repr(sealed) and sealed.size == 200
    test = sealed.open()
    assert test.fingerprint == sealed.fingerprint
    with pytest.raises(RuntimeError, match="already opened"):
        sealed.open()


def test_merged_joins_train_and_validation(mnist):
    data = search_data(mnist, seed=0)
    merged = data.merged()
    assert merged.val is None and len(merged.train) == len(data.train) + len(data.val)


def _write_table(path, n=300, label="species"):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    table = pa.table({
        "f1": rng.normal(size=n) + y, "f2": rng.normal(size=n) * 2, "note_id": np.arange(n),
        label: np.array(["setosa", "versicolor", "virginica"])[y],
    })
    pq.write_table(table, path)
    return y


def test_parquet_source_splits_a_user_table(tmp_path):
    path = tmp_path / "table.parquet"
    _write_table(path)
    source = ParquetSource(str(path), label="species", features=("f1", "f2"))
    data, sealed = sealed_data(source, seed=4)
    assert data.input_shape == (2,) and data.num_classes == 3
    assert len(data.train) + len(data.val) + sealed.size == 300
    assert abs(sealed.size - 60) <= 3
    assert search_data(source, seed=4).train.fingerprint == data.train.fingerprint
    assert search_data(source, seed=9).train.fingerprint != data.train.fingerprint
    assert sealed_data(source, seed=9)[1].fingerprint == sealed.fingerprint  # the test rows stay put


@pytest.mark.parametrize("source", [Mnist1dSource(num_samples=1000), DigitsSource()], ids=["mnist1d", "digits"])
def test_test_rows_follow_split_seed_never_the_experiment_seed(source):
    """Trying a few experiment seeds must never put one seed's test rows into another's training data."""
    sealed = {seed: sealed_data(source, seed)[1] for seed in (0, 1, 2)}
    assert len({s.fingerprint for s in sealed.values()}) == 1
    trainval, test = split_digests(source)
    assert test == sealed[0].row_digests and not trainval & test
    for seed in (0, 1, 2):
        data = search_data(source, seed)
        assert row_digests(data.train + data.val) == trainval  # every seed trains on the same non-test rows
    moved = dataclasses.replace(source, split_seed=source.split_seed + 1)
    assert sealed_data(moved, 0)[1].fingerprint != sealed[0].fingerprint  # split_seed decides the test rows


@pytest.mark.parametrize("kwargs, message", [
    ({"label": "nope"}, "data.label: column 'nope' is not in"),
    ({"label": "species", "features": ("f1", "zzz")}, "data.features: column 'zzz'"),
])
def test_parquet_source_errors_name_the_field(tmp_path, kwargs, message):
    path = tmp_path / "table.parquet"
    _write_table(path)
    with pytest.raises(ValueError, match=message):
        ParquetSource(str(path), **kwargs).load()


def test_stratified_split_keeps_every_class_on_both_sides():
    y = np.array([0] * 10 + [1] * 3 + [2] * 2)
    rest, held = stratified_split(y, 0.2, np.random.default_rng(0))
    assert set(y[held]) == {0, 1, 2} and set(y[rest]) == {0, 1, 2}
    assert sorted(np.concatenate([rest, held]).tolist()) == list(range(len(y)))
