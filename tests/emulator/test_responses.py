"""Responses: event order, function calls, parallel calls, one active response, cancel, items."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

LONG = "This is a long answer that keeps the response busy for a couple of seconds at least."
SCENARIO = {
    "turns": [
        {"user": "hello", "reply": "Hi there!"},
        {
            "user": "/what.*time/",
            "reply": [
                {"say": "Let me check."},
                {"call": "get_time", "arguments": {"timezone": "UTC"}},
                {"say": "It is {output} now."},
            ],
        },
        {
            "user": "weather and time",
            "reply": [
                {"call": "get_weather", "arguments": {"city": "Paris"}},
                {"call": "get_time", "arguments": "{not json"},
                {"say": "Done: {output}"},
            ],
        },
        {"user": "billing", "reply": [{"handoff": "billing"}]},
        {"user": "long", "reply": LONG},
    ]
}

TEXT_ORDER = [
    "conversation.item.added",
    "conversation.item.done",  # the user item
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "conversation.item.done",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
]


def _collapse(types: list[str]) -> list[str]:
    out: list[str] = []
    for t in types:
        if not out or out[-1] != t or not t.endswith(".delta"):
            out.append(t)
    return out


async def _text_session(client: Any) -> None:
    await client.send(
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
    )
    await client.until("session.updated")


async def test_text_turn_order(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await _text_session(client)
        events = await client.turn("Well, HELLO!")
    assert _collapse([e["type"] for e in events]) == TEXT_ORDER
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == "Hi there!"
    response = events[-2]["response"]
    assert response["status"] == "completed"
    assert response["usage"]["total_tokens"] == (
        response["usage"]["input_tokens"] + response["usage"]["output_tokens"]
    )
    assert response["output"][0]["content"] == [{"type": "output_text", "text": "Hi there!"}]


async def test_audio_turn_order_and_length(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        events = await client.turn("hello")
    types = _collapse([e["type"] for e in events])
    assert types[:6] == TEXT_ORDER[:6]
    assert types[-7:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    # 9 characters at 15 per second of 24 kHz PCM16
    assert len(audio) == 9 * (24000 // 15) * 2
    transcript = "".join(
        e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
    )
    assert transcript == "Hi there!"


async def test_function_call_round_trip(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await _text_session(client)
        events = await client.turn("what is the time?")
        done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert len(done) == 1 and done[0]["name"] == "get_time"
        assert json.loads(done[0]["arguments"]) == {"timezone": "UTC"}
        deltas = "".join(
            e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
        )
        assert deltas == done[0]["arguments"]
        output = events[-2]["response"]["output"]
        assert [o["type"] for o in output] == ["message", "function_call"]
        # The server does not answer a tool output by itself.
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": done[0]["call_id"],
                    "output": "12:00",
                },
            }
        )
        added = await client.until("conversation.item.done")
        assert added[0]["item"]["type"] == "function_call_output"
        await client.send({"type": "response.create"})
        events = await client.until("rate_limits.updated")
    text = [e["text"] for e in events if e["type"] == "response.output_text.done"]
    assert text == ["It is 12:00 now."]


async def test_parallel_calls(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await _text_session(client)
        events = await client.turn("weather and time please")
        calls = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert [c["name"] for c in calls] == ["get_weather", "get_time"]
        assert calls[1]["arguments"] == "{not json"  # raw strings are sent verbatim
        assert calls[0]["call_id"] != calls[1]["call_id"]
        assert [c["output_index"] for c in calls] == [0, 1]
        assert len(events[-2]["response"]["output"]) == 2
        for call, result in zip(calls, ["sunny", "noon"]):
            await client.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": call["call_id"],
                        "output": result,
                    },
                }
            )
            await client.until("conversation.item.done")
        await client.send({"type": "response.create"})
        events = await client.until("rate_limits.updated")
    assert [e["text"] for e in events if e["type"] == "response.output_text.done"] == ["Done: noon"]


async def test_handoff_is_transfer_call(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        events = await client.turn("billing question")
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(d["name"], d["arguments"]) for d in done] == [("transfer_to_billing", "{}")]


async def test_fallback_reply(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await _text_session(client)
        events = await client.turn("something unexpected")
    text = [e["text"] for e in events if e["type"] == "response.output_text.done"]
    assert text == ["[emulator] no scenario turn matches: 'something unexpected'"]


async def test_second_response_refused_while_active(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO, fast=False)
    async with open_client(emu) as client:
        await client.user_text("long")
        await client.send({"type": "response.create"})
        created = (await client.until("response.created"))[-1]
        await client.send({"type": "response.create", "event_id": "evt_again"})
        error = (await client.until("error"))[-1]["error"]
        assert error["code"] == "conversation_already_has_active_response"
        assert created["response"]["id"] in error["message"]
        assert error["event_id"] == "evt_again"
        await client.send({"type": "response.cancel"})
        done = (await client.until("response.done"))[-1]
        assert done["response"]["status"] == "cancelled"


async def test_cancel(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO, fast=False)
    async with open_client(emu) as client:
        await client.user_text("long")
        await client.send({"type": "response.create"})
        await client.until("response.output_audio.delta")
        await client.send({"type": "response.cancel"})
        events = await client.until("response.done")
        response = events[-1]["response"]
        assert response["status"] == "cancelled"
        assert response["status_details"]["reason"] == "client_cancelled"
        assert response["output"][0]["status"] == "incomplete"
        heard = response["output"][0]["content"][0]["transcript"]
        assert heard != LONG and LONG.startswith(heard)
        # Nothing active any more: a harmless error, the session goes on.
        await client.send({"type": "response.cancel"})
        assert (await client.until("error"))[-1]["error"]["code"] == "response_cancel_not_active"


async def test_truncate(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        events = await client.turn("hello")  # "Hi there!" = 600 ms of audio
        item_id = events[-2]["response"]["output"][0]["id"]
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 1000,
                "event_id": "t1",
            }
        )
        error = (await client.recv())["error"]
        assert error["message"] == "Audio content of 600ms is already shorter than 1000ms"
        assert error["event_id"] == "t1"
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 200,
            }
        )
        truncated = await client.recv()
        assert truncated == {
            **truncated,
            "type": "conversation.item.truncated",
            "item_id": item_id,
            "audio_end_ms": 200,
            "content_index": 0,
        }
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        item = (await client.recv())["item"]
        assert item["content"][0]["transcript"] == "Hi "  # 200 ms = 3 characters
        user_id = events[0]["item"]["id"]
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": user_id,
                "content_index": 0,
                "audio_end_ms": 0,
            }
        )
        assert (await client.recv())["error"]["code"] == "item_truncate_invalid_item_id"


async def test_item_create_delete_retrieve(emu: Any, open_client: Any) -> None:
    def message(text: str, id_: str) -> dict[str, Any]:
        return {
            "type": "conversation.item.create",
            "item": {
                "id": id_,
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }

    async with open_client(emu) as client:
        await client.send(message("a", "item_a"))
        first = (await client.until("conversation.item.done"))[0]
        assert first["previous_item_id"] is None
        await client.send(message("b", "item_b"))
        assert (await client.until("conversation.item.done"))[0]["previous_item_id"] == "item_a"
        await client.send({**message("c", "item_c"), "previous_item_id": "root"})
        assert (await client.until("conversation.item.done"))[0]["previous_item_id"] is None
        await client.send({**message("d", "item_d"), "previous_item_id": "item_a"})
        assert (await client.until("conversation.item.done"))[0]["previous_item_id"] == "item_a"
        await client.send({**message("e", "item_e"), "previous_item_id": "item_zzz"})
        error = (await client.recv())["error"]
        assert error["param"] == "previous_item_id"
        await client.send({"type": "conversation.item.delete", "item_id": "item_a"})
        assert await client.recv() == {
            **client.received[-1],
            "type": "conversation.item.deleted",
            "item_id": "item_a",
        }
        await client.send({"type": "conversation.item.retrieve", "item_id": "item_a"})
        assert (await client.recv())["error"]["code"] == "item_retrieve_invalid_item_id"
        await client.send({"type": "conversation.item.delete", "item_id": "item_a"})
        assert (await client.recv())["error"]["code"] == "item_delete_invalid_item_id"
        await client.send({"type": "conversation.item.retrieve", "item_id": "item_d"})
        assert (await client.recv())["item"]["content"][0]["text"] == "d"


@pytest.mark.parametrize("reconnect", [False, True])
async def test_progress_shared_across_connections(
    make_emulator: Any, open_client: Any, reconnect: bool
) -> None:
    emu = await make_emulator(
        {"turns": [{"user": "one", "reply": "first"}, {"user": "one", "reply": "second"}]}
    )
    async with open_client(emu) as client:
        await _text_session(client)
        events = await client.turn("one")
        texts = [e["text"] for e in events if e["type"] == "response.output_text.done"]
        if not reconnect:
            events = await client.turn("one")
            texts += [e["text"] for e in events if e["type"] == "response.output_text.done"]
    if reconnect:
        async with open_client(emu) as client:
            await _text_session(client)
            events = await client.turn("one")
            texts += [e["text"] for e in events if e["type"] == "response.output_text.done"]
    assert texts == ["first", "second"]
    assert len(emu.connections) == (2 if reconnect else 1)


async def test_response_modalities_override_and_session_close(
    make_emulator: Any, open_client: Any
) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await client.user_text("hello")
        await client.send(
            {
                "type": "response.create",
                "response": {"output_modalities": ["text"], "instructions": "x"},
            }
        )
        events = await client.until("rate_limits.updated")
        assert [e["text"] for e in events if e["type"] == "response.output_text.done"] == [
            "Hi there!"
        ]
        assert not [e for e in events if e["type"] == "response.output_audio.delta"]
        assert events[-2]["response"]["metadata"] is None
        await client.send({"type": "response.create", "response": {"metadata": {"topic": "x"}}})
        events = await client.until("rate_limits.updated")
        assert events[0]["response"]["metadata"] == {"topic": "x"}  # response.created
        assert events[-2]["response"]["metadata"] == {"topic": "x"}  # response.done
        for bad in ({"metadata": "x"}, {"metadata": {"n": 1}}, {"output_modalities": ["video"]}):
            await client.send({"type": "response.create", "response": bad})
            error = (await client.recv())["error"]
            assert error["param"] == f"response.{next(iter(bad))}"
        await client.send({"type": "response.create", "response": {"bogus": 1}})
        error = (await client.recv())["error"]
        assert (error["code"], error["param"]) == ("unknown_parameter", "response.bogus")
        await client.send({"type": "session.close"})
        await client.ws.wait_closed()
        assert client.ws.close_code == 1000


async def test_greeting_turn(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(
        {"turns": [{"greeting": True, "reply": "Welcome!"}, {"user": "hi", "reply": "Hello."}]}
    )
    async with open_client(emu) as client:
        await _text_session(client)
        texts = []
        for _ in range(2):  # the agent speaks first, twice: the greeting is used up
            await client.send({"type": "response.create"})
            events = await client.until("rate_limits.updated")
            texts += [e["text"] for e in events if e["type"] == "response.output_text.done"]
        events = await client.turn("hi")
        texts += [e["text"] for e in events if e["type"] == "response.output_text.done"]
    assert texts == [
        "Welcome!",
        "[emulator] no scenario turn matches: (no new user input)",
        "Hello.",
    ]


async def test_wait_for(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await client.user_text("hello")
        received = await emu.wait_for("conversation.item.create", direction="client")
        assert received["item"]["content"][0]["text"] == "hello"
        await client.send({"type": "response.create"})
        done = await emu.wait_for("response.done")
        assert done["response"]["status"] == "completed"
        with pytest.raises(TimeoutError, match="0 of 1 server 'nope' events"):
            await emu.wait_for("nope", timeout=0.05)
        with pytest.raises(TimeoutError):
            await emu.wait_for("response.done", count=2, timeout=0.05)


async def test_reconnect_mid_tool_call_continues_with_seeded_history(
    make_emulator: Any, open_client: Any
) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await _text_session(client)
        events = await client.turn("what time is it?")
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    # A new session, seeded with the history the way the runtime does it after a drop.
    async with open_client(emu) as client:
        await _text_session(client)
        for item in (
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "what time is it?"}],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me check."}],
            },
            {
                "type": "function_call",
                "call_id": call["call_id"],
                "name": "get_time",
                "arguments": call["arguments"],
            },
            {"type": "function_call_output", "call_id": call["call_id"], "output": "13:00"},
        ):
            await client.send({"type": "conversation.item.create", "item": item})
            await client.until("conversation.item.done")
        await client.send({"type": "response.create"})
        events = await client.until("rate_limits.updated")
    texts = [e["text"] for e in events if e["type"] == "response.output_text.done"]
    assert texts == ["It is 13:00 now."]


async def test_a_custom_voice_is_named_by_its_id_in_the_response(
    make_emulator: Any, open_client: Any
) -> None:
    from openai.types.realtime import RealtimeResponse

    emu = await make_emulator({"turns": [{"user": "hi", "reply": "Hello."}]})
    async with open_client(emu) as client:
        await client.send({"type": "session.update", "session": {
            "type": "realtime", "audio": {"output": {"voice": {"id": "voice_1234"}}}}})
        updated = (await client.until("session.updated"))[-1]
        events = await client.turn("hi")
    [created] = [e for e in events if e["type"] == "response.created"]
    assert updated["session"]["audio"]["output"]["voice"] == {"id": "voice_1234"}
    response = RealtimeResponse.model_validate(created["response"])
    assert response.audio is not None and response.audio.output is not None
    assert response.audio.output.voice == "voice_1234"
