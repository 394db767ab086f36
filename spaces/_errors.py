"""The one error type of ``spaces``: a rule broken at a named place."""

from __future__ import annotations


class SpaceError(ValueError):
    """A search space (or a value checked against it) breaks a rule.

    ``path`` names the offending place (``"lr"``, ``"momentum.when"``); the message always starts with it,
    so callers that nest spaces in larger documents can prefix their own path (see :meth:`at`).
    """

    def __init__(self, path: str, rule: str) -> None:
        self.path = path
        self.rule = rule
        super().__init__(f"{path}: {rule}" if path else rule)

    def at(self, prefix: str) -> "SpaceError":
        """The same error, located under ``prefix`` (``space`` + ``lr`` → ``space.lr``)."""
        path = f"{prefix}.{self.path}" if self.path else prefix
        return SpaceError(path, self.rule)
