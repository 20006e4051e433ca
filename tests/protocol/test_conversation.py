"""Tests for realtalk.protocol.conversation: items, calls, audio, history."""

from __future__ import annotations

import base64
from typing import Any

from realtalk.protocol.conversation import (
    HISTORY_MAX,
    MAX_ITEMS,
    MAX_RESPONSES,
    UNTRANSCRIBED,
    Conversation,
    bytes_per_ms,
)
from realtalk.protocol.events import normalize_server_event


def feed(conv: Conversation, *events: dict[str, Any]) -> None:
    for event in events:
        for ev in normalize_server_event(event):
            conv.on_server_event(ev)


def audio(n_bytes: int) -> str:
    return base64.b64encode(b"\0" * n_bytes).decode()


def user_text(iid: str, text: str, prev: str | None = None) -> list[dict[str, Any]]:
    item = {"id": iid, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": text}]}
    return [{"type": "conversation.item.added", "previous_item_id": prev, "item": item},
            {"type": "conversation.item.done", "previous_item_id": prev, "item": item}]


def user_audio(iid: str, prev: str | None) -> list[dict[str, Any]]:
    item = {"id": iid, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}]}
    return [{"type": "conversation.item.added", "previous_item_id": prev, "item": item},
            {"type": "conversation.item.done", "previous_item_id": prev, "item": item}]


def assistant_audio_turn(rid: str, iid: str, words: str, n_bytes: int,
                         status: str = "completed") -> list[dict[str, Any]]:
    item = {"id": iid, "type": "message", "role": "assistant", "status": "in_progress",
            "content": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
        {"type": "response.output_item.added", "response_id": rid, "item": item},
        {"type": "conversation.item.added", "item": item},
    ]
    for word in words.split():
        events.append({"type": "response.output_audio_transcript.delta", "response_id": rid,
                       "item_id": iid, "delta": word + " "})
    half = n_bytes // 2
    events.append({"type": "response.output_audio.delta", "response_id": rid, "item_id": iid,
                   "delta": audio(half)})
    events.append({"type": "response.output_audio.delta", "response_id": rid, "item_id": iid,
                   "delta": audio(n_bytes - half)})
    events.append({"type": "response.output_audio_transcript.done", "response_id": rid,
                   "item_id": iid, "transcript": words})
    events.append({"type": "response.done",
                   "response": {"id": rid, "status": status, "output": [],
                                "usage": {"total_tokens": 7}}})
    return events


