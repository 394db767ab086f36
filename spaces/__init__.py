"""What can be searched: parameter types (hyperparameters and NAS cells) and the ``Space`` that holds them.
Pure data — no torch, ray or mlflow.

>>> from spaces import Float, Space
>>> Space({"lr": Float(1e-4, 1e-1, log=True)}).to_dict()
{'lr': {'type': 'float', 'low': 0.0001, 'high': 0.1, 'log': True}}
"""

from spaces._build import Param, param_from_dict
from spaces._errors import SpaceError
from spaces._params import Categorical, Constant, Float, Int, When
from spaces._space import Space
from spaces.nas import DartsCell, Genotype, NB201Cell
from spaces._yaml import YamlDocumentError, dump_yaml, load_yaml

__all__ = [
    "Categorical",
    "Constant",
    "DartsCell",
    "Genotype",
    "NB201Cell",
    "Float",
    "Int",
    "Param",
    "Space",
    "SpaceError",
    "When",
    "YamlDocumentError",
    "dump_yaml",
    "load_yaml",
    "param_from_dict",
]
