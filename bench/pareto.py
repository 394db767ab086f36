"""Accuracy against energy: runs ``examples/mnist1d_pareto.yaml`` as a user would (CLI, fresh workdir) and prints
its Pareto front, the point the config's ``select:`` rule picks and its sealed test score, the experiment's energy
bill (trials + sealed retrain, by source, with CO2e) and the front's hypervolume.

    python bench/pareto.py                 # the example as written (~25 min on 2 CPUs)
    python bench/pareto.py --quick         # cut down (a smoke run of the bench, minutes)
    python bench/pareto.py --set budget.trials=64 ...   # any override of the example

The hypervolume is Optuna's (exact), over the front with every objective as a loss, up to a reference point that is
each objective's worst value among the COMPLETE trials pushed 10 % of its range further (printed). Energy here is
an *estimate* unless the machine exposes NVML (GPU) or RAPL (CPU) counters: the bench prints the source.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRIPT = Path(sys.executable).parent / "hypernas"
CLI = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "search.cli"]
EXAMPLE = ROOT / "examples" / "mnist1d_pareto.yaml"
NAME = "mnist1d-pareto"
QUICK = ["budget.trials=8", "scheduler.max_epochs=4", "scheduler.grace_period=2", "searcher.n_startup_trials=4",
         "data.num_samples=1000", "budget.time_budget_s=600"]


def _cli(*argv: str) -> str:
    done = subprocess.run([*CLI, *argv], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"`hypernas {' '.join(argv)}` failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a cut-down run (minutes)")
    parser.add_argument("--set", action="append", default=[], help="override a setting of the example")
    parser.add_argument("--workdir", help="keep the experiment here (default: a temporary folder)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hypernas-pareto-"))
    overrides = [*(QUICK if args.quick else []), *args.set]
    started = time.perf_counter()
    _cli("run", str(EXAMPLE), "--workdir", str(workdir), *(f"--set={item}" for item in overrides))
    wall = time.perf_counter() - started
    report = json.loads(_cli("best", NAME, "--workdir", str(workdir), "--json"))
    test = json.JSONDecoder().raw_decode(_cli("test", NAME, "--workdir", str(workdir)))[0]  # then a summary line
    status = json.loads(_cli("status", NAME, "--workdir", str(workdir), "--json"))

    from search.config import load_config
    from search.records import ExperimentRecords
    from search._optuna.front import front_hypervolume, reference_point

    cfg = load_config(workdir / NAME / "config.yaml")
    records = ExperimentRecords.read(workdir / NAME, cfg.metric.name, cfg.metric.mode, cfg.constraints,
                                     objectives=cfg.objectives)
    rows = records.trial_rows()
    names = [o["name"] for o in report["objectives"]]
    print(f"# {NAME}: {len(rows)} trials, {status['counts']}, {wall:.0f} s wall; workdir {workdir}")
    directions = ", ".join(f"{o['name']} {o['mode']}" for o in report["objectives"])
    print(f"\nPareto front ({len(report['front'])} trials; {directions}):")
    print("| trial | " + " | ".join(names) + " | precision | params |\n|---|" + "---|" * (len(names) + 2))
    for point in report["front"]:
        mark = " (selected)" if point["selected"] else ""
        values = " | ".join(f"{point['values'][n]:.4g}" for n in names)
        print(f"| {point['trial']}{mark} | {values} | {point['params'].get('precision', 'fp32')} | "
              f"{next(r for r in rows if r['number'] == point['trial'])['hw_params']:.0f} |")
    reference = reference_point(rows, records.objectives)
    print(f"\nselected: trial {test['trial']} by {report['rule_description']}")
    print(f"sealed test: {test['test_metric']} = {test['test_metrics'][test['test_metric']]:.4f} "
          f"(validation {test['validation_value']:.4f}; retrain {test['retrain_energy_j']:.1f} J, "
          f"{test['retrain_energy_source']})")
    energy = status["energy"]
    print(f"energy: {energy['energy_j']:.1f} J in all (trials {energy['trials_energy_j']:.1f} J + sealed retrain "
          f"{energy['retrain_energy_j']:.1f} J), by source {energy['by_source']}"
          f"{' — an ESTIMATE (no energy counter readable)' if energy['estimated'] else ''}")
    print(f"CO2e: {energy['co2e_g']:.4g} g at {energy['grid_gco2_per_kwh']:g} g/kWh")
    print(f"hypervolume: {front_hypervolume(rows, records.objectives, reference):.6g} "
          f"(objectives as losses; reference point {[round(float(r), 6) for r in reference]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
