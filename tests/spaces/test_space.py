import json
import os
import subprocess
import sys

import pytest

from spaces import Categorical, Constant, Float, Int, Space, SpaceError

YAML = """
optimizer: {type: categorical, choices: [adamw, sgd]}
lr: {type: float, low: 1e-4, high: 1e-1, log: true}
momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: sgd}}
nesterov: {type: categorical, choices: [true, false], when: {momentum: [0.9]}}
epochs: 12
"""


def python_space() -> Space:
    return Space({
        "optimizer": Categorical(["adamw", "sgd"]),
        "lr": Float(1e-4, 1e-1, log=True),
        "momentum": Float(0.5, 0.99, when={"optimizer": ["sgd"]}),
        "nesterov": Categorical([True, False], when={"momentum": 0.9}),
        "epochs": Constant(12),
    })


def test_yaml_and_python_build_the_same_space():
    from_yaml = Space.from_yaml(YAML)
    assert from_yaml == python_space()
    assert from_yaml["lr"].low == 1e-4  # YAML 1.2 float without a dot is a float, not a string


@pytest.mark.parametrize("codec", ["json", "yaml", "dict"])
def test_round_trips(codec):
    space = python_space()
    if codec == "json":
        again = Space.from_json(space.to_json())
    elif codec == "yaml":
        again = Space.from_yaml(space.to_yaml())
    else:
        again = Space.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space and hash(again) == hash(space) and again.fingerprint == space.fingerprint
    assert list(again) == list(space)


def test_equality_ignores_key_order_but_not_values():
    space = python_space()
    reordered = Space(dict(reversed(list(space.to_dict().items()))))
    assert reordered == space and hash(reordered) == hash(space)
    changed = Space({**space.to_dict(), "lr": {"type": "float", "low": 1e-4, "high": 0.2, "log": True}})
    assert changed != space and changed.fingerprint != space.fingerprint


def test_fingerprint_is_stable_across_processes():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.spaces.test_space import python_space;"
            "print(python_space().fingerprint, hash(python_space()))")
    outputs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        outputs.add(subprocess.run([sys.executable, "-c", code, root], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    assert outputs == {f"{python_space().fingerprint} {hash(python_space())}\n"}


def test_active_parameters_follow_conditions_in_chains():
    space = python_space()
    assert space.order.index("optimizer") < space.order.index("momentum") < space.order.index("nesterov")
    assert space.active_names({"optimizer": "adamw", "lr": 0.01, "epochs": 12}) == ("optimizer", "lr", "epochs")
    assert "nesterov" in space.active_names({"optimizer": "sgd", "momentum": 0.9})
    assert "nesterov" not in space.active_names({"optimizer": "sgd", "momentum": 0.8})
    space.check({"optimizer": "sgd", "lr": 0.01, "momentum": 0.8, "epochs": 12})
    with pytest.raises(SpaceError, match="momentum: is not an active parameter"):
        space.check({"optimizer": "adamw", "lr": 0.01, "momentum": 0.8, "epochs": 12})
    with pytest.raises(SpaceError, match="lr: value 2.0 is outside"):
        space.check({"optimizer": "adamw", "lr": 2.0, "epochs": 12})


@pytest.mark.parametrize("raw, path, rule", [
    ({"a": {"type": "int", "low": 1, "high": 3, "when": {"b": 1}}}, "a.when", "unknown parent parameter 'b'"),
    ({"a": {"type": "int", "low": 1, "high": 3, "when": {"a": 1}}}, "a.when", "conditioned on itself"),
    ({"a": {"type": "int", "low": 1, "high": 3, "when": {"b": 1}},
      "b": {"type": "int", "low": 1, "high": 3, "when": {"a": 2}}}, "a.when", "cycle: a -> b -> a"),
    ({"o": {"type": "categorical", "choices": ["x"]},
      "m": {"type": "float", "low": 0, "high": 1, "when": {"o": "y"}}}, "m.when", "can never take 'y'"),
    ({"lr": {"type": "float", "low": 1, "high": 0.5}}, "lr.low", "low < high"),
    ({"1lr": 3}, "1lr", "parameter names"),
    ({"m": {"type": "float", "low": 0, "high": 1, "when": {"a": 1, "b": 2}}}, "m.when", "exactly one parent"),
])
def test_space_validation_names_the_parameter(raw, path, rule):
    with pytest.raises(SpaceError) as info:
        Space(raw)
    assert info.value.path == path
    assert rule in str(info.value)


def test_grid_values_and_grid_errors():
    space = Space({"w": Categorical([1, 2]), "d": Int(1, 3), "e": Constant(3)})
    assert space.grid() == {"w": (1, 2), "d": (1, 2, 3)}
    with pytest.raises(SpaceError, match="lr: grid search needs finite values"):
        Space({"lr": Float(0.1, 1.0)}).grid()


def test_spaces_package_imports_no_heavy_frameworks():
    code = "import sys, spaces; print(sorted(m for m in ('torch', 'ray', 'mlflow', 'optuna') if m in sys.modules))"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
