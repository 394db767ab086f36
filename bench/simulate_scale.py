"""How far ``hypernas simulate`` scales: 1,000 simulated workers, 1,000 → 100,000 trials, TPE + ASHA.

    python bench/simulate_scale.py [--trials 1000,10000,100000] [--workers 1000] [--history 250] [--full 1000,3000]

Each size runs in its own process (its peak memory is that process's peak resident set) over the synthetic
48-configuration table of ``tests/helpers.py`` (9 epochs, two curves per configuration), with ``--no-tracking``
(MLflow would take longer than the simulation). A *decision point* is one simulated event handled with everything
it triggers: Ray's ASHA deciding the result, Optuna's TPE told the value (and, when the trial ends, told its end
and asked for the next trial), the journal and records updated. Printed per size: decision points per second of
wall time, p50/p99/max latency of one decision point, peak memory, and the ratios to the smallest size.

TPE's ask costs time in proportion to the trials it has seen (Optuna fits its Parzen estimators over all of them):
with the full history a long simulation slows to a crawl. ``--history N`` shows the sampler only the latest N to
2N finished trials (:meth:`search._optuna.AskTellStudy.create`); the ``--full`` sizes are also run with the full
history, side by side, so the cost of both is measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one(trials: int, workers: int, history: int | None, workdir: Path) -> dict:
    """Simulate once, in this process; returns the measurements."""
    import numpy as np

    from search.simulate import simulate_experiment
    from tests.helpers import sim_config, sim_table

    table = sim_table(workdir / "table.parquet", curves=2)
    config = sim_config("scale", budget={"trials": trials}, searcher={"type": "tpe", "n_startup_trials": 20})
    latencies: list[float] = []
    started = time.perf_counter()
    result = simulate_experiment(config, curves=table, workers=workers, sampler_history=history, tracking=False,
                                 workdir=workdir, stream=io.StringIO(), latencies=latencies)
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    state = json.loads((result.folder / "state.json").read_text())["simulated"]
    return {"trials": trials, "history": history, "decisions": len(latencies), "wall_s": wall,
            "simulate_s": state["wall_s"], "decisions_per_s": len(latencies) / state["wall_s"],
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "counts": {k: v for k, v in result.counts.items() if v}, "makespan_s": state["makespan_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", default="1000,10000,100000")
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--history", type=int, default=250)
    parser.add_argument("--full", default="1000,3000", help="sizes also run with the full history")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: trials,history in this process
    args = parser.parse_args()
    if args.one:
        trials, history = (int(x) if x != "none" else None for x in args.one.split(","))
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one(trials, args.workers, history, Path(tmp))))
        return
    sizes = [int(x) for x in args.trials.split(",")]
    runs = [(n, args.history) for n in sizes] + [(int(n), None) for n in args.full.split(",") if n]
    rows = []
    for trials, history in runs:
        out = subprocess.run([sys.executable, __file__, "--one", f"{trials},{history or 'none'}",
                              "--workers", str(args.workers)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  done: {trials} trials, history {history or 'all'}: {rows[-1]['wall_s']:.0f} s", flush=True)
    print(f"\n{args.workers} simulated workers, TPE + ASHA (grace 1, reduction 3, 9 epochs), 48-configuration table")
    print(f"{'trials':>7} {'history':>7} {'decisions':>9} {'dec/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'peak MB':>8} {'wall s':>7} {'simulated h':>11}")
    for r in rows:
        print(f"{r['trials']:>7} {str(r['history'] or 'all'):>7} {r['decisions']:>9} {r['decisions_per_s']:>7.0f} "
              f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.1f} {r['peak_mb']:>8.0f} {r['wall_s']:>7.1f} "
              f"{r['makespan_s'] / 3600:>11.2f}")
    windowed = [r for r in rows if r["history"] is not None]
    base = windowed[0]
    print("\ngrowth from the smallest size (history window):")
    for r in windowed[1:]:
        print(f"  {r['trials']:>7} trials: {r['trials'] / base['trials']:.0f}x trials -> peak memory "
              f"{r['peak_mb'] / base['peak_mb']:.2f}x, memory above the smallest run "
              f"{(r['peak_mb'] - base['peak_mb']) / max(1, r['trials'] - base['trials']) * 1024:.1f} kB/trial, "
              f"p99 {r['p99_ms'] / base['p99_ms']:.2f}x, decisions/s {r['decisions_per_s'] / base['decisions_per_s']:.2f}x")
    print(f"target: p99 < 5 ms — {'met' if all(r['p99_ms'] < 5 for r in windowed) else 'NOT met'} with the window")


if __name__ == "__main__":
    main()
