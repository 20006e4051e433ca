"""``conversation.item.retrieve`` of an assistant audio item returns its audio (what was
sent, or what is left of it after a truncation)."""

from __future__ import annotations

import base64
from typing import Any

from openai.types.realtime.realtime_server_event import ConversationItemRetrieved


async def test_retrieve_assistant_audio(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator({"turns": [{"user": "hi", "reply": "Hi there!"}]},
                              record_audio=True)
    async with open_client(emu) as client:
        events = await client.turn("hi")
        item_id = events[-2]["response"]["output"][0]["id"]
        sent = b"".join(
            base64.b64decode(e["delta"])
            for e in events
            if e["type"] == "response.output_audio.delta"
        )
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = (await client.until("conversation.item.retrieved"))[-1]
        await client.send({"type": "conversation.item.truncate", "item_id": item_id,
                           "content_index": 0, "audio_end_ms": 250})
        await client.until("conversation.item.truncated")
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        cut = (await client.until("conversation.item.retrieved"))[-1]
    event = ConversationItemRetrieved.model_validate(retrieved)
    assert event.item.type == "message" and event.item.role == "assistant"
    part = retrieved["item"]["content"][0]
    assert part["type"] == "output_audio" and part["transcript"] == "Hi there!"
    assert base64.b64decode(part["audio"]) == sent
    assert base64.b64decode(cut["item"]["content"][0]["audio"]) == sent[: 250 * 48]


async def test_text_items_have_no_audio(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator({"turns": [{"user": "hi", "reply": "Hi there!"}]})
    async with open_client(emu) as client:
        await client.send({"type": "session.update",
                           "session": {"type": "realtime", "output_modalities": ["text"]}})
        await client.until("session.updated")
        events = await client.turn("hi")
        item_id = events[-2]["response"]["output"][0]["id"]
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = (await client.until("conversation.item.retrieved"))[-1]
    assert "audio" not in retrieved["item"]["content"][0]
