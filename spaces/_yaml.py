"""YAML reading and writing shared by spaces and experiment configs.

PyYAML follows YAML 1.1, where ``1e-4`` (no dot) is a *string*; users write learning rates that way, so the
loader here also resolves YAML 1.2 style floats. Everything else is ``yaml.safe_load``, with the rules an input
file must keep (a broken one is a :class:`YamlDocumentError` naming the place, never a silent surprise):

* each key appears once in its mapping (``yaml.safe_load`` keeps the last value of a duplicate without a word);
* no anchors or aliases (``&a`` / ``*a``): an alias "bomb" of a few lines expands to billions of values in any
  copy of the document, and an experiment file never needs them;
* at most :data:`MAX_DEPTH` levels of nesting; only the standard YAML tags; values that can be read
  (``2024-13-01`` is not a date, an integer of 5,000 digits is not an integer).
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 20  # an experiment file needs about five levels (space.lr.when.optimizer[0])
_INT_TAG = "tag:yaml.org,2002:int"


class YamlDocumentError(yaml.YAMLError):
    """A YAML text that cannot be read, or breaks one of the rules above. ``path`` names the place in the
    document (``budget.trials``, ``faults[0]``; ``""`` for the whole text); ``rule`` is one line."""

    def __init__(self, path: str, rule: str) -> None:
        self.path = path
        self.rule = rule
        super().__init__(f"{path}: {rule}" if path else rule)


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _one_line(err: yaml.YAMLError) -> str:
    """PyYAML's message (several lines with a source snippet) as one line: what is wrong, and where."""
    if isinstance(err, yaml.MarkedYAMLError):
        text = "; ".join(part for part in (err.context, err.problem) if part)
        return " ".join(f"{text}{_where(err.problem_mark or err.context_mark)}".split())
    if isinstance(err, yaml.reader.ReaderError):
        return f"unacceptable character #x{err.character:04x} at position {err.position}" \
            if isinstance(err.character, int) else f"cannot decode the text ({err.reason})"
    return " ".join(str(err).split())


class _Loader(yaml.SafeLoader):
    """SafeLoader that tracks where it is (for error messages) and enforces the module's rules while composing,
    before anything is constructed or copied."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._path: list[str | None] = []

    def _path_text(self) -> str:
        out = ""
        for part in self._path:
            if part is None:
                continue
            part = part if part.isprintable() and part.strip() == part and part else repr(part)  # one line
            out += part if part.startswith("[") or not out else f".{part}"
        return out

    def _fail(self, rule: str, mark: Any) -> None:
        raise YamlDocumentError(self._path_text(), f"{rule}{_where(mark)}")

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # The place of the node about to be composed: a mapping key (None: stays at the mapping's own path),
        # a mapping value (the key's text) or a sequence item ([i]).
        if isinstance(parent, SequenceNode):
            self._path.append(f"[{index}]")
        elif isinstance(index, ScalarNode):
            self._path.append(index.value)
        elif isinstance(index, Node):
            self._path.append("?")  # a complex key: construction rejects it below
        else:
            self._path.append(None)
        try:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                self._fail(f"aliases (*{event.anchor}) are not allowed: write the value out", event.start_mark)
            if event.anchor is not None:
                self._fail(f"anchors (&{event.anchor}) are not allowed: write each value out", event.start_mark)
            if len([p for p in self._path if p is not None]) > MAX_DEPTH:
                self._fail(f"nesting deeper than {MAX_DEPTH} levels is not allowed", event.start_mark)
            node = super().compose_node(parent, index)
            self._check(node)
            return node
        finally:
            self._path.pop()

    def _check(self, node: Node) -> None:
        if node.tag == "tag:yaml.org,2002:merge":
            self._fail("merge keys (<<) are not allowed: write the settings out", node.start_mark)
        if node.tag not in self.yaml_constructors:
            self._fail(f"the YAML tag {node.tag} is not supported", node.start_mark)
        if isinstance(node, ScalarNode):
            if node.tag == _INT_TAG and len(node.value) > 1000:
                self._fail(f"an integer of {len(node.value)} characters is not a number this file can hold",
                           node.start_mark)
            try:  # constructed now (and cached) so an unreadable value is reported at its place
                self.construct_object(node)
            except (ValueError, OverflowError, yaml.constructor.ConstructorError) as err:
                problem = err.problem if isinstance(err, yaml.MarkedYAMLError) else str(err)
                self._fail(f"cannot read {node.value[:40]!r} ({problem})", node.start_mark)
        elif isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode):
                    continue  # unhashable: the constructor rejects it
                key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue
                if first is not key_node:
                    a, b = first.start_mark, key_node.start_mark
                    where = f"lines {a.line + 1} and {b.line + 1}" if a.line != b.line else \
                        f"line {a.line + 1}, columns {a.column + 1} and {b.column + 1}"
                    self._path.append(key_node.value)
                    self._fail(f"appears twice in one mapping ({where}); write each key once", None)


_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # the loader refuses aliases, so a value used twice is written out twice


def load_yaml(text: str) -> Any:
    """Parse YAML text (``1e-4`` is a float). Raises :class:`YamlDocumentError` (a ``yaml.YAMLError``) with a
    one-line message on syntax errors, duplicate keys, anchors/aliases, deep nesting and unreadable values."""
    try:
        loader = _Loader(text)
    except yaml.YAMLError as err:  # the reader checks the characters up front
        raise YamlDocumentError("", _one_line(err)) from None
    try:
        return loader.get_single_data()
    except YamlDocumentError:
        raise
    except yaml.YAMLError as err:
        raise YamlDocumentError("", _one_line(err)) from None
    finally:
        loader.dispose()


def dump_yaml(data: Any) -> str:
    """Block-style YAML that keeps key order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
