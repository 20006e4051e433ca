"""The record of each connection: audio kept as its length, and a bound on its events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from realtalk.emulator.state import ConnectionRecord, without_audio

CHUNK = bytes(4800)  # 100 ms of PCM16 24 kHz silence: the server VAD hears nothing
CHUNK_B64 = base64.b64encode(CHUNK).decode()
SECONDS = 30  # of input audio appended, and of reply audio streamed back
LONG_REPLY = "y" * (15 * SECONDS)  # the voice speaks 15 characters a second


async def _long_session(make_emulator: Any, open_client: Any, **options: Any) -> ConnectionRecord:
    """One session: 300 appended 100 ms chunks, then a reply of 300 100 ms deltas."""
    emu = await make_emulator({"turns": [{"user": "go", "reply": LONG_REPLY}]}, **options)
    async with open_client(emu) as client:
        for _ in range(SECONDS * 10):
            await client.send({"type": "input_audio_buffer.append", "audio": CHUNK_B64})
        events = await client.turn("go")
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert len(deltas) == SECONDS * 10
    [record] = emu.connections
    return record


def _size(record: ConnectionRecord) -> int:
    return len(json.dumps([r.event for r in record.events]))


async def test_recorded_size_stays_small_without_audio(
    make_emulator: Any, open_client: Any
) -> None:
    # 30 s of audio each way (916 events); a session-minute is twice this. The old record
    # (every payload kept, as record_audio=True still does) is some 4.0 MB of JSON here,
    # 8 MB per session-minute; without payloads it is some 0.17 MB (0.35 MB a minute).
    bound = 300_000
    whole = _size(await _long_session(make_emulator, open_client, record_audio=True))
    assert whole > 10 * bound
    record = await _long_session(make_emulator, open_client)
    assert _size(record) < bound
    appends = record.client_events("input_audio_buffer.append")
    assert len(appends) == SECONDS * 10
    assert {a["audio"] for a in appends} == {"<audio 4800 bytes>"}
    deltas = record.server_events("response.output_audio.delta")
    assert {d["delta"] for d in deltas} == {"<audio 4800 bytes>"}
    assert record.discarded == 0


async def test_record_audio_keeps_the_audio_sent(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator({"turns": [{"user": "hi", "reply": "Hi there!"}]}, record_audio=True)
    async with open_client(emu) as client:
        await client.send({"type": "input_audio_buffer.append", "audio": CHUNK_B64})
        events = await client.turn("hi")
    [append] = emu.client_events("input_audio_buffer.append")
    assert append["audio"] == CHUNK_B64
    sent = [e["delta"] for e in events if e["type"] == "response.output_audio.delta"]
    assert [e["delta"] for e in emu.server_events("response.output_audio.delta")] == sent
    assert len(b"".join(base64.b64decode(d) for d in sent)) == 9 * 1600 * 2


async def test_the_oldest_events_go_first(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(max_recorded_events=5)
    async with open_client(emu) as client:
        for _ in range(10):
            await client.send({"type": "input_audio_buffer.append", "audio": CHUNK_B64})
        await client.send({"type": "input_audio_buffer.commit"})
        await client.until("input_audio_buffer.committed")
    await emu.wait_for("input_audio_buffer.committed")
    [record] = emu.connections
    assert len(record.events) == 5
    # session.created, 10 appends, the commit, then committed and the item's two events
    # (no transcription is configured) were recorded: 15 in all.
    assert record.discarded == 10
    assert [r.event["type"] for r in record.events][-1] == "conversation.item.done"
    assert "session.created" not in [r.event["type"] for r in record.events]


async def test_audio_the_protocol_needs_is_not_in_the_record(
    make_emulator: Any, open_client: Any
) -> None:
    # conversation.item.retrieve hands back the committed audio from the protocol's own
    # state; the record shows only its length.
    emu = await make_emulator()
    async with open_client(emu) as client:
        await client.send({"type": "input_audio_buffer.append", "audio": CHUNK_B64})
        await client.send({"type": "input_audio_buffer.commit"})
        [committed] = [
            e for e in await client.until("input_audio_buffer.committed")
            if e["type"] == "input_audio_buffer.committed"
        ]
        await client.send({"type": "conversation.item.retrieve", "item_id": committed["item_id"]})
        [retrieved] = [
            e for e in await client.until("conversation.item.retrieved")
            if e["type"] == "conversation.item.retrieved"
        ]
    assert retrieved["item"]["content"][0]["audio"] == CHUNK_B64
    [recorded] = emu.server_events("conversation.item.retrieved")
    assert recorded["item"]["content"][0]["audio"] == "<audio 4800 bytes>"


def test_without_audio_copies_only_what_holds_audio() -> None:
    delta = {"type": "response.output_audio.delta", "item_id": "i", "delta": CHUNK_B64}
    assert without_audio(delta) == {**delta, "delta": "<audio 4800 bytes>"}
    assert delta["delta"] == CHUNK_B64  # the event on its way to the socket is untouched
    text = {"type": "response.output_audio_transcript.delta", "delta": "hello"}
    assert without_audio(text) is text
    session = {"type": "session.updated", "session": {"audio": {"output": {"voice": "marin"}}}}
    assert without_audio(session) is session
    create = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_audio", "audio": base64.b64encode(b"12345").decode()},
            ],
        },
    }
    stripped = without_audio(create)
    assert stripped["item"]["content"] == [
        {"type": "input_text", "text": "look"},
        {"type": "input_audio", "audio": "<audio 5 bytes>"},
    ]
    assert create["item"]["content"][1]["audio"] == "MTIzNDU="
    assert stripped["item"]["content"][0] is create["item"]["content"][0]
    alias = {"type": "session.input_audio_buffer.append", "audio": CHUNK_B64}
    assert without_audio(alias)["audio"] == "<audio 4800 bytes>"
    not_audio = {"type": "input_audio_buffer.append", "audio": 42}  # refused later, as sent
    assert without_audio(not_audio) is not_audio


def test_record_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_events"):
        ConnectionRecord(path="/", headers={}, max_events=0)
    record = ConnectionRecord(path="/", headers={}, max_events=None)
    for n in range(3):
        record.add("client", {"type": "x", "n": n})
    assert [r.event["n"] for r in record.events] == [0, 1, 2] and record.discarded == 0


async def test_emulator_refuses_a_bound_below_one(make_emulator: Any) -> None:
    with pytest.raises(ValueError, match="max_recorded_events"):
        await make_emulator(max_recorded_events=0)


def test_command_line_flag() -> None:
    import argparse

    from realtalk.cli.emulator import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).record_audio is False
    assert parser.parse_args(["--record-audio"]).record_audio is True
