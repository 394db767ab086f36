"""Start-up time of the light CLI verbs, and which heavy packages each one loads.

    python bench/startup.py [--repeat 7]

Runs ``hypernas --help``, ``hypernas validate examples/quickstart.yaml`` and ``hypernas validate
examples/mnist1d_nas.yaml`` as a user does (the installed console script, fresh processes), ``--repeat`` times
each, and prints median / min / max wall seconds. One more run of each, with ``-X importtime`` and a look at
``sys.modules`` at exit, says which of torch, mlflow, optuna, ray and pyarrow it imported and which of its own
top-level imports took longest. Targets (issue 13): ``--help`` under 1 s, ``validate`` under 2 s on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "hypernas"
CLI = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]
HEAVY = ("torch", "mlflow", "optuna", "ray", "pyarrow")
COMMANDS = {
    "--help": ["--help"],
    "validate quickstart": ["validate", "examples/quickstart.yaml"],
    "validate mnist1d_nas": ["validate", "examples/mnist1d_nas.yaml"],
}
# The CLI's own entry point, reporting at exit which heavy packages the process imported.
_PROBE = ("import atexit, sys\n"
          f"atexit.register(lambda: print('heavy:', ','.join(m for m in {HEAVY!r} if m in sys.modules), "
          "file=sys.stderr))\n"
          "from search.cli import main\n"
          "sys.exit(main(sys.argv[1:]))\n")


def wall_times(args: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([*CLI, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def imports(args: list[str], top: int = 4) -> tuple[list[str], list[tuple[float, str]]]:
    """The heavy packages ``hypernas ARGS`` imports, and its ``top`` slowest imports made at top level."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", _PROBE, *args], cwd=ROOT, check=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    heavy: list[str] = []
    slowest: list[tuple[float, str]] = []
    for line in out.splitlines():
        if line.startswith("heavy:"):
            heavy = [m for m in line.split(":", 1)[1].strip().split(",") if m]
        elif line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):  # imported by the CLI itself
                slowest.append((int(cumulative) / 1e6, name.strip()))
    return heavy, sorted(slowest, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{'command':<22} {'median':>7} {'min':>6} {'max':>6}  heavy imports      slowest top-level imports")
    for label, argv in COMMANDS.items():
        times = wall_times(argv, args.repeat)
        heavy, slowest = imports(argv)
        top = ", ".join(f"{name} {seconds:.2f}" for seconds, name in slowest)
        print(f"{label:<22} {statistics.median(times):>6.2f}s {min(times):>5.2f}s {max(times):>5.2f}s  "
              f"{','.join(heavy) or '-':<18} {top}")


if __name__ == "__main__":
    main()
