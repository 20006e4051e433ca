"""Scenario files: validation with file:line, the docs' examples, the shipped scenarios."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from realtalk.emulator import check_scenario_file, load_scenario
from realtalk.emulator.scenario import Step
from realtalk.exceptions import ScenarioError

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("text", "line", "path", "words"),
    [
        ("turns:\n  - user: hi\n    repyl: oops\n", 3, "$.turns[0].repyl", "unknown key 'repyl'"),
        (
            "turns:\n  - user: hi\n    reply:\n      - say: a\n      - call: 'bad name'\n",
            5,
            "$.turns[0].reply[1].call",
            "must be a name",
        ),
        (
            "turns:\n  - reply: hi\n",
            2,
            "$.turns[0]",
            (
                "exactly one of 'user: TEXT', 'audio: true', 'greeting: true', 'idle: true' or "
                "'out_of_band: TEXT'"
            ),
        ),
        ("turns:\n  - user: hi\n", 2, "$.turns[0]", "needs a 'reply'"),
        ("turns:\n  - user: /([/\n    reply: x\n", 2, "$.turns[0].user", "invalid regex"),
        (
            "turns:\n  - user: hi\n    reply:\n      - call: f\n        arguments: [1]\n",
            5,
            "$.turns[0].reply[0].arguments",
            "mapping, or a string",
        ),
        (
            "turns:\n  - user: hi\n    reply:\n      - say: a\n        handoff: b\n",
            4,
            "$.turns[0].reply[0]",
            "exactly one of say, call, handoff, fail, incomplete or mcp_call",
        ),
        (
            "turns:\n  - user: hi\n    transcript: x\n    reply: a\n",
            3,
            "$.turns[0].transcript",
            "only for 'audio: true'",
        ),
        ("name: x\nturns: {}\n", 2, "$.turns", "must be a list"),
        (
            "turns:\n  - user: hi\n    reply: a\n    user: again\n",
            4,
            "$.turns[0].user",
            "duplicate key",
        ),
        ("turns:\n  - user: [unclosed\n", 3, None, "YAML syntax error"),
    ],
)
def test_file_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, path: str | None, words: str
) -> None:
    file = tmp_path / "bad.scenario.yaml"
    file.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(file)
    error = info.value
    assert (error.file, error.line) == (str(file), line)
    if path is not None:
        assert error.json_path == path
    assert words in error.message
    assert str(error).startswith(f"{file}:{line}: ")
    assert check_scenario_file(file)[0].message == error.message


def test_dict_errors_have_json_path() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario({"turns": [{"user": "x", "reply": [{"sing": "la"}]}]})
    assert info.value.json_path == "$.turns[0].reply[0].sing"
    assert info.value.file is None


def test_missing_file() -> None:
    errors = check_scenario_file(ROOT / "nope.scenario.yaml")
    assert len(errors) == 1 and "cannot read file" in str(errors[0])


def test_segments_split_after_calls() -> None:
    scenario = load_scenario(
        {
            "name": "s",
            "turns": [
                {
                    "user": "x",
                    "reply": [
                        {"say": "a"},
                        {"call": "f"},
                        {"handoff": "billing"},
                        {"say": "b"},
                        {"say": "c"},
                        {"call": "g", "arguments": "raw"},
                    ],
                }
            ],
        }
    )
    segments = scenario.turns[0].segments
    assert [[s.kind for s in seg] for seg in segments] == [
        ["say", "call", "call"],
        ["say", "say", "call"],
    ]
    assert segments[0][2] == Step("call", name="transfer_to_billing", arguments="{}")
    assert segments[0][1].arguments == "{}"
    assert segments[1][2].arguments == "raw"


def test_shipped_scenarios_are_valid() -> None:
    files = sorted((ROOT / "agents").glob("*.scenario.yaml"))
    assert files
    for file in files:
        assert check_scenario_file(file) == []
        assert load_scenario(file).turns


def _doc_blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "emulator.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_doc_scenario_example(tmp_path: Path) -> None:
    blocks = [b for b in _doc_blocks("yaml") if "name: concierge" in b]
    assert len(blocks) == 1
    file = tmp_path / "doc.scenario.yaml"
    file.write_text(blocks[0])
    scenario = load_scenario(file)
    assert scenario.name == "concierge"
    assert [t.greeting for t in scenario.turns] == [True, False, False, False, False]
    assert [t.audio for t in scenario.turns] == [False, False, False, False, True]
    assert scenario.turns[2].matches_text("What TIME is it?")
    assert scenario.turns[4].transcript == "I need my bill"


def test_doc_ga_scenario_example(tmp_path: Path) -> None:
    [block] = [b for b in _doc_blocks("yaml") if "name: ga-features" in b]
    file = tmp_path / "ga.scenario.yaml"
    file.write_text(block)
    turns = load_scenario(file).turns
    assert [len(t.segments[0]) for t in turns[:4]] == [2, 2, 1, 2]
    assert [s.kind for s in turns[1].segments[0]] == ["say", "fail"]
    assert turns[2].segments[0][0].code == "rate_limit_exceeded"
    assert turns[3].segments[0][1].code == "content_filter"
    assert turns[4].out_of_band and turns[4].matches_text("Please CLASSIFY this")
    assert turns[5].transcription_error == "Audio unintelligible."
    assert turns[6].speakers == (("A", "Is the pool open?"), ("B", "Until ten."))
    assert turns[7].idle


async def test_doc_python_example() -> None:
    [block] = [b for b in _doc_blocks("python") if "async def greet" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/emulator.md", "exec"), namespace)  # noqa: S102
    assert await namespace["greet"]() == "Welcome to Hotel Aurora. How can I help?"


def test_render_say_fills_output_and_its_fields() -> None:
    from realtalk.emulator.scenario import render_say

    output = '{"time": "21:49", "zone": {"name": "JST"}, "n": 3}'
    assert render_say("Raw: {output}", output) == f"Raw: {output}"
    assert render_say("It is {output.time} ({output.zone.name}), {output.n}", output) == "It is 21:49 (JST), 3"
    # A missing field, or an output that is not JSON, leaves the placeholder visible.
    assert render_say("{output.nope}", output) == "{output.nope}"
    assert render_say("{output.time}", "not json") == "{output.time}"
