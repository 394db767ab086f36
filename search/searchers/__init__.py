"""The built-in searchers, one module each; importing this package registers them in
:data:`search.registry.SEARCHERS`, in the order errors and listings show them."""

from search.searchers import tpe, random, cmaes, grid, evolution, reinforce, motpe, nsga2, nsga3  # noqa: F401 - order

__all__: list[str] = []
