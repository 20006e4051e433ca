"""Timing as live: the input transcription comes asynchronously (by default after the
response to the same audio has started), and assistant audio is sent faster than real
time (by default 4x), so a barge-in often lands after ``response.done``."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from realtalk.cli import emulator as cli
from realtalk.emulator import protocol, responses

TRANSCRIBE = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
    },
}
SCENARIO = {
    "turns": [
        {"audio": True, "transcript": "book a room", "reply": "Which dates would you like?"},
        {"audio": True, "reply": "Okay."},
    ]
}


async def _audio_turn(client: Any, append_audio: Any, speech: bytes) -> list[dict[str, Any]]:
    await client.send(TRANSCRIBE)
    await client.until("session.updated")
    await append_audio(client, speech)
    events = await client.until("conversation.item.input_audio_transcription.completed")
    if "response.done" not in [e["type"] for e in events]:
        events += await client.until("response.done")
    return events


async def test_transcription_arrives_after_the_response_started(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        events = await _audio_turn(client, append_audio, speech)
    types = [e["type"] for e in events]
    assert types.index("input_audio_buffer.committed") < types.index("response.created")
    first = types.index("conversation.item.input_audio_transcription.delta")
    assert types.index("response.created") < first
    completed = events[types.index("conversation.item.input_audio_transcription.completed")]
    assert completed["transcript"] == "book a room"
    # The user item is the one transcribed, though the response already went on.
    committed = events[types.index("input_audio_buffer.committed")]
    assert completed["item_id"] == committed["item_id"]


async def test_transcription_delay_zero_gives_it_before_the_response(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    emu = await make_emulator(SCENARIO, transcription_delay_ms=0)
    async with open_client(emu) as client:
        events = await _audio_turn(client, append_audio, speech)
    types = [e["type"] for e in events]
    assert types.index("conversation.item.input_audio_transcription.completed") < types.index(
        "response.created"
    )


async def test_retrieve_after_the_transcription_shows_it(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        events = await _audio_turn(client, append_audio, speech)
        committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
        await client.send({"type": "conversation.item.retrieve", "item_id": committed["item_id"]})
        item = (await client.until("conversation.item.retrieved"))[-1]["item"]
    assert item["content"][0]["transcript"] == "book a room"


async def test_barge_in_after_response_done_leaves_only_truncation(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    # Real pacing at the default speed: a 1.8 s reply is all sent in under half a second,
    # so a user who talks over what they hear speaks after response.done.
    emu = await make_emulator(SCENARIO, fast=False)
    async with open_client(emu) as client:
        await append_audio(client, speech)
        events = await client.until("response.done")
        reply = events[-1]["response"]
        assert reply["status"] == "completed"
        await append_audio(client, speech)  # the "barge-in", while the reply still plays
        later = await client.until("response.done")
        assert "input_audio_buffer.speech_started" in [e["type"] for e in later]
        # Nothing to cancel: the client truncates what was not heard.
        item = reply["output"][0]
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item["id"],
                "content_index": 0,
                "audio_end_ms": 500,
            }
        )
        truncated = (await client.until("conversation.item.truncated"))[-1]
    statuses = [e["response"]["status"] for e in emu.server_events("response.done")]
    assert statuses == ["completed", "completed"]
    assert truncated["item_id"] == item["id"]


def test_defaults_are_live_like_and_the_cli_agrees() -> None:
    assert responses.DEFAULT_AUDIO_SPEED == cli.DEFAULT_AUDIO_SPEED == 4.0
    assert protocol.DEFAULT_TRANSCRIPTION_DELAY * 1000 == cli.DEFAULT_TRANSCRIPTION_DELAY_MS
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--audio-speed", "1", "--transcription-delay-ms", "0"])
    assert (args.audio_speed, args.transcription_delay_ms) == (1.0, 0.0)
    defaults = parser.parse_args([])
    assert (defaults.audio_speed, defaults.transcription_delay_ms) == (4.0, 500.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"audio_speed": 0}, "audio_speed must be above 0, not 0"),
        ({"transcription_delay_ms": -1}, "transcription_delay_ms must be 0 or more, not -1"),
    ],
)
async def test_bad_timing_options(
    make_emulator: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await make_emulator(**options)


def test_the_transcription_falls_due_between_audio_chunks(speech: bytes) -> None:
    # Sans-I/O: every event at the moment it falls due on the protocol's clock, so fast
    # mode (ticking from deadline to deadline) keeps the live order.
    from realtalk.emulator import load_scenario
    from realtalk.emulator.protocol import Send, ServerProtocol
    from realtalk.emulator.state import ScenarioProgress
    from realtalk.emulator.voice import ToneAudio

    progress = ScenarioProgress(load_scenario(SCENARIO))
    server = ServerProtocol(model="gpt-realtime", progress=progress, audio=ToneAudio(),
                            audio_speed=1.0, transcription_delay=0.25)
    server.receive_event(TRANSCRIBE, 0.0)
    server.receive_audio(speech, 0.0)
    events = [a.event for a in server.actions_to_send() if isinstance(a, Send)]
    while (deadline := server.next_deadline()) is not None:
        server.receive_tick(deadline)
        events += [a.event for a in server.actions_to_send() if isinstance(a, Send)]
    kinds = [e["type"] for e in events]
    chunks = [n for n, k in enumerate(kinds) if k == "response.output_audio.delta"]
    first = kinds.index("conversation.item.input_audio_transcription.delta")
    assert chunks[2] < first < chunks[3]  # chunks at 0, 0.1 and 0.2 s; then 0.25; then 0.3
    assert kinds[-1] == "rate_limits.updated"
