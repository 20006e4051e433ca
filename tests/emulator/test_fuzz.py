"""Junk client input never breaks the emulator: only proper errors, and the socket stays open."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realtalk.emulator.builders import SUPPORTED_TYPES, ClientError, validate_item
from realtalk.emulator.config import SessionUpdateError, validate_session_update

KEYS = [
    "type",
    "session",
    "audio",
    "input",
    "output",
    "format",
    "rate",
    "voice",
    "turn_detection",
    "threshold",
    "tools",
    "name",
    "description",
    "parameters",
    "instructions",
    "item",
    "role",
    "content",
    "text",
    "call_id",
    "output_modalities",
    "bogus",
    "metadata",
    "model",
    "tool_choice",
]
VALUES = [
    "realtime",
    "audio/pcm",
    "audio/pcmu",
    "server_vad",
    "function",
    "message",
    "user",
    "input_text",
    "alloy",
    "text",
    "auto",
    "transcription",
    24000,
    16000,
    0.5,
    -1,
    True,
    None,
]

json_values = st.recursive(
    st.sampled_from(VALUES) | st.text(max_size=5) | st.integers() | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)

# Items that are often nearly valid, so the accepting path is exercised too.
PART_KEYS = ["type", "text", "audio", "transcript", "detail", "image_url", "bogus"]
item_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output"])},
    optional={
        "role": st.sampled_from(["user", "system", "assistant", "tool"]),
        "content": st.lists(
            st.dictionaries(
                st.sampled_from(PART_KEYS),
                st.sampled_from(
                    [
                        "input_text",
                        "output_text",
                        "input_audio",
                        "output_audio",
                        "hi",
                        "auto",
                        None,
                        3,
                    ]
                ),
                max_size=3,
            ),
            max_size=2,
        ),
        "id": st.sampled_from(["item_1", 5, ""]),
        "call_id": st.sampled_from(["c1", None]),
        "name": st.sampled_from(["f", 1]),
        "arguments": st.sampled_from(["{}", "x", {}]),
        "output": st.sampled_from(["ok", 2]),
        "status": st.sampled_from(["completed", "odd"]),
        "object": st.sampled_from(["realtime.item", 7]),
    },
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_session_validator_only_raises_its_error(value: Any) -> None:
    try:
        result = validate_session_update(value)
    except SessionUpdateError as exc:
        assert exc.code and exc.message
    else:
        assert result["type"] == "realtime"


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # a stateless fixture
@given(value=json_values | item_like)
def test_item_validator_only_raises_its_error(value: Any, conformance: Any) -> None:
    try:
        item = validate_item(value)
    except ClientError as exc:
        assert exc.code and exc.message
    else:
        # Whatever is accepted is echoed, so it must be a valid GA item.
        echo = {
            "type": "conversation.item.added",
            "event_id": "e",
            "item": item,
            "previous_item_id": None,
        }
        assert conformance([echo]) == []


def _junk(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.3:
        return {rng.choice(KEYS): _junk(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if depth < 3 and roll < 0.4:
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    return rng.choice(VALUES + ["", "x" * 3, "item_nope", "AAAA"])


async def test_junk_events_over_the_socket(emu: Any, open_client: Any) -> None:
    rng = random.Random(1234)  # fixed: the same junk every run
    async with open_client(emu) as client:
        for _ in range(300):
            event = {"type": rng.choice(SUPPORTED_TYPES)}
            for key in rng.sample(
                [
                    "session",
                    "item",
                    "item_id",
                    "audio",
                    "response",
                    "content_index",
                    "audio_end_ms",
                    "previous_item_id",
                ],
                rng.randint(0, 3),
            ):
                event[key] = _junk(rng)
            if event["type"] == "session.close":
                continue
            await client.ws.send(json.dumps(event))
        await client.send({"type": "input_audio_buffer.clear", "event_id": "last"})
        while True:
            event = await client.recv()
            if event["type"] == "input_audio_buffer.cleared":
                break
    errors = emu.errors()
    assert errors, "junk should produce errors"
    assert not [e for e in errors if e["type"] == "server_error"]
