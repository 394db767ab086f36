"""How one trial trains: data splits (with the sealed test split), seeding, recipes and the Reporter protocol.

Knows nothing of Ray or MLflow. A recipe is ``train(spec: TrialSpec, reporter: Reporter) -> Evaluator | None``.
"""

from trainers.checkpoint import state_from_bytes, state_to_bytes
from trainers.data import (
    DEFAULT_SPLIT_SEED,
    DataSource,
    DigitsSource,
    Mnist1dSource,
    ParquetSource,
    SealedTestSplit,
    SearchData,
    Split,
    make_source,
    row_digests,
    sealed_data,
    search_data,
    split_digests,
)
from trainers.hyper import Hyper, check_space, resolve
from trainers.registry import BUILTIN, Trainer, resolve_trainer
from trainers.reporting import MemoryReporter, Reporter
from trainers.seeding import dataloader_seeding, seed_everything
from trainers.spec import Evaluator, Recipe, TrialSpec

__all__ = [
    "BUILTIN", "DEFAULT_SPLIT_SEED", "DataSource", "DigitsSource", "Evaluator", "Hyper", "MemoryReporter", "Mnist1dSource", "ParquetSource", "Recipe",
    "Reporter", "SealedTestSplit", "SearchData", "Split", "Trainer", "TrialSpec", "check_space", "dataloader_seeding", "make_source",
    "resolve", "resolve_trainer", "row_digests", "sealed_data", "search_data", "seed_everything", "split_digests", "state_from_bytes",
    "state_to_bytes",
]
