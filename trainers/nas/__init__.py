"""Architectures from genotypes: the op registry (1-D and 2-D), the cell network builder, and the ``nas`` recipe."""

from trainers.nas.network import CellNetwork
from trainers.nas.ops import OP_NAMES, OPS, make_op
from trainers.nas.recipe import build_network, check_genotype

__all__ = ["OPS", "OP_NAMES", "CellNetwork", "build_network", "check_genotype", "make_op"]