def call_turn(rid: str, iid: str, call_id: str, name: str, args: str) -> list[dict[str, Any]]:
    start = {"id": iid, "type": "function_call", "call_id": call_id, "name": name,
             "arguments": "", "status": "in_progress"}
    done = dict(start, arguments=args, status="completed")
    return [
        {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
        {"type": "response.output_item.added", "response_id": rid, "item": start},
        {"type": "conversation.item.added", "item": start},
        {"type": "response.function_call_arguments.delta", "response_id": rid, "item_id": iid,
         "call_id": call_id, "delta": args[:3]},
        {"type": "response.function_call_arguments.delta", "response_id": rid, "item_id": iid,
         "call_id": call_id, "delta": args[3:]},
        {"type": "response.function_call_arguments.done", "response_id": rid, "item_id": iid,
         "call_id": call_id, "name": name, "arguments": args},
        {"type": "conversation.item.done", "item": done},
        {"type": "response.output_item.done", "response_id": rid, "item": done},
        {"type": "response.done", "response": {"id": rid, "status": "completed",
                                               "output": [done]}},
    ]


def test_bytes_per_ms() -> None:
    assert bytes_per_ms(None) == 48
    assert bytes_per_ms({"type": "audio/pcm", "rate": 24000}) == 48
    assert bytes_per_ms({"type": "audio/pcmu"}) == 8
    assert bytes_per_ms("g711_alaw") == 8
    assert bytes_per_ms("pcm16") == 48


def test_items_respect_previous_item_id() -> None:
    conv = Conversation()
    feed(conv, *user_text("a", "one"), *user_text("c", "three", prev="a"))
    feed(conv, *user_text("b", "two", prev="a"))
    feed(conv, *user_text("z", "zero", prev="root"))
    assert conv.order == ["z", "a", "b", "c"]


def test_output_item_is_moved_once_its_position_is_known() -> None:
    conv = Conversation()
    feed(conv, *user_text("a", "one"), *user_text("b", "two", prev="a"))
    item = {"id": "x", "type": "message", "role": "assistant", "content": []}
    feed(conv, {"type": "response.created", "response": {"id": "r"}},
         {"type": "response.output_item.added", "response_id": "r", "item": item})
    assert conv.order == ["a", "b", "x"]
    feed(conv, {"type": "conversation.item.added", "previous_item_id": "a", "item": item})
    assert conv.order == ["a", "x", "b"]
    feed(conv, {"type": "conversation.item.done", "previous_item_id": "a", "item": item})
    assert conv.order == ["a", "x", "b"]
    assert conv.items["x"].response_id == "r" and conv.responses["r"].item_ids == ["x"]


def test_active_response_usage_and_audio_ms() -> None:
    conv = Conversation()
    feed(conv, {"type": "response.created", "response": {"id": "r1"}})
    assert conv.active_response_id == "r1"
    feed(conv, *assistant_audio_turn("r1", "i1", "hello there", 4800))
    assert conv.active_response_id is None
    assert conv.received_ms("i1") == 100
    assert conv.responses["r1"].usage == {"total_tokens": 7}
    assert conv.items["i1"].transcript == "hello there"


def test_g711_audio_ms_from_session() -> None:
    conv = Conversation()
    feed(conv, {"type": "session.created", "session": {
        "audio": {"output": {"format": {"type": "audio/pcmu"}}}}})
    feed(conv, *assistant_audio_turn("r", "i", "x", 800))
    assert conv.received_ms("i") == 100


def test_function_call_tracking_and_output_from_client() -> None:
    conv = Conversation()
    feed(conv, *call_turn("r1", "fc1", "call_1", "get_time", '{"tz":"UTC"}'))
    call = conv.calls["call_1"]
    assert (call.name, call.item_id, call.response_id) == ("get_time", "fc1", "r1")
    assert call.arguments == '{"tz":"UTC"}' and call.arguments_done
    assert conv.responses["r1"].call_ids == ["call_1"]
    assert [c.call_id for c in conv.pending_calls()] == ["call_1"]
    conv.on_client_event({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_1", "output": "12:00"}})
    assert conv.calls["call_1"].output_sent and conv.calls["call_1"].output == "12:00"
    assert conv.pending_calls() == []


def test_user_transcript_from_transcription_completed() -> None:
    conv = Conversation()
    feed(conv, *user_audio("u1", None))
    feed(conv, {"type": "conversation.item.input_audio_transcription.completed",
                "item_id": "u1", "content_index": 0, "transcript": "book a room"})
    assert conv.user_transcripts() == [("u1", "book a room")]


def test_interrupt_truncates_clamped_or_deletes() -> None:
    conv = Conversation()
    events = assistant_audio_turn("r1", "i1", "a b c d", 48 * 400)[:-1]  # still in progress
    feed(conv, *events)
    assert conv.interrupt("i1", 5000) == [{"type": "conversation.item.truncate",
                                           "item_id": "i1", "content_index": 0,
                                           "audio_end_ms": 400}]
    assert conv.interrupt("i1", 120)[0]["audio_end_ms"] == 120
    assert conv.interrupt("i1", 0) == [{"type": "conversation.item.delete", "item_id": "i1"}]
    assert conv.interrupt("unknown", 10) == []


def test_interrupt_after_fully_played_finished_item_sends_nothing() -> None:
    conv = Conversation()
    feed(conv, *assistant_audio_turn("r1", "i1", "done", 4800))
    assert conv.interrupt("i1", 100) == []


def test_truncated_and_deleted_items() -> None:
    conv = Conversation()
    feed(conv, *assistant_audio_turn("r1", "i1", "one two three four", 48 * 1000))
    feed(conv, {"type": "conversation.item.truncated", "item_id": "i1", "content_index": 0,
                "audio_end_ms": 500})
    assert conv.items["i1"].truncated_ms == 500
    assert conv.items["i1"].transcript == "one two"
    # A late item.done with the full transcript must not undo the cut.
    feed(conv, {"type": "conversation.item.done", "item": {
        "id": "i1", "type": "message", "role": "assistant", "status": "incomplete",
        "content": [{"type": "output_audio", "transcript": "one two three four"}]}})
    assert conv.items["i1"].transcript == "one two"
    feed(conv, {"type": "conversation.item.deleted", "item_id": "i1"})
    assert "i1" not in conv.items and conv.order == []


def test_history_items_reseed_everything_in_order() -> None:
    conv = Conversation()
    feed(conv, *user_text("u1", "What time is it?"))
    feed(conv, *call_turn("r1", "fc1", "call_1", "get_time", '{"tz":"UTC"}'))
    out_item = {"id": "o1", "type": "function_call_output", "call_id": "call_1",
                "output": '{"time":"12:00"}'}
    conv.on_client_event({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_1", "output": '{"time":"12:00"}'}})
    feed(conv, {"type": "conversation.item.added", "previous_item_id": "fc1", "item": out_item},
         {"type": "conversation.item.done", "previous_item_id": "fc1", "item": out_item})
    feed(conv, *assistant_audio_turn("r2", "a1", "It is noon.", 4800))
    feed(conv, *user_audio("u2", "a1"))
    feed(conv, {"type": "conversation.item.input_audio_transcription.completed",
                "item_id": "u2", "content_index": 0, "transcript": "Tell me a story"})
    feed(conv, *assistant_audio_turn("r3", "a2", "Once upon a time there was", 48 * 1000,
                                     status="cancelled"))
    feed(conv, {"type": "conversation.item.truncated", "item_id": "a2", "content_index": 0,
                "audio_end_ms": 500})
    feed(conv, *user_audio("u3", "a2"))  # no transcript: kept as a marked placeholder

    history = conv.history_items()
    assert all(e["type"] == "conversation.item.create" for e in history)
    assert [e["item"] for e in history] == [
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "What time is it?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_time",
         "arguments": '{"tz":"UTC"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"time":"12:00"}'},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "It is noon."}]},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "Tell me a story"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Once upon a"}]},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": UNTRANSCRIBED}]},
    ]
    # Never assistant audio, never ids.
    for e in history:
        assert "id" not in e["item"]
        for part in e["item"].get("content", []):
            assert part["type"] != "output_audio"


