from __future__ import annotations

from pathlib import Path

import pytest
from realtalk.exceptions import ConfigError
from realtalk.yamlfile import json_path, load_yaml


def test_lines_of_keys_and_items(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\nlist:\n  - x\n  - {k: v}\n")
    doc = load_yaml(path)
    assert doc.data == {"a": 1, "list": ["x", {"k": "v"}]}
    assert doc.line_of(["a"]) == 1
    assert doc.line_of(["list", 1]) == 4
    assert doc.line_of(["list", 1, "k"]) == 4
    assert doc.line_of(["list", 1, "missing"]) == 4  # falls back to the closest ancestor


def test_syntax_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\nb: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value).startswith(f"{path}:3: YAML syntax error")


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_yaml(tmp_path / "missing.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: \xe9\xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml(path)


def test_unsafe_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_yaml(path)


def test_json_path() -> None:
    assert json_path([]) == "$"
    assert json_path(["tools", 1, "name"]) == "$.tools[1].name"
