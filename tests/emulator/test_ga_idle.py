"""``idle_timeout_ms`` on server_vad: after the last response's audio would have finished
playing, that much more input audio without speech gives
``input_audio_buffer.timeout_triggered``, a committed (silent) user item and a response."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.realtime import InputAudioBufferTimeoutTriggered

SCENARIO = {
    "turns": [
        {"user": "hi", "reply": "Hello."},
        {"idle": True, "reply": "Are you still there?"},
    ]
}
IDLE = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}},
    },
}


async def test_idle_timeout_triggers_a_response(
    make_emulator: Any, open_client: Any, append_audio: Any, pcm: Any
) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await client.send(IDLE)
        await client.until("session.updated")
        await client.turn("hi")
        await append_audio(client, pcm(("silence", 4000, 0)))  # not yet
        await append_audio(client, pcm(("silence", 1500, 0)))
        events = await client.until("response.done")
    types = [e["type"] for e in events]
    assert types[:4] == [
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    timeout = InputAudioBufferTimeoutTriggered.model_validate(events[0])
    assert (timeout.audio_start_ms, timeout.audio_end_ms) == (0, 5000)
    assert events[1]["item_id"] == timeout.item_id == events[2]["item"]["id"]
    assert events[2]["item"]["content"][0]["type"] == "input_audio"
    reply = events[-1]["response"]["output"][0]["content"][0]["text"]
    assert reply == "Are you still there?"
    # Once: no second timeout until the next response has finished.
    assert len(emu.server_events("input_audio_buffer.timeout_triggered")) == 1


async def test_idle_timeout_counts_from_the_end_of_the_reply_audio(
    make_emulator: Any, open_client: Any, append_audio: Any, pcm: Any
) -> None:
    emu = await make_emulator({"turns": [{"user": "hi", "reply": "x" * 30}]})  # 2 s of audio
    async with open_client(emu) as client:
        update = {**IDLE["session"], "output_modalities": ["audio"]}
        await client.send({"type": "session.update", "session": update})
        await client.until("session.updated")
        await client.turn("hi")
        await append_audio(client, pcm(("silence", 6900, 0)))  # 2 s playback + 4.9 s
        await client.send({"type": "input_audio_buffer.clear"})
        await client.until("input_audio_buffer.cleared")
        assert emu.server_events("input_audio_buffer.timeout_triggered") == []
        await append_audio(client, pcm(("silence", 100, 0)))
        timeout = (await client.until("input_audio_buffer.timeout_triggered"))[-1]
    assert (timeout["audio_start_ms"], timeout["audio_end_ms"]) == (2000, 7000)


async def test_speech_cancels_the_idle_timeout(
    make_emulator: Any, open_client: Any, append_audio: Any, pcm: Any, speech: bytes
) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        update = {**IDLE["session"]}
        update["audio"] = {"input": {"turn_detection": {
            "type": "server_vad", "idle_timeout_ms": 5000, "create_response": False}}}
        await client.send({"type": "session.update", "session": update})
        await client.until("session.updated")
        await client.turn("hi")
        await append_audio(client, speech)  # the user speaks: no timeout for this pause
        await append_audio(client, pcm(("silence", 6000, 0)))
        await client.send({"type": "input_audio_buffer.clear"})
        await client.until("input_audio_buffer.cleared")
    assert emu.server_events("input_audio_buffer.timeout_triggered") == []


@pytest.mark.parametrize("value", [4999, 30001])
async def test_idle_timeout_range(make_emulator: Any, open_client: Any, value: int) -> None:
    emu = await make_emulator()
    async with open_client(emu) as client:
        await client.send({"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": value}}}}})
        error = (await client.until("error"))[-1]["error"]
    assert error["param"] == "session.audio.input.turn_detection.idle_timeout_ms"


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ({"idle": "yes", "reply": "r"}, "'idle' must be true or false"),
        ({"idle": True, "audio": True, "reply": "r"}, "a turn needs exactly one of"),
    ],
)
def test_bad_idle_turns(turn: dict[str, Any], message: str) -> None:
    from realtalk.emulator import load_scenario
    from realtalk.exceptions import ScenarioError

    with pytest.raises(ScenarioError, match=message):
        load_scenario({"turns": [turn]})
