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
