"""Transcription sessions (``?intent=transcription``, ``session.type: "transcription"``):
audio in, VAD commits, transcription deltas and completed events; no conversation and no
responses. Driven with plain websockets and checked against the openai types."""

from __future__ import annotations

from typing import Any

from openai.types.realtime import SessionCreatedEvent, SessionUpdateEvent
from openai.types.realtime.realtime_transcription_session_create_request import (
    RealtimeTranscriptionSessionCreateRequest,
)

SCENARIO = {
    "turns": [
        {"audio": True, "transcript": "first words", "reply": "never said"},
        {"audio": True, "transcript": "second words", "reply": "never said"},
    ]
}
UPDATE: dict[str, Any] = {
    "type": "session.update",
    "session": {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
            }
        },
        "include": ["item.input_audio_transcription.logprobs"],
    },
}
QUERY = "?intent=transcription"


async def test_transcription_session(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes, conformance: Any
) -> None:
    emu = await make_emulator(SCENARIO, transcription_delay_ms=0)
    async with open_client(emu, QUERY) as client:
        created = client.received[0]
        SessionCreatedEvent.model_validate(created)
        assert created["session"]["type"] == "transcription"
        RealtimeTranscriptionSessionCreateRequest.model_validate(created["session"])
        SessionUpdateEvent.model_validate(UPDATE)  # what we send is a valid client event
        await client.send(UPDATE)
        updated = (await client.until("session.updated"))[-1]["session"]
        assert updated["audio"]["input"]["transcription"]["language"] == "en"
        transcripts = []
        for _ in range(2):
            await append_audio(client, speech)
            events = await client.until("conversation.item.input_audio_transcription.completed")
            transcripts.append(events[-1]["transcript"])
            assert "logprobs" in events[-1]
        await client.send({"type": "response.create", "event_id": "r"})
        error = (await client.until("error"))[-1]["error"]
    assert transcripts == ["first words", "second words"]  # segment after segment
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "r")
    sent = emu.server_events()
    kinds = {e["type"] for e in sent}
    assert not {k for k in kinds if k.startswith(("response.", "conversation.item.added"))}
    assert "rate_limits.updated" not in kinds
    assert "input_audio_buffer.committed" in kinds
    assert conformance(sent) == []


async def test_realtime_update_refused_in_a_transcription_session(
    make_emulator: Any, open_client: Any
) -> None:
    emu = await make_emulator()
    async with open_client(emu, QUERY) as client:
        await client.send({"type": "session.update",
                           "session": {"type": "realtime", "instructions": "hi"}})
        error = (await client.until("error"))[-1]["error"]
        assert error["param"] == "session.type"
        assert "realtime session update" in error["message"]
        await client.send({"type": "session.update",
                           "session": {"type": "transcription", "voice": "marin"}})
        error = (await client.until("error"))[-1]["error"]
    assert (error["code"], error["param"]) == ("unknown_parameter", "session.voice")


async def test_manual_commit_without_vad(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu, QUERY) as client:
        await client.send({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {"turn_detection": None}}}})
        await client.until("session.updated")
        await append_audio(client, speech)
        await client.send({"type": "input_audio_buffer.commit"})
        events = await client.until("conversation.item.input_audio_transcription.completed")
    assert events[0]["type"] == "input_audio_buffer.committed"
    assert events[-1]["transcript"] == "first words"


async def test_a_model_or_the_intent_is_needed(make_emulator: Any, open_client: Any) -> None:
    import json

    from websockets.asyncio.client import connect

    emu = await make_emulator()
    async with connect(emu.url + "?intent=realtime") as ws:
        first = json.loads(await ws.recv())
    assert first["error"]["code"] == "missing_model"
