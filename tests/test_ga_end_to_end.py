"""GA features end to end: the runtime against the emulator over real loopback sockets.

Still-working lines from an agent's override (spoken, generated), side questions beside
the conversation's reply, input idle timeouts, and a slow tool beside a new user turn.
Every test also checks the one-response rule: never two in-conversation responses at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import realtalk
from realtalk import SessionEvent
from realtalk.audio import WavFileSink
from realtalk.emulator import Emulator
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from realtalk.protocol.arbiter import OOB_KEY
from realtalk.runner import open_session

LOOKUP_SCHEMA = {"type": "object", "properties": {}}


class SlowTools:
    """In-process plugin whose ``lookup`` has no ``still_working`` of its own and returns
    only when the test releases it (bounded)."""

    __name__ = "ga-slow-tools"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def lookup(self) -> str:
        self.started.set()
        await asyncio.wait_for(self.release.wait(), 20)
        return "found it"

    @realtalk.hookimpl
    def register_tools(self, register: realtalk.Registrar) -> None:
        register("lookup", description="Slow lookup", handler=self.lookup, parameters=LOOKUP_SCHEMA)


def is_out_of_band(response: dict[str, Any]) -> bool:
    """The runtime tags every out-of-band request's metadata with :data:`OOB_KEY`."""
    return OOB_KEY in (response.get("metadata") or {})


def most_conversation_responses_at_once(emu: Emulator) -> int:
    """Walk the server's events in order: the most in-conversation responses active at once."""
    active: set[str] = set()
    most = 0
    for event in emu.server_events():
        if event["type"] not in ("response.created", "response.done") or is_out_of_band(event["response"]):
            continue
        rid = event["response"]["id"]
        if event["type"] == "response.created":
            active.add(rid)
        else:
            active.discard(rid)
        most = max(most, len(active))
    return most


def checked(emu: Emulator) -> None:
    """Valid GA both ways, never two in-conversation responses at once, none refused."""
    assert client_event_problems(emu.client_events()) == []
    assert server_event_problems(emu.server_events()) == []
    assert most_conversation_responses_at_once(emu) == 1
    assert "conversation_already_has_active_response" not in [e.get("code") for e in emu.errors()]


def oob_responses_done(emu: Emulator) -> list[dict[str, Any]]:
    return [e["response"] for e in emu.server_events("response.done") if is_out_of_band(e["response"])]


async def until(condition: Any, what: str) -> None:
    """Wait (bounded) until ``condition()`` holds: for what the emulator has sent."""
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


def agent_file(tmp_path: Path, still: str, extra: str = "") -> Path:
    path = tmp_path / "front.yaml"
    path.write_text(f"instructions: Help.\n{extra}tools:\n  - name: lookup\n    still_working: {still}\n")
    return path


LOOK = {"user": "look", "reply": [{"call": "lookup"}, {"say": "Result: {output}"}]}


# -- still working: the agent's override, spoken and generated ---------------------------------


async def test_an_agents_still_working_line_is_spoken_out_of_band(tmp_path: Path) -> None:
    tools = SlowTools()
    events: list[SessionEvent] = []
    path = agent_file(tmp_path, "{after_s: 0.05, say: Still checking...}")
    scenario = {"turns": [LOOK, {"out_of_band": "/Still checking/", "reply": "Still checking..."}]}
    sink = WavFileSink(tmp_path / "out.wav", realtime=False)
    async with Emulator(scenario, fast=True) as emu:
        async with open_session(path, emulator=emu, extra_plugins=[tools], output=sink,
                                listeners=[events.append]) as session:
            await session.send_text("look it up")
            # The line is spoken in full before the tool ends (then its answer follows).
            await until(lambda: oob_responses_done(emu), "the still-working response")
            tools.release.set()
            turn = await session.wait_turn(20)
            order = session.protocol.conversation.order
        sink.close()
        checked(emu)
    [still] = [e for e in events if isinstance(e, realtalk.ToolStillWorking)]
    assert (still.name, still.say, still.after_s) == ("lookup", "Still checking...", 0.05)
    assert turn.text == "Result: found it"
    call, line, follow_up = emu.client_events("response.create")
    assert "conversation" not in call.get("response", {}) and "conversation" not in follow_up.get("response", {})
    body = line["response"]
    assert body["conversation"] == "none" and body["input"] == [] and body["output_modalities"] == ["audio"]
    assert body["instructions"].endswith("Still checking...")
    [spoken] = oob_responses_done(emu)
    [item] = spoken["output"]
    assert item["content"][0]["transcript"] == "Still checking..."
    assert sink.tracker.played_ms(item["id"]) > 0  # it was played
    assert item["id"] not in order  # and never entered the conversation


