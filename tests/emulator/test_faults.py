"""Faults: session expiry, 429 refusals, dropped sockets, latency."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus


async def test_expiry(make_emulator: Any) -> None:
    emu = await make_emulator(expire_after=0.5)
    async with connect(emu.url + "?model=gpt-realtime") as ws:
        created = json.loads(await ws.recv())
        assert abs(created["session"]["expires_at"] - time.time()) <= 1.5
        error = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert error["error"]["code"] == "session_expired"
    assert error["error"]["message"] == (
        f"Your session hit the maximum duration of {0.5 / 60:g} minutes."
    )
    assert ws.close_code == 1001
    assert ws.close_reason == error["error"]["message"]


async def test_expires_at_matches_default_hour(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(expire_after=90)
    async with open_client(emu) as client:
        expires_at = client.received[0]["session"]["expires_at"]
    assert abs(expires_at - (time.time() + 90)) <= 2


async def test_refuse_with_429_then_accept(make_emulator: Any) -> None:
    emu = await make_emulator(refuse_connections=2)
    for _ in range(2):
        with pytest.raises(InvalidStatus) as info:
            async with connect(emu.url + "?model=gpt-realtime"):
                pass
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == "1"
    async with connect(emu.url + "?model=gpt-realtime") as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
    assert emu.refused == 2
    assert len(emu.connections) == 1


async def test_drop_after_events(make_emulator: Any, user_message: Any) -> None:
    emu = await make_emulator(
        {"turns": [{"user": "hi", "reply": "Hello there, friend."}]}, drop_after_events=5
    )
    received = []
    async with connect(emu.url + "?model=gpt-realtime") as ws:
        await ws.send(json.dumps(user_message("hi")))
        await ws.send(json.dumps({"type": "response.create"}))
        with pytest.raises(ConnectionClosedError) as info:
            while True:
                received.append(json.loads(await ws.recv()))
    assert info.value.rcvd is None  # no close frame: the socket was aborted
    assert len(received) == 5
    assert received[-1]["type"] == "response.output_item.added"  # mid-response
    assert emu.connections[0].dropped


async def test_latency(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(latency_ms=250)
    async with open_client(emu) as client:
        start = time.monotonic()
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        await client.until("session.updated")
        elapsed = time.monotonic() - start
        # Appends get no reply and no delay: ten of them plus a clear cost one latency.
        start = time.monotonic()
        for _ in range(10):
            await client.send({"type": "input_audio_buffer.append", "audio": "AAAA"})
        await client.send({"type": "input_audio_buffer.clear"})
        await client.until("input_audio_buffer.cleared")
        assert 0.25 <= time.monotonic() - start < 10 * 0.25
    assert elapsed >= 0.25
    fast = await make_emulator()
    async with open_client(fast) as client:
        start = time.monotonic()
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        await client.until("session.updated")
        assert time.monotonic() - start < elapsed  # the same exchange, without the delay


async def test_drop_hits_one_connection_then_reconnect_continues(
    make_emulator: Any, user_message: Any
) -> None:
    emu = await make_emulator(
        {"turns": [{"user": "hi", "reply": "one"}, {"user": "hi", "reply": "two"}]},
        drop_after_events=6,
    )
    texts = []
    for _ in range(2):
        try:
            async with connect(emu.url + "?model=gpt-realtime") as ws:
                await ws.send(
                    json.dumps(
                        {
                            "type": "session.update",
                            "session": {"type": "realtime", "output_modalities": ["text"]},
                        }
                    )
                )
                await ws.send(json.dumps(user_message("hi")))
                await ws.send(json.dumps({"type": "response.create"}))
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == "response.output_text.done":
                        texts.append(event["text"])
                    if event["type"] == "response.done":
                        break
        except ConnectionClosedError:
            texts.append("dropped")
    # The first response was cut off after matching turn 1; the reconnect continues at turn 2.
    assert texts == ["dropped", "two"]
    assert [c.dropped for c in emu.connections] == [True, False]
