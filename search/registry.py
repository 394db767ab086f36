"""The searchers and schedulers an experiment can name: each declared once — name, summary, settings schema,
factory — and read from here by config validation, the samplers and schedulers built for a run, the CLI's help
and the README's table.

An entry is plain data. Its settings schema is a frozen dataclass whose fields are declared with :func:`setting`
(default, checker, one line of help): the config parser takes exactly those keys from the ``searcher:`` or
``scheduler:`` section with the same checkers and errors as every other section, and the parsed config carries
the type's name and one instance of that dataclass — never the settings of other types. The factory builds the
library object from the settings and imports its library (Optuna, Ray Tune) inside its body, so declaring,
listing and validating load neither: ``hypernas validate`` stays light, and only the Optuna adapter
(:func:`search._optuna.make_sampler`) and the Ray adapter (:func:`search._tune._scheduling.make_scheduler`)
ever call a factory.

Adding a searcher or a scheduler is one module and its tests: a module under ``search/searchers/`` or
``search/schedulers/`` that calls :meth:`Registry.register`, listed in that package's ``__init__`` (built-ins; a
user's own entry registers from any module imported before the config is validated, e.g. the trainer's)::

    @dataclass(frozen=True)
    class QMCSettings:
        scramble: bool = setting(True, _bool, "scramble the Sobol sequence")

    def _make(settings, space, seed, constrained):
        import optuna
        return optuna.samplers.QMCSampler(scramble=settings.scramble, seed=seed)

    SEARCHERS.register(Searcher("qmc", "quasi-Monte Carlo (Sobol) points", QMCSettings, _make))

``python -m search.registry`` lists them; ``--markdown`` prints the README's table (a test keeps the two equal).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

__all__ = ["NoSettings", "Registry", "SCHEDULERS", "SEARCHERS", "Scheduler", "Searcher", "markdown", "setting",
           "settings_schema"]


def setting(default: Any, check: Callable[[str, Any], Any], help: str) -> Any:  # noqa: A002 - argparse's word
    """One field of a settings schema: its default, its checker (``check(path, value)`` returns the value or
    raises :class:`~search.config.ConfigError`) and one line of help for the CLI and the README."""
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def settings_schema(settings: type) -> tuple[dataclasses.Field, ...]:
    """The declared settings of a settings dataclass, in declaration order (the order errors list them in)."""
    return dataclasses.fields(settings)


@dataclass(frozen=True)
class NoSettings:
    """The schema of a type that takes no settings besides ``type``."""


def _no_check(settings: Any, context: Any) -> None:
    return None


def _unbounded(settings: Any, space: Any) -> int | None:
    return None


@dataclass(frozen=True)
class Searcher:
    """A searcher: which configuration to try next. ``factory(settings, space, seed, constrained)`` returns an
    ``optuna.samplers.BaseSampler`` seeded with ``seed``; ``constrained``: trials carry constraint values.
    ``check(settings, space)`` enforces rules that span settings or need the space (raises ConfigError).
    ``max_trials(settings, space)``: the most distinct trials it can propose (a grid's size), ``None``: no bound.
    ``multi_objective``: it can search several objectives at once (``objectives:``); the others refuse them."""

    name: str
    summary: str
    settings: type
    factory: Callable[..., Any]
    check: Callable[[Any, Any], None] = _no_check
    max_trials: Callable[[Any, Any], int | None] = _unbounded
    multi_objective: bool = False


@dataclass(frozen=True)
class Scheduler:
    """A scheduler: continue, pause or stop a trial at an epoch. ``factory(settings, max_epochs)`` returns a Ray
    Tune ``TrialScheduler`` counting fidelity in epochs. ``check(settings, max_epochs)`` enforces rules that span
    settings (raises ConfigError). ``order_independent``: its decisions, taken in trial-number order, depend on the
    trials' results only — so it works with ``reproducible: strict``. ``pauses_trials``: it pauses trials to resume
    them later, which a concurrency limit would deadlock (Ray counts paused trials as running)."""

    name: str
    summary: str
    settings: type
    factory: Callable[..., Any]
    check: Callable[[Any, int], None] = _no_check
    order_independent: bool = False
    pauses_trials: bool = False


E = TypeVar("E", Searcher, Scheduler)


class Registry(Generic[E]):
    """Entries by name, in registration order. The built-ins (``builtins``, a package importing one module per
    entry) load on first lookup, so importing this module costs nothing and a lookup always sees them."""

    def __init__(self, kind: str, builtins: str) -> None:
        self.kind = kind
        self._builtins = builtins
        self._entries: dict[str, E] = {}

    def register(self, entry: E) -> E:
        """Add ``entry``; a second, different entry under a taken name is an error (no silent override)."""
        known = self._entries.get(entry.name)
        if known is not None and known != entry:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a throw-away entry)."""
        self._entries.pop(name, None)

    def _loaded(self) -> dict[str, E]:
        if self._builtins not in sys.modules:
            importlib.import_module(self._builtins)
        return self._entries

    def __getitem__(self, name: str) -> E:
        entry = self._loaded().get(name)
        if entry is None:
            raise KeyError(f"unknown {self.kind} {name!r} (registered: {', '.join(self.names())})")
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._loaded().values()))

    def names(self) -> tuple[str, ...]:
        return tuple(self._loaded())


