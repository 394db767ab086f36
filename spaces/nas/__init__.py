"""Neural-architecture search spaces as data: genotypes and cell parameters (NAS-Bench-201, DARTS-style).

>>> from spaces import Space, Float
>>> from spaces.nas import NB201Cell
>>> space = Space({"cell": NB201Cell(), "lr": Float(1e-3, 1e-1, log=True)})
>>> space["cell"].size
15625
"""

from spaces.nas._cells import CELL_TYPES, DARTS_OPS, NB201_OPS, DartsCell, NB201Cell
from spaces.nas._genotype import CellGenotype, Genotype

__all__ = ["CELL_TYPES", "DARTS_OPS", "NB201_OPS", "CellGenotype", "DartsCell", "Genotype", "NB201Cell"]
