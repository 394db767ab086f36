"""The built-in schedulers — Ray Tune's own classes, configured in epochs — one module each; importing this
package registers them in :data:`search.registry.SCHEDULERS`, in the order errors and listings show them."""

from search.schedulers import asha, hyperband, median, none  # noqa: F401 - registration order

__all__: list[str] = []