SEARCHERS: Registry[Searcher] = Registry("searcher", "search.searchers")
SCHEDULERS: Registry[Scheduler] = Registry("scheduler", "search.schedulers")


# --- listings: the CLI's help and the README's table -------------------------------------------------------------


def _default(field: dataclasses.Field) -> str:
    value = field.default
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def listing() -> str:
    """Plain-text listing for ``--help``: one line per type, then its settings with their defaults."""
    lines = []
    for registry, common in ((SEARCHERS, ""), (SCHEDULERS, " (each also takes max_epochs, default 10)")):
        lines.append(f"{registry.kind} types{common}:")
        for entry in registry:
            lines.append(textwrap.fill(_plain(entry.summary), 100, initial_indent=f"  {entry.name:<10} ",
                                       subsequent_indent=" " * 13))
            lines += [textwrap.fill(f"{f.name}: {_plain(f.metadata['help'])} (default {_default(f)})", 100,
                                    initial_indent=" " * 15, subsequent_indent=" " * 17)
                      for f in settings_schema(entry.settings)]
    return "\n".join(lines)


def _plain(text: str) -> str:
    return text.replace("`", "")


def markdown() -> str:
    """The README's table of searchers and schedulers (between its ``registry`` markers)."""
    lines = ["| `searcher.type` | what it does | settings (default) |", "|---|---|---|"]
    lines += [_row(entry) for entry in SEARCHERS]
    lines += ["", "Several objectives (`objectives:`) need a multi-objective searcher: "
                  f"{_either([e.name for e in SEARCHERS if e.multi_objective])} (the others refuse them)."]
    lines += ["", "| `scheduler.type` | what it does | settings (default) |", "|---|---|---|"]
    lines += [_row(entry) for entry in SCHEDULERS]
    lines += ["", "Every scheduler also takes `max_epochs` (default 10): each trial's full budget in epochs. "
                  "Strict reproducibility (`reproducible: strict`) works with "
                  f"{_either([e.name for e in SCHEDULERS if e.order_independent])}; "
                  f"{_either([e.name for e in SCHEDULERS if e.pauses_trials])} pauses trials and takes no "
                  "`budget.max_concurrent`."]
    return "\n".join(lines)


def _row(entry: Searcher | Scheduler) -> str:
    settings = "<br>".join(f"`{f.name}` ({_default(f)}): {f.metadata['help']}" for f in settings_schema(entry.settings))
    return f"| `{entry.name}` | {entry.summary} | {settings or '—'} |"


def _either(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    quoted = [f"`{n}`" for n in names]
    return " or ".join(quoted) if len(quoted) < 3 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


if __name__ == "__main__":
    from search import registry  # the module the entries register with (this one runs as __main__)

    print(registry.markdown() if "--markdown" in sys.argv[1:] else registry.listing())
