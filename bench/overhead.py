"""Per-trial overhead, measured fairly: stock Ray Tune at its default and at its fastest, against hypernas.

    python bench/overhead.py [--trials 40] [--reports 10] [--repeats 3] [--profile hypernas]

Three sides run the **same** trial function (``bench/trivial_trainer.py``: no training, ``--reports`` reports per
trial) with the same searcher (hypernas's Optuna TPE sampler, same settings and seed: :func:`tpe_sampler`), the
same ASHA settings (:data:`ASHA`), the same concurrency (:data:`CONCURRENCY`) and the same number of trials, on one
local Ray started once:

* ``stock-default``  — ``tune.Tuner`` as documented: ``reuse_actors=False`` (TuneConfig's default), Tune's own
  JSON/CSV/TensorBoard loggers, MLflow through ``MLflowLoggerCallback`` on a fresh SQLite file;
* ``stock-fastest`` — the fastest stock setting we know: ``reuse_actors=True``, Tune's loggers off
  (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``), no MLflow;
* ``hypernas``      — ``run_experiment`` with everything on: nested MLflow runs on a fresh SQLite file, the journal,
  Optuna's study storage, ``trials.parquet``/``curves.parquet``, per-trial records and the decision log.

Every repeat runs all three, in an order rotated from one repeat to the next (so none is always first and cold),
after one untimed warm-up trial of each. Prints each side's trials/s per repeat, its median and range, and the
ratios of the medians. ``--profile SIDE`` runs that side once more under cProfile (the driver: the trials' own
work is in the Ray workers) and prints where the time goes, grouped by component.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]
# the Ray workers this starts import the trial function (bench/trivial_trainer.py) and hypernas from here
os.environ["PYTHONPATH"] = os.pathsep.join([str(BENCH.parent), str(BENCH), os.environ.get("PYTHONPATH", "")])

from search._tune import configure  # noqa: E402

configure()  # Ray's environment before ray is imported
import ray  # noqa: E402

# One place for what both stock and hypernas are given (the fairness of the comparison lives here).
CONCURRENCY = 2
SEED = 0
ASHA = {"grace_period": 1, "reduction_factor": 3}  # max_t / max_epochs = the number of reports
METRIC, MODE = "val_loss", "min"
SIDES = ("stock-default", "stock-fastest", "hypernas")
REPORTS: dict[str, list[int]] = {side: [] for side in SIDES}  # epochs reported in all, per timed run: same work?


def tpe_sampler():
    """The sampler both sides search with: hypernas's ``tpe`` searcher (multivariate, grouped, constant liar, 10
    random start-up trials) built by hypernas's own registry, seeded as hypernas seeds it from :data:`SEED`."""
    from search.registry import SEARCHERS
    from search.seeds import derive_seed

    entry = SEARCHERS["tpe"]
    return entry.factory(entry.settings(), None, derive_seed(SEED, "sampler"), False)


def side_name(fastest: bool) -> str:
    return "stock-fastest" if fastest else "stock-default"


class _TuneReporter:
    """``trivial_trainer.train``'s reporter on stock Tune: one ``tune.report`` per epoch, as hypernas's does."""

    def report(self, epoch, metrics, state=None):
        from ray import tune

        tune.report({"epoch": epoch, **metrics})

    def restore(self):
        return None


def _stock_trainable(config):
    """The stock side's trial: the same ``trivial_trainer.train`` hypernas runs, with the same spec fields."""
    import trivial_trainer
    from trainers import TrialSpec

    spec = TrialSpec(params={"x": config["x"]}, data=None, epochs=config["epochs"], seed=0)
    trivial_trainer.train(spec, _TuneReporter())


def stock(trials: int, reports: int, workdir: Path, *, fastest: bool) -> float:
    import optuna
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    callbacks = [] if fastest else [
        MLflowLoggerCallback(tracking_uri=f"sqlite:///{workdir}/mlflow.db", experiment_name="stock")]
    # Tune reads this when it creates its default callbacks, at fit(): its loggers are on by default
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1" if fastest else "0"
    started = time.perf_counter()
    results = tune.Tuner(
        _stock_trainable,
        param_space={"x": tune.uniform(0, 1), "epochs": reports},
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=MODE, num_samples=trials, max_concurrent_trials=CONCURRENCY,
            search_alg=OptunaSearch(sampler=tpe_sampler()),
            scheduler=AsyncHyperBandScheduler(time_attr="epoch", max_t=reports, **ASHA),
            reuse_actors=fastest,
        ),
        run_config=tune.RunConfig(storage_path=str(workdir / "tune"), verbose=0, callbacks=callbacks),
    ).fit()
    seconds = time.perf_counter() - started
    if results.num_errors or len(results) != trials:  # a failing trial is fast: the number would mean nothing
        raise RuntimeError(f"stock: {results.num_errors} of {len(results)} trials failed (expected {trials} ok)")
    REPORTS[side_name(fastest)].append(sum(int(r.metrics["epoch"]) for r in results))
    return seconds


