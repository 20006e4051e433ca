"""Barge-in from the application, out-of-band responses, multi-message responses and input
timeouts, as sans-I/O rules driven with plain dicts (no socket, no asyncio)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from realtalk.agents import AgentGraph, AgentSpec
from realtalk.exceptions import SessionError
from realtalk.protocol.arbiter import OOB_KEY, TAG_KEY, ResponseArbiter
from realtalk.protocol.client import Action, AudioDone, ClientProtocol, Emit, Interrupt, Play, Send
from realtalk.protocol.conversation import Conversation
from realtalk.tools import ToolRegistry

# -- a live protocol ------------------------------------------------------------------------


def live() -> ClientProtocol:
    """A ClientProtocol past setup: configured, seeded with nothing, live."""
    agent = AgentSpec(name="front", instructions="Help.")
    proto = ClientProtocol(AgentGraph(agents={"front": agent}, roots=["front"]), agent, ToolRegistry(),
                           text_only=True)
    proto.agent = proto.prepare(proto.agent)
    proto.connection_opened()
    proto.receive({"type": "session.created", "event_id": "e0", "session": {
        "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": True}}}}})
    proto.configure()
    proto.receive({"type": "session.updated", "event_id": "e1",
                   "session": {"instructions": "Help.", "tools": []}})
    proto.seed([])
    proto.go_live(0.0)
    return proto


def sends(actions: list[Action]) -> list[dict[str, Any]]:
    return [a.event for a in actions if isinstance(a, Send)]


def feed(proto: ClientProtocol, *events: dict[str, Any]) -> list[Action]:
    out: list[Action] = []
    for n, event in enumerate(events):
        out += proto.receive({"event_id": f"s{n}", **event})
    return out


def created(rid: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": rid, "status": "in_progress",
                                                     "metadata": metadata, "output": []}}


def done(rid: str, output: list[dict[str, Any]] | None = None, status: str = "completed",
         metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {"type": "response.done", "response": {"id": rid, "status": status, "output": output or [],
                                                  "metadata": metadata}}


def text_message(rid: str, iid: str, text: str) -> list[dict[str, Any]]:
    item = {"id": iid, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    return [{"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item},
            {"type": "response.output_text.delta", "response_id": rid, "item_id": iid,
             "output_index": 0, "content_index": 0, "delta": text},
            {"type": "response.output_text.done", "response_id": rid, "item_id": iid,
             "output_index": 0, "content_index": 0, "text": text}]


# -- barge-in from the application ----------------------------------------------------------


def test_cancel_response_cancels_the_active_response_then_interrupts() -> None:
    proto = live()
    [create] = sends(proto.user_text("hi"))[1:]
    feed(proto, created("resp_1", {TAG_KEY: create["event_id"]}))
    actions = proto.cancel_response()
    [cancel] = sends(actions)
    assert cancel["type"] == "response.cancel" and cancel["response_id"] == "resp_1"
    assert isinstance(actions[-1], Interrupt)


def test_cancel_response_after_the_response_ended_only_interrupts() -> None:
    # Audio arrives faster than it plays: the response is done, the speaker still talks.
    proto = live()
    [create] = sends(proto.user_text("hi"))[1:]
    feed(proto, created("resp_1", {TAG_KEY: create["event_id"]}), done("resp_1"))
    actions = proto.cancel_response()
    assert sends(actions) == [] and [type(a) for a in actions] == [Interrupt]


def test_clear_input_audio_sends_the_clear_and_resets_the_commit_count() -> None:
    proto = live()
    proto.audio_appended("AAAA", 300.0)
    [clear] = sends(proto.clear_input_audio())
    assert clear["type"] == "input_audio_buffer.clear"
    assert proto.commit_audio() is None  # nothing left to commit


# -- out-of-band responses ------------------------------------------------------------------


def test_the_arbiter_keeps_out_of_band_apart_from_the_conversation_response() -> None:
    arbiter = ResponseArbiter()
    [ours] = arbiter.request_response("user text")
    arbiter.on_server_event(created("resp_conv", {TAG_KEY: ours["event_id"]}))
    # Sent at once although a response is active, with conversation none and its tag.
    [oob] = arbiter.out_of_band({"instructions": "Classify", "metadata": {"topic": "x"}})
    assert oob["response"]["conversation"] == "none"
    assert oob["response"]["metadata"] == {"topic": "x", OOB_KEY: oob["event_id"]}
    oob_created = created("resp_oob", oob["response"]["metadata"])
    assert arbiter.out_of_band_owner(oob_created) == oob["event_id"]
    arbiter.on_out_of_band_event(oob["event_id"], oob_created)
    delta = {"type": "response.output_text.delta", "response_id": "resp_oob", "delta": "x"}
    assert arbiter.out_of_band_owner(delta) == oob["event_id"]
    assert arbiter.out_of_band_owner({**delta, "response_id": "resp_conv"}) is None
    oob_done = done("resp_oob")
    assert arbiter.out_of_band_owner(oob_done) == oob["event_id"]
    arbiter.on_out_of_band_event(oob["event_id"], oob_done)
    # The conversation's response is still the active one: a wish waits for it.
    assert arbiter.active_response_id == "resp_conv" and arbiter.out_of_band_running == 0
    assert arbiter.request_response("another") == []


def test_out_of_band_requests_are_bounded() -> None:
    arbiter = ResponseArbiter()
    for _ in range(arbiter.max_out_of_band):
        arbiter.out_of_band({})
    with pytest.raises(ValueError, match="4 out-of-band responses are already running"):
        arbiter.out_of_band({})


def test_an_out_of_band_answer_never_enters_the_conversation() -> None:
    proto = live()
    owner, actions = proto.out_of_band({"instructions": "Summarise", "output_modalities": ["text"]})
    [create] = sends(actions)
    meta = create["response"]["metadata"]
    out = feed(proto, created("resp_oob", meta), *text_message("resp_oob", "item_oob", "A summary."),
               done("resp_oob", [{"id": "item_oob", "type": "message", "role": "assistant",
                                  "content": [{"type": "output_text", "text": "A summary."}]}], metadata=meta))
    assert [a for a in out if isinstance(a, Emit)] == []  # no deltas, no turn for the console
    assert proto.conversation.order == [] and len(proto.finished) == 0
    result = proto.oob_finished[owner]
    assert (result.text, result.status, result.response_id) == ("A summary.", "completed", "resp_oob")
    assert proto.idle


def test_a_refused_out_of_band_request_fails_alone() -> None:
    proto = live()
    owner, actions = proto.out_of_band({})
    [create] = sends(actions)
    out = feed(proto, {"type": "error", "error": {"type": "invalid_request_error", "code": "bad",
                                                  "message": "no", "event_id": create["event_id"]}})
    assert proto.oob_finished[owner].status == "failed"
    assert any(isinstance(a, Emit) and a.kind == "error" for a in out)
    assert proto.arbiter.out_of_band_running == 0 and proto.arbiter.last_error is None


def test_out_of_band_audio_plays_only_when_asked() -> None:
    proto = live()
    _, actions = proto.out_of_band({"output_modalities": ["audio"]}, play=True)
    meta = sends(actions)[0]["response"]["metadata"]
    audio = base64.b64encode(bytes(480)).decode()
    out = feed(proto, created("resp_oob", meta),
               {"type": "response.output_audio.delta", "response_id": "resp_oob", "item_id": "i1",
                "output_index": 0, "content_index": 0, "delta": audio},
               {"type": "response.output_audio.done", "response_id": "resp_oob", "item_id": "i1",
                "output_index": 0, "content_index": 0})
    assert [type(a) for a in out] == [Play, AudioDone]
    assert proto.conversation.items == {}


def test_a_reconnect_fails_out_of_band_requests_still_running() -> None:
    proto = live()
    owner, _ = proto.out_of_band({})
    proto.connection_lost()
    proto.connection_opened()
    assert proto.oob_finished[owner].status == "failed"
    assert "connection was replaced" in (proto.oob_finished[owner].error or "")


def test_out_of_band_needs_a_live_connection() -> None:
    proto = live()
    proto.connection_lost()
    with pytest.raises(SessionError, match="not connected"):
        proto.out_of_band({})


# -- several messages in one response -------------------------------------------------------


def audio_message(rid: str, iid: str, words: str, n_bytes: int) -> list[dict[str, Any]]:
    item = {"id": iid, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    return [{"type": "response.output_item.added", "response_id": rid, "item": item},
            {"type": "response.output_audio.delta", "response_id": rid, "item_id": iid,
             "delta": base64.b64encode(bytes(n_bytes)).decode()},
            {"type": "response.output_audio_transcript.done", "response_id": rid, "item_id": iid,
             "transcript": words},
            {"type": "response.output_item.done", "response_id": rid,
             "item": {**item, "status": "completed"}}]


def test_barge_in_cuts_the_message_playing_and_deletes_the_unheard_one() -> None:
    conv = Conversation()
    for event in [{"type": "response.created", "response": {"id": "r1"}},
                  *audio_message("r1", "preamble", "Let me check that", 48 * 1000),
                  *audio_message("r1", "answer", "It is sunny", 48 * 500),
                  {"type": "response.done", "response": {"id": "r1", "status": "completed", "output": []}}]:
        conv.on_server_event(event)
    assert conv.response_audio_items("answer") == ["preamble", "answer"]
    events = conv.interrupt_items({"preamble": 400, "answer": 0})
    assert events == [
        {"type": "conversation.item.truncate", "item_id": "preamble", "content_index": 0, "audio_end_ms": 400},
        {"type": "conversation.item.delete", "item_id": "answer"}]
    # Until the server confirms, the re-seeded history keeps only what was heard.
    history = [e["item"]["content"][0]["text"] for e in conv.history_items()]
    assert history == ["Let"]


def test_interrupted_names_the_message_the_user_was_hearing() -> None:
    proto = live()
    feed(proto, {"type": "response.created", "response": {"id": "r1", "status": "in_progress"}},
         *audio_message("r1", "preamble", "Let me check", 48 * 1000),
         *audio_message("r1", "answer", "Sunny", 48 * 500))
    out = proto.interrupted("answer", 0, 900, 5.0, {"preamble": 600, "answer": 0})
    assert [e["type"] for e in sends(out)] == ["conversation.item.truncate", "conversation.item.delete"]
    [cut] = [a for a in out if isinstance(a, Emit) and a.kind == "interrupted"]
    assert cut.data["item_id"] == "preamble" and cut.data["played_ms"] == 600


# -- input idle timeouts --------------------------------------------------------------------


def test_an_input_timeout_is_shown_and_its_response_is_a_normal_turn() -> None:
    proto = live()
    out = feed(proto, {"type": "input_audio_buffer.timeout_triggered", "item_id": "item_u",
                       "audio_start_ms": 100, "audio_end_ms": 5100})
    [shown] = [a for a in out if isinstance(a, Emit)]
    assert shown.kind == "input.timeout" and shown.data["audio_end_ms"] == 5100
    # The server answers the idle input itself: a wish made meanwhile waits, and that
    # response answers it (no second response.create).
    assert sends(proto.request("app wish")) == []
    feed(proto, created("resp_1"), *text_message("resp_1", "i1", "Are you still there?"))
    out = feed(proto, done("resp_1"))
    assert proto.arbiter.in_flight is None and not proto.arbiter.wants_response
    assert [t.text for t in proto.finished] == ["Are you still there?"]
    assert proto.finished[0].done_ms is not None  # timed from the timeout, like any turn


# -- still working: no dead air during slow tools -------------------------------------------


def still_record() -> Any:
    from realtalk.results import ToolCallRecord

    return ToolCallRecord("call_1", "lookup", "{}", "front")


@pytest.mark.parametrize(("value", "message"), [
    ({"say": "hi"}, "after_s must be a positive number"),
    ({"after_s": 0, "say": "hi"}, "after_s must be a positive number"),
    ({"after_s": 2}, "exactly one of say"),
    ({"after_s": 2, "say": "x", "generate": True}, "exactly one of say"),
    ({"after_s": 2, "say": ""}, "say must be a non-empty string"),
    ({"after_s": 2, "generate": "yes"}, "generate must be true or false"),
    ({"after_s": 2, "sya": "x"}, "unknown key 'sya'"),
    ("soon", "must be a mapping"),
])
def test_still_working_options_are_checked(value: Any, message: str) -> None:
    from realtalk.tools import StillWorking

    with pytest.raises(ValueError, match=message):
        StillWorking.parse(value)


def test_a_fixed_line_in_a_text_session_is_shown_without_any_response() -> None:
    from realtalk.tools import StillWorking

    proto = live()
    out = proto.still_working(still_record(), StillWorking(3.0, say="Still checking..."))
    [shown] = out
    assert isinstance(shown, Emit) and shown.kind == "tool.still_working"
    assert shown.data == {"call_id": "call_1", "name": "lookup", "after_s": 3.0, "say": "Still checking..."}


def test_a_fixed_line_in_an_audio_session_is_read_out_of_band() -> None:
    from realtalk.tools import StillWorking

    proto = live()
    proto.text_only = False
    proto.agent = AgentSpec(name="front", instructions="Help.", output_modalities=("audio",))
    [_, send] = proto.still_working(still_record(), StillWorking(3.0, say="Still checking..."))
    assert isinstance(send, Send)
    body = send.event["response"]
    assert body["conversation"] == "none" and body["input"] == [] and body["output_modalities"] == ["audio"]
    assert body["instructions"].endswith("Still checking...")
    assert proto.arbiter.active_response_id is None  # the one-response rule is untouched


def test_a_generated_line_is_shown_when_its_response_ends() -> None:
    from realtalk.tools import StillWorking

    proto = live()
    [_, send] = proto.still_working(still_record(), StillWorking(3.0, generate=True))
    assert isinstance(send, Send) and "input" not in send.event["response"]  # sees the conversation
    meta = send.event["response"]["metadata"]
    out = feed(proto, created("resp_sw", meta), *text_message("resp_sw", "i_sw", "One moment."),
               done("resp_sw", metadata=meta))
    [said] = [a for a in out if isinstance(a, Emit)]
    assert said.kind == "assistant.done" and said.data["text"] == "One moment."
    assert proto.oob_finished == {} and proto.conversation.order == []


def test_nothing_is_spoken_while_the_model_talks() -> None:
    from realtalk.tools import StillWorking

    proto = live()
    [create] = sends(proto.user_text("hi"))[1:]
    feed(proto, created("resp_1", {TAG_KEY: create["event_id"]}))
    out = proto.still_working(still_record(), StillWorking(3.0, generate=True))
    assert sends(out) == [] and proto.arbiter.out_of_band_running == 0


def test_a_timed_out_out_of_band_response_never_passes_for_the_conversations() -> None:
    proto = live()
    owner, actions = proto.out_of_band({})
    meta = sends(actions)[0]["response"]["metadata"]
    assert sends(proto.out_of_band_timeout(owner)) == []  # not started yet: nothing to cancel
    assert proto.arbiter.out_of_band_running == 0
    # Its response starts and ends after all: routed aside, dropped, never active.
    feed(proto, created("resp_late", meta), *text_message("resp_late", "i_late", "late"))
    assert proto.arbiter.active_response_id is None and proto.conversation.order == []
    feed(proto, done("resp_late", metadata=meta))
    assert owner not in proto.oob_finished and len(proto.finished) == 0
    later = {"type": "response.output_text.delta", "response_id": "resp_late", "delta": "x"}
    assert proto.arbiter.out_of_band_owner(later) is None  # done: no longer routed
    [create] = sends(proto.user_text("hi"))[1:]  # the conversation goes on as if nothing happened
    assert create["type"] == "response.create"


def test_a_started_out_of_band_response_is_cancelled_on_timeout() -> None:
    proto = live()
    owner, actions = proto.out_of_band({})
    meta = sends(actions)[0]["response"]["metadata"]
    feed(proto, created("resp_oob", meta))
    [cancel] = sends(proto.out_of_band_timeout(owner))
    assert cancel == {"type": "response.cancel", "response_id": "resp_oob", "event_id": cancel["event_id"]}
    feed(proto, done("resp_oob", status="cancelled", metadata=meta))
    assert proto.arbiter.active_response_id is None and proto.conversation.responses == {}


def test_cancel_before_the_response_started_cancels_it_when_it_starts() -> None:
    proto = live()
    [create] = sends(proto.user_text("hi"))[1:]
    assert sends(proto.cancel_response()) == []  # nothing to cancel yet
    [cancel] = sends(feed(proto, created("resp_1", {TAG_KEY: create["event_id"]})))
    assert cancel["type"] == "response.cancel" and cancel["response_id"] == "resp_1"
    feed(proto, done("resp_1", status="cancelled"))
    # The user's next input wants its answer: it is not cancelled.
    [create] = sends(proto.user_text("again"))[1:]
    proto.cancel_response()
    proto.begin_turn()
    assert sends(feed(proto, created("resp_2", {TAG_KEY: create["event_id"]}))) == []


def test_a_still_working_line_yields_to_the_answer() -> None:
    from realtalk.tools import StillWorking

    proto = live()
    proto.text_only = False
    proto.agent = AgentSpec(name="front", instructions="Help.", output_modalities=("audio",))
    [_, send] = proto.still_working(still_record(), StillWorking(3.0, say="Still checking..."))
    meta = send.event["response"]["metadata"]  # type: ignore[union-attr]
    audio = base64.b64encode(bytes(480)).decode()
    delta = {"type": "response.output_audio.delta", "response_id": "resp_sw", "item_id": "i_sw",
             "output_index": 0, "content_index": 0, "delta": audio}
    assert [type(a) for a in feed(proto, created("resp_sw", meta), delta)] == [Play]
    # The tool finished; the model's answer starts while the line still speaks.
    proto.request("tool output")
    [cancel] = sends(feed(proto, created("resp_answer", {TAG_KEY: proto.arbiter.in_flight or ""})))
    assert cancel == {"type": "response.cancel", "response_id": "resp_sw", "event_id": cancel["event_id"]}
    assert feed(proto, delta) == []  # its last audio is not played over the answer
