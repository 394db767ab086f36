"""Trials/hour and GPU utilisation of MNIST-1D CNN trials: one trial per GPU, fractional packing, batched trials.

    python bench/gpu_throughput.py                          # a GPU machine: 64 trials x 20 epochs per setup
    python bench/gpu_throughput.py --trials 128 --batch-sizes 8 32 64 --fractions 4 8
    python bench/gpu_throughput.py --quick                  # CPU smoke run: 8 trials x 2 epochs, small model

Every setup runs the **same** experiment — the built-in ``cnn`` trainer, random search (seed 0) over lr,
weight_decay and dropout only, with width, depth and batch size fixed (so every trial has one network shape and
can be batched), scheduler ``none`` (Tune's FIFO: no early stopping, every trial trains all ``--epochs``) — and
differs only in how trials are placed:

* ``one-per-gpu``  — ``resources: {gpus: 1, cpus: 1}``, as many at once as there are GPUs;
* ``fractional-F`` — ``gpus: 1/F`` per trial, F x GPUs at once (F processes share each GPU);
* ``batched-K``    — ``trials_per_worker: K``: K trials share one worker process per GPU and train as one
  vectorised model (``trainers.batched``); K x GPUs at once.

Each setup runs in a fresh workdir on one local Ray started once. Reported: wall time of ``run_experiment``,
trials/hour, the ratio to ``one-per-gpu``, mean GPU utilisation (NVML, sampled every 0.5 s across all GPUs;
``n/a`` without ``nvidia-ml-py``), and for batched rows the mean ``batch_members`` of ``curves.parquet`` (how many
trials shared each vectorised epoch: that batching really happened). Every trial must end COMPLETE: a failing
trial is fast, and the number would mean nothing.

Target (the issue's acceptance item): a batched setup at >= 10x the one-per-gpu trials/hour with >= 80 % mean
GPU utilisation. On CPU the same matrix runs with CPUs in the GPUs' place (fractional rows emulated with
fractional ``cpus``, i.e. F single-threaded trials per core); the batched rows then show what vectorisation does
without a GPU — probably little, since CPU kernels are already busy.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent)]
# the Ray workers this starts import hypernas from here
os.environ["PYTHONPATH"] = os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")])

from search._tune import configure  # noqa: E402

configure()  # Ray's environment before ray is imported
import ray  # noqa: E402

SEED = 0


def experiment(name: str, args: argparse.Namespace, resources: dict[str, Any], concurrent: int) -> dict[str, Any]:
    """The one experiment every setup runs; only ``resources`` and ``max_concurrent`` change."""
    return {
        "name": name, "seed": SEED, "trainer": "cnn",
        "data": {"source": "mnist1d", "num_samples": args.num_samples},
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "weight_decay": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.3},
            "width": args.width, "depth": args.depth, "batch_size": 128, "epochs": args.epochs,
        },
        "metric": {"name": "val_accuracy", "mode": "max"},
        "searcher": "random",
        "scheduler": {"type": "none", "max_epochs": args.epochs},
        "budget": {"trials": args.trials, "max_concurrent": concurrent},
        "resources": resources,
    }


def setups(args: argparse.Namespace, gpus: int, cpus: int) -> list[tuple[str, dict[str, Any], int]]:
    """(name, resources, max_concurrent) per row. On CPU the "devices" are the CPUs."""
    devices = gpus or cpus
    rows: list[tuple[str, dict[str, Any], int]] = [("one-per-gpu", {"cpus": 1, "gpus": 1} if gpus else {"cpus": 1},
                                                    devices)]
    for f in args.fractions:
        # on a GPU each trial still needs some CPU: share the cores out when F x GPUs exceeds them
        share = {"cpus": min(1.0, cpus / (f * gpus)), "gpus": 1 / f} if gpus else {"cpus": 1 / f}
        rows.append((f"fractional-{f}", share, f * devices))
    for k in args.batch_sizes:
        rows.append((f"batched-{k}", {"cpus": 1, "gpus": 1 if gpus else 0, "trials_per_worker": k}, k * devices))
    return rows


class UtilSampler:
    """Mean GPU utilisation (%, over all GPUs) sampled every ``period`` s in a background thread while in ``with``."""

    def __init__(self, gpus: int, period: float = 0.5) -> None:
        self._gpus = gpus
        self._read = _utilisation_reader(gpus) if gpus else None
        self._period = period
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            self._samples.append(self._read())

    def __enter__(self) -> UtilSampler:
        if self._read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def mean(self) -> str:
        if self._read is None:
            return "n/a (no NVML)" if self._gpus else "n/a (cpu)"
        return f"{statistics.fmean(self._samples):.0f}" if self._samples else "n/a (run < 0.5 s)"


def _utilisation_reader(gpus: int) -> Callable[[], float] | None:
    """NVML through ``pynvml`` (nvidia-ml-py), else ``torch.cuda.utilization`` (which needs it too), else None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        return lambda: statistics.fmean(pynvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles)
    except Exception:  # noqa: BLE001 - no NVML: try torch's view of it
        pass
    try:
        import torch

        torch.cuda.utilization(0)
        return lambda: statistics.fmean(torch.cuda.utilization(i) for i in range(gpus))
    except Exception:  # noqa: BLE001
        return None


