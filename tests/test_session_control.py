"""Barge-in from the API, out-of-band side questions, preambles and multi-message responses,
and images: the runtime against the emulator over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk import ConfigError, Interrupted, SessionEvent
from realtalk.audio import WavFileSink
from realtalk.emulator import Emulator
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from realtalk.protocol.arbiter import OOB_KEY
from realtalk.runner import open_session

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
LONG = "This answer goes on and on so that there is plenty of time to stop it. " * 4


class Tools:
    """In-process plugin with one tool."""

    __name__ = "control-tools"

    @realtalk.hookimpl
    def register_tools(self, register: realtalk.Registrar) -> None:
        register("weather", description="Weather in a city", handler=lambda city: {"city": city, "sky": "sunny"},
                 parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    path = tmp_path / "front.yaml"
    path.write_text(textwrap.dedent("""
        instructions: You are the front desk.
        tools: [weather]
    """))
    return path


def checked(emu: Emulator) -> None:
    """What every test here ends with: valid GA both ways, and never two responses at once."""
    assert client_event_problems(emu.client_events()) == []
    assert server_event_problems(emu.server_events()) == []
    assert "conversation_already_has_active_response" not in [e.get("code") for e in emu.errors()]


async def played_at_least(sink: WavFileSink, ms: int) -> str:
    """The id of the first item of which ``ms`` were played (the WAV sink plays in real time)."""
    deadline = time.monotonic() + 20
    while True:
        for snap in sink.tracker.snapshot():
            if sink.tracker.played_ms(snap.item_id) >= ms:
                return snap.item_id
        assert time.monotonic() < deadline, "the reply never started playing"
        await asyncio.sleep(0.02)


# -- barge-in from the API ------------------------------------------------------------------


async def test_cancel_response_stops_a_running_reply_and_truncates_it(agent: Path, tmp_path: Path) -> None:
    scenario = {"turns": [{"user": "talk", "reply": LONG}, {"user": "next", "reply": "Next."}]}
    sink = WavFileSink(tmp_path / "out.wav", realtime=True)
    events: list[SessionEvent] = []
    async with Emulator(scenario, fast=False) as emu:
        async with open_session(agent, emulator=emu, extra_plugins=[Tools()], output=sink, listeners=[events.append]) as session:
            await session.send_text("talk")
            item = await played_at_least(sink, 300)
            await session.cancel_response()
            stopped = await session.wait_turn(20)
            after = await session.ask("next")
        sink.close()
        checked(emu)
    [cancel] = emu.client_events("response.cancel")
    assert cancel["response_id"] == emu.server_events("response.created")[0]["response"]["id"]
    [done] = [e for e in emu.server_events("response.done") if e["response"]["status"] == "cancelled"]
    assert done["response"]["status_details"]["reason"] == "client_cancelled"
    [truncate] = emu.client_events("conversation.item.truncate")
    [cut] = [e for e in events if isinstance(e, Interrupted)]
    assert truncate["item_id"] == item == cut.item_id and truncate["audio_end_ms"] == cut.played_ms >= 300
    assert stopped.interrupted and LONG.startswith(stopped.text) and len(stopped.text) < len(LONG)
    assert after.text == "Next."


async def test_cancel_with_nothing_running_sends_nothing(agent: Path) -> None:
    async with Emulator({"turns": [{"user": "hi", "reply": "Hello."}]}) as emu:
        async with open_session(agent, emulator=emu, extra_plugins=[Tools()], text_only=True) as session:
            await session.ask("hi")
            await session.cancel_response()
            await session.clear_input_audio()
            assert (await session.ask("hi again")).text  # the fallback: the session goes on
        checked(emu)
    assert emu.client_events("response.cancel") == []
    assert len(emu.server_events("input_audio_buffer.cleared")) == 1


async def test_clear_input_audio_drops_what_was_appended(agent: Path) -> None:
    agent.write_text(agent.read_text() + "turn_detection: {type: none}\n")
    async with Emulator({"turns": [{"audio": True, "reply": "Heard."}]}) as emu:
        async with open_session(agent, emulator=emu, extra_plugins=[Tools()], text_only=True) as session:
            await session.append_audio(bytes(24000 * 2 // 2))  # 500 ms
            await session.clear_input_audio()
            await emu.wait_for("input_audio_buffer.cleared", timeout=10)
            assert await session.commit_audio() is False  # nothing left to commit
        checked(emu)
    assert emu.client_events("input_audio_buffer.commit") == []


# -- several messages in one response --------------------------------------------------------


async def test_a_preamble_before_a_call_is_shown_and_reseeded_in_order(agent: Path) -> None:
    scenario = {"turns": [{"user": "weather", "reply": [
        {"say": "Let me check."}, {"call": "weather", "arguments": {"city": "Oslo"}},
        {"say": "It is {output.sky}."}]}]}
    events: list[SessionEvent] = []
    async with Emulator(scenario, expire_after=4.0) as emu:
        async with open_session(agent, emulator=emu, extra_plugins=[Tools()], text_only=True,
                                listeners=[events.append]) as session:
            turn = await session.ask("weather in Oslo?")
            # The session rotates before it expires: the history is re-seeded.
            deadline = time.monotonic() + 20
            while session.reconnects == 0:
                assert time.monotonic() < deadline, "the session never rotated"
                await asyncio.sleep(0.05)
        checked(emu)
    assert turn.text == "Let me check.\nIt is sunny."
    assert [e.text for e in events if isinstance(e, realtalk.AssistantDone)] == ["Let me check.", "It is sunny."]
    seeded = [e["item"] for e in emu.client_events("conversation.item.create")][-5:]
    assert [(i["type"], i.get("role")) for i in seeded] == [
        ("message", "user"), ("message", "assistant"), ("function_call", None),
        ("function_call_output", None), ("message", "assistant")]
    assert seeded[1]["content"][0]["text"] == "Let me check."
    assert seeded[4]["content"][0]["text"] == "It is sunny."


async def test_barge_in_over_two_messages_cuts_the_one_playing(agent: Path, tmp_path: Path) -> None:
    # Audio arrives faster than it plays: both messages (and response.done) are in before
    # the user stops the first one; only client-side truncation applies.
    scenario = {"turns": [{"user": "talk", "reply": [{"say": LONG}, {"say": "And a second part."}]}]}
    sink = WavFileSink(tmp_path / "out.wav", realtime=True)
    async with Emulator(scenario, fast=True) as emu:
        async with open_session(agent, emulator=emu, extra_plugins=[Tools()], output=sink) as session:
            await session.send_text("talk")
            await emu.wait_for("response.done", timeout=20)
            first = await played_at_least(sink, 300)
            await session.cancel_response()
            await session.wait_turn(20)
            await emu.wait_for("conversation.item.deleted", timeout=10)
        sink.close()
        checked(emu)
    second = [e["item_id"] for e in emu.server_events("response.output_audio.done")][1]
    assert emu.client_events("response.cancel") == []
    [truncate] = emu.client_events("conversation.item.truncate")
    assert truncate["item_id"] == first and truncate["audio_end_ms"] >= 300
    [delete] = emu.client_events("conversation.item.delete")
    assert delete["item_id"] == second


# -- out-of-band side questions ---------------------------------------------------------------


async def test_a_side_question_never_enters_the_conversation(agent: Path) -> None:
    scenario = {"turns": [{"out_of_band": "/sentiment/", "reply": "positive"},
                          {"user": "hello", "reply": "Hi there."}]}
    async with Emulator(scenario) as emu:
        async with open_session(agent, emulator=emu, extra_plugins=[Tools()], text_only=True) as session:
            result = await session.ask_out_of_band(
                "Classify the sentiment of the text in one word.", input=["I love this hotel"],
                metadata={"purpose": "sentiment"})
            assert session.protocol.conversation.order == []  # nothing of it was mirrored
            turn = await session.ask("hello")
        checked(emu)
    assert result.text == "positive" and result.status == "completed"
    assert result.metadata["purpose"] == "sentiment"
    [oob, _] = emu.client_events("response.create")
    assert oob["response"]["conversation"] == "none"
    assert oob["response"]["input"][0]["content"][0]["text"] == "I love this hotel"
    assert oob["response"]["metadata"] == {"purpose": "sentiment", OOB_KEY: oob["event_id"]}
    assert turn.text == "Hi there." and turn.tool_calls == []


async def test_a_side_question_with_a_bad_input_is_a_clear_error(agent: Path) -> None:
    async with Emulator() as emu, open_session(agent, emulator=emu, extra_plugins=[Tools()],
                                               text_only=True) as session:
        with pytest.raises(ConfigError, match="out-of-band input must be items"):
            await session.ask_out_of_band("x", input=[42])  # type: ignore[list-item]
        with pytest.raises(ConfigError, match="at most 15 string keys"):
            await session.ask_out_of_band("x", metadata={f"k{n}": "v" for n in range(16)})
        with pytest.raises(ConfigError, match="at most 15 string keys"):
            await session.ask_out_of_band("x", metadata={"n": 1})  # type: ignore[dict-item]
    assert emu.client_events("response.create") == []


# -- images ---------------------------------------------------------------------------------


async def test_an_image_goes_into_the_conversation_as_a_data_url(agent: Path, tmp_path: Path) -> None:
    image = tmp_path / "room.png"
    image.write_bytes(PNG)
    async with Emulator({"turns": [{"user": "what is", "reply": "A room."}]}) as emu:
        async with open_session(agent, emulator=emu, extra_plugins=[Tools()], text_only=True) as session:
            turn = await session.ask_image(image, "What is in this picture?", detail="low")
        checked(emu)
    assert turn.text == "A room."
    [create] = emu.client_events("conversation.item.create")
    part, text = create["item"]["content"]
    assert part["type"] == "input_image" and part["detail"] == "low"
    assert part["image_url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert text == {"type": "input_text", "text": "What is in this picture?"}


@pytest.mark.parametrize(("name", "data", "message"), [
    ("missing.png", None, "cannot read it"),
    ("anim.gif", b"GIF89a" + bytes(10), "neither PNG nor JPEG"),
    ("empty.png", b"", "an empty file"),
    ("huge.png", "huge", "too large to send"),
])
async def test_a_bad_image_is_a_one_line_error(agent: Path, tmp_path: Path, name: str, data: Any,
                                               message: str) -> None:
    path = tmp_path / name
    if data == "huge":
        with path.open("wb") as f:
            f.write(PNG)
            f.truncate(11 * 1024 * 1024)
    elif data is not None:
        path.write_bytes(data)
    async with Emulator() as emu, open_session(agent, emulator=emu, extra_plugins=[Tools()],
                                               text_only=True) as session:
        with pytest.raises(ConfigError, match=message) as info:
            await session.send_image(path)
    assert "\n" not in str(info.value) and name in str(info.value)
    assert emu.client_events("conversation.item.create") == []


def test_image_detail_must_be_known(tmp_path: Path) -> None:
    from realtalk.images import image_part

    (tmp_path / "a.png").write_bytes(PNG)
    with pytest.raises(ConfigError, match="image detail 'ultra' is not one of auto, low, high"):
        image_part(tmp_path / "a.png", "ultra")
    assert json.dumps(image_part(tmp_path / "a.png"))  # plain JSON, ready to send


# -- still working ----------------------------------------------------------------------------


async def test_a_slow_tool_says_it_is_still_working_and_delivers_its_output(tmp_path: Path) -> None:
    started = threading.Event()
    release = threading.Event()

    def lookup() -> str:
        started.set()
        release.wait(20)  # released once the user was told (bounded)
        return "found it"

    class Slow:
        __name__ = "slow-tools"

        @realtalk.hookimpl
        def register_tools(self, register: realtalk.Registrar) -> None:
            register("lookup", description="Slow lookup", handler=lookup,
                     still_working={"after_s": 0.05, "say": "Still checking..."})

    def on_event(event: SessionEvent) -> None:
        events.append(event)
        if isinstance(event, realtalk.ToolStillWorking):
            release.set()

    path = tmp_path / "front.yaml"
    path.write_text("instructions: Help.\ntools: [lookup]\n")
    events: list[SessionEvent] = []
    scenario = {"turns": [{"user": "look", "reply": [{"say": "Let me look."}, {"call": "lookup"},
                                                      {"say": "Result: {output}"}]}]}
    async with Emulator(scenario) as emu:
        async with open_session(path, emulator=emu, text_only=True, extra_plugins=[Slow()],
                                listeners=[on_event]) as session:
            turn = await session.ask("look it up")
        checked(emu)
    assert started.is_set()
    [still] = [e for e in events if isinstance(e, realtalk.ToolStillWorking)]
    assert (still.name, still.say, still.after_s) == ("lookup", "Still checking...", 0.05)
    kinds = [e.type for e in events]
    assert kinds.index("tool.started") < kinds.index("tool.still_working") < kinds.index("tool.finished")
    assert turn.text == "Let me look.\nResult: found it"
    assert len(emu.client_events("response.create")) == 2  # the still-working line made none


def test_still_working_in_a_tools_file_is_checked_with_its_line(tmp_path: Path) -> None:
    from realtalk.exceptions import ToolDefinitionError
    from realtalk.tools import load_tool_definitions

    path = tmp_path / "tools.yaml"
    path.write_text(textwrap.dedent("""
        tools:
          - name: here
            description: Where we are
            handler: os:getcwd
            still_working: {after_s: 2, say: Still looking...}
          - name: there
            description: Elsewhere
            handler: os:getcwd
            still_working: {after_s: -1, say: x}
    """))
    with pytest.raises(ToolDefinitionError, match=r"tools.yaml:7: .*still_working.after_s must be a positive"):
        load_tool_definitions(path, plugin="p")
    path.write_text(path.read_text().replace("after_s: -1", "after_s: 1"))
    here, there = load_tool_definitions(path, plugin="p")
    assert there.still_working is not None and there.still_working.after_s == 1.0
    assert here.still_working is not None and here.still_working.say == "Still looking..."


# -- input idle timeouts -----------------------------------------------------------------------


async def test_an_input_timeout_is_shown_and_answered_as_a_turn(tmp_path: Path) -> None:
    """A scripted loopback server plays what the live server does after ``idle_timeout_ms``
    of silence: timeout_triggered, the committed item, and a response of its own."""
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "session.created", "event_id": "ev_0", "session": {
            "type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}}}))
        async for message in ws:
            event = json.loads(message)
            if event["type"] == "session.update":
                await ws.send(json.dumps({"type": "session.updated", "event_id": "ev_1",
                                          "session": event["session"]}))
            elif event["type"] == "input_audio_buffer.append":
                user = {"id": "item_u", "type": "message", "role": "user", "status": "completed",
                        "content": [{"type": "input_audio", "transcript": None}]}
                reply = {"id": "item_a", "type": "message", "role": "assistant", "status": "completed",
                         "content": [{"type": "output_text", "text": "Are you still there?"}]}
                ids = {"response_id": "resp_1", "item_id": "item_a", "output_index": 0, "content_index": 0}
                for n, out in enumerate([
                    {"type": "input_audio_buffer.timeout_triggered", "item_id": "item_u",
                     "audio_start_ms": 0, "audio_end_ms": 6000},
                    {"type": "input_audio_buffer.committed", "item_id": "item_u", "previous_item_id": None},
                    {"type": "conversation.item.done", "item": user, "previous_item_id": None},
                    {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress",
                                                              "output": []}},
                    {"type": "response.output_item.added", "response_id": "resp_1", "output_index": 0,
                     "item": {**reply, "status": "in_progress", "content": []}},
                    {"type": "response.output_text.delta", **ids, "delta": "Are you still there?"},
                    {"type": "response.output_text.done", **ids, "text": "Are you still there?"},
                    {"type": "response.output_item.done", "response_id": "resp_1", "output_index": 0,
                     "item": reply},
                    {"type": "response.done", "response": {"id": "resp_1", "status": "completed",
                                                           "output": [reply]}},
                ]):
                    await ws.send(json.dumps({"event_id": f"ev_t{n}", **out}))

    agent = tmp_path / "idle.yaml"
    agent.write_text("instructions: Help.\n")
    events: list[SessionEvent] = []
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with open_session(agent, url=f"ws://127.0.0.1:{port}/v1/realtime", text_only=True,
                                listeners=[events.append]) as session:
            await session.append_audio(bytes(480))
            turn = await session.wait_turn(10)
    [timeout] = [e for e in events if isinstance(e, realtalk.InputTimeout)]
    assert (timeout.item_id, timeout.audio_end_ms) == ("item_u", 6000)
    assert turn.text == "Are you still there?" and turn.status == "completed" and turn.done_ms is not None
    kinds = [e.type for e in events]
    assert kinds.index("input.timeout") < kinds.index("assistant.done") < kinds.index("turn.done")


async def test_a_side_question_runs_beside_the_conversations_response(tmp_path: Path) -> None:
    """A scripted loopback server holds the conversation's response open until an
    out-of-band one has run beside it, as the live server allows."""
    from websockets.asyncio.server import ServerConnection, serve

    received: list[dict[str, Any]] = []

    def text_response(rid: str, iid: str, text: str, metadata: Any) -> list[dict[str, Any]]:
        item = {"id": iid, "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text}]}
        ids = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        return [{"type": "response.created", "response": {"id": rid, "status": "in_progress", "output": [],
                                                          "metadata": metadata}},
                {"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                 "item": {**item, "status": "in_progress", "content": []}},
                {"type": "response.output_text.delta", **ids, "delta": text},
                {"type": "response.output_text.done", **ids, "text": text},
                {"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": item},
                {"type": "response.done", "response": {"id": rid, "status": "completed", "output": [item],
                                                       "metadata": metadata}}]

    async def handler(ws: ServerConnection) -> None:
        held: list[dict[str, Any]] = []
        await ws.send(json.dumps({"type": "session.created", "event_id": "ev_0", "session": {"type": "realtime"}}))
        async for message in ws:
            event = json.loads(message)
            received.append(event)
            out: list[dict[str, Any]] = []
            if event["type"] == "session.update":
                out = [{"type": "session.updated", "session": event["session"]}]
            elif event["type"] == "conversation.item.create":
                out = [{"type": "conversation.item.done", "item": {**event["item"], "status": "completed"},
                        "previous_item_id": None}]
            elif event["type"] == "response.create":
                body = event.get("response", {})
                if body.get("conversation") == "none":
                    out = text_response("resp_oob", "item_oob", "positive", body["metadata"])
                    out += held  # the conversation's response ends after the side question
                else:
                    events = text_response("resp_conv", "item_conv", "Hello there.", body.get("metadata"))
                    out, held = events[:3], events[3:]
            for n, ev in enumerate(out):
                await ws.send(json.dumps({"event_id": f"ev_{len(received)}_{n}", **ev}))

    agent = tmp_path / "side.yaml"
    agent.write_text("instructions: Help.\n")
    started = asyncio.Event()

    def on_event(event: SessionEvent) -> None:
        if isinstance(event, realtalk.AssistantDelta):
            started.set()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with open_session(agent, url=f"ws://127.0.0.1:{port}/v1/realtime", text_only=True,
                                listeners=[on_event]) as session:
            await session.send_text("hello")
            await asyncio.wait_for(started.wait(), 10)
            assert session.protocol.arbiter.active_response_id == "resp_conv"
            result = await session.ask_out_of_band("Sentiment?", input=["I love it"])
            turn = await session.wait_turn(10)
            order = session.protocol.conversation.order
    assert result.text == "positive"
    assert turn.text == "Hello there."
    assert "item_oob" not in order and "item_conv" in order
    creates = [e for e in received if e["type"] == "response.create"]
    assert [c.get("response", {}).get("conversation") for c in creates] == [None, "none"]


def test_a_typed_tool_takes_still_working() -> None:
    from realtalk.exceptions import ToolDefinitionError
    from realtalk.typedtools import typed_tool

    @realtalk.tool(still_working={"after_s": 2, "generate": True})
    def search(query: str) -> str:
        """Search the archive."""
        return query

    built = typed_tool(search, plugin="p")
    assert built.still_working == realtalk.StillWorking(2.0, None, True)

    @realtalk.tool(still_working={"after_s": 2})
    def broken(query: str) -> str:
        """Search again."""
        return query

    with pytest.raises(ToolDefinitionError, match="tool 'broken': still_working needs exactly one of say"):
        typed_tool(broken, plugin="p")


async def test_a_slow_tool_with_still_working_is_still_cancelled_by_barge_in(tmp_path: Path) -> None:
    async def lookup() -> str:
        await asyncio.Event().wait()  # never ends by itself (bounded by timeout_s)
        return "never"

    class Slow:
        __name__ = "slow-async-tools"

        @realtalk.hookimpl
        def register_tools(self, register: realtalk.Registrar) -> None:
            register("lookup", description="Slow lookup", handler=lookup, timeout_s=20,
                     still_working={"after_s": 0.01, "say": "Still checking..."})

    told = asyncio.Event()

    def on_event(event: SessionEvent) -> None:
        if isinstance(event, realtalk.ToolStillWorking):
            told.set()

    path = tmp_path / "front.yaml"
    path.write_text("instructions: Help.\ntools: [lookup]\n")
    scenario = {"turns": [{"user": "look", "reply": [{"call": "lookup"}, {"say": "Result: {output}"}]}]}
    async with Emulator(scenario) as emu:
        async with open_session(path, emulator=emu, text_only=True, extra_plugins=[Slow()],
                                listeners=[on_event]) as session:
            await session.send_text("look it up")
            await asyncio.wait_for(told.wait(), 10)
            await session.cancel_response()
            stopped = await session.wait_turn(10)
            # The call's response had ended before the cancel: its output (cancelled) still
            # owes the one follow-up, answered in a turn of its own.
            answer = await session.wait_turn(10)
        checked(emu)
    [record] = stopped.tool_calls
    assert stopped.interrupted and record.status == "cancelled"
    assert answer.text.startswith("Result: ") and "the user interrupted" in answer.text
    outputs = [e["item"]["output"] for e in emu.client_events("conversation.item.create")
               if e["item"]["type"] == "function_call_output"]
    assert outputs == [record.output] and "the user interrupted" in (record.output or "")
