"""session.update: partial merge, strict validation, atomic rejection, voice lock."""

from __future__ import annotations

from typing import Any

import pytest
from realtalk.emulator import Emulator


async def _update(client: Any, session: dict[str, Any], event_id: str = "evt_1") -> dict[str, Any]:
    await client.send({"type": "session.update", "event_id": event_id, "session": session})
    return await client.recv()


async def test_merge_keeps_other_fields(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        reply = await _update(client, {"type": "realtime", "instructions": "Be brief."})
        assert reply["type"] == "session.updated"
        assert reply["session"]["instructions"] == "Be brief."
        assert reply["session"]["audio"]["output"]["voice"] == "alloy"  # untouched
        reply = await _update(
            client,
            {
                "type": "realtime",
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}
                },
            },
        )
        session = reply["session"]
        assert session["instructions"] == "Be brief."  # kept from the first update
        detection = session["audio"]["input"]["turn_detection"]
        assert detection["silence_duration_ms"] == 800
        assert detection["threshold"] == 0.5  # defaults filled in
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


async def test_invalid_field_rejects_whole_update(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        reply = await _update(
            client,
            {
                "type": "realtime",
                "instructions": "changed",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
        )
        assert reply["type"] == "error"
        assert reply["error"]["code"] == "integer_below_min_value"
        assert reply["error"]["param"] == "session.audio.input.format.rate"
        assert reply["error"]["event_id"] == "evt_1"
        assert ">= 24000" in reply["error"]["message"]
        reply = await _update(client, {"type": "realtime"})
        assert reply["session"]["instructions"] != "changed"  # nothing was applied


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"type": "realtime", "bogus_field": 1}, "unknown_parameter", "session.bogus_field"),
        (
            {"type": "realtime", "audio": {"output": {"bogus": 1}}},
            "unknown_parameter",
            "session.audio.output.bogus",
        ),
        ({"instructions": "x"}, "missing_required_parameter", "session.type"),
        ({"type": "realtime", "instructions": 5}, "invalid_type", "session.instructions"),
        (
            {"type": "realtime", "output_modalities": ["video"]},
            "invalid_value",
            "session.output_modalities[0]",
        ),
        (
            {"type": "realtime", "output_modalities": ["text", "audio"]},
            "invalid_value",
            "session.output_modalities",
        ),
        (
            {"type": "realtime", "audio": {"output": {"voice": "nobody"}}},
            "invalid_value",
            "session.audio.output.voice",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}},
            },
            "decimal_above_max_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {
                "type": "realtime",
                "tools": [{"type": "function", "name": "f", "description": "d" * 1025}],
            },
            "string_above_max_length",
            "session.tools[0].description",
        ),
        ({"type": "transcription"}, "invalid_value", "session.type"),
    ],
)
async def test_rejections(
    emu: Emulator, open_client: Any, session: dict[str, Any], code: str, param: str
) -> None:
    async with open_client(emu) as client:
        reply = await _update(client, session)
        assert reply["type"] == "error"
        assert (reply["error"]["code"], reply["error"]["param"]) == (code, param)
        assert (await _update(client, {"type": "realtime"}))["type"] == "session.updated"


async def test_missing_session(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        await client.send({"type": "session.update"})
        reply = await client.recv()
        assert reply["error"]["code"] == "missing_required_parameter"
        assert reply["error"]["param"] == "session"


async def test_voice_locked_once_audio_exists(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator({"turns": [{"user": "hi", "reply": "Hello there."}]})
    async with open_client(emu) as client:
        reply = await _update(client, {"type": "realtime", "audio": {"output": {"voice": "marin"}}})
        assert reply["session"]["audio"]["output"]["voice"] == "marin"  # no audio yet: allowed
        await client.turn("hi")
        reply = await _update(
            client,
            {"type": "realtime", "audio": {"output": {"voice": "cedar"}}},
            event_id="evt_voice",
        )
        assert reply["error"]["code"] == "cannot_update_voice"
        assert reply["error"]["event_id"] == "evt_voice"
        reply = await _update(client, {"type": "realtime", "audio": {"output": {"voice": "marin"}}})
        assert reply["type"] == "session.updated"  # the same voice is not a change
