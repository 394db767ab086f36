import os
import subprocess
import sys

import pytest

from trainers import resolve_trainer


def test_builtins_and_user_functions_resolve():
    assert resolve_trainer("cnn").hyperparameters["kernel_size"].choices == (3, 5, 7, 9)
    from trainers.nas import recipe as nas
    from trainers.recipes import cnn, mlp

    for name, module in {"mlp": mlp, "cnn": cnn, "nas": nas}.items():  # each declared once: the recipe's own
        trainer = resolve_trainer(name)
        assert trainer.hyperparameters is module.HYPERPARAMETERS and trainer.metrics is module.METRICS
    custom = resolve_trainer("examples.custom_trainer:train")
    assert set(custom.hyperparameters) == {"lr", "l2", "batch_size"} and custom.metrics == ("val_accuracy", "val_loss")


@pytest.mark.parametrize("name, message", [
    ("resnet", "unknown trainer 'resnet'"),
    ("no_such_module:train", "cannot import module 'no_such_module'"),
    ("examples.custom_trainer:nope", "has no function 'nope'"),
    ("", "must be a built-in trainer"),
])
def test_unknown_trainers_are_clear_errors(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_trainer(name)


def test_trainers_import_neither_ray_nor_mlflow():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = "import sys, trainers; print(sorted(m for m in ('ray', 'mlflow', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
