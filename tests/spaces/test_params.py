import pytest

from spaces import Categorical, Constant, Float, Int, SpaceError, When, param_from_dict


@pytest.mark.parametrize("param", [
    Float(1e-4, 1e-1, log=True),
    Float(0.0, 1.0, step=0.25),
    Int(1, 9, step=2),
    Int(16, 256, log=True),
    Categorical(["adamw", "sgd", 3, 0.5, True, None]),
    Constant(12),
    Float(0.5, 0.99, when={"optimizer": ["sgd"]}),
])
def test_dict_round_trip_and_value_equality(param):
    again = param_from_dict(param.to_dict())
    assert again == param
    assert hash(again) == hash(param)


@pytest.mark.parametrize("build, path, rule", [
    (lambda: Float(1.0, 0.1), "low", "low < high"),
    (lambda: Float(0.1, 0.1), "low", "low < high"),
    (lambda: Float(0.0, 1.0, log=True), "low", "low > 0"),
    (lambda: Float(0.0, 1.0, step=0.3), "step", "multiple of step"),
    (lambda: Float(1e-3, 1.0, log=True, step=0.1), "step", "log-scale"),
    (lambda: Float("a", 1.0), "low", "finite number"),
    (lambda: Int(5, 1), "low", "low < high"),
    (lambda: Int(0, 8, log=True), "low", "low > 0"),
    (lambda: Int(1, 8, step=0), "step", "step >= 1"),
    (lambda: Int(1.5, 8), "low", "integer"),
    (lambda: Int(1, 8, log=True, step=2), "step", "step 1"),
    (lambda: Categorical([]), "choices", "must not be empty"),
    (lambda: Categorical(["a", "a"]), "choices", "unique"),
    (lambda: Categorical("abc"), "choices", "must be a list"),
    (lambda: Categorical([[1, 2]]), "choices", "str, int, float, bool or null"),
    (lambda: Constant({"a": 1}), "value", "str, int, float, bool or null"),
    (lambda: When("opt", []), "when", "must not be empty"),
])
def test_validation_names_the_field_and_the_rule(build, path, rule):
    with pytest.raises(SpaceError) as info:
        build()
    assert info.value.path == path
    assert rule in str(info.value)


def test_bool_and_int_choices_stay_distinct():
    assert Categorical([True, 1]).choices == (True, 1)  # True == 1 in Python, but they are different choices
    assert not When("flag", [True]).holds(1)
    assert When("flag", [True]).holds(True)


@pytest.mark.parametrize("raw, path", [
    ({"type": "float", "low": 0}, "high"),
    ({"type": "float", "low": 0, "high": 1, "lo": 3}, "lo"),
    ({"type": "uniform", "low": 0, "high": 1}, "type"),
    ([1, 2], ""),
])
def test_dict_form_errors(raw, path):
    with pytest.raises(SpaceError) as info:
        param_from_dict(raw)
    assert info.value.path == path


def test_scalar_is_a_constant_and_contains():
    assert param_from_dict(7) == Constant(7)
    assert Float(0, 1, step=0.5).contains(0.5) and not Float(0, 1, step=0.5).contains(0.25)
    assert Int(1, 9, step=2).contains(3) and not Int(1, 9, step=2).contains(4)
    assert Int(1, 9, step=2).grid_values() == (1, 3, 5, 7, 9)
    assert Float(0, 1, step=0.5).grid_values() == (0.0, 0.5, 1.0)
    assert Float(0, 1).grid_values() is None