def hypernas(trials: int, reports: int, workdir: Path) -> float:
    from search import run_experiment

    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # what search._tune.configure() sets for a driver
    config = {
        "name": "overhead", "trainer": "trivial_trainer:train", "data": {"source": "mnist1d", "num_samples": 1000},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}, "metric": {"name": METRIC, "mode": MODE},
        "seed": SEED, "searcher": "tpe", "scheduler": {"type": "asha", "max_epochs": reports, **ASHA},
        "budget": {"trials": trials, "max_concurrent": CONCURRENCY},
        "tracking": {"uri": f"sqlite:///{workdir}/mlflow.db"},
    }
    started = time.perf_counter()
    result = run_experiment(config, workdir=workdir / "hypernas", stream=io.StringIO())
    seconds = time.perf_counter() - started
    ended = result.counts.get("COMPLETE", 0) + result.counts.get("PRUNED", 0)
    if ended != trials:  # a failing trial is fast: the number would mean nothing
        raise RuntimeError(f"hypernas: {result.counts} (expected {trials} trials COMPLETE or PRUNED)")
    import pyarrow.parquet as pq

    REPORTS["hypernas"].append(pq.read_metadata(result.curves_path).num_rows)
    return seconds


def run_side(side: str, trials: int, reports: int) -> float:
    """Seconds for ``trials`` trials of ``side``, each in a fresh folder (fresh MLflow store, fresh Tune storage)."""
    with tempfile.TemporaryDirectory(prefix=f"hypernas-overhead-{side}-") as folder:
        if side == "hypernas":
            return hypernas(trials, reports, Path(folder))
        return stock(trials, reports, Path(folder), fastest=side == "stock-fastest")


_COMPONENTS = (  # (label, substring of a profiled function's file) — first match wins
    ("MLflow", "/mlflow/"), ("SQLAlchemy/SQLite", "sqlalchemy"), ("Optuna", "/optuna/"), ("pyarrow", "pyarrow"),
    ("hypernas journal", "search/journal.py"), ("hypernas records", "search/records.py"),
    ("hypernas monitor/events", "search/monitor.py"), ("hypernas tracking", "search/_mlflow.py"),
    ("hypernas (other)", "/search/"), ("Ray Tune", "/ray/tune/"), ("Ray core", "/ray/"),
)


def profile(side: str, trials: int, reports: int) -> None:
    """One more run of ``side`` under cProfile: the driver's own time per component (tottime), then the top calls."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(run_side, side, trials, reports)
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    totals: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        label = next((label for label, part in _COMPONENTS if part in filename), "other (python, waiting)")
        totals[label] = totals.get(label, 0.0) + tottime
    print(f"\nprofile of {side}: {wall:.1f} s wall for {trials} trials ({wall / trials * 1000:.0f} ms/trial); "
          "driver time by component (self time; 'waiting' includes Ray's waits for the workers):")
    for label, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {label:28s} {seconds:7.2f} s  {seconds / trials * 1000:7.1f} ms/trial")
    print("\ntop 25 by cumulative time:")
    stats.sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--reports", type=int, default=10, help="reports (epochs) per trial; ASHA's max_t")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--profile", choices=SIDES, help="afterwards, profile one more run of this side")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=CONCURRENCY, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    for side in args.sides:  # warm-up: imports, worker processes, first-use caches; not timed
        run_side(side, 1, 1)
    rates: dict[str, list[float]] = {side: [] for side in args.sides}
    for repeat in range(args.repeats):
        order = args.sides[repeat % len(args.sides):] + args.sides[:repeat % len(args.sides)]
        for side in order:
            rate = args.trials / run_side(side, args.trials, args.reports)
            rates[side].append(rate)
            print(f"repeat {repeat + 1}: {side:14s} {rate:6.2f} trials/s", flush=True)
    print(f"\n{args.trials} trials x {args.reports} reports, hypernas's TPE sampler (seed from {SEED}) + ASHA {ASHA}, "
          f"{CONCURRENCY} at a time, {args.repeats} repeats in rotated order, Ray {ray.__version__} on "
          f"{os.cpu_count()} CPUs")
    medians = {side: statistics.median(values) for side, values in rates.items()}
    for side, values in rates.items():
        epochs = REPORTS[side][-len(values):] if REPORTS[side] else []
        work = f", {statistics.mean(epochs) / args.trials:.1f} epochs/trial (ASHA)" if epochs else ""
        print(f"  {side:14s} median {medians[side]:6.2f} trials/s  (range {min(values):.2f}-{max(values):.2f}){work}")
    if "hypernas" in medians:
        for side in medians:
            if side != "hypernas":
                print(f"  hypernas / {side}: {medians['hypernas'] / medians[side]:.2f}x")
    if args.profile:
        profile(args.profile, args.trials, args.reports)


if __name__ == "__main__":
    main()
