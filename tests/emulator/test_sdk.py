"""The official openai SDK talks to the emulator as it would to OpenAI."""

from __future__ import annotations

import json
from typing import Any

from openai import AsyncOpenAI
from realtalk.emulator.conformance import client_event_problems

SCENARIO = {
    "turns": [
        {"user": "hello", "reply": "Hello from the emulator."},
        {
            "user": "weather",
            "reply": [
                {"call": "get_weather", "arguments": {"city": "Oslo"}},
                {"say": "The weather is {output}."},
            ],
        },
    ]
}


async def _until(conn: Any, type_: str) -> list[Any]:
    events = []
    async for event in conn:
        events.append(event)
        if event.type == type_:
            return events
    raise AssertionError(f"connection ended before {type_}")


async def test_sdk_text_turn_and_function_call(make_emulator: Any) -> None:
    emu = await make_emulator(SCENARIO, api_key="sk-test")
    client = AsyncOpenAI(
        api_key="sk-test", base_url=emu.base_url, websocket_base_url=emu.websocket_base_url
    )
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["text"],
                "tools": [
                    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
                ],
            }
        )
        events = await _until(conn, "session.updated")
        assert events[0].type == "session.created"
        assert events[-1].session.output_modalities == ["text"]

        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            }
        )
        await conn.response.create()
        events = await _until(conn, "response.done")
        texts = [e.text for e in events if e.type == "response.output_text.done"]
        assert texts == ["Hello from the emulator."]
        assert events[-1].response.status == "completed"

        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What's the weather?"}],
            }
        )
        await conn.response.create()
        events = await _until(conn, "response.done")
        calls = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [
            ("get_weather", {"city": "Oslo"})
        ]

        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}
        )
        await conn.response.create()
        events = await _until(conn, "response.done")
        texts = [e.text for e in events if e.type == "response.output_text.done"]
        assert texts == ["The weather is sunny."]
    connection = emu.connections[0]
    assert connection.headers["authorization"] == "Bearer sk-test"
    assert "openai-beta" not in connection.headers
    assert connection.path.startswith("/v1/realtime?model=gpt-realtime")
    # What the SDK sent is valid GA too (the oracle checks both directions).
    assert client_event_problems(emu.client_events()) == []
    assert len(emu.client_events()) == 7


def _speech() -> bytes:
    """PCM16 24 kHz: 500 ms of silence, 800 ms of a 440 Hz tone, 700 ms of silence."""
    import math
    import struct

    rate = 24_000
    samples = [0] * (rate * 2)
    for i in range(rate // 2, rate // 2 + rate * 8 // 10):
        samples[i] = round(0.3 * 32767 * math.sin(2 * math.pi * 440 * i / rate))
    return struct.pack(f"<{len(samples)}h", *samples)


async def test_sdk_audio_turn(make_emulator: Any) -> None:
    """Speech in (server VAD answers it), audio and its transcript out, as a voice app does."""
    import base64

    scenario = {"turns": [{"audio": True, "transcript": "Is it warm?", "reply": "Warm enough."}]}
    emu = await make_emulator(scenario)
    client = AsyncOpenAI(
        api_key="sk-test", base_url=emu.base_url, websocket_base_url=emu.websocket_base_url
    )
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["audio"],
                "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
            }
        )
        await _until(conn, "session.updated")
        audio = _speech()
        for at in range(0, len(audio), 4800):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(audio[at : at + 4800]).decode()
            )
        events = await _until(conn, "response.done")
        heard_type = "conversation.item.input_audio_transcription.completed"
        if heard_type not in [e.type for e in events]:  # it may come after the response
            events += await _until(conn, heard_type)
    types = [e.type for e in events]
    assert types.index("input_audio_buffer.speech_started") < types.index(
        "input_audio_buffer.speech_stopped"
    ) < types.index("response.created")
    heard = [
        e.transcript
        for e in events
        if e.type == "conversation.item.input_audio_transcription.completed"
    ]
    assert heard == ["Is it warm?"]
    played = sum(
        len(base64.b64decode(e.delta)) for e in events if e.type == "response.output_audio.delta"
    )
    assert played > 24_000  # at least half a second of PCM16 at 24 kHz
    said = [e.transcript for e in events if e.type == "response.output_audio_transcript.done"]
    assert said == ["Warm enough."]
    assert [e.response.status for e in events if e.type == "response.done"] == ["completed"]
    assert client_event_problems(emu.client_events()) == []


def _doc_block(language: str, containing: str) -> str:
    """The one ``language`` block of docs/emulator.md that contains ``containing``."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text()
    [block] = [b for b in re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL) if containing in b]
    return block


async def test_doc_python_sdk_example(make_emulator: Any) -> None:
    """docs/emulator.md's "Clients that work unmodified": the Python SDK example runs."""
    namespace: dict[str, Any] = {}
    block = _doc_block("python", "async def ask")
    exec(compile(block, "docs/emulator.md", "exec"), namespace)  # noqa: S102
    emu = await make_emulator(SCENARIO)
    assert await namespace["ask"](emu.base_url, emu.websocket_base_url, "hello") == (
        "Hello from the emulator."
    )
