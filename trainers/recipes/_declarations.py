"""What the built-in ``mlp`` and ``cnn`` recipes declare — hyperparameters, activation names, the metrics they
report — without importing torch.

An experiment config is checked against these before anything runs (``hypernas validate``), and that check
should not pay for torch. Each setting is defined here only: the recipes (``mlp.py``, ``cnn.py``, the ``nas``
recipe) and their training loop (``_fit.py``) import it from here.
"""

from __future__ import annotations

from trainers.hardware import HARDWARE_METRICS
from trainers.hyper import Hyper

# Shared by every recipe that trains with fit_classifier; recipes add their model's own hyperparameters.
TRAINING_HYPERPARAMETERS: dict[str, Hyper] = {
    "lr": Hyper(3e-3, "peak learning rate", low=1e-7, high=10.0),
    "weight_decay": Hyper(1e-2, "decoupled (adamw) or L2 (sgd, adam) weight decay", low=0.0, high=1.0),
    "optimizer": Hyper("adamw", "optimiser", choices=("adamw", "adam", "sgd")),
    "momentum": Hyper(0.9, "SGD momentum (nesterov)", low=0.0, high=0.999),
    "batch_size": Hyper(128, "mini-batch size", low=1, high=65536, integer=True),
    "schedule": Hyper("onecycle", "learning-rate schedule", choices=("constant", "cosine", "onecycle")),
    "label_smoothing": Hyper(0.0, "cross-entropy label smoothing", low=0.0, high=0.5),
    "augment_shift": Hyper(0, "random shift of each signal by up to this many steps (0 = off)", low=0, high=1000,
                           integer=True),
    "precision": Hyper("fp32", "forward passes in float32, or under bfloat16 autocast (weights stay float32)",
                       choices=("fp32", "bf16")),
}

# What fit_classifier reports each epoch (validation metrics only while a validation split exists), including
# the model's hardware profile (constant over a trial; usable in `constraints:`).
CLASSIFIER_METRICS = ("val_accuracy", "val_loss", "train_loss", "epoch_time_s", *HARDWARE_METRICS)

# Activations by name (``_layers.ACTIVATIONS`` maps each to its torch module).
ACTIVATION_NAMES = ("relu", "gelu", "silu")

MLP_HYPERPARAMETERS: dict[str, Hyper] = {
    **TRAINING_HYPERPARAMETERS,
    "width": Hyper(256, "hidden units per layer", low=1, high=65536, integer=True),
    "depth": Hyper(2, "hidden layers", low=0, high=64, integer=True),
    "dropout": Hyper(0.1, "dropout after each hidden layer", low=0.0, high=0.95),
    "activation": Hyper("gelu", "activation", choices=ACTIVATION_NAMES),
    "norm": Hyper("layer", "normalisation after each hidden linear layer", choices=("none", "batch", "layer")),
}

CNN_HYPERPARAMETERS: dict[str, Hyper] = {
    **TRAINING_HYPERPARAMETERS,
    "width": Hyper(64, "channels of the first block (doubled at each downsampling)", low=1, high=4096, integer=True),
    "depth": Hyper(4, "convolution blocks after the stem", low=1, high=32, integer=True),
    "kernel_size": Hyper(5, "convolution kernel size (odd)", choices=(3, 5, 7, 9)),
    "downsample_every": Hyper(2, "halve the length every this many blocks (0 = never)", low=0, high=32, integer=True),
    "norm": Hyper("batch", "normalisation after each convolution", choices=("none", "batch")),
    "activation": Hyper("gelu", "activation", choices=ACTIVATION_NAMES),
    "dropout": Hyper(0.1, "dropout before the classifier", low=0.0, high=0.95),
}
