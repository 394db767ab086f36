"""Wall time and sealed test accuracy of the shipped examples, as a user runs them (CLI, fresh workdir).

    python bench/examples.py                       # quickstart
    python bench/examples.py mnist1d_cnn           # the larger CNN search

Prints: search wall time (including Ray start-up), trial counts, best validation value, test accuracy of the
selected model, optimism gap, and the time of the final retrain + test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "hypernas"
CLI = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]


def main() -> None:
    example = sys.argv[1] if len(sys.argv) > 1 else "quickstart"
    config = ROOT / "examples" / f"{example}.yaml"
    with tempfile.TemporaryDirectory(prefix="hypernas-bench-") as workdir:
        started = time.perf_counter()
        subprocess.run([*CLI, "run", str(config), "--workdir", workdir], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        search_s = time.perf_counter() - started
        name = next(p.name for p in Path(workdir).iterdir() if (p / "state.json").is_file())
        state = json.loads((Path(workdir) / name / "state.json").read_text())
        started = time.perf_counter()
        out = subprocess.run([*CLI, "test", name, "--workdir", workdir], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout
        test_s = time.perf_counter() - started
    entry = json.loads(out.split("\n\n")[0])
    print(f"example            {example}")
    print(f"search wall time   {search_s:.1f} s  (trials: {state['counts']})")
    print(f"best validation    {entry['validation_metric']} = {entry['validation_value']:.4f} (trial {entry['trial']})")
    print(f"sealed test        {entry['test_metric']} = {entry['test_metrics'][entry['test_metric']]:.4f}")
    print(f"optimism gap       {entry['optimism_gap']:+.4f}")
    print(f"retrain + test     {test_s:.1f} s")


if __name__ == "__main__":
    main()
