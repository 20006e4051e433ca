"""The runtime's promises under faults: tools stay with the agent that called them, nothing
said is lost or repeated across reconnects, every wait is bounded, and a failed response
says so.

Each test runs a real Session against the emulator over loopback, most of them through a
small WebSocket proxy that can drop a connection at an exact event, rewrite an event, or
inject one, so each fault lands where the issue that motivated it said it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk.cli.console import ConsoleRenderer
from realtalk.emulator import Emulator
from realtalk.exceptions import ConnectionFailed
from realtalk.protocol.conversation import UNTRANSCRIBED
from realtalk.runner import open_session
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

RAN: list[str] = []

# A hook sees (connection number, event) and returns the event to pass on (maybe changed),
# DROP to abort both sockets without a close frame, or a list of events to pass instead.
DROP = "drop"
Hook = Callable[[int, dict[str, Any]], Any]


class Tools:
    """In-process plugin: the front desk's and the billing desk's own tools."""

    __name__ = "hardening-tools"

    @realtalk.hookimpl
    def register_tools(self, register: realtalk.Registrar) -> None:
        def weather(city: str) -> dict[str, Any]:
            RAN.append(f"weather:{city}")
            return {"city": city, "temp_c": 21}

        def refund(amount: int) -> str:
            RAN.append(f"refund:{amount}")
            return f"refunded {amount}"

        register("weather", description="Weather in a city", handler=weather,
                 parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
        register("refund", description="Refund an amount", handler=refund,
                 parameters={"type": "object", "properties": {"amount": {"type": "integer"}},
                             "required": ["amount"]})


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    RAN.clear()
    (tmp_path / "front.yaml").write_text(textwrap.dedent("""
        description: Front desk
        instructions: You are the front desk.
        tools: [weather]
        handoffs: [{agent: billing, description: Billing questions}]
    """))
    (tmp_path / "billing.yaml").write_text(textwrap.dedent("""
        description: Billing desk
        instructions: You are the billing desk.
        tools: [refund]
    """))
    return tmp_path / "front.yaml"


class Proxy:
    """A loopback WebSocket proxy in front of the emulator, with hooks on both directions."""

    def __init__(self, upstream: str, *, client: Hook | None = None, server: Hook | None = None) -> None:
        self.upstream = upstream
        self.client = client or (lambda n, e: e)
        self.server = server or (lambda n, e: e)
        self.connections = 0
        self.url = ""
        self.state: dict[str, Any] = {}  # for hooks that act once

    async def handle(self, downstream: ServerConnection) -> None:
        number = self.connections
        self.connections += 1
        path = downstream.request.path if downstream.request is not None else "/v1/realtime"
        async with ws_connect(self.upstream.rstrip("/") + path, max_size=None) as up:
            async def pump(source: Any, sink: Any, hook: Hook) -> None:
                async for message in source:
                    result = hook(number, json.loads(message))
                    if result == DROP:
                        downstream.transport.abort()
                        up.transport.abort()
                        return
                    for event in result if isinstance(result, list) else [result]:
                        await sink.send(json.dumps(event))

            tasks = [asyncio.create_task(pump(downstream, up, self.client)),
                     asyncio.create_task(pump(up, downstream, self.server))]
            with contextlib.suppress(ConnectionClosed):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task


@contextlib.asynccontextmanager
async def proxied(emu: Emulator, **hooks: Hook) -> AsyncIterator[Proxy]:
    proxy = Proxy(f"ws://127.0.0.1:{emu.port}", **hooks)
    async with serve(proxy.handle, "127.0.0.1", 0, max_size=None) as server:
        proxy.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/realtime"
        yield proxy


def session(target: Emulator | Proxy, agents: Path, **options: Any) -> Any:
    options.setdefault("text_only", True)
    options.setdefault("backoff_s", 0.01)
    where = {"url": target.url} if isinstance(target, Proxy) else {"emulator": target}
    return open_session(agents, extra_plugins=[Tools()], **where, **options)


class Waiter:
    """A session listener that lets a test wait (bounded) for ``count`` events of a type."""

    def __init__(self, kind: str, count: int = 1) -> None:
        self.kind, self.count = kind, count
        self.seen: list[Any] = []
        self._enough = asyncio.Event()

    def __call__(self, event: Any) -> None:
        if event.type == self.kind:
            self.seen.append(event)
            if len(self.seen) >= self.count:
                self._enough.set()

    async def wait(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._enough.wait(), timeout)


def say(*steps: Any) -> dict[str, Any]:
    return {"reply": list(steps)}


def call(name: str, arguments: Any = None) -> dict[str, Any]:
    return {"call": name, "arguments": arguments if arguments is not None else {}}


def user_texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["item"]["content"][0]["text"] for e in events if e["type"] == "conversation.item.create"
            and e["item"].get("type") == "message" and e["item"].get("role") == "user"]


# -- 2. tools belong to the agent that called them --------------------------------------------


async def test_a_handoff_does_not_unlock_the_targets_tools_in_the_same_response(agents: Path) -> None:
    scenario = {"turns": [{"user": "bill", **say(call("transfer_to_billing"), call("refund", {"amount": 500}),
                                                 call("weather", {"city": "Oslo"}), {"say": "Done."})}]}
    async with Emulator(scenario, fast=True) as emu, session(emu, agents) as live:
        turn = await live.ask("bill me")
    records = {r.name: r for r in turn.tool_calls}
    # The front desk decided all three calls: its own tool runs, the billing desk's does not.
    assert records["refund"].status == "unknown_tool" and records["refund"].agent == "front"
    assert "agent front can call" in (records["refund"].output or "")
    assert records["weather"].status == "ok"
    assert turn.handoffs == [("front", "billing")]
    assert RAN == ["weather:Oslo"]


async def test_calls_of_the_targets_own_response_run_after_a_handoff(agents: Path) -> None:
    scenario = {"turns": [{"user": "bill", **say(call("transfer_to_billing"))},
                          {"user": "refund", **say(call("refund", {"amount": 5}), {"say": "{output}"})}]}
    async with Emulator(scenario, fast=True) as emu, session(emu, agents) as live:
        await live.ask("bill me")
        turn = await live.ask("refund please")
    assert turn.tool_calls[0].agent == "billing" and turn.tool_calls[0].status == "ok"
    assert RAN == ["refund:5"]


# -- 3. nothing hangs -------------------------------------------------------------------------


async def test_ask_after_a_failed_reconnect_raises_at_once(agents: Path) -> None:
    emu = Emulator({"turns": [{"user": "hi", **say({"say": "Hello."})}]}, fast=True,
                   drop_after_events=4)
    await emu.start()
    async with session(emu, agents, max_reconnects=1) as live:
        # The drop comes mid-turn; the server is gone by the time the client reconnects.
        await emu.stop()
        with pytest.raises(ConnectionFailed, match="could not open a new session"):
            await asyncio.wait_for(live.ask("hi", timeout=30), 20)
        with pytest.raises(ConnectionFailed):  # and the next one does not wait forever either
            await asyncio.wait_for(live.ask("anyone?", timeout=30), 5)


async def test_close_while_the_server_streams_is_clean(agents: Path) -> None:
    long = " ".join(["A long spoken answer that keeps the audio coming."] * 40)
    async with Emulator({"turns": [{"user": "talk", **say({"say": long})}]}, fast=True) as emu:
        started = asyncio.Event()
        live_cm = session(emu, agents, text_only=False,
                          listeners=[lambda e: started.set() if e.type == "assistant.delta" else None])
        live = await live_cm.__aenter__()
        asking = asyncio.create_task(live.ask("talk"))
        await asyncio.wait_for(started.wait(), 10)
        conn = live._conn
        await asyncio.wait_for(live_cm.__aexit__(None, None, None), 5)  # bounded: 10 s before
        with pytest.raises(realtalk.SessionError, match="closed"):
            await asyncio.wait_for(asking, 5)
    # The server's close frame was read: a clean close, not a 1006 after a timeout.
    assert conn is not None and conn.close_info is not None and conn.close_info.code == 1000


async def test_a_refused_response_create_ends_the_turn_with_the_error(agents: Path) -> None:
    def spoil(n: int, event: dict[str, Any]) -> Any:
        if event["type"] == "response.create":
            event = dict(event, response={**event.get("response", {}), "output_modalities": ["smell"]})
        return event

    async with Emulator({"turns": []}, fast=True) as emu, proxied(emu, client=spoil) as proxy, \
            session(proxy, agents) as live:
        turn = await asyncio.wait_for(live.ask("hello", timeout=30), 10)
    assert turn.status == "failed" and not turn.ok
    assert turn.status_reason is not None and "invalid" in turn.status_reason


@pytest.mark.parametrize(("status", "details", "reason"), [
    ("failed", {"type": "failed", "error": {"type": "server_error", "code": "server_error",
                                            "message": "The server had an error"}},
     "server_error: The server had an error"),
    ("incomplete", {"type": "incomplete", "reason": "max_output_tokens"}, "max_output_tokens"),
])
async def test_failed_and_incomplete_responses_are_surfaced(
        agents: Path, status: str, details: dict[str, Any], reason: str) -> None:
    def fail(n: int, event: dict[str, Any]) -> Any:
        if event["type"] == "response.done":
            event["response"].update(status=status, status_details=details)
        return event

    events: list[Any] = []
    prose, lines = io.StringIO(), io.StringIO()
    consoles = [ConsoleRenderer(prose), ConsoleRenderer(lines, json_lines=True)]
    async with Emulator({"turns": [{"user": "hi", **say({"say": "Hel"})}]}, fast=True) as emu, \
            proxied(emu, server=fail) as proxy, \
            session(proxy, agents, listeners=[events.append, *consoles]) as live:
        turn = await live.ask("hi")
    assert (turn.status, turn.status_reason) == (status, reason)
    done = [e for e in events if e.type == "turn.done"][-1]
    assert (done.status, done.status_reason) == (status, reason)
    assert any(e.type == "warning" and reason in e.message for e in events)
    assert f"  ✗ turn {status}: {reason}\n" in prose.getvalue()
    json_done = [json.loads(line) for line in lines.getvalue().splitlines() if '"turn.done"' in line]
    assert (json_done[-1]["status"], json_done[-1]["status_reason"]) == (status, reason)


# -- 4. nothing lost or repeated across reconnects ----------------------------------------------


async def test_a_message_written_into_a_dying_socket_is_sent_again(agents: Path) -> None:
    def swallow(n: int, event: dict[str, Any]) -> Any:
        # The first connection dies just as the user's message reaches it: never confirmed.
        if n == 0 and event["type"] == "conversation.item.create":
            return DROP
        return event

    scenario = {"turns": [{"user": "weather", **say(call("weather", {"city": "Rome"}), {"say": "Warm."})}]}
    async with Emulator(scenario, fast=True) as emu, proxied(emu, client=swallow) as proxy, \
            session(proxy, agents) as live:
        turn = await live.ask("what is the weather?")
    assert turn.text == "Warm." and RAN == ["weather:Rome"]
    second = emu.connections[-1].client_events("conversation.item.create")
    assert user_texts(second) == ["what is the weather?"]  # sent again, once
    assert len(emu.connections[-1].client_events("response.create")) == 2  # the reply, the follow-up


async def test_a_reply_finished_before_the_drop_is_not_asked_for_again(agents: Path) -> None:
    def cut(n: int, event: dict[str, Any]) -> Any:
        return DROP if n == 0 and event["type"] == "response.done" else event

    scenario = {"turns": [{"user": "hi", **say({"say": "Hello there."})}, {"user": "bye", **say({"say": "Bye."})}]}
    async with Emulator(scenario, fast=True) as emu, proxied(emu, server=cut) as proxy, \
            session(proxy, agents) as live:
        first = await live.ask("hi")
        second = await live.ask("bye")
    assert (first.text, second.text) == ("Hello there.", "Bye.")
    seeded = emu.connections[1].client_events()
    # The new session was seeded and then asked only for the second reply.
    assert [e["type"] for e in seeded].count("response.create") == 1
    assert user_texts(seeded) == ["hi", "bye"]


async def test_a_drop_while_the_history_is_restored_is_retried(agents: Path) -> None:
    def restore_fails_once(n: int, event: dict[str, Any]) -> Any:
        # Connection 1 drops mid-reply; connection 2 drops while the history is re-seeded.
        if n == 0 and event["type"] == "response.create" and proxy.state:
            return DROP
        if event["type"] == "response.create":
            proxy.state["created"] = True
        if n == 1 and event["type"] == "conversation.item.create":
            return DROP
        return event

    scenario = {"turns": [{"user": "one", **say({"say": "One."})}, {"user": "two", **say({"say": "Two."})}]}
    async with Emulator(scenario, fast=True) as emu, proxied(emu, client=restore_fails_once) as proxy, \
            session(proxy, agents) as live:
        await live.ask("one")
        turn = await live.ask("two")
        assert live.reconnects == 1
    assert turn.text == "Two." and proxy.connections == 3
    assert user_texts(emu.connections[-1].client_events("conversation.item.create")) == ["one", "two"]


async def test_reconnects_in_a_row_have_a_budget(agents: Path) -> None:
    scenario = {"turns": [{"user": "hi", **say({"say": "A reply the server never finishes sending."})}]}
    async with Emulator(scenario, fast=True, drop_after_events=6, drop_connections=1000) as emu, \
            session(emu, agents, max_reconnects=3) as live:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="gave up after 3 reconnects in a row"):
            await asyncio.wait_for(live.ask("hi", timeout=60), 30)
        elapsed = time.monotonic() - started
    assert len(emu.connections) == 4  # the first, then exactly the budget
    assert elapsed < 30  # bounded by the budget, not by ask's own timeout


async def test_an_expiry_in_the_past_is_not_a_rotation_loop(agents: Path) -> None:
    def expired(n: int, event: dict[str, Any]) -> Any:
        if event["type"] == "session.created":
            event["session"]["expires_at"] = int(time.time()) - 3600  # a clock far ahead
        return event

    events: list[Any] = []
    scenario = {"turns": [{"user": "one", **say({"say": "One."})}, {"user": "two", **say({"say": "Two."})}]}
    async with Emulator(scenario, fast=True) as emu, proxied(emu, server=expired) as proxy, \
            session(proxy, agents, listeners=[events.append]) as live:
        await live.ask("one")
        await live.ask("two")
    assert proxy.connections == 1
    warnings = [e.message for e in events if e.type == "warning"]
    assert len(warnings) == 1 and "not rotating ahead of expiry" in warnings[0]


async def test_reconnects_leave_one_rotator_behind(agents: Path) -> None:
    reconnected = Waiter("reconnected", 3)
    async with Emulator({"turns": []}, fast=True, drop_after_events=2, drop_connections=3) as emu, \
            session(emu, agents, listeners=[reconnected]) as live:
        await reconnected.wait()
        rotators = [t for t in asyncio.all_tasks() if t.get_name() == "realtalk-rotator" and not t.done()]
        assert live.reconnects == 3 and len(emu.connections) == 4
    assert len(rotators) == 1


async def test_a_failed_transcription_warns_and_keeps_the_turn(agents: Path) -> None:
    warned = Waiter("warning")

    def transcription_fails(n: int, event: dict[str, Any]) -> Any:
        if event["type"] == "session.updated" and not proxy.state:
            proxy.state["injected"] = True
            item = {"id": "item_u1", "type": "message", "role": "user", "status": "completed",
                    "content": [{"type": "input_audio", "transcript": None}]}
            return [event, {"type": "conversation.item.added", "event_id": "e1", "previous_item_id": None,
                            "item": item},
                    {"type": "conversation.item.done", "event_id": "e2", "previous_item_id": None,
                     "item": item},
                    {"type": "conversation.item.input_audio_transcription.failed", "event_id": "e3",
                     "item_id": "item_u1", "content_index": 0,
                     "error": {"type": "transcription_error", "code": "audio_unintelligible",
                               "message": "Audio could not be transcribed"}}]
        return event

    async with Emulator({"turns": []}, fast=True) as emu, proxied(emu, server=transcription_fails) as proxy, \
            session(proxy, agents, listeners=[warned]) as live:
        await warned.wait()
        history = live._conversation.history_items()
    warning = warned.seen[0].message
    assert "could not be transcribed (Audio could not be transcribed)" in warning
    assert history[0]["item"]["content"] == [{"type": "input_text", "text": UNTRANSCRIBED}]


async def test_a_frame_over_the_limit_reconnects_once_then_ends_with_one_line(agents: Path) -> None:
    huge = {"type": "response.output_text.delta", "event_id": "big", "response_id": "r", "item_id": "i",
            "output_index": 0, "content_index": 0, "delta": "x" * (16 * 1024 * 1024 + 10)}

    def oversize(n: int, event: dict[str, Any]) -> Any:
        return [huge, event] if event["type"] == "response.created" else event

    warned = Waiter("warning")
    scenario = {"turns": [{"user": "hi", **say({"say": "Hello."})}]}
    async with Emulator(scenario, fast=True) as emu, proxied(emu, server=oversize) as proxy, \
            session(proxy, agents, listeners=[warned]) as live:
        with pytest.raises(ConnectionFailed) as failure:
            await asyncio.wait_for(live.ask("hi", timeout=30), 20)
    message = str(failure.value)
    assert "16777216" in message or "16 MiB" in message or "16 MB" in message, message
    assert "happened twice" in message and "\n" not in message
    assert proxy.connections == 2
    assert "reconnecting once" in warned.seen[0].message


async def test_a_server_that_does_not_start_with_session_created_is_a_protocol_error(agents: Path) -> None:
    async def wrong(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "response.done", "event_id": "e1", "response": {"id": "r"}}))
        await ws.wait_closed()

    async with serve(wrong, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/realtime"
        with pytest.raises(realtalk.ProtocolError, match="expected session.created as the first event"):
            async with open_session(agents, url=url, text_only=True, extra_plugins=[Tools()]):
                pass


async def test_events_nobody_iterates_stay_bounded(agents: Path) -> None:
    from realtalk.session import EVENT_BACKLOG

    async with Emulator({"turns": []}, fast=True) as emu, session(emu, agents) as live:
        for n in range(EVENT_BACKLOG * 3):
            live._emit("warning", message=f"w{n}")
        seen = []
        async for event in live.events():
            seen.append(event)
            if len(seen) == EVENT_BACKLOG:
                break
    assert len(seen) == EVENT_BACKLOG  # the oldest went first
    assert seen[-1].message == f"w{EVENT_BACKLOG * 3 - 1}"


async def test_events_nobody_iterates_hold_under_100_kb(agents: Path) -> None:
    """A long voice session nobody iterates: its backlog of transcript deltas stays small."""
    import tracemalloc

    async with Emulator({"turns": []}, fast=True) as emu, session(emu, agents) as live:
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for n in range(10_000):  # about 20 minutes of a talking assistant's transcript
                live._emit("assistant.delta", agent="assistant", delta=f"word {n} " * 5)
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert held < 100_000, f"{held} bytes held by events nobody reads"
