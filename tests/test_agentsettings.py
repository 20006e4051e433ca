"""The settings of current models reach a real server: a session against the emulator (a
real loopback WebSocket) sends them in GA ``session.update``, the emulator accepts them,
and a handoff to an agent that leaves them out does not keep the previous agent's.

A custom voice (``voice: {id: ...}``) is checked without a server
(tests/protocol/test_session_config.py): the emulator echoes ``{"id": ...}`` in
``response.audio.output.voice``, where the GA types take a string only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import realtalk
from realtalk.emulator import Emulator
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from realtalk.runner import open_session


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(fast=True) as server:
        yield server
    assert server_event_problems(server.server_events()) == []


@realtalk.tool
def room_status(room: int) -> dict[str, object]:
    """Whether a room is ready.

    Args:
        room: The room number.
    """
    return {"room": room, "ready": True}


def agents() -> realtalk.AgentSpec:
    billing = realtalk.Agent(name="billing", instructions="You are the billing desk.", tracing="auto",
                             voice_policy="keep")
    return realtalk.Agent(
        name="desk", instructions="You are the front desk.", model="gpt-realtime-2.1",
        reasoning={"effort": "high"}, parallel_tool_calls=True,
        prompt={"id": "pmpt_1", "version": "2", "variables": {"hotel": "Aurora"}}, tracing="auto",
        input_audio_transcription={"model": "gpt-transcribe", "languages": ["en", "pt"], "keywords": ["Aurora"]},
        include=["item.input_audio_transcription.logprobs"], noise_reduction="far_field",
        turn_detection={"type": "server_vad", "idle_timeout_ms": 8000},
        tools=[room_status], tool_choice={"type": "function", "name": "room_status"}, handoffs=[billing],
    )


async def test_new_settings_are_accepted_by_the_emulator_and_reset_by_a_handoff(emu: Emulator) -> None:
    emu.use({"turns": [
        {"user": "room", "reply": [{"call": "room_status", "arguments": {"room": 12}}, {"say": "Room: {output}"}]},
        {"user": "bill", "reply": [{"handoff": "billing"}, {"say": "Billing here."}]},
    ]})
    async with open_session(agents(), emulator=emu, text_only=True) as session:
        first = await session.ask("Is room 12 ready?", 20)
        second = await session.ask("A question about my bill", 20)
    assert [c.status for c in first.tool_calls] == ["ok"] and second.handoffs == [("desk", "billing")]
    assert emu.errors() == []
    updates = emu.client_events("session.update")
    assert client_event_problems(updates) == []
    desk, billing = updates[0]["session"], updates[-1]["session"]
    assert desk["reasoning"] == {"effort": "high"} and desk["prompt"]["id"] == "pmpt_1"
    assert desk["tool_choice"] == {"type": "function", "name": "room_status"}
    assert desk["audio"]["input"]["transcription"]["keywords"] == ["Aurora"]
    assert desk["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 8000
    # The server's merged session after the handoff: the desk's prompt, effort and forced
    # tool are gone, its tracing (which cannot change) is the same.
    merged = emu.server_events("session.updated")[-1]["session"]
    assert merged["prompt"] is None and merged["reasoning"] == {"effort": "low"}
    assert merged["tool_choice"] == "auto" and merged["tracing"] == "auto"
    assert billing["instructions"] == "You are the billing desk."


def test_check_print_beta_refuses_a_prompt_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from realtalk.cli import main

    agent = tmp_path / "desk.yaml"
    agent.write_text("instructions: x\nprompt: {id: pmpt_1}\nreasoning: {effort: high}\n")
    assert main(["check", "--print", "--beta", str(agent)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == (f"realtalk: error: {agent}: the beta protocol cannot carry prompt (agent 'desk'):"
                                 " drop --beta or the prompt key\n")
    assert main(["check", "--print", str(agent)]) == 0
    session = json.loads(capsys.readouterr().out)["session"]
    assert session["prompt"] == {"id": "pmpt_1"} and session["reasoning"] == {"effort": "high"}


async def test_the_session_model_decides_what_is_sent(emu: Emulator) -> None:
    # --model gpt-realtime over an agent of the default (reasoning) model: no effort is sent.
    desk = realtalk.Agent(name="desk", instructions="You are the front desk.")
    async with open_session(desk, emulator=emu, text_only=True, model="gpt-realtime") as session:
        assert session.profile.model == "gpt-realtime"
    [update] = emu.client_events("session.update")
    assert "reasoning" not in update["session"] and emu.errors() == []


async def test_reasoning_on_a_session_model_that_does_not_take_it_is_refused(emu: Emulator) -> None:
    from realtalk.exceptions import ConfigError

    desk = realtalk.Agent(name="desk", instructions="x", reasoning={"effort": "high"})
    with pytest.raises(ConfigError, match=r"^agent 'desk' sets reasoning, but the session runs on gpt-realtime"
                                          r" \(chosen by --model\), which does not take it$"):
        async with open_session(desk, emulator=emu, text_only=True, model="gpt-realtime"):
            pass
    assert emu.client_events("session.update") == []
