"""Data for trials: sources, seeded train/validation/test splits, and the sealed test split.

Two entry points, on purpose:

* :func:`search_data` — what a search gets: train and validation only. The test rows are dropped before it
  returns, so nothing downstream of a search can reach them.
* :func:`sealed_data` — what ``hypernas test`` gets: the same train/validation plus a :class:`SealedTestSplit`
  whose rows come out only through :meth:`SealedTestSplit.open`.

Sources: ``mnist1d`` (generated offline with ``mnist1d.data.make_dataset``; its own 80/20 train/test split is
kept, so results compare with published MNIST-1D numbers), ``digits`` (scikit-learn's 8×8 images, for 2-D
models) and ``parquet`` (any table with a label column).

Which rows are test rows is decided by the source's ``split_seed`` alone (default :data:`DEFAULT_SPLIT_SEED`),
never by the experiment seed: experiments with different seeds over the same data share one test split, so no
seed ever puts another seed's test rows into training. The experiment's data seed only carves validation rows
out of the rest.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True, eq=False)
class Split:
    """Rows ``x`` (float32, ``(n, ...)``) with integer class labels ``y`` (int64, ``(n,)``)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x and y must have the same number of rows (got {len(self.x)} and {len(self.y)})")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def fingerprint(self) -> str:
        """SHA-256 over shapes, dtypes and bytes: two splits with this value hold the same rows in the same order."""
        digest = hashlib.sha256()
        for array in (self.x, self.y):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def __add__(self, other: "Split") -> "Split":
        return Split(np.concatenate([self.x, other.x]), np.concatenate([self.y, other.y]))


@dataclass(frozen=True, eq=False)
class SearchData:
    """What a trial trains on: ``train`` and ``val`` (``val`` is ``None`` in the final retrain on train+val)."""

    train: Split
    val: Split | None
    num_classes: int
    name: str = "data"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def merged(self) -> "SearchData":
        """Train and validation joined into one training split, for the final retrain of the winner."""
        if self.val is None:
            return self
        return SearchData(self.train + self.val, None, self.num_classes, self.name)


class SealedTestSplit:
    """The test split, held back. Its rows come out only through :meth:`open`, once per object.

    The fingerprint is public (it identifies the split in audit records); the rows are not. Recording the open
    — so that it happens once per experiment, across processes — is the caller's job (``search.sealing``).
    """

    def __init__(self, split: Split) -> None:
        self.__split = split
        self.fingerprint = split.fingerprint
        self.size = len(split)
        self.row_digests = row_digests(split)  # one-way digests: overlap checks without showing a row
        self.opened = False

    def open(self) -> Split:
        if self.opened:
            raise RuntimeError("this SealedTestSplit was already opened; the test split is opened once")
        self.opened = True
        return self.__split

    def __repr__(self) -> str:
        return f"SealedTestSplit(size={self.size}, fingerprint={self.fingerprint[:12]}…, opened={self.opened})"


def row_digests(split: Split) -> frozenset[bytes]:
    """A short digest per row (features and label): two splits share a row exactly when they share its digest."""
    x = np.ascontiguousarray(split.x).reshape(len(split), -1)
    y = np.ascontiguousarray(split.y)
    return frozenset(hashlib.blake2b(x[i].tobytes() + y[i].tobytes(), digest_size=16).digest()
                     for i in range(len(split)))


# MNIST-1D's own generator seed: the default split of `mnist1d` is the published one.
DEFAULT_SPLIT_SEED = 42


# --- sources ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mnist1dSource:
    """MNIST-1D generated offline (``make_dataset``). ``num_samples`` rows, 80 % train / 20 % test; the
    generator's seed is ``split_seed`` (42, MNIST-1D's own, gives the published data set and split)."""

    num_samples: int = 5000
    validation_fraction: float = 0.2
    split_seed: int = DEFAULT_SPLIT_SEED
    name: str = field(default="mnist1d", init=False)

    def load(self) -> tuple[Split, Split]:
        """``(train+validation rows, test rows)``."""
        from mnist1d.data import get_dataset_args, make_dataset

        from importlib.metadata import version

        from trainers.cache import cached_arrays

        args = get_dataset_args()
        args.num_samples = self.num_samples
        args.seed = self.split_seed

        def generate() -> dict[str, np.ndarray]:
            # make_dataset reseeds python's and numpy's global RNGs; put them back so callers' state is untouched.
            py_state, np_state = random.getstate(), np.random.get_state()
            try:
                made = make_dataset(args)
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
            return {key: np.asarray(made[key]) for key in ("x", "y", "x_test", "y_test")}

        # generation is deterministic in its arguments (every one of them is in the key): the same rows, generated once
        key = hashlib.sha256(repr(sorted(vars(args).items())).encode()).hexdigest()[:16]
        raw = cached_arrays(f"mnist1d-{version('mnist1d')}-{key}.npz", generate)
        as_split = lambda x, y: Split(np.asarray(x, np.float32), np.asarray(y, np.int64))  # noqa: E731
        return as_split(raw["x"], raw["y"]), as_split(raw["x_test"], raw["y_test"])