def test_history_includes_unconfirmed_output_and_skips_incomplete_calls() -> None:
    conv = Conversation()
    feed(conv, *call_turn("r1", "fc1", "call_1", "f", "{}"))
    conv.on_client_event({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_1", "output": "ok"}})
    # a second call whose arguments never finished (response cancelled mid-stream)
    feed(conv, {"type": "response.created", "response": {"id": "r2"}},
         {"type": "response.output_item.added", "response_id": "r2", "item": {
             "id": "fc2", "type": "function_call", "call_id": "call_2", "name": "g",
             "arguments": "", "status": "in_progress"}})
    items = [e["item"] for e in conv.history_items()]
    assert items == [
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
    ]


def test_history_uses_played_ms_when_truncation_unconfirmed() -> None:
    conv = Conversation()
    feed(conv, *assistant_audio_turn("r1", "a1", "one two three four", 48 * 1000))
    conv.mark_played("a1", 250)
    assert conv.history_items()[0]["item"]["content"][0]["text"] == "one"


def test_beta_text_turn_via_item_created() -> None:
    conv = Conversation()
    feed(conv, {"type": "conversation.item.created", "previous_item_id": None, "item": {
        "id": "a", "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "text", "text": "Hi!"}]}})
    assert conv.history_items()[0]["item"]["content"] == [{"type": "output_text", "text": "Hi!"}]


# -- conformance: the official openai types are the oracle ---------------------------------------


def _client_adapter(beta: bool) -> Any:
    from typing import Annotated, Union, get_args

    from pydantic import Field, TypeAdapter

    if beta:
        from openai.types.beta.realtime import RealtimeClientEvent
    else:
        from openai.types.realtime import RealtimeClientEvent
    members = get_args(get_args(RealtimeClientEvent)[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # noqa: UP007


def test_history_and_barge_in_events_are_valid_client_events() -> None:
    from realtalk.protocol.events import to_wire

    conv = Conversation()
    feed(conv, *user_text("u1", "What time is it?"))
    feed(conv, *call_turn("r1", "fc1", "call_1", "get_time", '{"tz":"UTC"}'))
    conv.on_client_event({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_1", "output": "noon"}})
    feed(conv, *assistant_audio_turn("r2", "a1", "It is noon, and more", 48 * 800)[:-1])
    events = conv.history_items() + conv.interrupt("a1", 300) + [
        {"type": "conversation.item.delete", "item_id": "a1"}]
    assert len(events) == 6  # user, call, output, assistant text, truncate, delete
    ga, beta = _client_adapter(False), _client_adapter(True)
    for event in events:
        ga.validate_python(event)
        beta.validate_python(to_wire(event, "beta"))


def test_a_message_the_server_never_confirmed_is_reseeded_once() -> None:
    conv = Conversation()
    feed(conv, *user_text("u1", "first"))
    sent = {"id": "item_rt_1", "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "into a dying socket"}]}
    conv.on_client_event({"type": "conversation.item.create", "item": sent})
    items = [e["item"] for e in conv.history_items()]
    assert items[-1] == {"type": "message", "role": "user",
                         "content": [{"type": "input_text", "text": "into a dying socket"}]}
    # Once the server confirms it, it is history like any other item: not added twice.
    feed(conv, *user_text("item_rt_1", "into a dying socket", prev="u1"))
    texts = [e["item"]["content"][0]["text"] for e in conv.history_items()]
    assert texts == ["first", "into a dying socket"]


def test_an_assistant_item_cut_off_by_a_drop_is_left_out() -> None:
    conv = Conversation()
    feed(conv, *user_text("u1", "hello"))
    events = assistant_audio_turn("r1", "a1", "A long answer", 4800)
    cut = [e for e in events if not e["type"].endswith(("transcript.done", "response.done"))]
    feed(conv, *cut)  # deltas only: the socket dropped mid-stream
    assert [e["item"]["role"] for e in conv.history_items()] == ["user"]
    # The same item with its transcript done (the drop came before response.done) stays.
    feed(conv, {"type": "response.output_audio_transcript.done", "response_id": "r1",
                "item_id": "a1", "transcript": "A long answer"})
    assert [e["item"]["role"] for e in conv.history_items()] == ["user", "assistant"]


def output_item(iid: str, call_id: str, output: str) -> list[dict[str, Any]]:
    item = {"id": iid, "type": "function_call_output", "call_id": call_id, "output": output}
    return [{"type": "conversation.item.added", "item": item}, {"type": "conversation.item.done", "item": item}]


def test_the_mirror_of_a_long_session_stays_bounded() -> None:
    conv = Conversation()
    turns = 3 * MAX_ITEMS
    for n in range(turns):
        feed(conv, *user_text(f"u{n}", f"question {n}"))
        if n == turns - HISTORY_MAX // 2 - 1:  # a call whose output lands in the re-seeded window
            feed(conv, *call_turn(f"rc{n}", f"fc{n}", f"call_{n}", "get_time", '{"tz":"UTC"}'))
            conv.on_client_event({"type": "conversation.item.create", "item": {
                "type": "function_call_output", "call_id": f"call_{n}", "output": "12:00"}})
            feed(conv, *output_item(f"out{n}", f"call_{n}", "12:00"))
        feed(conv, *assistant_audio_turn(f"r{n}", f"a{n}", f"answer {n}", 480))
    assert len(conv.items) == len(conv.order) == MAX_ITEMS
    assert conv.order[-1] == f"a{turns - 1}" and f"u{turns - 1}" in conv.items
    assert len(conv.responses) <= MAX_RESPONSES and len(conv.usage) <= MAX_RESPONSES
    assert len(conv.calls) <= 1
    history = conv.history_items()
    assert len(history) == HISTORY_MAX
    assert history[-1]["item"]["content"] == [{"type": "output_text", "text": f"answer {turns - 1}"}]


def test_an_output_whose_call_is_older_than_the_reseeded_window_is_left_out() -> None:
    conv = Conversation()
    feed(conv, *call_turn("rc", "fc", "call_old", "get_time", "{}"))
    feed(conv, *output_item("out", "call_old", "12:00"))
    for n in range(HISTORY_MAX - 1):  # the window: the output and these; its call is out
        feed(conv, *user_text(f"u{n}", f"question {n}"))
    kinds = [e["item"]["type"] for e in conv.history_items()]
    assert "function_call_output" not in kinds and "function_call" not in kinds
    assert len(kinds) == HISTORY_MAX - 1
