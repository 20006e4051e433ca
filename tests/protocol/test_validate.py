"""Tests for realtalk.protocol.validate: JSON types of server events at the boundary."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from realtalk.protocol.arbiter import ResponseArbiter
from realtalk.protocol.conversation import Conversation
from realtalk.protocol.events import BETA_TO_GA_SERVER_EVENTS, error_summary, normalize_server_event
from realtalk.protocol.validate import CHECKED_EVENT_TYPES, check_server_event

ITEM_IDS = {"event_id": "evt_1", "response_id": "resp_1", "item_id": "item_1",
            "output_index": 0, "content_index": 0}
FUNCTION_CALL = {"id": "item_2", "object": "realtime.item", "type": "function_call",
                 "status": "completed", "call_id": "call_1", "name": "weather",
                 "arguments": '{"city": "Lisbon"}'}
MESSAGE = {"id": "item_1", "object": "realtime.item", "type": "message", "role": "assistant",
           "status": "completed",
           "content": [{"type": "output_audio", "transcript": "Hi", "audio": "AAAA"},
                       {"type": "output_text", "text": "Hi"}]}
USER = {"id": "item_0", "object": "realtime.item", "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "hello"},
                    {"type": "input_audio", "transcript": "hello"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA",
                     "detail": "auto"}]}
SESSION = {"type": "realtime", "id": "sess_1", "object": "realtime.session",
           "model": "gpt-realtime", "expires_at": 1_900_000_000, "instructions": "Be brief.",
           "output_modalities": ["audio"],
           "tools": [{"type": "function", "name": "weather", "description": "d",
                      "parameters": {"type": "object"}}],
           "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                               "turn_detection": {"type": "server_vad", "create_response": True}},
                     "output": {"format": {"type": "audio/pcm", "rate": 24000},
                                "voice": "marin"}}}
RESPONSE = {"id": "resp_1", "object": "realtime.response", "status": "completed",
            "status_details": {"type": "completed", "reason": None, "error": None},
            "output": [MESSAGE, FUNCTION_CALL], "metadata": {"realtalk": "evt_1"},
            "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20,
                      "input_token_details": {"cached_tokens": 0},
                      "output_token_details": {"text_tokens": 5, "audio_tokens": 15}}}

# One valid GA event of every checked type (validated against the openai types below).
VALID: dict[str, dict[str, Any]] = {
    "session.created": {"type": "session.created", "event_id": "evt_1", "session": SESSION},
    "session.updated": {"type": "session.updated", "event_id": "evt_1", "session": SESSION},
    "conversation.item.added": {"type": "conversation.item.added", "event_id": "evt_1",
                                "previous_item_id": None, "item": USER},
    "conversation.item.done": {"type": "conversation.item.done", "event_id": "evt_1",
                               "previous_item_id": "item_0", "item": MESSAGE},
    "conversation.item.retrieved": {"type": "conversation.item.retrieved", "event_id": "evt_1",
                                    "item": FUNCTION_CALL},
    "conversation.item.created": {"type": "conversation.item.created", "event_id": "evt_1",
                                  "previous_item_id": None,
                                  "item": {"id": "item_3", "object": "realtime.item",
                                           "type": "function_call_output", "call_id": "call_1",
                                           "output": "21 C"}},
    "conversation.item.truncated": {"type": "conversation.item.truncated", "event_id": "evt_1",
                                    "item_id": "item_1", "content_index": 0, "audio_end_ms": 1500},
    "conversation.item.deleted": {"type": "conversation.item.deleted", "event_id": "evt_1",
                                  "item_id": "item_1"},
    "conversation.item.input_audio_transcription.completed": {
        "type": "conversation.item.input_audio_transcription.completed", "event_id": "evt_1",
        "item_id": "item_0", "content_index": 0, "transcript": "hello",
        "usage": {"type": "duration", "seconds": 1.0}},
    "response.created": {"type": "response.created", "event_id": "evt_1",
                         "response": {**RESPONSE, "status": "in_progress", "output": [],
                                      "usage": None}},
    "response.done": {"type": "response.done", "event_id": "evt_1", "response": RESPONSE},
    "response.output_item.added": {"type": "response.output_item.added", "event_id": "evt_1",
                                   "response_id": "resp_1", "output_index": 0, "item": MESSAGE},
    "response.output_item.done": {"type": "response.output_item.done", "event_id": "evt_1",
                                  "response_id": "resp_1", "output_index": 1,
                                  "item": FUNCTION_CALL},
    "response.function_call_arguments.delta": {
        "type": "response.function_call_arguments.delta", "event_id": "evt_1",
        "response_id": "resp_1", "item_id": "item_2", "output_index": 1, "call_id": "call_1",
        "delta": '{"ci'},
    "response.function_call_arguments.done": {
        "type": "response.function_call_arguments.done", "event_id": "evt_1",
        "response_id": "resp_1", "item_id": "item_2", "output_index": 1, "call_id": "call_1",
        "name": "weather", "arguments": '{"city": "Lisbon"}'},
    "response.output_audio.delta": {"type": "response.output_audio.delta", **ITEM_IDS,
                                    "delta": "AAAA"},
    "response.output_audio.done": {"type": "response.output_audio.done", **ITEM_IDS},
    "response.output_text.delta": {"type": "response.output_text.delta", **ITEM_IDS,
                                   "delta": "Hi"},
    "response.output_text.done": {"type": "response.output_text.done", **ITEM_IDS,
                                  "text": "Hi"},
    "response.output_audio_transcript.delta": {"type": "response.output_audio_transcript.delta",
                                               **ITEM_IDS, "delta": "Hi"},
    "response.output_audio_transcript.done": {"type": "response.output_audio_transcript.done",
                                              **ITEM_IDS, "transcript": "Hi"},
    "input_audio_buffer.speech_started": {"type": "input_audio_buffer.speech_started",
                                          "event_id": "evt_1", "item_id": "item_0",
                                          "audio_start_ms": 100},
    "input_audio_buffer.speech_stopped": {"type": "input_audio_buffer.speech_stopped",
                                          "event_id": "evt_1", "item_id": "item_0",
                                          "audio_end_ms": 900},
    "input_audio_buffer.committed": {"type": "input_audio_buffer.committed", "event_id": "evt_1",
                                     "item_id": "item_0", "previous_item_id": None},
    "input_audio_buffer.cleared": {"type": "input_audio_buffer.cleared", "event_id": "evt_1"},
    "error": {"type": "error", "event_id": "evt_1",
              "error": {"type": "invalid_request_error", "code": "invalid_value",
                        "message": "Bad.", "param": "session.voice", "event_id": "evt_x"}},
}
BETA = {beta: {**VALID[ga], "type": beta} for beta, ga in BETA_TO_GA_SERVER_EVENTS.items()}


def check(event: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    before = copy.deepcopy(event)
    out, warnings = check_server_event(event)
    assert event == before  # never mutated
    return out, warnings


# -- the samples are valid GA, and every checked type has one -----------------------------------


def test_samples_cover_every_checked_type_and_are_valid_ga() -> None:
    from typing import Annotated, Union, get_args

    from openai.types.realtime import RealtimeServerEvent
    from pydantic import Field, TypeAdapter

    assert set(VALID) | set(BETA) == CHECKED_EVENT_TYPES
    members = get_args(get_args(RealtimeServerEvent)[0])
    ga = TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # noqa: UP007
    for event in VALID.values():
        ga.validate_python(event)


@pytest.mark.parametrize("etype", sorted(CHECKED_EVENT_TYPES))
def test_valid_events_pass_as_the_same_object(etype: str) -> None:
    event = VALID.get(etype) or BETA[etype]
    out, warnings = check(event)
    assert out is event and warnings == []


def test_unknown_types_and_fields_pass_through_untouched() -> None:
    for event in ({"type": "rate_limits.updated", "rate_limits": "weird"},
                  {"type": "response.mcp_call.failed", "item_id": 5}, {"no": "type"},
                  {"type": 42}, {**VALID["response.output_text.delta"], "extra": [1, {}]}):
        out, warnings = check(event)
        assert out is event and warnings == []


# -- what is dropped, what is warned ------------------------------------------------------------


@pytest.mark.parametrize(("event", "warning"), [
    ({"type": "response.output_text.delta", "event_id": "e", "delta": 7},
     ("server event response.output_text.delta e: $.delta is an integer, expected a string;"
     " event ignored")),
    ({"type": "response.output_audio.delta", "delta": ["AAAA"]},
     ("server event response.output_audio.delta: $.delta is an array, expected a string;"
     " event ignored")),
    ({"type": "response.function_call_arguments.done", "event_id": "e", "arguments": "{}"},
     "server event response.function_call_arguments.done e: $.call_id is missing; event ignored"),
    ({"type": "response.function_call_arguments.done", "call_id": 3, "arguments": "{}"},
     ("server event response.function_call_arguments.done: $.call_id is an integer, expected a"
     " string; event ignored")),
    ({"type": "conversation.item.added", "item": "hello"},
     ("server event conversation.item.added: $.item is a string, expected an object;"
     " event ignored")),
    ({"type": "response.text.delta", "delta": None},  # beta name, GA table
     "server event response.text.delta: $.delta is null, expected a string; event ignored"),
    ({"type": "conversation.item.truncated", "item_id": "i", "audio_end_ms": "1500"},
     ("server event conversation.item.truncated: $.audio_end_ms is a string, expected an"
     " integer; event ignored")),
])
def test_mistyped_required_field_drops_the_event(event: dict[str, Any], warning: str) -> None:
    assert check(event) == (None, [warning])


@pytest.mark.parametrize(("event", "warning"), [
    ({"type": "error", "event_id": "evt_9", "error": "boom"},
     "server event error evt_9: $.error is a string, expected an object; ignored"),
    ({"type": "response.done", "response": "done"},
     "server event response.done: $.response is a string, expected an object; ignored"),
    ({"type": "session.created", "event_id": "evt_1", "session": None},
     "server event session.created evt_1: $.session is null, expected an object; ignored"),
])
def test_a_bare_event_still_means_something(event: dict[str, Any], warning: str) -> None:
    # A session.created without its session still starts a session; keep the event.
    assert check(event) == ({"type": event["type"], **(
        {"event_id": event["event_id"]} if "event_id" in event else {})}, [warning])


def test_mistyped_optional_fields_are_removed_from_a_copy() -> None:
    event = copy.deepcopy(VALID["response.done"])
    event["event_id"] = "evt_123"
    event["response"]["usage"] = "lots"
    event["response"]["id"] = 42
    out, warnings = check(event)
    assert warnings == [
        ("server event response.done evt_123: $.response.id is an integer, expected a string or"
        " null; ignored"),
        ("server event response.done evt_123: $.response.usage is a string, expected an object or"
        " null; ignored"),
    ]
    assert out is not None and out is not event
    assert "usage" not in out["response"] and "id" not in out["response"]
    assert out["response"]["output"] is event["response"]["output"]  # unchanged parts shared


def test_nested_arrays_drop_only_the_bad_element_or_field() -> None:
    event = copy.deepcopy(VALID["response.done"])
    output = event["response"]["output"]
    output[0]["content"][1]["text"] = ["not", "text"]
    output[0]["content"].append("junk")
    output.insert(1, None)
    out, warnings = check(event)
    assert out is not None
    assert [w.split(": ", 1)[1] for w in warnings] == [
        "$.response.output[0].content[1].text is an array, expected a string or null; ignored",
        "$.response.output[0].content[2] is a string, expected an object; ignored",
        "$.response.output[1] is null, expected an object; ignored",
    ]
    kept = out["response"]["output"]
    assert [o["type"] for o in kept] == ["message", "function_call"]
    assert kept[0]["content"] == [MESSAGE["content"][0], {"type": "output_text"}]


@pytest.mark.parametrize(("event", "path"), [
    ({"type": "session.updated", "session": {"tools": [{"name": None}, "x"],
                                             "expires_at": "soon"}},
     ["$.session.tools[0].name is null", "$.session.tools[1] is a string",
      "$.session.expires_at is a string"]),
    ({"type": "session.created", "session": {"audio": {"input": {"turn_detection": "vad"}},
                                             "instructions": ["a"]}},
     ["$.session.instructions is an array", "$.session.audio.input.turn_detection is a string"]),
    ({"type": "response.output_text.done", "text": ["a"], "item_id": {}},
     ["$.text is an array", "$.item_id is an object"]),
    ({"type": "error", "error": {"message": 5, "code": [], "event_id": False}},
     ["$.error.code is an array", "$.error.message is an integer", "$.error.event_id is a boolean"]),
    ({"type": "response.done", "response": {"usage": {"input_tokens": "10", "output_tokens": True,
                                                      "total_tokens": 1.5}}},
     ["$.response.usage.input_tokens is a string", "$.response.usage.output_tokens is a boolean",
      "$.response.usage.total_tokens is a number"]),
    ({"type": "conversation.item.done", "item": {"id": 1, "type": "message", "content": "hi"}},
     ["$.item.id is an integer", "$.item.content is a string"]),
    ({"type": "session.created", "session": {"expires_at": 10**400}},
     ["$.session.expires_at is a number out of range"]),
    ({"type": "session.created", "session": {"expires_at": float("nan")}},
     ["$.session.expires_at is a number out of range"]),
])
def test_optional_fields_named_by_path(event: dict[str, Any], path: list[str]) -> None:
    out, warnings = check(event)
    assert out is not None
    assert sorted(w.split(": ", 1)[1].split(",")[0] for w in warnings) == sorted(path)
    assert all(w.endswith("; ignored") for w in warnings)


def test_a_missing_required_field_drops_the_event() -> None:
    out, warnings = check({"type": "conversation.item.truncated", "audio_end_ms": 5})
    assert out is None and warnings == [
        "server event conversation.item.truncated: $.item_id is missing; event ignored"]


# -- the property: never raises, and what comes out is safe to read ----------------------------

JUNK = st.sampled_from([None, True, False, 0, -1, 2**70, 10**400, float("inf"), 1.5, "", "x",
                        [], ["x"], [None], {}, {"a": 1}, {"type": None}])


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key != "type" or prefix:
                out.append((*prefix, key))
                out.extend(paths(inner, (*prefix, key)))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            out.append((*prefix, index))
            out.extend(paths(inner, (*prefix, index)))
    return out


SAMPLES = [*VALID.values(), *BETA.values()]


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        where = paths(event)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) or isinstance(parent, list):
            parent[path[-1]] = copy.deepcopy(draw(JUNK))  # never share one junk object
        else:
            del parent[path[-1]]
    return event


def runtime_reads(event: dict[str, Any]) -> None:
    """What session.py, the sans-I/O core and the console read, the way they read it."""
    for ga in normalize_server_event(event):
        Conversation().on_server_event(ga)
        ResponseArbiter().on_server_event(ga)
        kind = ga["type"]
        if kind == "session.created":
            expires = ga.get("session", {}).get("expires_at")
            if expires is not None:
                float(expires) - 120.0
        elif kind == "session.updated":
            sorted(t.get("name", "") for t in ga.get("session", {}).get("tools") or [])
            ga.get("session", {}).get("instructions")
        elif kind == "response.output_audio.delta":
            assert isinstance(ga.get("item_id", ""), str) and isinstance(ga["delta"], str)
        elif kind.endswith(".delta"):
            assert isinstance(ga["delta"], str)
        elif kind in ("response.output_text.done", "response.output_audio_transcript.done"):
            text = ga.get("text") if kind.endswith("text.done") else ga.get("transcript")
            if text:
                ("" + "\n" + text).strip()
        elif kind == "conversation.item.input_audio_transcription.completed":
            assert isinstance(ga["transcript"], str)
        elif kind == "response.function_call_arguments.done":
            assert isinstance(ga["call_id"], str) and isinstance(ga["arguments"], str)
            assert isinstance(ga.get("name", ""), str)
        elif kind == "response.done":
            usage = ga.get("response", {}).get("usage") or {}
            sum([usage.get("input_tokens", 0), usage.get("output_tokens", 0)])
        elif kind == "error":
            error = ga.get("error", {})
            f"{error.get('code') or error.get('type')}: {error.get('message')}"
            error_summary(ga)


@settings(max_examples=400, deadline=None)
@given(mutated_events())
def test_mutated_events_never_raise_and_come_out_well_typed(event: dict[str, Any]) -> None:
    out, warnings = check(event)
    if out is None:
        assert warnings and warnings[-1].endswith("; event ignored")
        return
    # What comes out is clean: checking it again finds nothing, and the runtime can read it.
    again, more = check_server_event(out)
    assert again is out and more == []
    assert (out is event) == (not warnings)
    runtime_reads(out)


@given(st.sampled_from(SAMPLES))
def test_valid_samples_are_readable_by_the_runtime(event: dict[str, Any]) -> None:
    runtime_reads(event)


# -- the compiled fast check agrees with the tables ----------------------------------------------

ODD_VALUES: list[Any] = [None, True, 0, 10**400, 1.5, float("nan"), float("inf"), "s", {}, [], [None],
                         [{}], {"type": 1}]


def every_path(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [path] if path else []
    if isinstance(value, dict):
        for key, member in value.items():
            out += every_path(member, (*path, key))
    elif isinstance(value, list):
        for index, member in enumerate(value):
            out += every_path(member, (*path, index))
    return out


def test_fast_check_says_fine_only_where_the_tables_find_nothing() -> None:
    """check_server_event's compiled predicate (_ALL_OK) only skips the table interpreter.

    Every field of every sample, replaced by each odd value or removed: whenever the
    predicate accepts the event, the interpreter must return it untouched with no warning;
    and it rejects at least the mutations the interpreter warns about.
    """
    from realtalk.protocol import validate

    accepted = rejected = 0
    for etype, sample in {**VALID, **BETA}.items():
        fields = validate._TABLE[etype].fields
        assert fields is not None
        assert validate._ALL_OK[etype](sample)  # the samples take the fast path
        for path in every_path(sample):
            for odd in [*ODD_VALUES, KeyError]:  # KeyError: remove the field
                event = copy.deepcopy(sample)
                parent = event
                for key in path[:-1]:
                    parent = parent[key]
                if odd is KeyError:
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = copy.deepcopy(odd)
                problems: list[str] = []
                slow = validate._check_object(event, fields, "$", problems)
                fast = validate._ALL_OK[etype](event)
                if fast:
                    accepted += 1
                    assert slow is event and problems == [], (etype, path, odd)
                elif slow is not event or problems:
                    rejected += 1
    assert accepted > 1000 and rejected > 1000
