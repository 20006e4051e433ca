"""The testing kit: the pytest fixture, converse(), and the example in docs/testing.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from realtalk.testing import ThreadedEmulator, aconverse, converse

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_doc_example_runs(emulator: ThreadedEmulator) -> None:
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    namespace["test_get_time_in_tokyo"](emulator)
    assert emulator.client_events("response.create")


@pytest.mark.realtalk_scenario({"turns": [{"user": "hi", "reply": "Hello there."}]})
def test_scenario_marker(emulator: ThreadedEmulator) -> None:
    result = converse({"name": "greeter", "instructions": "Greet."}, ["hi"], emulator)
    assert result.transcript == [("user", "hi"), ("greeter", "Hello there.")]


async def test_async_form(emulator: ThreadedEmulator) -> None:
    emulator.use({"turns": [{"user": "a", "reply": "One."}, {"user": "b", "reply": "Two."}]})
    result = await aconverse({"instructions": "x"}, ["a", "b"], emulator)
    assert [t.text for t in result.turns] == ["One.", "Two."]


def test_agent_file_and_approval(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    agent = tmp_path / "desk.yaml"
    agent.write_text("instructions: x\ntools: [{name: get_time, requires_approval: true}]\n")
    emulator.use({"turns": [{"user": "t", "reply": [{"call": "get_time", "arguments": {}}, {"say": "{output}"}]}]})
    approved = converse(agent, ["t"], emulator, approve=lambda request: True)
    assert approved.calls("get_time")[0].status == "ok"


def test_unmatched_input_gets_the_fallback(emulator: ThreadedEmulator) -> None:
    result = converse({"instructions": "x"}, ["something unscripted"], emulator)
    assert "no scenario turn matches" in result.turns[0].text
