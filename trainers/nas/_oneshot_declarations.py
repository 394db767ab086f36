"""What the ``oneshot`` recipe (DARTS and ENAS weight-sharing search) declares — its hyperparameters, the cell
space check and its metrics — without importing torch, so configs are checked without it.

Skip-connection collapse (DARTS' cells filling up with parameter-free skips as search goes on) is guarded by
default with a **skip cap** after P-DARTS / DARTS+ (``skip_cap=2``; see ``supernet.derive_genotype``): it acts
on every derivation, whatever the epoch budget, and costs nothing. The DARTS+ early stop (``stability_patience``) is off by default because the
search's scheduler already decides how many epochs a trial gets; turn it on for long stand-alone searches.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from spaces import SpaceError, param_from_dict
from spaces.nas import DartsCell, NB201Cell
from trainers.hyper import Hyper
from trainers.nas._declarations import OP_NAMES
from trainers.recipes._declarations import CLASSIFIER_METRICS, TRAINING_HYPERPARAMETERS

DEFAULT_CELL_SPACE = '{"type": "nb201_cell"}'


def parse_cell_space(value: Any) -> NB201Cell | DartsCell:
    """The cell parameter a ``cell_space`` value (its JSON text, or the dict) describes; ``SpaceError`` otherwise.

    >>> parse_cell_space('{"type": "darts_cell", "nodes": 2}').nodes
    2
    """
    raw = value
    if isinstance(value, str):
        try:
            raw = json.loads(value)
        except json.JSONDecodeError as err:
            raise SpaceError("", f"a cell space is the JSON of a cell parameter, e.g. {DEFAULT_CELL_SPACE} "
                                 f"({err.msg}: {value!r})") from None
    if not isinstance(raw, Mapping):
        raise SpaceError("", f"a cell space is the JSON of a cell parameter, e.g. {DEFAULT_CELL_SPACE} (got {value!r})")
    cell = param_from_dict(raw)
    if not isinstance(cell, (NB201Cell, DartsCell)):
        raise SpaceError("type", f"a cell space is an nb201_cell or darts_cell (got {raw.get('type')!r})")
    if cell.when is not None:
        raise SpaceError("when", "a searched cell space cannot be conditional")
    unknown = [op for op in cell.ops if op not in OP_NAMES]
    if unknown:
        raise SpaceError("ops", f"unknown ops {unknown} (the registry builds: {', '.join(OP_NAMES)})")
    if isinstance(cell, DartsCell) and not set(cell.ops) - {"none"}:
        raise SpaceError("ops", f"a DARTS cell needs an op other than 'none' (got {list(cell.ops)})")
    return cell


def _training(name: str, default: Any) -> Hyper:
    return dataclasses.replace(TRAINING_HYPERPARAMETERS[name], default=default)


# DARTS' search settings (Liu et al. 2019) as defaults: SGD, momentum 0.9, lr 0.025 cosine-annealed, weight decay
# 3e-4, batch 64; 3 stages of 2 cells at 16 channels (DARTS' 8-cell search network: 6 normal, 2 reduction cells).
ONESHOT_HYPERPARAMETERS: dict[str, Hyper] = {
    # a supernet search trains in fp32 (precision is a knob of the recipes that train one model: mlp, cnn, nas)
    **{k: v for k, v in TRAINING_HYPERPARAMETERS.items() if k != "precision"},
    "lr": _training("lr", 0.025),
    "weight_decay": _training("weight_decay", 3e-4),
    "optimizer": _training("optimizer", "sgd"),
    "batch_size": _training("batch_size", 64),
    "schedule": _training("schedule", "cosine"),
    "method": Hyper("darts", "one-shot method: DARTS (gradient) or ENAS (REINFORCE controller)",
                    choices=("darts", "enas")),
    "cell_space": Hyper(DEFAULT_CELL_SPACE, "the searched cell parameter as JSON, e.g. "
                        '{"type": "darts_cell", "nodes": 4}', genotype=parse_cell_space),
    "order": Hyper(1, "DARTS: 1 = first-order, 2 = second-order (unrolled) architecture gradient", choices=(1, 2)),
    "arch_lr": Hyper(3e-3, "DARTS: Adam learning rate of the architecture parameters", low=0.0, high=1.0),
    "arch_weight_decay": Hyper(1e-3, "DARTS: weight decay of the architecture parameters", low=0.0, high=1.0),
    "skip_cap": Hyper(2, "DARTS: most skip_connect edges in the derived normal cell (0 = no cap)", low=0, high=64,
                      integer=True),
    "stability_patience": Hyper(0, "stop once the derived genotype has not changed for this many epochs (0 = off)",
                                low=0, high=10000, integer=True),
    "latency_weight": Hyper(0.0, "DARTS: λ of the expected-latency penalty λ·Σ w·latency_ms (0 = off)", low=0.0,
                            high=1e3),
    "controller_lr": Hyper(3.5e-4, "ENAS: Adam learning rate of the controller", low=0.0, high=1.0),
    "entropy_weight": Hyper(1e-4, "ENAS: weight of the controller's entropy bonus", low=0.0, high=10.0),
    "baseline_decay": Hyper(0.99, "ENAS: decay of the reward's moving-average baseline", low=0.0, high=1.0),
    "stages": Hyper(3, "stages; channels double and resolution halves between stages", low=1, high=5, integer=True),
    "cells": Hyper(2, "mixed cells per stage", low=1, high=32, integer=True),
    "channels": Hyper(16, "channels of the first stage", low=1, high=1024, integer=True),
}

# Besides the classifier metrics (of the derived architecture): the cost of the derived architecture, predicted
# from the per-op table and measured. Each epoch also reports ``alpha.<cell>.e<edge>.<op>`` (architecture
# weights or controller probabilities; the names depend on the cell space) and the string ``genotype``.
ONESHOT_METRICS = (*CLASSIFIER_METRICS, "predicted_latency_ms", "measured_latency_ms", "derived_params")
