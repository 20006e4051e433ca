"""Loading user YAML with line numbers, so every error can say ``file:line``.

``load_yaml(path)`` returns a :class:`YamlDocument`: the data (from ``yaml.safe_load``
semantics) plus the line of every mapping key and sequence item, addressed by its JSON
path. Agent files, tool files and scenario files all load through here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .exceptions import ConfigError

__all__ = ["YamlDocument", "did_you_mean", "json_path", "load_yaml"]

PathKey = tuple[object, ...]


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


def load_yaml(path: str | Path, text: str | None = None) -> YamlDocument:
    """Parse a YAML file safely and record the line of every key and item.

    Args:
        path: The file to read (also used in error messages).
        text: The file's text, if already read.

    Raises:
        ConfigError: The file cannot be read, is not valid YAML, or repeats a key.
    """
    file = Path(path)
    if text is None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=file) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text ({exc.reason})", file=file) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=file) from None
    lines: dict[PathKey, int] = {}
    if node is not None:
        _walk(node, (), lines, file)
    return YamlDocument(data=data, file=file, lines=lines)