async def test_an_agents_generated_still_working_line_is_shown(tmp_path: Path) -> None:
    tools = SlowTools()
    events: list[SessionEvent] = []
    line = "One moment, I am still on it."

    def on_event(event: SessionEvent) -> None:
        events.append(event)
        if isinstance(event, realtalk.AssistantDone) and event.text == line:
            tools.release.set()  # the user heard the line: now the tool may end

    path = agent_file(tmp_path, "{after_s: 0.05, generate: true}")
    scenario = {"turns": [LOOK, {"out_of_band": "/is still running/", "reply": line}]}
    async with Emulator(scenario, fast=True) as emu:
        async with open_session(path, emulator=emu, extra_plugins=[tools], text_only=True,
                                listeners=[on_event]) as session:
            turn = await session.ask("look it up", timeout=20)
        checked(emu)
    [still] = [e for e in events if isinstance(e, realtalk.ToolStillWorking)]
    assert (still.name, still.say) == ("lookup", None)
    assert turn.text == "Result: found it"
    body = emu.client_events("response.create")[1]["response"]
    assert body["conversation"] == "none" and "input" not in body  # it sees the conversation
    assert body["metadata"]["purpose"] == "still_working"
    kinds = [(e.type, getattr(e, "text", None)) for e in events]
    assert kinds.index(("assistant.done", line)) < kinds.index(("assistant.done", "Result: found it"))


# -- side questions beside the conversation's reply ------------------------------------------


async def test_two_side_questions_run_beside_the_conversations_reply(tmp_path: Path) -> None:
    path = tmp_path / "front.yaml"
    path.write_text("instructions: Help.\n")
    reply = "Our pool opens at seven and closes at ten, every day of the week."
    scenario = {"turns": [{"out_of_band": "/sentiment/", "reply": "positive"},
                          {"out_of_band": "/language/", "reply": "English"},
                          {"user": "pool", "reply": reply}]}
    started = asyncio.Event()

    def on_event(event: SessionEvent) -> None:
        if isinstance(event, realtalk.AssistantDelta):
            started.set()

    sink = WavFileSink(tmp_path / "out.wav", realtime=False)
    async with Emulator(scenario, fast=False, audio_speed=1.0) as emu:
        async with open_session(path, emulator=emu, output=sink, listeners=[on_event]) as session:
            await session.send_text("When is the pool open?")
            await asyncio.wait_for(started.wait(), 20)
            running = session.protocol.arbiter.active_response_id
            sentiment, language = await asyncio.gather(
                session.ask_out_of_band("Give the sentiment in one word.", input=["I love it"]),
                session.ask_out_of_band("Name the language in one word.", input=["I love it"]))
            still_running = session.protocol.arbiter.active_response_id
            turn = await session.wait_turn(30)
            order = session.protocol.conversation.order
        sink.close()
        checked(emu)
    assert running is not None and still_running == running  # they ran beside it
    assert (sentiment.text, language.text) == ("positive", "English")
    assert sentiment.status == language.status == "completed"
    assert turn.text == reply and turn.status == "completed" and not turn.interrupted
    oob_items = [r["output"][0]["id"] for r in oob_responses_done(emu)]
    assert len(oob_items) == 2 and not set(oob_items) & set(order)
    kinds = [(e["type"], is_out_of_band(e["response"])) for e in emu.server_events()
             if e["type"] in ("response.created", "response.done")]
    # The conversation's reply started first and ended last.
    assert kinds[0] == ("response.created", False) and kinds[-1] == ("response.done", False)


# -- input idle timeouts -----------------------------------------------------------------------


async def test_an_idle_timeout_is_shown_and_its_response_is_a_normal_turn(tmp_path: Path) -> None:
    path = tmp_path / "idle.yaml"
    path.write_text("instructions: Help.\nturn_detection: {type: server_vad, idle_timeout_ms: 5000}\n")
    scenario = {"turns": [{"user": "hi", "reply": "Hello."},
                          {"idle": True, "reply": "Are you still there?"}]}
    events: list[SessionEvent] = []
    sink = WavFileSink(tmp_path / "out.wav", realtime=False)
    async with Emulator(scenario, fast=True) as emu:
        async with open_session(path, emulator=emu, output=sink, listeners=[events.append]) as session:
            first = await session.ask("hi", timeout=20)
            silence = bytes(48_000)  # one second of 24 kHz PCM16
            for _ in range(7):
                await session.append_audio(silence)
            turn = await session.wait_turn(20)
        sink.close()
        checked(emu)
    assert first.text == "Hello."
    [timeout] = [e for e in events if isinstance(e, realtalk.InputTimeout)]
    [triggered] = emu.server_events("input_audio_buffer.timeout_triggered")
    assert (timeout.item_id, timeout.audio_end_ms) == (triggered["item_id"], triggered["audio_end_ms"])
    assert turn.text == "Are you still there?" and turn.status == "completed"
    kinds = [e.type for e in events]
    assert kinds.index("input.timeout") < len(kinds) - 1 - kinds[::-1].index("turn.done")
    assert len(emu.client_events("response.create")) == 1  # the server started the second one


