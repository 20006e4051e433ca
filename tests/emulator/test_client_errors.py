"""Bad client input gets the real error codes, and the socket stays open."""

from __future__ import annotations

import json
from typing import Any

from realtalk.emulator import Emulator


async def _still_open(client: Any) -> None:
    await client.send({"type": "input_audio_buffer.clear"})
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"


async def test_unknown_type(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        await client.send({"type": "nope", "event_id": "evt_x"})
        error = (await client.recv())["error"]
        assert error["code"] == "invalid_value"
        assert error["param"] == "type"
        assert error["event_id"] == "evt_x"
        assert "'session.update'" in error["message"] and "'response.cancel'" in error["message"]
        await _still_open(client)


async def test_unknown_field(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        await client.send({"type": "response.cancel", "bogus": True})
        error = (await client.recv())["error"]
        assert (error["code"], error["param"]) == ("unknown_parameter", "bogus")
        await _still_open(client)


async def test_non_json(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        await client.ws.send("{not json")
        error = (await client.recv())["error"]
        assert error["code"] == "invalid_json"
        assert emu.client_events()[0] == {"_raw": "{not json"}
        await _still_open(client)


async def test_binary_frame(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        await client.ws.send(b"\x00\x01")
        error = (await client.recv())["error"]
        assert error["code"] == "invalid_event"
        assert "binary" in error["message"]
        await _still_open(client)


async def test_missing_field(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        await client.send({"type": "conversation.item.delete", "event_id": "e1"})
        error = (await client.recv())["error"]
        assert error["code"] == "missing_required_parameter"
        assert error["param"] == "item_id"
        assert error["event_id"] == "e1"
        await client.send({"type": "conversation.item.create", "item": {"type": "message"}})
        error = (await client.recv())["error"]
        assert (error["code"], error["param"]) == ("missing_required_parameter", "item.role")
        await _still_open(client)


async def test_error_event_id_null_without_client_id(emu: Emulator, open_client: Any) -> None:
    async with open_client(emu) as client:
        await client.send({"type": "response.cancel"})
        event = await client.recv()
        assert event["error"]["event_id"] is None
        assert event["event_id"].startswith("event_")
        assert "no active response" in event["error"]["message"]
        await _still_open(client)
    assert json.dumps(emu.errors()[0]) == json.dumps(event["error"])
