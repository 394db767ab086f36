"""Per-trial overhead: stock Ray Tune (OptunaSearch + ASHA + MLflowLoggerCallback) against hypernas.

    python bench/overhead.py [--trials 20]

Both run the same number of trivial trials (3 epochs, no training), TPE + ASHA, 2 at a time, logging to MLflow
on a fresh SQLite file, on one local Ray started once. Prints both wall times and their ratio.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from search._tune import configure  # noqa: E402

configure()  # Ray's environment before ray is imported
import ray  # noqa: E402


def stock(trials: int, workdir: Path) -> float:
    import optuna
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from ray.tune.search.optuna import OptunaSearch

    def trainable(config):
        for epoch in range(1, 4):
            tune.report({"epoch": epoch, "val_loss": (config["x"] - 0.3) ** 2 + 1.0 / epoch})

    started = time.perf_counter()
    tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(
            metric="val_loss", mode="min", num_samples=trials, max_concurrent_trials=2,
            search_alg=OptunaSearch(sampler=optuna.samplers.TPESampler(seed=0)),
            scheduler=AsyncHyperBandScheduler(time_attr="epoch", max_t=3, grace_period=1),
        ),
        run_config=tune.RunConfig(
            storage_path=str(workdir / "stock"), verbose=0,
            callbacks=[MLflowLoggerCallback(tracking_uri=f"sqlite:///{workdir}/stock.db", experiment_name="stock")],
        ),
    ).fit()
    return time.perf_counter() - started


def hypernas(trials: int, workdir: Path) -> float:
    from search import run_experiment

    config = {
        "name": "overhead", "trainer": "trivial_trainer:train", "data": {"source": "mnist1d", "num_samples": 1000},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}, "metric": {"name": "val_loss", "mode": "min"},
        "searcher": "tpe", "scheduler": {"type": "asha", "max_epochs": 3, "grace_period": 1},
        "budget": {"trials": trials, "max_concurrent": 2},
    }
    started = time.perf_counter()
    run_experiment(config, workdir=workdir / "hypernas", stream=io.StringIO())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory(prefix="hypernas-overhead-") as folder:
        stock_s = stock(args.trials, Path(folder))
        ours_s = hypernas(args.trials, Path(folder))
    print(f"{args.trials} trivial trials, TPE + ASHA, 2 at a time, MLflow on SQLite, Ray already running")
    print(f"stock Ray Tune (OptunaSearch + MLflowLoggerCallback): {stock_s:6.1f} s  ({stock_s / args.trials:.2f} s/trial)")
    print(f"hypernas                                            : {ours_s:6.1f} s  ({ours_s / args.trials:.2f} s/trial)")
    print(f"ratio stock / hypernas: {stock_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
