"""Preambles and multi-message responses (gpt-realtime-2 speaks before calling a tool):
each ``say`` of a response is its own assistant message, with its own output_index,
audio and transcript, and each can be truncated."""

from __future__ import annotations

import base64
from typing import Any

from realtalk.emulator.audio import CHARS_PER_SECOND

SCENARIO: dict[str, Any] = {
    "turns": [
        {
            "user": "what time",
            "reply": [{"say": "Let me check."}, {"call": "get_time", "arguments": {"tz": "UTC"}}],
        },
        {"user": "two things", "reply": [{"say": "First thing."}, {"say": "Second thing."}]},
    ]
}


def by_item(events: list[dict[str, Any]], kind: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["type"] == kind:
            found.setdefault(event["item_id"], []).append(event)
    return found


async def test_preamble_before_a_function_call(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        events = await client.turn("what time is it")
    [done] = [e["response"] for e in events if e["type"] == "response.done"]
    message, call = done["output"]
    assert (message["type"], call["type"]) == ("message", "function_call")
    assert message["content"][0]["transcript"] == "Let me check."
    assert (call["name"], call["arguments"]) == ("get_time", '{"tz":"UTC"}')
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["id"]) for e in added] == [
        (0, message["id"]),
        (1, call["id"]),
    ]
    audio = by_item(events, "response.output_audio.delta")
    assert list(audio) == [message["id"]]
    assert {e["output_index"] for e in audio[message["id"]]} == {0}
    arguments = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert arguments[0]["output_index"] == 1
    # Both entered the conversation, in order.
    items = [e["item"]["id"] for e in events if e["type"] == "conversation.item.done"]
    assert items[-2:] == [message["id"], call["id"]]


async def test_two_messages_in_one_response_each_truncatable(
    make_emulator: Any, open_client: Any
) -> None:
    emu = await make_emulator(SCENARIO, record_audio=True)
    async with open_client(emu) as client:
        events = await client.turn("two things")
        [done] = [e["response"] for e in events if e["type"] == "response.done"]
        first, second = done["output"]
        assert [i["content"][0]["transcript"] for i in done["output"]] == [
            "First thing.",
            "Second thing.",
        ]
        audio = by_item(events, "response.output_audio.delta")
        assert list(audio) == [first["id"], second["id"]]  # each its own audio
        transcripts = by_item(events, "response.output_audio_transcript.done")
        assert transcripts[second["id"]][0]["output_index"] == 1
        length = sum(len(base64.b64decode(e["delta"])) for e in audio[second["id"]]) // 48
        assert length == len("Second thing.") * 1000 // CHARS_PER_SECOND
        # Truncate the second message: what was heard of it stays.
        for item, end in ((second, 400), (first, 200)):
            await client.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item["id"],
                    "content_index": 0,
                    "audio_end_ms": end,
                }
            )
            truncated = await client.recv()
            assert truncated["type"] == "conversation.item.truncated"
            assert (truncated["item_id"], truncated["audio_end_ms"]) == (item["id"], end)
            await client.send({"type": "conversation.item.retrieve", "item_id": item["id"]})
            retrieved = (await client.recv())["item"]
            kept = retrieved["content"][0]["transcript"]
            assert kept == item["content"][0]["transcript"][: int(end / 1000 * CHARS_PER_SECOND)]