# -- asynchronous function calling -------------------------------------------------------------


def speech() -> bytes:
    """Half a second of silence, 0.8 s of a loud tone, 0.7 s of silence: PCM16 24 kHz."""
    t = np.arange(24000 * 800 // 1000) / 24000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    samples = np.concatenate([np.zeros(12000), tone, np.zeros(16800)])
    return (samples * 32767).astype("<i2").tobytes()


def said(response: dict[str, Any]) -> str:
    return " ".join(part.get("transcript") or part.get("text") or "" for item in response["output"]
                    if item["type"] == "message" for part in item["content"])


async def test_the_user_is_answered_while_a_slow_tool_runs_then_its_output_follows(tmp_path: Path) -> None:
    """Asynchronous function calling with server VAD: the user speaks while a tool that is
    not cancellable runs, the server answers them at once (the call is left running),
    and the tool's output, sent when ready, gets one follow-up response of its own."""
    tools = SlowTools()
    path = tmp_path / "front.yaml"
    path.write_text("instructions: Help.\ntools: [{name: lookup, cancellable: false}]\n")
    # The emulator keeps the call's continuation ("Result: ...") past the new input, as
    # the call still waits for its output.
    scenario = {"turns": [LOOK, {"audio": True, "transcript": "And the weather?", "reply": "Sunny today."}]}
    sink = WavFileSink(tmp_path / "out.wav", realtime=False)
    async with Emulator(scenario, fast=True) as emu:
        async with open_session(path, emulator=emu, extra_plugins=[tools], output=sink) as session:
            await session.send_text("look it up")
            await asyncio.wait_for(tools.started.wait(), 20)
            await session.append_audio(speech())
            await until(lambda: any(said(e["response"]) == "Sunny today."
                                    for e in emu.server_events("response.done")), "the answer to the speech")
            tools.release.set()
            calling = await session.wait_turn(20)
            answered = await session.wait_turn(20)
        sink.close()
        checked(emu)
    [record] = calling.tool_calls
    assert calling.interrupted and calling.text == ""  # the user spoke: a new turn began
    assert (record.name, record.status, record.output) == ("lookup", "ok", "found it")  # not cancelled
    assert answered.text == "Sunny today.\nResult: found it"
    kinds = [(e["type"], said(e["response"]) if e["type"] == "response.done" else
              e["item"]["type"] if e["type"] == "conversation.item.added" else None)
             for e in emu.server_events()]
    spoken = kinds.index(("response.done", "Sunny today."))
    output = kinds.index(("conversation.item.added", "function_call_output"))
    assert spoken < output < kinds.index(("response.done", "Result: found it"))
    assert [e.get("response", {}).get("conversation") for e in emu.client_events("response.create")] == [None, None]


async def test_text_typed_while_a_tool_runs_waits_for_its_output(tmp_path: Path) -> None:
    """Typed input is not answered beside a running call (that is for speech with server
    VAD): the arbiter holds it, and one response after the output answers both."""
    tools = SlowTools()
    path = tmp_path / "front.yaml"
    path.write_text("instructions: Help.\ntools: [lookup]\n")
    scenario = {"turns": [LOOK, {"user": "weather", "reply": "Sunny today."}]}
    async with Emulator(scenario, fast=True) as emu:
        async with open_session(path, emulator=emu, extra_plugins=[tools], text_only=True) as session:
            await session.send_text("look it up")
            await asyncio.wait_for(tools.started.wait(), 20)
            await session.send_text("And the weather?")
            held = session.protocol.arbiter.wants_response and session.protocol.arbiter.in_flight is None
            tools.release.set()
            turn = await session.wait_turn(20)
        checked(emu)
    assert held
    assert turn.text == "Result: found it" and [r.output for r in turn.tool_calls] == ["found it"]
    assert len(emu.client_events("response.create")) == 2


def test_new_input_keeps_the_continuation_of_a_call_still_running() -> None:
    """The emulator's script, sans I/O: a call's continuation survives new input only while
    the call waits for its output."""
    from realtalk.emulator import load_scenario
    from realtalk.emulator.state import ScenarioProgress, UserInput

    def texts(steps: Any) -> list[str]:
        return [step.text for step in steps]

    scenario = {"turns": [LOOK, {"user": "weather", "reply": "Sunny today."}]}
    running = ScenarioProgress(load_scenario(scenario))
    assert [s.kind for s in running.next_reply(UserInput(text="look", audio=False))] == ["call"]
    assert texts(running.next_reply(UserInput(text="weather", audio=False), calls_running=True)) == ["Sunny today."]
    assert texts(running.next_reply(None)) == ["Result: {output}"]

    answered = ScenarioProgress(load_scenario(scenario))
    answered.next_reply(UserInput(text="look", audio=False))
    answered.next_reply(UserInput(text="weather", audio=False))  # the call had its output: a new turn
    assert texts(answered.next_reply(None))[0].startswith("[emulator] no scenario turn matches")
