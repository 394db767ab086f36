"""What can be searched: parameter types and the ``Space`` that holds them. Pure data — no torch, ray or mlflow.

>>> from spaces import Float, Space
>>> Space({"lr": Float(1e-4, 1e-1, log=True)}).to_dict()
{'lr': {'type': 'float', 'low': 0.0001, 'high': 0.1, 'log': True}}
"""

from spaces._errors import SpaceError
from spaces._params import Categorical, Constant, Float, Int, Param, When, param_from_dict
from spaces._space import Space
from spaces._yaml import dump_yaml, load_yaml

__all__ = [
    "Categorical",
    "Constant",
    "Float",
    "Int",
    "Param",
    "Space",
    "SpaceError",
    "When",
    "dump_yaml",
    "load_yaml",
    "param_from_dict",
]
