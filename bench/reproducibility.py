"""What strict reproducibility costs: the quickstart search in async mode and in strict mode, 2 trials at a time.

    python bench/reproducibility.py [--trials 12]

Prints each mode's wall time and the strict/async ratio, and whether the strict run's trials.parquet (without
times, hosts and ids) equals a strict run with one trial at a time.
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

from search._tune import configure  # noqa: E402

configure()  # Ray's environment before ray is imported
import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402

from search import run_experiment  # noqa: E402
from search.records import reproducible_view  # noqa: E402


def timed(workdir: Path, trials: int, mode: str, concurrency: int) -> tuple[float, list]:
    overrides = [f"budget.trials={trials}", f"budget.max_concurrent={concurrency}", f"reproducible.mode={mode}"]
    started = time.perf_counter()
    result = run_experiment(ROOT / "examples" / "quickstart.yaml", workdir=workdir, name=f"{mode}-{concurrency}",
                            overrides=overrides, stream=io.StringIO())
    return time.perf_counter() - started, reproducible_view(pq.read_table(result.trials_path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory(prefix="hypernas-repro-") as folder:
        async_s, _ = timed(Path(folder), args.trials, "async", 2)
        strict_s, strict_2 = timed(Path(folder), args.trials, "strict", 2)
        sequential_s, strict_1 = timed(Path(folder), args.trials, "strict", 1)
    print(f"quickstart, {args.trials} trials, TPE + ASHA, 2 CPUs")
    print(f"async,  2 at a time: {async_s:6.1f} s")
    print(f"strict, 2 at a time: {strict_s:6.1f} s   ({strict_s / async_s:.2f}x async)")
    print(f"strict, 1 at a time: {sequential_s:6.1f} s")
    print(f"strict results identical at concurrency 1 and 2: {strict_1 == strict_2}")


if __name__ == "__main__":
    main()
