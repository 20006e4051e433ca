"""Limits the live server enforces on what clients send: id lengths and duplicate items."""

from __future__ import annotations

from typing import Any

from realtalk.emulator.protocol import Send, ServerProtocol
from realtalk.emulator.scenario import load_scenario
from realtalk.emulator.state import ScenarioProgress
from realtalk.emulator.voice import ToneAudio
from realtalk.protocol.vocab import EVENT_ID_MAX, ITEM_ID_MAX


def _protocol() -> ServerProtocol:
    progress = ScenarioProgress(load_scenario(None))
    protocol = ServerProtocol(model="gpt-realtime", progress=progress, audio=ToneAudio())
    protocol.actions_to_send()  # session.created
    return protocol


def _sent(protocol: ServerProtocol) -> list[dict[str, Any]]:
    return [a.event for a in protocol.actions_to_send() if isinstance(a, Send)]


def _item(item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
    }
    if item_id is not None:
        item["id"] = item_id
    return item


def test_item_id_of_32_characters_is_taken() -> None:
    protocol = _protocol()
    protocol.receive_event({"type": "conversation.item.create", "item": _item("i" * ITEM_ID_MAX)}, 0.0)
    assert [e["type"] for e in _sent(protocol)] == ["conversation.item.added", "conversation.item.done"]


def test_item_id_over_32_characters_is_refused() -> None:
    protocol = _protocol()
    event = {"type": "conversation.item.create", "item": _item("i" * 39), "event_id": "mine"}
    protocol.receive_event(event, 0.0)
    [error] = _sent(protocol)
    assert error["error"] == {
        "type": "invalid_request_error",
        "code": "string_above_max_length",
        "message": "Invalid 'item.id': string too long. Expected a string with maximum length "
        "32, but got a string with length 39 instead.",
        "param": "item.id",
        "event_id": "mine",
    }
    assert protocol.items == []


def test_event_id_over_512_characters_is_refused() -> None:
    protocol = _protocol()
    protocol.receive_event({"type": "input_audio_buffer.clear", "event_id": "e" * EVENT_ID_MAX}, 0.0)
    assert [e["type"] for e in _sent(protocol)] == ["input_audio_buffer.cleared"]
    protocol.receive_event({"type": "input_audio_buffer.clear", "event_id": "e" * 513}, 0.0)
    [error] = _sent(protocol)
    assert error["type"] == "error"
    assert error["error"]["code"] == "string_above_max_length"
    assert error["error"]["param"] == "event_id"
    assert error["error"]["message"] == (
        "Invalid 'event_id': string too long. Expected a string with maximum length 512, "
        "but got a string with length 513 instead."
    )


def test_duplicate_item_id_is_item_create_duplicate_item_id() -> None:
    protocol = _protocol()
    protocol.receive_event({"type": "conversation.item.create", "item": _item("item_one")}, 0.0)
    _sent(protocol)
    protocol.receive_event({"type": "conversation.item.create", "item": _item("item_one")}, 0.0)
    [error] = _sent(protocol)
    assert error["error"]["code"] == "item_create_duplicate_item_id"
    assert error["error"]["message"] == "Error adding item: an item with id 'item_one' already exists."
    assert error["error"]["param"] is None
    assert [i["id"] for i in protocol.items] == ["item_one"]


async def test_limits_over_a_socket(make_emulator: Any, open_client: Any) -> None:
    """The same errors reach a real client, and the session goes on after them."""
    emu = await make_emulator()
    async with open_client(emu) as client:
        await client.send({"type": "conversation.item.create", "item": _item("x" * 33)})
        assert (await client.recv())["error"]["code"] == "string_above_max_length"
        await client.send({"type": "conversation.item.create", "item": _item("item_two")})
        await client.until("conversation.item.done")
        await client.send({"type": "conversation.item.create", "item": _item("item_two")})
        assert (await client.recv())["error"]["code"] == "item_create_duplicate_item_id"
    assert [e["code"] for e in emu.errors()] == [
        "string_above_max_length",
        "item_create_duplicate_item_id",
    ]
