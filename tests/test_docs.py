"""The docs stay true: every agent key is documented, and the examples work."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import yaml
from realtalk.agents import agent_schema, check_document
from realtalk.plugins import load_plugins
from realtalk.tools import validate_arguments
from realtalk.yamlfile import YamlDocument

DOCS = Path(__file__).resolve().parent.parent / "docs"


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_every_agent_key_is_documented_and_nothing_else() -> None:
    text = (DOCS / "agents.md").read_text()
    keys_section = text.split("## Keys", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^### (\w+)$", keys_section, flags=re.MULTILINE)
    assert sorted(documented) == sorted(agent_schema()["properties"])


def test_agent_examples_in_docs_validate() -> None:
    # A block starting "# FILE" is a file for the shell sessions after it (some are wrong on
    # purpose): tests/test_docs_examples.py runs those and compares what they print.
    examples = [b for b in blocks((DOCS / "agents.md").read_text(), "yaml") if not b.startswith("# ")]
    assert len(examples) >= 10
    for example in examples:
        data = yaml.safe_load(example)
        data.setdefault("instructions", "x")
        problems = check_document(YamlDocument(data=data, file=Path("docs/agents.md")))
        assert problems == [], example


def test_plugin_guide_example_works(make_plugin: Any) -> None:
    text = (DOCS / "plugins" / "writing.md").read_text()
    tools_yaml = blocks(text, "yaml")[0]
    _typed, hook, handlers = blocks(text, "python")
    make_plugin("realtalk-weather", hook, files={"tools.yaml": tools_yaml, "handlers.py": handlers})
    plugins = load_plugins(allow=["realtalk-weather"])
    assert plugins.problems == []
    tool = plugins.registry.get("get_weather")
    assert tool is not None and tool.timeout_s == 10
    assert validate_arguments(tool, '{"city": "Lisbon", "unit": "kelvin"}').error
    check = validate_arguments(tool, '{"city": "Lisbon"}')
    assert tool.handler is not None and tool.handler(**(check.arguments or {}))["city"] == "Lisbon"


def test_plugin_guide_typed_example_works(make_plugin: Any) -> None:
    typed = blocks((DOCS / "plugins" / "writing.md").read_text(), "python")[0]
    make_plugin("realtalk-weather-typed", typed)
    plugins = load_plugins(allow=["realtalk-weather-typed"])
    assert plugins.problems == []
    tool = plugins.registry.get("get_weather")
    assert tool is not None and tool.timeout_s == 10
    assert tool.parameters["required"] == ["city"]
    assert tool.parameters["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert validate_arguments(tool, '{"city": "Lisbon", "unit": "kelvin"}').error
    check = validate_arguments(tool, '{"city": "Lisbon"}')
    assert tool.handler is not None and tool.handler(**(check.values or {}))["unit"] == "celsius"


def test_hooks_doc_example_works(make_plugin: Any) -> None:
    [example] = [b for b in blocks((DOCS / "plugins" / "hooks.md").read_text(), "python") if "say_hello" in b]
    make_plugin("realtalk-hello-doc", textwrap.dedent(example))
    tool = load_plugins(allow=["realtalk-hello-doc"]).registry.get("say_hello")
    assert tool is not None and tool.handler is not None
    assert tool.handler(name="Ada") == "Hello, Ada!"


def test_every_cli_command_is_documented() -> None:
    import argparse

    from realtalk.cli import _parser

    text = (DOCS / "cli.md").read_text()
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in sub.choices:
        assert f"## realtalk {command}\n" in text, command


def test_readme_test_command_is_what_ci_runs() -> None:
    root = DOCS.parent
    commands = blocks((root / "README.md").read_text(), "")
    ci = (root / ".ci" / "run").read_text().splitlines()
    assert commands[1].strip() in ci  # the whole line, verbatim
    lint = [line for line in ci if "mypy --strict" in line and not line.startswith("#")]
    assert lint and "ruff check ." in lint[0], "CI must run mypy --strict and ruff"
    assert "realtalk run agents/concierge.yaml --emulator" in commands[0]


def test_readme_links_exist() -> None:
    root = DOCS.parent
    for link in re.findall(r"\]\((docs/[^)]+)\)", (root / "README.md").read_text()):
        assert (root / link).exists(), link


def test_architecture_page_names_only_modules_that_exist() -> None:
    text = (DOCS / "architecture.md").read_text()
    core = DOCS.parent / "core" / "realtalk"
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py|[a-z_]+/)`", text))
    assert len(named) > 20
    missing = sorted(name for name in named
                     if not (DOCS.parent / name if name.startswith("tests/") else core / name).exists())
    assert missing == []
    # and every module of the sans-I/O core is on the page
    for module in sorted((core / "protocol").glob("*.py")):
        if module.name != "__init__.py":
            assert f"protocol/{module.name}" in text, module.name


def test_typed_tools_examples_print_what_the_page_shows(capsys: Any) -> None:
    # The page's Python blocks run in order in one namespace, like a script; a block
    # followed by an ```output block must print exactly that.
    import contextlib
    import io

    text = (DOCS / "plugins" / "typed-tools.md").read_text()
    parts = re.findall(r"```(python|output)\n(.*?)```", text, flags=re.DOTALL)
    namespace: dict[str, Any] = {"__name__": "reservations"}
    checked = 0
    for index, (kind, body) in enumerate(parts):
        if kind != "python":
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(body, f"typed-tools.md block {index}", "exec"), namespace)  # noqa: S102 - the docs' own examples
        if index + 1 < len(parts) and parts[index + 1][0] == "output":
            assert printed.getvalue() == parts[index + 1][1], f"block {index}"
            checked += 1
    assert checked >= 3
