"""Stragglers, measured: the same budget with and without slow trials, ASHA (Ray's promotion on arrival, and
ours in trial-number order) against synchronous HyperBand, four trials at a time.

    python bench/stragglers.py [--trials 24] [--scenario trials|node|both] [--repeats 3] [--variants a,b]

Two scenarios. ``trials``: on local Ray, a quarter of the trials (a seeded draw, the same in every variant) train
4x slower (`faults: [{fraction: 0.25, slow: 4}]`). ``node``: on a four-node Ray cluster on this machine
(``ray.cluster_utils.Cluster``, one trial slot per node), every trial placed on one of the nodes trains 4x slower
(`faults: [{node_resource: slow_node, slow: 4}]`). Prints each variant's wall time and the ratios; the target is
ASHA with stragglers <= 1.2x ASHA without. Async ASHA's promotions, and so which trials run longest, depend on
the order results arrive in, so a single run's ratio swings widely: each scenario runs ``--repeats`` times, and
the median and the range of the ratios are printed — and, since a round with stragglers may simply promote fewer
trials, the same ratio per trained epoch (wall time / epochs run). ``promotion: ordered`` decides each rung in
trial-number order, parking (pausing) a trial whose turn has not come so its slot goes to the next trial: its
promotions do not depend on arrival order, so stragglers do not change how many epochs are trained.

Also printed, per scenario: the slot-time ratio — the summed per-epoch wall times (``epoch_wall_s``, the time
each epoch held its slot) with stragglers over those without. With every slot busy, wall time cannot fall below
slot time / slots, so this ratio is the floor the wall-time ratio is measured against. And the training time per
epoch (``epoch_time_s``, the injected sleep excluded) with stragglers over without: four slots share this
machine's CPUs, so while a straggler sleeps the others train faster, which separate machines would not do. A
ratio below 1 there says by how much this machine flatters the wall-time ratio.
"""

from __future__ import annotations

import argparse
import io
import statistics
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
from spaces import load_yaml  # noqa: E402

SLOW_TRIALS = [{"fraction": 0.25, "slow": 4}]
SLOW_NODE = [{"node_resource": "slow_node", "slow": 4}]
ASHA = {"type": "asha", "grace_period": 2, "reduction_factor": 3, "promotion": "async"}
ORDERED = {**ASHA, "promotion": "ordered"}
HYPERBAND = {"type": "hyperband", "reduction_factor": 3}


def variant(workdir: Path, name: str, trials: int, scheduler: dict, faults: list,
            cpus: float) -> tuple[float, dict]:
    # HyperBand takes no max_concurrent (it pauses trials); the CPUs per trial give every variant 4 slots
    budget = {"trials": trials} if scheduler["type"] == "hyperband" else {"trials": trials, "max_concurrent": 4}
    config = {
        **load_yaml((ROOT / "examples" / "quickstart.yaml").read_text()),
        "name": name, "scheduler": {**scheduler, "max_epochs": 12}, "budget": budget, "faults": faults,
        "resources": {"cpus": cpus},
    }
    started = time.perf_counter()
    result = run_experiment(config, workdir=workdir, stream=io.StringIO())
    seconds = time.perf_counter() - started
    counts = {k.lower(): v for k, v in result.counts.items() if v}
    counts["epochs"] = sum(pq.read_table(result.trials_path, columns=["epochs_run"]).column("epochs_run").to_pylist())
    curves = pq.read_table(result.trials_path.with_name("curves.parquet"), columns=["epoch_wall_s", "epoch_time_s"])
    counts["slot_s"] = round(sum(curves.column("epoch_wall_s").to_pylist()), 1)
    counts["train_s"] = round(sum(curves.column("epoch_time_s").to_pylist()), 1)  # without the injected sleep
    return seconds, counts


VARIANTS = (("asha-clean", ASHA, False), ("asha-slow", ASHA, True), ("ordered-clean", ORDERED, False),
            ("ordered-slow", ORDERED, True), ("hb-slow", HYPERBAND, True))


def repeat(folder: Path, scenario: str, trials: int, faults: list, cpus: float, repeats: int,
           names: list[str]) -> list[list[tuple]]:
    """``repeats`` rounds of the variants ``names`` (of VARIANTS), in VARIANTS' order within a round."""
    return [[variant(folder, f"{scenario}-{name}-{r}", trials, scheduler, faults if slow else [], cpus)
             for name, scheduler, slow in VARIANTS if name in names] for r in range(repeats)]