@dataclass(frozen=True)
class ParquetSource:
    """A user table: ``label`` column (ints or strings) plus numeric ``features`` (default: every other column).

    The test split is a stratified ``test_fraction`` drawn with ``split_seed``.
    """

    path: str
    label: str
    features: tuple[str, ...] | None = None
    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    split_seed: int = DEFAULT_SPLIT_SEED
    name: str = field(default="parquet", init=False)

    def load(self) -> tuple[Split, Split]:
        """``(train+validation rows, test rows)``."""
        import pyarrow.parquet as pq

        table = pq.read_table(self.path)
        columns = table.column_names
        if self.label not in columns:
            raise ValueError(f"data.label: column {self.label!r} is not in {self.path} (columns: {', '.join(columns)})")
        features = list(self.features) if self.features else [c for c in columns if c != self.label]
        missing = [c for c in features if c not in columns]
        if missing:
            raise ValueError(f"data.features: column {missing[0]!r} is not in {self.path}")
        if not features:
            raise ValueError(f"data.features: {self.path} has no feature columns besides {self.label!r}")
        try:
            x = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in features]).astype(np.float32)
        except (ValueError, TypeError) as err:
            raise ValueError(f"data.features: every feature column must be numeric ({err})") from None
        if not np.isfinite(x).all():
            raise ValueError(f"data.features: {self.path} holds missing or non-finite feature values")
        labels = table.column(self.label).to_pylist()
        if any(v is None for v in labels):
            raise ValueError(f"data.label: column {self.label!r} has missing values")
        classes = sorted(set(labels), key=lambda v: (str(type(v)), v))
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[v] for v in labels], dtype=np.int64)
        keep, test = stratified_split(y, self.test_fraction, np.random.default_rng(self.split_seed))
        return Split(x[keep], y[keep]), Split(x[test], y[test])


@dataclass(frozen=True)
class DigitsSource:
    """scikit-learn's bundled 8×8 digit images (1,797; offline): rows of shape ``(8, 8)``, a stratified
    ``test_fraction`` drawn with ``split_seed``."""

    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    split_seed: int = DEFAULT_SPLIT_SEED
    name: str = field(default="digits", init=False)

    def load(self) -> tuple[Split, Split]:
        """``(train+validation rows, test rows)``."""
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = np.asarray(digits.images, np.float32)
        y = np.asarray(digits.target, np.int64)
        keep, test = stratified_split(y, self.test_fraction, np.random.default_rng(self.split_seed))
        return Split(x[keep], y[keep]), Split(x[test], y[test])


DataSource = Mnist1dSource | ParquetSource | DigitsSource


def stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(rest, held)``: ``held`` takes ``fraction`` of each class (at least one row where a class has
    two or more), chosen with ``rng``; both keep the original row order."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1) (got {fraction})")
    held: list[np.ndarray] = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        n = int(round(fraction * len(rows)))
        if len(rows) >= 2:
            n = min(max(n, 1), len(rows) - 1)
        held.append(rng.permutation(rows)[:n])
    held_idx = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def _carve_validation(trainval: Split, source: DataSource, seed: int) -> SearchData:
    num_classes = int(trainval.y.max()) + 1
    # A fresh generator per use, seeded from the data seed: the split never depends on call order elsewhere.
    train_idx, val_idx = stratified_split(trainval.y, source.validation_fraction, np.random.default_rng([seed, 1]))
    return SearchData(
        Split(trainval.x[train_idx], trainval.y[train_idx]),
        Split(trainval.x[val_idx], trainval.y[val_idx]),
        num_classes,
        source.name,
    )


def search_data(source: DataSource, seed: int) -> SearchData:
    """Train and validation splits for a search; the test rows are dropped here and never returned. ``seed`` (the
    experiment's data seed) carves the validation rows; the test rows are the source's ``split_seed``'s."""
    trainval, _test = source.load()
    del _test
    return _carve_validation(trainval, source, seed)


def sealed_data(source: DataSource, seed: int) -> tuple[SearchData, SealedTestSplit]:
    """The same train/validation as :func:`search_data` plus the sealed test split."""
    trainval, test = source.load()
    return _carve_validation(trainval, source, seed), SealedTestSplit(test)


def split_digests(source: DataSource) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """Row digests of ``(train+validation rows, test rows)``: enough to count overlaps between two splits of
    the same data, never enough to recover a row."""
    trainval, test = source.load()
    return row_digests(trainval), row_digests(test)


def make_source(options: dict[str, Any]) -> DataSource:
    """Build a source from its config dict (``{"source": "mnist1d", ...}``); see the two source classes."""
    options = dict(options)
    kind = options.pop("source", "mnist1d")
    if kind == "mnist1d":
        return Mnist1dSource(**options)
    if kind == "parquet":
        if "features" in options and options["features"] is not None:
            options["features"] = tuple(options["features"])
        return ParquetSource(**options)
    if kind == "digits":
        return DigitsSource(**options)
    raise ValueError(f"data.source: must be one of mnist1d, digits, parquet (got {kind!r})")


__all__: Sequence[str] = [
    "DEFAULT_SPLIT_SEED", "DataSource", "DigitsSource", "Mnist1dSource", "ParquetSource", "SealedTestSplit",
    "SearchData", "Split", "make_source", "row_digests", "sealed_data", "split_digests", "search_data", "stratified_split",
]
