"""Searchers × schedulers on a recorded tabular benchmark, with ``hypernas simulate``: any-time performance against
simulated time over many seeds, and the straggler scenarios of ``bench/stragglers.py`` at 1,000 workers.

    python bench/simulate_compare.py [--table bench/tables/mnist1d_mlp] [--seeds 20] [--trials 48] [--workers 8]
                                     [--straggler-trials 2000] [--straggler-seeds 3]

The table is a real MNIST-1D MLP grid (``bench/record_table.py``: 72 configurations × 10 epochs, trained to the
end). Part 1: every searcher × scheduler pair runs ``--seeds`` experiment seeds of ``--trials`` trials on
``--workers`` workers; printed are the mean (± standard deviation) best validation accuracy of the COMPLETE trials
ended by each point of simulated time — the any-time curve a user sees — the final best, the gap to the table's
best configuration (regret), and the mean simulated makespan. Part 2 replays ``bench/stragglers.py``'s two
scenarios — a quarter of the trials 4× slower (``slow:0.25:4``) and a quarter of the workers 4× slower
(``node:0.25:4``) — on 1,000 simulated workers for ASHA (Ray's promotion on arrival), ASHA with ordered
promotion, and synchronous HyperBand: the makespan with stragglers over the makespan without, and the same per
epoch trained, medians and ranges over ``--straggler-seeds`` seeds.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402

from bench.record_table import config as table_config  # noqa: E402
from search.simulate import simulate_experiment  # noqa: E402

SEARCHERS = {"random": {"type": "random"}, "tpe": {"type": "tpe", "n_startup_trials": 8}}
SCHEDULERS = {
    "fifo": {"type": "none", "max_epochs": 10},
    "asha": {"type": "asha", "max_epochs": 10, "grace_period": 1, "reduction_factor": 3},
    "hyperband": {"type": "hyperband", "max_epochs": 10, "reduction_factor": 3},
    "median": {"type": "median", "max_epochs": 10, "grace_period": 2, "min_samples_required": 3},
}
STRAGGLER_VARIANTS = {
    "asha": {"type": "asha", "max_epochs": 10, "grace_period": 2, "reduction_factor": 3, "promotion": "async"},
    "asha-ordered": {"type": "asha", "max_epochs": 10, "grace_period": 2, "reduction_factor": 3,
                     "promotion": "ordered"},
    "hyperband": {"type": "hyperband", "max_epochs": 10, "reduction_factor": 3},
}
SCENARIOS = {"none": [], "trials": ["slow:0.25:4"], "node": ["node:0.25:4"]}


def run(workdir: Path, table: str, name: str, seed: int, searcher: dict, scheduler: dict, trials: int, workers: int,
        stragglers: list[str] = ()) -> tuple[list[dict], float, int]:
    config = {**table_config(10), "name": name, "seed": seed, "searcher": searcher, "scheduler": scheduler,
              "budget": {"trials": trials}}
    result = simulate_experiment(config, curves=table, workers=workers, stragglers=stragglers, tracking=False,
                                 plots=False, workdir=workdir, stream=io.StringIO(), overwrite=True)
    rows = pq.read_table(result.trials_path, columns=["state", "last_value", "sim_ended_s", "epochs_run"]).to_pylist()
    makespan = max(r["sim_ended_s"] for r in rows)
    return rows, makespan, sum(r["epochs_run"] for r in rows)


def best_by(rows: list[dict], t: float) -> float | None:
    done = [r["last_value"] for r in rows if r["state"] == "COMPLETE" and r["sim_ended_s"] <= t]
    return max(done) if done else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(ROOT / "bench" / "tables" / "mnist1d_mlp"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--straggler-trials", type=int, default=2000)
    parser.add_argument("--straggler-seeds", type=int, default=3)
    args = parser.parse_args()
    curves = pq.read_table(Path(args.table) / "curves.parquet", columns=["trial", "epoch", "val_accuracy"]).to_pylist()
    last = max(r["epoch"] for r in curves)
    oracle = max(r["val_accuracy"] for r in curves if r["epoch"] == last)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {}
        for s_name, searcher in SEARCHERS.items():
            for k_name, scheduler in SCHEDULERS.items():
                results[s_name, k_name] = [run(work, args.table, "cmp", seed, searcher, scheduler, args.trials,
                                               args.workers) for seed in range(args.seeds)]
                print(f"  done: {s_name} + {k_name}", flush=True)
        horizon = max(m for runs in results.values() for _, m, _ in runs)
        points = [horizon * f for f in (0.1, 0.25, 0.5, 1.0)]
        print(f"\nPart 1: {args.trials} trials on {args.workers} simulated workers, {args.seeds} seeds each; table "
              f"{args.table} (best configuration: val_accuracy {oracle:.4f})")
        print("mean best val_accuracy of the COMPLETE trials ended by simulated time t (± sd; '-': none yet in "
              "some seed)")
        header = "".join(f"{f't={p:.2f}s':>17}" for p in points)
        print(f"{'searcher + scheduler':<22}{header}{'regret':>9}{'makespan s':>12}{'epochs':>8}")
        for (s_name, k_name), runs in results.items():
            cells = []
            for p in points:
                values = [best_by(rows, p) for rows, _, _ in runs]
                cells.append("-" if None in values else
                             f"{statistics.mean(values):.4f}±{statistics.pstdev(values):.4f}")
            finals = [best_by(rows, float("inf")) or 0.0 for rows, _, _ in runs]
            print(f"{s_name + ' + ' + k_name:<22}" + "".join(f"{c:>17}" for c in cells)
                  + f"{oracle - statistics.mean(finals):>9.4f}{statistics.mean(m for _, m, _ in runs):>12.0f}"
                  + f"{statistics.mean(e for _, _, e in runs):>8.0f}")

        print(f"\nPart 2: bench/stragglers.py's scenarios on 1,000 simulated workers, {args.straggler_trials} trials "
              f"(random search), {args.straggler_seeds} seeds; ratio = with stragglers / without (median [range])")
        print(f"{'variant':<14}{'scenario':<9}{'makespan s':>12}{'ratio':>22}{'per epoch':>22}")
        for v_name, scheduler in STRAGGLER_VARIANTS.items():
            base = {seed: run(work, args.table, "strag", seed, {"type": "random"}, scheduler, args.straggler_trials,
                              1000) for seed in range(args.straggler_seeds)}
            for sc_name, stragglers in SCENARIOS.items():
                if sc_name == "none":
                    spans = [m for _, m, _ in base.values()]
                    print(f"{v_name:<14}{sc_name:<9}{statistics.median(spans):>12.1f}")
                    continue
                ratios, per_epoch = [], []
                for seed in range(args.straggler_seeds):
                    _, m, e = run(work, args.table, "strag", seed, {"type": "random"}, scheduler,
                                  args.straggler_trials, 1000, stragglers)
                    _, m0, e0 = base[seed]
                    ratios.append(m / m0)
                    per_epoch.append((m / e) / (m0 / e0))
                show = lambda xs: f"{statistics.median(xs):.2f} [{min(xs):.2f}, {max(xs):.2f}]"  # noqa: E731
                print(f"{v_name:<14}{sc_name:<9}{'':>12}{show(ratios):>22}{show(per_epoch):>22}")
        print("target (bench/stragglers.py): ASHA with stragglers <= 1.2x ASHA without")


if __name__ == "__main__":
    main()