def run_setup(name: str, args: argparse.Namespace, resources: dict[str, Any], concurrent: int,
              gpus: int) -> tuple[float, str, float | None]:
    """Wall seconds, mean GPU utilisation and mean ``batch_members`` of one setup, in a fresh workdir."""
    import pyarrow.parquet as pq
    from search import run_experiment

    config = experiment(name, args, resources, concurrent)
    with tempfile.TemporaryDirectory(prefix=f"hypernas-gpu-throughput-{name}-") as folder:
        with UtilSampler(gpus) as sampler:
            started = time.perf_counter()
            result = run_experiment(config, workdir=Path(folder), stream=io.StringIO())
            seconds = time.perf_counter() - started
        if result.counts.get("COMPLETE", 0) != args.trials:  # a failing trial is fast: the number would mean nothing
            raise RuntimeError(f"{name}: {dict(result.counts)} (expected {args.trials} trials COMPLETE)")
        curves = pq.read_table(result.curves_path)
        members = None
        if "batch_members" in curves.column_names:
            values = [v for v in curves.column("batch_members").to_pylist() if v is not None]
            members = statistics.fmean(values) if values else None
    return seconds, sampler.mean(), members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--trials", type=int, default=64, help="trials per setup")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[8, 32], help="K of the batched-K rows")
    parser.add_argument("--fractions", type=int, nargs="*", default=[4, 8], help="F of the fractional-F rows")
    parser.add_argument("--num-samples", type=int, default=4000, help="MNIST-1D rows")
    parser.add_argument("--width", type=int, default=32, help="CNN width (fixed: one shape for every trial)")
    parser.add_argument("--depth", type=int, default=3, help="CNN depth (fixed)")
    parser.add_argument("--quick", action="store_true",
                        help="CPU smoke run: 2 epochs, 8 trials, K=4, F=2, 1000 rows, width 8, depth 2")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.trials, args.batch_sizes, args.fractions = 2, 8, [4], [2]
        args.num_samples, args.width, args.depth = 1000, 8, 2

    import torch

    gpus = torch.cuda.device_count()
    cpus = os.cpu_count() or 1
    device = torch.cuda.get_device_name(0) if gpus else "cpu"
    ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    print(f"{args.trials} trials x {args.epochs} epochs per setup, CNN width {args.width} depth {args.depth}, "
          f"MNIST-1D {args.num_samples} rows, random search (seed {SEED}), no early stopping; "
          f"{gpus} GPU(s) ({device}), {cpus} CPUs, Ray {ray.__version__}, torch {torch.__version__}")
    if not gpus:
        print("no GPU: CPUs stand in for GPUs (one-per-gpu = one trial per CPU; fractional-F emulated with cpus 1/F, "
              "i.e. F single-threaded trials per core; batched-K = one K-trial worker per CPU)")
    header = f"{'setup':15s} {'trials':>6s} {'epochs':>6s} {'wall s':>8s} {'trials/h':>9s} {'ratio':>6s} " \
             f"{'GPU util %':>13s} {'members':>7s}  device"
    matrix = setups(args, gpus, cpus)
    # warm-up, not timed: imports, Ray worker processes, the MNIST-1D cache — or the first row pays for them all
    name, resources, concurrent = matrix[0]
    run_setup("warm-up", argparse.Namespace(**{**vars(args), "epochs": 1, "trials": concurrent}), resources,
              concurrent, gpus)
    print(header, flush=True)
    base = None
    for name, resources, concurrent in matrix:
        seconds, util, members = run_setup(name, args, resources, concurrent, gpus)
        rate = args.trials / seconds * 3600
        base = base or rate
        shown = f"{members:.1f}" if members is not None else "-"
        print(f"{name:15s} {args.trials:6d} {args.epochs:6d} {seconds:8.1f} {rate:9.0f} {rate / base:5.2f}x "
              f"{util:>13s} {shown:>7s}  {device}", flush=True)
    print("target: a batched row at >= 10x one-per-gpu with >= 80 % mean GPU utilisation" +
          ("" if gpus else " (GPU only; on CPU the ratios show what vectorisation alone does)"))


if __name__ == "__main__":
    main()
