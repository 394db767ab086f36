"""Deterministic training, measured: the CNN recipe twice per device with one seed, and CPU against GPU.

    python bench/determinism.py [--recipe cnn|nas|nas-darts] [--epochs 6] [--seed 3]

Prints, per device, whether two runs gave bit-identical per-epoch metrics, and (with a GPU) the largest
difference between the CPU and GPU curves. Not a test: it reports what it measures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from trainers import MemoryReporter, Mnist1dSource, TrialSpec, resolve_trainer, search_data  # noqa: E402

DARTS = ("normal:|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|dil_conv_3x3~2| "
         "reduce:|max_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~2|max_pool_3x3~1|")
RECIPES = {
    "cnn": ("cnn", {"width": 32, "depth": 3, "augment_shift": 2, "dropout": 0.1}),
    "nas": ("nas", {"channels": 16, "cells": 1, "stages": 3, "pool": "avgmax", "augment_shift": 2, "dropout": 0.1}),
    "nas-darts": ("nas", {"cell": DARTS, "channels": 8, "cells": 1, "stages": 2, "augment_shift": 2}),
}
METRICS = ("train_loss", "val_loss", "val_accuracy")


def curve(recipe: str, data, device: str, epochs: int, seed: int) -> tuple[list[dict], float]:
    name, params = RECIPES[recipe]
    reporter = MemoryReporter()
    started = time.perf_counter()
    resolve_trainer(name).train(TrialSpec(params, data, epochs, seed, device=device, threads=2), reporter)
    return [{k: e[k] for k in METRICS} for e in reporter.history], time.perf_counter() - started


def max_diff(a: list[dict], b: list[dict]) -> dict[str, float]:
    return {k: max(abs(x[k] - y[k]) for x, y in zip(a, b)) for k in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=tuple(RECIPES), default="cnn")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    data = search_data(Mnist1dSource(), seed=0)
    devices = ["cpu"] + (["cuda:0"] if torch.cuda.is_available() else [])
    curves = {}
    for device in devices:
        first, t1 = curve(args.recipe, data, device, args.epochs, args.seed)
        second, t2 = curve(args.recipe, data, device, args.epochs, args.seed)
        name = torch.cuda.get_device_name(0) if device != "cpu" else "cpu"
        verdict = "bit-identical" if first == second else f"DIFFERENT (max diff {max_diff(first, second)})"
        print(f"{args.recipe} {device:7s} {name}: two runs of {args.epochs} epochs {verdict}; {t1:.1f} s and {t2:.1f} s")
        print(f"        final val_accuracy {first[-1]['val_accuracy']:.4f}, val_loss {first[-1]['val_loss']!r}")
        curves[device] = first
    if len(curves) == 2:
        diffs = max_diff(curves["cpu"], curves["cuda:0"])
        same = curves["cpu"] == curves["cuda:0"]
        print(f"cpu vs cuda: {'bit-identical' if same else 'differ'}; largest per-epoch differences: "
              + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    else:
        print("no GPU here: CPU only")


if __name__ == "__main__":
    main()
