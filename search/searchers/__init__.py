"""The built-in searchers, one module each; importing this package registers them in
:data:`search.registry.SEARCHERS`, in the order errors and listings show them."""

from search.searchers import tpe, random, cmaes, grid, evolution, reinforce  # noqa: F401 - registration order

__all__: list[str] = []
