"""Tests for realtalk.protocol.events: dialect normalisation and event ids."""

from __future__ import annotations

import base64
import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st
from realtalk.protocol.events import (
    EventIds,
    audio_byte_length,
    error_summary,
    normalize_server_event,
    to_wire,
)


@pytest.mark.parametrize(
    ("beta", "ga"),
    [
        ("response.text.delta", "response.output_text.delta"),
        ("response.text.done", "response.output_text.done"),
        ("response.audio.delta", "response.output_audio.delta"),
        ("response.audio.done", "response.output_audio.done"),
        ("response.audio_transcript.delta", "response.output_audio_transcript.delta"),
        ("response.audio_transcript.done", "response.output_audio_transcript.done"),
    ],
)
def test_beta_names_become_ga(beta: str, ga: str) -> None:
    event = {"type": beta, "event_id": "e1", "item_id": "i1", "delta": "x"}
    out = normalize_server_event(event)
    assert out == [{"type": ga, "event_id": "e1", "item_id": "i1", "delta": "x"}]
    assert event["type"] == beta  # input untouched


def test_ga_event_passes_through_unchanged() -> None:
    event = {"type": "response.output_audio.delta", "delta": "AAAA", "obfuscation": "z"}
    assert normalize_server_event(event) == [event]


def test_item_created_splits_into_added_and_done_with_ga_content() -> None:
    event = {
        "type": "conversation.item.created",
        "previous_item_id": "p",
        "item": {
            "id": "i1",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "audio", "transcript": "hi"}, {"type": "text", "text": "t"}],
        },
    }
    original = copy.deepcopy(event)
    added, done = normalize_server_event(event)
    assert added["type"] == "conversation.item.added"
    assert done["type"] == "conversation.item.done"
    assert [p["type"] for p in done["item"]["content"]] == ["output_audio", "output_text"]
    assert added["previous_item_id"] == "p"
    assert event == original
    # added and done must not share nested state
    added["item"]["content"][0]["transcript"] = "changed"
    assert done["item"]["content"][0]["transcript"] == "hi"


def test_user_content_is_not_renamed() -> None:
    event = {
        "type": "conversation.item.added",
        "item": {"id": "u", "type": "message", "role": "user", "content": [{"type": "text"}]},
    }
    assert normalize_server_event(event)[0]["item"]["content"][0]["type"] == "text"


def test_response_done_output_content_is_normalised() -> None:
    event = {
        "type": "response.done",
        "response": {
            "id": "r",
            "output": [{"id": "i", "type": "message", "role": "assistant",
                        "content": [{"type": "audio", "transcript": "x"}]}],
        },
    }
    out = normalize_server_event(event)[0]
    assert out["response"]["output"][0]["content"][0]["type"] == "output_audio"


def test_to_wire_ga_is_identity_and_beta_renames_assistant_content() -> None:
    event = {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "assistant",
                 "content": [{"type": "output_text", "text": "hello"}]},
    }
    assert to_wire(event, "ga") is event
    beta = to_wire(event, "beta")
    assert beta["item"]["content"][0] == {"type": "text", "text": "hello"}
    assert event["item"]["content"][0]["type"] == "output_text"


def test_to_wire_beta_response_create_modalities() -> None:
    event = {"type": "response.create", "response": {"output_modalities": ["text"]}}
    assert to_wire(event, "beta") == {"type": "response.create",
                                      "response": {"modalities": ["text"]}}
    assert to_wire({"type": "response.create"}, "beta") == {"type": "response.create"}


def test_event_ids_are_unique_prefixed_and_correlate_errors() -> None:
    ids = EventIds()
    a = ids.stamp({"type": "response.create"})
    b = ids.stamp({"type": "response.create"})
    assert a["event_id"].startswith("evt_") and a["event_id"] != b["event_id"]
    assert len(a["event_id"]) <= 512
    kept = ids.stamp({"type": "x", "event_id": "mine"})
    assert kept["event_id"] == "mine"
    err = {"type": "error", "error": {"code": "invalid_value", "event_id": b["event_id"]}}
    assert ids.caused_by(err) == b
    assert ids.caused_by({"type": "error", "error": {"event_id": None}}) is None


def test_event_ids_forget_old_events() -> None:
    ids = EventIds(remember=2)
    first = ids.stamp({"type": "a"})
    ids.stamp({"type": "b"})
    ids.stamp({"type": "c"})
    assert ids.lookup(first["event_id"]) is None


@given(st.binary(max_size=300))
def test_audio_byte_length_matches_decoding(data: bytes) -> None:
    text = base64.b64encode(data).decode()
    assert audio_byte_length(text) == len(data)
    assert audio_byte_length(text.rstrip("=")) == len(data)


def test_error_summary_names_code_param_and_cause() -> None:
    line = error_summary({"type": "error", "error": {
        "type": "invalid_request_error", "code": "invalid_value", "message": "Bad.",
        "param": "type", "event_id": "evt_1"}})
    assert line == "invalid_value: Bad. (param type, caused by evt_1)"


def test_normalised_beta_stream_validates_as_ga_server_events() -> None:
    from typing import Annotated, Union, get_args

    from openai.types.realtime import RealtimeServerEvent
    from pydantic import Field, TypeAdapter

    members = get_args(get_args(RealtimeServerEvent)[0])
    ga = TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # noqa: UP007
    common = {"event_id": "e", "response_id": "r", "item_id": "i", "output_index": 0,
              "content_index": 0}
    beta_stream = [
        {"type": "response.audio.delta", "delta": "AAAA", **common},
        {"type": "response.audio.done", **common},
        {"type": "response.audio_transcript.delta", "delta": "Hi", **common},
        {"type": "response.audio_transcript.done", "transcript": "Hi", **common},
        {"type": "response.text.delta", "delta": "Hi", **common},
        {"type": "response.text.done", "text": "Hi", **common},
        {"type": "conversation.item.created", "event_id": "e", "previous_item_id": None,
         "item": {"id": "i", "object": "realtime.item", "type": "message", "role": "assistant",
                  "status": "completed",
                  "content": [{"type": "audio", "transcript": "Hi"}]}},
    ]
    out = [ev for event in beta_stream for ev in normalize_server_event(event)]
    assert len(out) == 8
    for event in out:
        ga.validate_python(event)


def test_dialect_and_error_summary_are_the_vocabulary_ones() -> None:
    from realtalk.protocol import events, vocab

    assert events.Dialect is vocab.Dialect
    assert events.error_summary is vocab.error_summary
    prefix = EventIds().stamp({"type": "x"})["event_id"].rsplit("_", 1)[0]
    assert len(prefix) == len("evt_") + 8 and prefix != EventIds()._prefix.rstrip("_")


def test_event_ids_remember_audio_appends_without_their_payload() -> None:
    ids = EventIds(remember=4)
    append = ids.stamp({"type": "input_audio_buffer.append", "audio": "A" * 6400})
    assert append["audio"] == "A" * 6400  # what is sent keeps it
    assert ids.lookup(append["event_id"]) == {"type": "input_audio_buffer.append", "event_id": append["event_id"]}
    update = ids.stamp({"type": "session.update", "session": {"instructions": "x"}})
    assert ids.lookup(update["event_id"]) == update
