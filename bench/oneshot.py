"""One-shot NAS (DARTS, ENAS: supernet search + retrain of the derived cells) against black-box evolution on
MNIST-1D, side by side in one run, as a user runs them (CLI, fresh workdir, sealed test once per experiment).

    python bench/oneshot.py                  # examples/mnist1d_nas.yaml (evolution) vs mnist1d_darts / _enas
    python bench/oneshot.py --quick          # every experiment cut down (a smoke run of the bench, minutes)
    python bench/oneshot.py darts            # only some of: evolution darts enas random-cells

Compute is the trials' CPU-seconds: Σ over every trial (searches and retrains alike) of its wall time × the CPUs
it held (``resources.cpus``); on a GPU it would be GPU-seconds. Prints per experiment: sealed test accuracy,
best validation value, compute, the ratio to evolution's compute and the test-accuracy gap to evolution, and for
the one-shot methods the spread over search seeds (the supernets' validation accuracy, and each seed's derived
genotype's retrained validation accuracy). ``random-cells`` retrains as many cells drawn at random, exactly as the
one-shot examples retrain theirs: what the search itself adds. All winners are scored on the one sealed MNIST-1D test split of
the bench's workdir: the first opens it, the others are recorded forced looks (``hypernas test --force``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "hypernas"
CLI = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]
EXAMPLES = {"evolution": "mnist1d_nas", "darts": "mnist1d_darts", "enas": "mnist1d_enas",
            "random-cells": "mnist1d_darts"}
# the baseline that says what a one-shot search adds: the one-shot examples' retrains (same skeleton, training and
# count), over cells drawn at random instead of derived
EXTRA = {"random-cells": ["oneshot=null", "name=mnist1d-random-cells", "budget.trials=3"]}
QUICK = {  # --quick: the same experiments, cut down
    "evolution": ["budget.trials=8", "scheduler.max_epochs=6", "scheduler.grace_period=2", "budget.time_budget_s=300"],
    "darts": ["oneshot.search_seeds=2", "oneshot.epochs=2", "scheduler.max_epochs=6", "budget.trials=2"],
    "enas": ["oneshot.search_seeds=2", "oneshot.epochs=2", "scheduler.max_epochs=6", "budget.trials=2"],
    "random-cells": ["scheduler.max_epochs=6", "budget.trials=2"],
}


def run(method: str, workdir: Path, quick: bool, force: bool) -> dict:
    config = ROOT / "examples" / f"{EXAMPLES[method]}.yaml"
    raw = yaml.safe_load(config.read_text())
    items = [*EXTRA.get(method, []), *(QUICK[method] if quick else [])]
    raw |= {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in items) if "." not in k}
    sets = [f"--set={item}" for item in items]
    started = time.perf_counter()
    subprocess.run([*CLI, "run", str(config), "--workdir", str(workdir), *sets], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    # one workdir, one test split: each method's winner is scored on it, the second and third as forced looks
    # (the ledger records all of them) — what comparing methods on one sealed split costs, said out loud
    out = subprocess.run([*CLI, "test", raw["name"], "--workdir", str(workdir), *(["--force"] if force else [])],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    entry = json.loads(out.split("\n\n")[0])
    rows = pq.read_table(workdir / raw["name"] / "trials.parquet").to_pylist()
    cpus = float((raw.get("resources") or {}).get("cpus", 1))
    result = {
        "method": method, "wall_s": wall, "trials": len(rows),
        "compute_s": sum(r["wall_time_s"] or 0.0 for r in rows) * cpus,
        "test": entry["test_metrics"][entry["test_metric"]], "val": entry["validation_value"],
        "winner": entry["trial"],
    }
    searches = [r for r in rows if r.get("phase") == "search"]
    if searches:
        retrained: dict[str, list[float]] = {}
        for r in rows:
            if r.get("phase") == "retrain" and r["state"] == "COMPLETE":
                retrained.setdefault(json.loads(r["params"])["cell"], []).append(r["last_value"])
        supernet = [r["last_value"] for r in searches if r["state"] == "COMPLETE"]
        per_seed = [max(retrained[r["derived_genotype"]]) for r in searches if r["derived_genotype"] in retrained]
        result |= {
            "search_compute_s": sum(r["wall_time_s"] or 0.0 for r in searches) * cpus,
            "supernet_val": supernet, "seed_val": per_seed,
            "distinct": len({r["derived_genotype"] for r in searches if r["derived_genotype"]}),
        }
    return result


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f} (1 seed)"
    return (f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f} "
            f"[{min(values):.4f}, {max(values):.4f}] over {len(values)} seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("methods", nargs="*", choices=[*EXAMPLES, []], help="default: all three")
    parser.add_argument("--quick", action="store_true", help="cut every experiment down (a smoke run)")
    args = parser.parse_args()
    args.methods = args.methods or list(EXAMPLES)
    results = []
    with tempfile.TemporaryDirectory(prefix="hypernas-bench-oneshot-") as workdir:
        for method in args.methods:
            print(f"running {method} ...", flush=True)
            results.append(run(method, Path(workdir), args.quick, force=bool(results)))
    base = next((r for r in results if r["method"] == "evolution"), None)
    print(f"\n{'method':<10} {'trials':>6} {'compute CPU-s':>13} {'vs evolution':>12} {'sealed test':>11} "
          f"{'test gap':>8} {'best val':>8}  winner")
    for r in results:
        ratio = f"{r['compute_s'] / base['compute_s']:.3f}x" if base else "-"
        gap = f"{(r['test'] - base['test']) * 100:+.2f} pt" if base else "-"
        print(f"{r['method']:<10} {r['trials']:>6} {r['compute_s']:>13.1f} {ratio:>12} {r['test']:>11.4f} "
              f"{gap:>8} {r['val']:>8.4f}  trial {r['winner']}")
    for r in results:
        if "supernet_val" in r:
            print(f"\n{r['method']}: search {r['search_compute_s']:.1f} CPU-s, {r['distinct']} distinct genotypes")
            print(f"  supernet val_accuracy        {spread(r['supernet_val'])}")
            print(f"  retrained val_accuracy/seed  {spread(r['seed_val'])}")


if __name__ == "__main__":
    main()
