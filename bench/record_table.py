"""Record a tabular benchmark for ``hypernas simulate``: every configuration of a small MLP space on MNIST-1D,
trained for real to its last epoch (grid search, no early stopping), kept as an experiment folder.

    python bench/record_table.py [--out bench/tables/mnist1d_mlp] [--epochs 10]

72 configurations (depth 1–3 × width 32/64/128 × lr 0.001–0.03 × dropout 0/0.2) × 10 epochs, two at a time on
local Ray. The folder keeps ``trials.parquet`` and ``curves.parquet`` (each epoch's metrics and ``epoch_wall_s``,
the time it held its slot) — exactly what ``hypernas simulate --curves FOLDER`` reads. Record once, replay many:
``bench/simulate_compare.py`` replays it hundreds of times.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPACE = {
    "depth": {"type": "categorical", "choices": [1, 2, 3]},
    "width": {"type": "categorical", "choices": [32, 64, 128]},
    "lr": {"type": "categorical", "choices": [0.001, 0.003, 0.01, 0.03]},
    "dropout": {"type": "categorical", "choices": [0.0, 0.2]},
    "batch_size": 64,
    "schedule": "constant",
}


def config(epochs: int) -> dict:
    return {"name": "mnist1d_mlp", "seed": 0, "trainer": "mlp", "data": {"source": "mnist1d", "num_samples": 4000},
            "space": SPACE, "metric": {"name": "val_accuracy", "mode": "max"}, "searcher": {"type": "grid"},
            "scheduler": {"type": "none", "max_epochs": epochs}, "budget": {"trials": 72, "max_concurrent": 2},
            "resources": {"cpus": 1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "tables" / "mnist1d_mlp"))
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    from search import run_experiment

    with tempfile.TemporaryDirectory() as tmp:
        result = run_experiment(config(args.epochs), workdir=tmp, stream=io.StringIO())
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("trials.parquet", "curves.parquet", "config.yaml"):
            shutil.copy(result.folder / name, out / name)
    print(f"recorded {sum(result.counts.values())} configurations ({dict(result.counts)}) in {out}")


if __name__ == "__main__":
    main()