def report(title: str, rounds: list[list[tuple]], chosen: list[str]) -> None:
    def spread(values: list[float], unit: str = "") -> str:
        return f"median {statistics.median(values):5.2f}{unit} (range {min(values):.2f}-{max(values):.2f})"

    names = [name for name, _, _ in VARIANTS if name in chosen]
    print(title)
    for variants in rounds:
        print("  round: " + " | ".join(f"{name} {v[0]:5.1f} s {v[1]}" for name, v in zip(names, variants)))
    at = {name: i for i, name in enumerate(names)}

    def column(name: str, value=lambda v: v[0]) -> list[float]:
        return [value(variants[at[name]]) for variants in rounds]

    for name in names:
        print(f"  {name:14s} wall {spread(column(name), ' s')}   epochs {spread(column(name, lambda v: v[1]['epochs']))}")
    for slow, clean, label in (("asha-slow", "asha-clean", "ASHA (async promotion)"),
                               ("ordered-slow", "ordered-clean", "ASHA (ordered promotion)"),
                               ("hb-slow", "asha-clean", "HyperBand (sync) vs ASHA async clean")):
        if slow not in at or clean not in at:
            continue
        pairs = list(zip(column(slow), column(clean)))
        per_epoch = list(zip(column(slow, lambda v: v[0] / v[1]["epochs"]), column(clean, lambda v: v[0] / v[1]["epochs"])))
        slots = list(zip(column(slow, lambda v: v[1]["slot_s"]), column(clean, lambda v: v[1]["slot_s"])))
        per_train = lambda v: v[1]["train_s"] / v[1]["epochs"]  # noqa: E731
        trains = list(zip(column(slow, per_train), column(clean, per_train)))
        print(f"  {label}: stragglers / clean wall {spread([a / b for a, b in pairs])}   target <= 1.2")
        print(f"      per trained epoch {spread([a / b for a, b in per_epoch])}   "
              f"slot-time floor {spread([a / b for a, b in slots])}")
        print(f"      training time per epoch, injected sleep excluded {spread([a / b for a, b in trains])}"
              "   (< 1: a sleeping straggler left its CPU share to the others)")


def slow_trials(folder: Path, trials: int, repeats: int, names: list[str]) -> None:
    # four trial slots: half a CPU each on two cores
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        rounds = repeat(folder, "trials", trials, SLOW_TRIALS, 0.5, repeats, names)
    finally:
        ray.shutdown()
    report(f"quickstart CNN, {trials} trials, 12 epochs max, 4 at a time on 2 CPUs; "
           "stragglers: 25 % of trials 4x slower", rounds, names)


def slow_node(folder: Path, trials: int, repeats: int, names: list[str]) -> None:
    from ray.cluster_utils import Cluster

    # four one-slot nodes on this machine's two cores; one of them offers `slow_node`, and trials there crawl
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for i in range(4):
            cluster.add_node(num_cpus=1, resources={"slow_node": 1} if i == 0 else {})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        rounds = repeat(folder, "node", trials, SLOW_NODE, 1, repeats, names)
    finally:
        ray.shutdown()
        cluster.shutdown()
    report(f"quickstart CNN, {trials} trials, 12 epochs max, 4 one-slot nodes on 2 CPUs; "
           "stragglers: one node 4x slower", rounds, names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--scenario", choices=("trials", "node", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    every = [name for name, _, _ in VARIANTS]
    parser.add_argument("--variants", default=",".join(every),
                        help=f"comma-separated subset of {','.join(every)} (default: all)")
    args = parser.parse_args()
    names = args.variants.split(",")
    if not names or set(names) - set(every):
        parser.error(f"--variants: unknown {sorted(set(names) - set(every))}; choose from {','.join(every)}")
    with tempfile.TemporaryDirectory(prefix="hypernas-stragglers-") as folder:
        if args.scenario in ("trials", "both"):
            slow_trials(Path(folder), args.trials, args.repeats, names)
        if args.scenario in ("node", "both"):
            slow_node(Path(folder), args.trials, args.repeats, names)


if __name__ == "__main__":
    main()
