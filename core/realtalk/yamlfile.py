"""Loading user YAML with line numbers, so every error can say ``file:line``.

``load_yaml(path)`` returns a :class:`YamlDocument`: the data (from ``yaml.safe_load``
semantics) plus the line of every mapping key and sequence item, addressed by its JSON
path. Agent files, tool files and scenario files all load through here.

The file is parsed once (by libyaml when PyYAML has it) and composed by a bounded
composer: a document whose aliases expand past :data:`MAX_NODES` nodes (a "billion
laughs" bomb), that nests deeper than :data:`MAX_DEPTH`, or whose alias refers to its own
ancestor is refused with a ``file:line`` error before anything walks the expanded tree.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .exceptions import ConfigError

__all__ = ["MAX_DEPTH", "MAX_NODES", "YamlDocument", "did_you_mean", "json_path", "load_yaml", "read_text"]

PathKey = tuple[object, ...]

MAX_NODES = 100_000
"""Most nodes a document may hold once every alias is expanded (agent files hold ~100)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences a document may have."""


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def json_path(parts: Sequence[object]) -> str:
    """Render path parts as ``$.tools[1].name``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass
class YamlDocument:
    """A parsed YAML file and where each value of it stands.

    Attributes:
        data: The parsed document.
        file: The path it came from.
        lines: 1-based line of each JSON path (as a tuple of keys and indexes).
    """

    data: Any
    file: Path
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, parts: Sequence[object]) -> int | None:
        """The line of ``parts``, or of its closest ancestor that has one."""
        key = tuple(parts)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def error(self, message: str, parts: Sequence[object] = (), cls: type[ConfigError] = ConfigError) -> ConfigError:
        """Build a ConfigError located at ``parts`` in this file."""
        return cls(message, file=self.file, line=self.line_of(parts), json_path=json_path(parts))


def _walk(node: yaml.Node, parts: PathKey, lines: dict[PathKey, int], file: Path) -> None:
    lines.setdefault(parts, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    file=file, line=line, json_path=json_path(parts + (key,)),
                )
            seen[key] = line
            lines[parts + (key,)] = line
            _walk(value_node, parts + (key,), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[parts + (index,)] = item.start_mark.line + 1
            _walk(item, parts + (index,), lines, file)


class _BoundedComposer(yaml.composer.Composer):  # type: ignore[misc]
    """PyYAML's composer, counting the expanded size and depth of what it composes.

    Aliases share the anchored node, so composing stays linear; it is everything that
    walks the data afterwards (line map, schema, JSON) that pays for the expansion. Each
    finished node's expanded size is remembered, so an alias costs one lookup.
    """

    def __init__(self, file: Path) -> None:
        yaml.composer.Composer.__init__(self)
        self.file = file
        self._sizes: dict[yaml.Node, int] = {}
        self._expanded = 0
        self._depth = 0

    def _refuse(self, message: str, mark: Any) -> ConfigError:
        return ConfigError(message, file=self.file, line=mark.line + 1 if mark is not None else None)

    def _count(self, size: int, mark: Any) -> None:
        self._expanded += size
        if self._expanded > MAX_NODES:
            raise self._refuse(
                f"the document expands to more than {MAX_NODES} values (aliases repeated"
                " inside aliases?); realtalk refuses it", mark)

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                if target not in self._sizes:
                    raise self._refuse(f"alias *{event.anchor} refers to a node that contains it", event.start_mark)
                self._count(self._sizes[target], event.start_mark)
            node: yaml.Node = super().compose_node(parent, index)
            return node
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise self._refuse(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        before = self._expanded
        self._count(1, event.start_mark)
        node = super().compose_node(parent, index)
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            self._depth -= 1
        self._sizes[node] = self._expanded - before
        return node


def _loader_class(libyaml: bool = True) -> type[Any]:
    """A safe loader with the bounded composer: on libyaml's parser when PyYAML has it."""
    # PyYAML built without libyaml has no yaml.cyaml.
    cparser: Any = yaml.cyaml.CParser if libyaml and yaml.__with_libyaml__ else None
    if cparser is not None:
        # The composer comes first in the MRO so that it, not CParser's built-in one,
        # runs; libyaml still scans and parses, and its marks carry the same lines.
        class CLoader(_BoundedComposer, cparser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc]
            def __init__(self, stream: str, file: Path) -> None:
                cparser.__init__(self, stream)
                _BoundedComposer.__init__(self, file)
                yaml.constructor.SafeConstructor.__init__(self)
                yaml.resolver.Resolver.__init__(self)

        return CLoader

    class PyLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,  # type: ignore[misc]
                   _BoundedComposer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc]
        def __init__(self, stream: str, file: Path) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            _BoundedComposer.__init__(self, file)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return PyLoader


_LOADERS = {True: _loader_class(True), False: _loader_class(False)}


def read_text(file: Path) -> str:
    """The text of a user's file.

    Raises:
        ConfigError: It cannot be read, or is not UTF-8.
    """
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=file) from None


def load_yaml(path: str | Path, text: str | None = None, *, libyaml: bool = True) -> YamlDocument:
    """Parse a YAML file safely and record the line of every key and item.

    Args:
        path: The file to read (also used in error messages).
        text: The file's text, if already read.
        libyaml: Parse with libyaml when PyYAML has it (fast); False uses PyYAML's
            pure-Python parser. Both give the same data, lines and errors.

    Raises:
        ConfigError: The file cannot be read, is not valid YAML, repeats a key, or is too
            large once its aliases are expanded (:data:`MAX_NODES`) or too deep
            (:data:`MAX_DEPTH`).
    """
    file = Path(path)
    if text is None:
        text = read_text(file)
    loader = _LOADERS[libyaml](text, file)
    try:
        node = loader.get_single_node()
        lines: dict[PathKey, int] = {}
        if node is not None:
            # Before construction: merge keys (<<) rewrite the node in place.
            _walk(node, (), lines, file)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=file) from None
    finally:
        loader.dispose()
    return YamlDocument(data=data, file=file, lines=lines)
