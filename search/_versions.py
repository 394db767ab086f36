"""The one rule for the private-API shims (``search/_tune/_ray_internals.py``, ``search/_optuna/_optuna_internals.py``):
each was written against one release line of its library and refuses any other at import, with a message that
names both releases and what to install."""

from __future__ import annotations


def require_release(library: str, installed: str, supported: str, shim: str, requirement: str) -> None:
    """Raise ``ImportError`` unless ``installed`` is in the ``supported`` ``major.minor`` line.

    >>> require_release("Ray", "2.60.1", "2.60", "x.py", "ray==2.60.0")
    >>> require_release("Ray", "2.61.0", "2.60", "x.py", "ray==2.60.0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ImportError: hypernas supports Ray 2.60.x only ...
    """
    if installed.split(".")[:2] != supported.split("."):
        raise ImportError(
            f"hypernas supports {library} {supported}.x only (it relies on {library} internals that change between "
            f"releases: {shim}), but {library} {installed} is installed; install the supported release: "
            f"pip install '{requirement}'")
