"""Out-of-band responses (``response.create`` with ``conversation: "none"``), as live:
several at once and beside the conversation's response, their output streamed but never
added to the conversation, ``conversation_id`` null and ``metadata`` echoed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openai.types.realtime import ResponseDoneEvent
from realtalk.emulator import load_scenario
from realtalk.emulator.protocol import Send, ServerProtocol
from realtalk.emulator.responses import CONVERSATION_ID
from realtalk.emulator.state import ScenarioProgress
from realtalk.emulator.voice import ToneAudio
from realtalk.exceptions import ScenarioError

LONG = "This reply goes on for a good while, so that there is time to ask a side question. " * 2
SCENARIO: dict[str, Any] = {
    "turns": [
        {"user": "tell me", "reply": LONG},
        {"out_of_band": "/classify/", "reply": "billing"},
        {"out_of_band": "summarise", "reply": "The user wants the story."},
        {"user": "and then", "reply": "The end."},
    ]
}
OOB_TYPES = {"conversation.item.added", "conversation.item.done"}


def make(**options: Any) -> ServerProtocol:
    progress = ScenarioProgress(load_scenario(SCENARIO))
    options.setdefault("audio_speed", 1.0)
    return ServerProtocol(model="gpt-realtime", progress=progress, audio=ToneAudio(), **options)


def sent(protocol: ServerProtocol) -> list[dict[str, Any]]:
    return [a.event for a in protocol.actions_to_send() if isinstance(a, Send)]


def say(protocol: ServerProtocol, text: str, now: float = 0.0) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    protocol.receive_event({"type": "conversation.item.create", "item": item}, now)


def out_of_band(instructions: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "response.create",
        "response": {
            "conversation": "none",
            "instructions": instructions,
            "output_modalities": ["text"],
            **extra,
        },
    }


def test_out_of_band_runs_beside_the_conversation_response(conformance: Any) -> None:
    protocol = make()
    say(protocol, "tell me")
    protocol.receive_event({"type": "response.create"}, 0.0)
    events = sent(protocol)
    main_id = next(e for e in events if e["type"] == "response.created")["response"]["id"]
    items_before = [i["id"] for i in protocol.items]
    # While the conversation's response speaks, a side question: no
    # conversation_already_has_active_response, and a reply of its own.
    protocol.receive_event(
        out_of_band("Classify the topic.", metadata={"purpose": "classify"}), 0.05
    )
    side = sent(protocol)
    assert not [e for e in side if e["type"] == "error"]
    [done] = [e for e in side if e["type"] == "response.done"]
    response = done["response"]
    assert response["id"] != main_id
    assert response["conversation_id"] is None
    assert response["metadata"] == {"purpose": "classify"}
    assert response["output"][0]["content"][0]["text"] == "billing"
    # Its items are streamed but never enter the conversation.
    assert {e["type"] for e in side} & OOB_TYPES == set()
    assert [e["type"] for e in side if e["type"].startswith("response.output_item")] == [
        "response.output_item.added",
        "response.output_item.done",
    ]
    assert [i["id"] for i in protocol.items] == items_before
    # The conversation's response is still running and ends on its own.
    assert protocol.responder.active is not None and protocol.responder.active.id == main_id
    while protocol.next_deadline() is not None:
        protocol.receive_tick(protocol.next_deadline() or 0.0)
    rest = sent(protocol)
    [main_done] = [e for e in rest if e["type"] == "response.done"]
    assert main_done["response"]["conversation_id"] == CONVERSATION_ID
    assert main_done["response"]["status"] == "completed"
    for event in (done, main_done):
        ResponseDoneEvent.model_validate(event)  # the openai type takes both shapes
    assert conformance(side + rest) == []


def test_out_of_band_input_items_and_references() -> None:
    protocol = make(audio_speed=1.0)
    say(protocol, "tell me the story")
    story_id = protocol.items[-1]["id"]
    sent(protocol)
    # Its own input: a new item plus a reference to one of the conversation's.
    protocol.receive_event(
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "output_modalities": ["text"],
                "input": [
                    {"type": "item_reference", "id": story_id},
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "Summarise that."}],
                    },
                ],
            },
        },
        0.0,
    )
    [done] = [e for e in sent(protocol) if e["type"] == "response.done"]
    assert done["response"]["output"][0]["content"][0]["text"] == "The user wants the story."
    assert len(protocol.items) == 1  # the input item did not enter the conversation either


def test_out_of_band_matches_the_latest_user_message_without_input() -> None:
    protocol = make()
    say(protocol, "please classify me")
    sent(protocol)
    protocol.receive_event(out_of_band("Answer in one word."), 0.0)
    [done] = [e for e in sent(protocol) if e["type"] == "response.done"]
    assert done["response"]["output"][0]["content"][0]["text"] == "billing"
    # An out-of-band turn is never used up, and the script did not move on.
    protocol.receive_event(out_of_band("classify again"), 0.0)
    [again] = [e for e in sent(protocol) if e["type"] == "response.done"]
    assert again["response"]["output"][0]["content"][0]["text"] == "billing"
    say(protocol, "tell me")
    protocol.receive_event({"type": "response.create", "response": {"output_modalities": ["text"]}}, 0)
    [main] = [e for e in sent(protocol) if e["type"] == "response.done"]
    assert main["response"]["output"][0]["content"][0]["text"] == LONG


def test_unmatched_out_of_band_gets_the_fallback() -> None:
    protocol = make()
    protocol.receive_event(out_of_band("Something else entirely."), 0.0)
    [done] = [e for e in sent(protocol) if e["type"] == "response.done"]
    text = done["response"]["output"][0]["content"][0]["text"]
    assert text == "[emulator] no scenario turn matches: 'Something else entirely.'"


def test_cancel_an_out_of_band_response_by_id() -> None:
    protocol = make()
    say(protocol, "tell me")
    protocol.receive_event({"type": "response.create"}, 0.0)
    main_id = protocol.responder.active.id if protocol.responder.active else ""
    protocol.receive_event(
        {"type": "response.create", "response": {"conversation": "none", "instructions": "summarise"}},
        0.0,
    )  # audio: it waits for its chunks, like the main one
    [side_id] = list(protocol.responder.out_of_band)
    sent(protocol)
    protocol.receive_event({"type": "response.cancel", "response_id": side_id}, 0.1)
    [done] = [e for e in sent(protocol) if e["type"] == "response.done"]
    assert (done["response"]["id"], done["response"]["status"]) == (side_id, "cancelled")
    assert protocol.responder.active is not None and protocol.responder.active.id == main_id
    # Without an id, response.cancel is for the conversation's response.
    protocol.receive_event({"type": "response.cancel"}, 0.2)
    [done] = [e for e in sent(protocol) if e["type"] == "response.done"]
    assert done["response"]["id"] == main_id


def test_bad_out_of_band_requests_are_clear_errors() -> None:
    protocol = make()
    sent(protocol)
    cases = [
        ({"conversation": "mine"}, "invalid_value", "response.conversation"),
        ({"conversation": "none", "input": "text"}, "invalid_type", "response.input"),
        (
            {"conversation": "none", "input": [{"type": "item_reference", "id": "item_nope"}]},
            "invalid_value",
            "response.input[0].id",
        ),
        (
            {"conversation": "none", "input": [{"type": "message", "role": "robot", "content": []}]},
            "invalid_value",
            "response.input[0].role",
        ),
        ({"conversation": "none", "instructions": 5}, "invalid_type", "response.instructions"),
        ({"max_output_tokens": 0}, "integer_below_min_value", "response.max_output_tokens"),
    ]
    for params, code, param in cases:
        protocol.receive_event({"type": "response.create", "response": params}, 0.0)
        [error] = [e["error"] for e in sent(protocol) if e["type"] == "error"]
        assert (error["code"], error["param"]) == (code, param), params


async def test_two_out_of_band_responses_at_once_over_the_wire(
    make_emulator: Any, open_client: Any
) -> None:
    # Replies of several seconds at real-time pace: both are still running when the
    # second request arrives.
    reply = "A side answer that takes a few seconds to say."
    long_replies = {"turns": [{"out_of_band": p, "reply": reply} for p in ("classify", "summarise")]}
    emu = await make_emulator(long_replies, fast=False, audio_speed=1.0)
    async with open_client(emu) as client:
        for purpose in ("classify", "summarise"):
            await client.send(
                {
                    "type": "response.create",
                    "response": {
                        "conversation": "none",
                        "instructions": f"{purpose} " + "x" * 20,
                        "metadata": {"purpose": purpose},
                    },
                }
            )
        events = await client.until("response.created")
        events += await client.until("response.created")
        assert not [e for e in events if e["type"] == "response.done"]  # both running
        events += await client.until("response.done")
        events += await client.until("response.done")
    done = [e["response"] for e in events if e["type"] == "response.done"]
    assert sorted(r["metadata"]["purpose"] for r in done) == ["classify", "summarise"]
    assert all(r["conversation_id"] is None for r in done)
    assert not [e for e in events if e["type"] in OOB_TYPES]


async def test_the_openai_sdk_runs_an_out_of_band_response(make_emulator: Any) -> None:
    from openai import AsyncOpenAI
    from realtalk.emulator.conformance import client_event_problems

    emu = await make_emulator(SCENARIO, api_key="sk-test")
    client = AsyncOpenAI(
        api_key="sk-test", base_url=emu.base_url, websocket_base_url=emu.websocket_base_url
    )
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.response.create(
            response={
                "conversation": "none",
                "instructions": "Classify the topic.",
                "output_modalities": ["text"],
                "metadata": {"purpose": "classify"},
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "My invoice is wrong."}],
                    }
                ],
            }
        )
        done: Any = None
        async for event in conn:
            if event.type == "response.done":
                done = event
                break
    response = done.response
    assert response.conversation_id is None
    assert response.metadata == {"purpose": "classify"}
    assert response.output and response.output[0].type == "message"
    assert client_event_problems(emu.client_events()) == []
    assert emu.server_events("conversation.item.added") == []


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ({"out_of_band": "x", "reply": [{"call": "f"}, {"say": "after"}]},
         "an out-of-band reply is one response: no 'say' after a 'call'"),
        ({"out_of_band": "", "reply": "r"}, "'out_of_band' must be non-empty text or /regex/"),
        ({"out_of_band": "/(/", "reply": "r"}, "invalid regex"),
        ({"out_of_band": "x", "user": "y", "reply": "r"}, "a turn needs exactly one of"),
    ],
)
def test_bad_out_of_band_turns(turn: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario({"turns": [turn]})
