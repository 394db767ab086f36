"""Stragglers, measured: the same budget with and without slow trials, asynchronous ASHA against synchronous
HyperBand, four trials at a time.

    python bench/stragglers.py [--trials 24]

A quarter of the trials (a seeded draw, the same in every variant) train 4x slower (`faults: [{fraction: 0.25,
slow: 4}]`). Prints each variant's wall time and the ratios; the target is ASHA with stragglers <= 1.2x ASHA
without.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import search._tune  # noqa: E402,F401 - Ray's environment before ray is imported
import ray  # noqa: E402

from search import run_experiment  # noqa: E402
from spaces import load_yaml  # noqa: E402

STRAGGLERS = [{"fraction": 0.25, "slow": 4}]


def variant(workdir: Path, name: str, trials: int, scheduler: dict, faults: list) -> tuple[float, dict]:
    # HyperBand takes no max_concurrent (it pauses trials); half a CPU per trial gives every variant 4 slots
    budget = {"trials": trials} if scheduler["type"] == "hyperband" else {"trials": trials, "max_concurrent": 4}
    config = {
        **load_yaml((ROOT / "examples" / "quickstart.yaml").read_text()),
        "name": name, "scheduler": {**scheduler, "max_epochs": 12}, "budget": budget, "faults": faults,
        "resources": {"cpus": 0.5},
    }
    started = time.perf_counter()
    result = run_experiment(config, workdir=workdir, stream=io.StringIO())
    counts = {k.lower(): v for k, v in result.counts.items() if v}
    return time.perf_counter() - started, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    args = parser.parse_args()
    # four trial slots: half a CPU each on two cores
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    asha = {"type": "asha", "grace_period": 2, "reduction_factor": 3}
    hyperband = {"type": "hyperband", "reduction_factor": 3}
    with tempfile.TemporaryDirectory(prefix="hypernas-stragglers-") as folder:
        base, base_counts = variant(Path(folder), "asha-clean", args.trials, asha, [])
        slow, slow_counts = variant(Path(folder), "asha-stragglers", args.trials, asha, STRAGGLERS)
        sync, sync_counts = variant(Path(folder), "hyperband-stragglers", args.trials, hyperband, STRAGGLERS)
    print(f"quickstart CNN, {args.trials} trials, 12 epochs max, 4 at a time on 2 CPUs; stragglers: 25 % of trials 4x slower")
    print(f"ASHA, no stragglers:         {base:6.1f} s   {base_counts}")
    print(f"ASHA, stragglers:            {slow:6.1f} s   ratio to ASHA without: {slow / base:.2f} (target <= 1.2)")
    print(f"HyperBand (sync), stragglers:{sync:6.1f} s   ratio to ASHA without: {sync / base:.2f}; "
          f"ASHA is {sync / slow:.2f}x faster with stragglers")


if __name__ == "__main__":
    main()
