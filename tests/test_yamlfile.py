from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from realtalk.exceptions import ConfigError
from realtalk.yamlfile import MAX_DEPTH, MAX_NODES, json_path, load_yaml


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


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "instructions: x\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("loader", [True, False], ids=["libyaml", "python"])
def test_alias_bomb_is_refused_at_its_line(tmp_path: Path, loader: bool) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # 9**10 values once expanded
    with pytest.raises(ConfigError) as info:
        _load_with(path, loader)
    assert str(info.value).startswith(f"{path}:7: the document expands to more than {MAX_NODES} values")


def test_aliases_within_the_limit_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(_bomb(3))  # 9**4 values
    doc = load_yaml(path)
    assert len(doc.data["a3"]) == 9 and doc.data["a3"][8][8][8] == doc.data["a0"]


@pytest.mark.parametrize("loader", [True, False], ids=["libyaml", "python"])
def test_deep_nesting_is_refused(tmp_path: Path, loader: bool) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("instructions: x\nd: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(ConfigError) as info:
        _load_with(path, loader)
    assert str(info.value) == f"{path}:2: nested more than {MAX_DEPTH} levels deep"
    # Deeper than libyaml's own limit, or than Python's recursion limit: still one line.
    path.write_text("d: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: "):
        _load_with(path, loader)


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("instructions: x\nd: &a [1, *a]\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: alias \*a refers to a node that contains it$"):
        load_yaml(path)


TRICKY = [
    "a: 1\r\nb:\r\n  - x\r\n  - y\r\n",
    "a: |\n  one\n  two\n\nb: >\n  folded\n  text\nc: [1,\n  2, {k: v,\n  j: w}]\n",
    "# comment\n---\nbase: &b {voice: marin, speed: 1}\nagent:\n  <<: *b\n  voice: cedar\n",
    "a: 'quoted\n  across lines'\nb: \"é ü\u2028next\"\nc:\n- 1\n-\n  - 2\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_libyaml_and_python_agree_on_data_and_lines(tmp_path: Path, text: str) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(text, encoding="utf-8", newline="")
    fast, slow = _load_with(path, True), _load_with(path, False)
    assert fast.data == slow.data == yaml.safe_load(text)
    assert fast.lines == slow.lines


def test_merge_keys_keep_the_override_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(TRICKY[2])
    doc = load_yaml(path)
    assert doc.data["agent"] == {"voice": "cedar", "speed": 1}
    assert doc.line_of(["agent", "voice"]) == 6


def _load_with(path: Path, libyaml: bool) -> Any:
    return load_yaml(path, libyaml=libyaml)


@pytest.fixture(autouse=True)
def _has_libyaml(require: Any) -> None:
    # The C loader is what realtalk prefers: its tests must not pass by falling back.
    require(yaml.__with_libyaml__, "PyYAML built with libyaml (apt-get install -y libyaml-dev; pip install pyyaml)")
