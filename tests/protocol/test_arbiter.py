"""Tests for realtalk.protocol.arbiter: unit cases and a hypothesis state machine."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from realtalk.protocol.arbiter import ALREADY_ACTIVE, TAG_KEY, ResponseArbiter

# -- helpers ------------------------------------------------------------------------------------


def created(rid: str, tag: str | None = None) -> dict[str, Any]:
    resp: dict[str, Any] = {"id": rid, "status": "in_progress"}
    if tag is not None:
        resp["metadata"] = {TAG_KEY: tag}
    return {"type": "response.created", "response": resp}


def call_done(rid: str, call_id: str) -> dict[str, Any]:
    return {"type": "response.function_call_arguments.done", "response_id": rid,
            "item_id": "item_" + call_id, "call_id": call_id, "name": "f", "arguments": "{}"}


def done(rid: str, status: str = "completed", calls: tuple[str, ...] = ()) -> dict[str, Any]:
    output = [{"type": "function_call", "id": "item_" + c, "call_id": c, "name": "f",
               "arguments": "{}", "status": "completed"} for c in calls]
    return {"type": "response.done", "response": {"id": rid, "status": status, "output": output}}


def output_confirmed(call_id: str) -> dict[str, Any]:
    return {"type": "conversation.item.added", "item": {
        "id": "out_" + call_id, "type": "function_call_output", "call_id": call_id,
        "output": "x"}}


def creates(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "response.create"]


def tag_of(event: dict[str, Any]) -> str:
    return str(event["response"]["metadata"][TAG_KEY])


# -- unit cases ---------------------------------------------------------------------------------


def test_request_when_idle_sends_one_tagged_create() -> None:
    arb = ResponseArbiter()
    out = arb.request_response("user text")
    assert len(out) == 1 and out[0]["type"] == "response.create"
    assert out[0]["event_id"].startswith("evt_") and tag_of(out[0]) == out[0]["event_id"]
    assert arb.in_flight == out[0]["event_id"]
    # In flight: a second wish is queued, not sent.
    assert arb.request_response("again") == []
    arb.on_server_event(created("r1", tag_of(out[0])))
    assert arb.in_flight is None and arb.active_response_id == "r1"
    assert arb.request_response("again") == []  # active
    assert len(creates(arb.on_server_event(done("r1")))) == 1


def test_response_create_is_a_valid_ga_client_event() -> None:
    from typing import Annotated, Union, get_args

    from openai.types.realtime import RealtimeClientEvent
    from pydantic import Field, TypeAdapter

    members = get_args(get_args(RealtimeClientEvent)[0])
    ga = TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # noqa: UP007
    arb = ResponseArbiter()
    event = arb.request_response("greet", {"instructions": "Say hi", "metadata": {"a": "b"}})[0]
    parsed = ga.validate_python(event)
    assert parsed.response.metadata == {"a": "b", TAG_KEY: event["event_id"]}


def test_request_body_is_kept() -> None:
    arb = ResponseArbiter(tag_requests=False)
    out = arb.request_response("greet", {"instructions": "Say hi"})
    assert out == [{"type": "response.create", "event_id": out[0]["event_id"],
                    "response": {"instructions": "Say hi"}}]


def test_function_call_followup_waits_for_done_and_all_outputs() -> None:
    arb = ResponseArbiter()
    arb.on_server_event(created("r1"))  # server VAD response
    arb.on_server_event(call_done("r1", "c1"))
    arb.on_server_event(call_done("r1", "c2"))
    assert arb.on_output_sent("c1") == []  # response still active
    assert arb.on_server_event(done("r1", calls=("c1", "c2"))) == []  # c2 missing
    assert arb.awaiting_outputs == ["c2"]
    out = arb.on_output_sent("c2")
    assert len(creates(out)) == 1
    assert arb.on_output_sent("c2") == []  # idempotent
    arb.on_server_event(created("r2", tag_of(out[0])))
    assert creates(arb.on_server_event(done("r2"))) == []  # exactly one follow-up
    assert arb.sent == 1


def test_calls_known_only_from_response_done_still_block() -> None:
    arb = ResponseArbiter()
    arb.on_server_event(created("r1"))
    assert arb.on_server_event(done("r1", calls=("c1", "c2"))) == []
    assert arb.on_output_sent("c1") == []
    assert len(arb.on_output_sent("c2")) == 1


def test_already_active_error_requeues_the_wish() -> None:
    arb = ResponseArbiter()
    out = arb.request_response("user text")
    eid = out[0]["event_id"]
    err = {"type": "error", "error": {"type": "invalid_request_error", "code": ALREADY_ACTIVE,
                                      "message": "busy", "event_id": eid}}
    assert arb.on_server_event(err) == []
    assert arb.in_flight is None and arb.wants_response
    # A response we never saw start is active: nothing goes out until a response.done.
    assert arb.request_response("user text") == []
    # The response that made the server busy finishes: now we retry, once.
    retry = arb.on_server_event(done("r_unknown"))
    assert len(creates(retry)) == 1 and retry[0]["event_id"] != eid


def test_other_error_drops_request_instead_of_looping() -> None:
    arb = ResponseArbiter()
    arb.on_server_event(created("r1"))
    arb.on_server_event(call_done("r1", "c1"))
    arb.on_server_event(done("r1"))
    out = arb.on_output_sent("c1")
    err = {"type": "error", "error": {"code": "invalid_value", "message": "bad",
                                      "event_id": out[0]["event_id"]}}
    assert arb.on_server_event(err) == []
    assert arb.last_error == err and not arb.wants_response


def test_server_vad_response_counts_as_active_and_answers_a_plain_wish() -> None:
    arb = ResponseArbiter()
    arb.on_server_event(created("auto1"))
    assert arb.request_response("text typed while model talks") == []
    # The server started a response on its own after our wish: that answers it.
    arb.on_server_event(done("auto1"))  # (wish sent here)
    arb2 = ResponseArbiter()
    arb2.on_server_event({"type": "input_audio_buffer.speech_started", "item_id": "u"})
    assert arb2.request_response("text") == []  # user's turn: server will answer
    arb2.on_server_event(created("auto2"))
    assert creates(arb2.on_server_event(done("auto2"))) == []


def test_echo_is_learnt_from_the_first_tagged_created() -> None:
    arb = ResponseArbiter()  # echo unknown
    first = arb.request_response("a")
    arb.on_server_event(created("r1"))  # untagged: a non-echoing server, taken as ours
    assert arb.in_flight is None
    arb.on_server_event(done("r1"))
    second = arb.request_response("b")
    arb.on_server_event(created("r2", tag_of(second[0])))  # now echo is known
    arb.on_server_event(done("r2"))
    third = arb.request_response("c")
    arb.on_server_event(created("vad"))  # untagged now means: the server's own response
    assert arb.in_flight == third[0]["event_id"] and arb.active_response_id == "vad"
    arb.on_server_event(created("r3", tag_of(third[0])))
    assert arb.in_flight is None and first[0]["event_id"] != third[0]["event_id"]


def test_declared_echo_never_takes_untagged_for_ours() -> None:
    arb = ResponseArbiter(echo_metadata=True)
    out = arb.request_response("a")
    arb.on_server_event(created("vad"))
    assert arb.in_flight == out[0]["event_id"]


def test_race_with_server_vad_response_while_ours_in_flight_no_echo() -> None:
    arb = ResponseArbiter(echo_metadata=False)
    arb.on_server_event(created("r1"))
    arb.on_server_event(call_done("r1", "c1"))
    arb.on_server_event(done("r1"))
    ours = arb.on_output_sent("c1")
    assert len(ours) == 1
    # Server had not seen our output when it started a VAD response of its own.
    arb.on_server_event(created("auto"))  # untagged: without echo we assume it is ours
    err = {"type": "error", "error": {"code": ALREADY_ACTIVE, "event_id": ours[0]["event_id"]}}
    assert arb.on_server_event(err) == []
    # The output was not seen by anything we asked for: one retry after the VAD response.
    assert len(creates(arb.on_server_event(done("auto")))) == 1


def test_server_response_that_saw_confirmed_outputs_makes_followup_unnecessary() -> None:
    arb = ResponseArbiter()
    arb.on_server_event({"type": "input_audio_buffer.speech_started"})
    arb.on_server_event(created("r1"))
    arb.on_server_event(call_done("r1", "c1"))
    arb.on_server_event(done("r1"))
    arb.on_server_event({"type": "input_audio_buffer.speech_started"})
    assert arb.on_output_sent("c1") == []  # user speaking: hold
    arb.on_server_event(output_confirmed("c1"))
    arb.on_server_event(created("auto"))  # the user's turn response sees the output
    assert creates(arb.on_server_event(done("auto"))) == []
    assert arb.sent == 0


def test_barge_in_cancelled_response_outputs_owe_no_response() -> None:
    arb = ResponseArbiter()
    arb.on_server_event(created("r1"))
    arb.on_server_event(call_done("r1", "c1"))
    arb.on_server_event({"type": "input_audio_buffer.speech_started"})
    arb.on_server_event(done("r1", status="cancelled"))
    assert arb.on_output_sent("c1") == []
    assert not arb.wants_response
    arb.on_server_event({"type": "input_audio_buffer.cleared"})
    assert arb.sent == 0


def test_barge_in_output_sent_before_cancel_owes_no_response() -> None:
    arb = ResponseArbiter()
    arb.on_server_event(created("r1"))
    arb.on_server_event(call_done("r1", "c1"))
    assert arb.on_output_sent("c1") == []  # fast tool, response still running
    arb.on_server_event({"type": "input_audio_buffer.speech_started"})
    arb.on_server_event(done("r1", status="cancelled"))
    arb.on_server_event({"type": "input_audio_buffer.speech_stopped"})
    arb.on_server_event(created("auto"))
    assert arb.on_server_event(done("auto")) == [] and arb.sent == 0


def test_turn_detection_off_means_no_auto_response() -> None:
    arb = ResponseArbiter()
    arb.on_server_event({"type": "session.updated", "session": {
        "type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    assert arb.auto_response is False
    arb.on_server_event({"type": "input_audio_buffer.speech_started"})
    assert len(arb.request_response("push-to-talk turn")) == 1
    arb2 = ResponseArbiter()
    arb2.on_server_event({"type": "session.created", "session": {
        "turn_detection": {"type": "server_vad", "create_response": False}}})
    assert arb2.auto_response is False


def test_new_session_restores_request_lost_with_old_socket() -> None:
    arb = ResponseArbiter()
    first = arb.request_response("user text")
    assert arb.in_flight == first[0]["event_id"]
    out = arb.on_server_event({"type": "session.created", "session": {}})
    assert len(creates(out)) == 1 and out[0]["event_id"] != first[0]["event_id"]


def test_client_event_routing_and_withdraw() -> None:
    arb = ResponseArbiter()
    arb.on_server_event(created("r1"))
    arb.on_server_event(call_done("r1", "c1"))
    arb.on_server_event(done("r1"))
    assert arb.on_client_event({"type": "input_audio_buffer.append", "audio": ""}) == []
    out = arb.on_client_event({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "c1", "output": "ok"}})
    assert len(out) == 1
    arb2 = ResponseArbiter()
    arb2.on_server_event(created("r"))
    arb2.request_response("x")
    arb2.withdraw()
    assert arb2.on_server_event(done("r")) == []


# -- state machine ------------------------------------------------------------------------------


class ArbiterMachine(RuleBasedStateMachine):
    """A simulated server (server VAD on) and client; client->server events travel in a
    queue so races (a VAD response starting while our request is on the wire) happen."""

    @initialize(echo=st.booleans(), declared=st.booleans(), vad=st.booleans())
    def setup(self, echo: bool, declared: bool, vad: bool) -> None:
        self.echo = echo  # does the server echo response.metadata?
        self.declared = echo and declared  # told so up front, or must it learn?
        self.vad = vad  # server VAD (speech events, auto responses) or push-to-talk
        self.arb = ResponseArbiter(echo_metadata=True if self.declared else None)
        if not vad:
            self.arb.on_server_event({"type": "session.created", "session": {
                "type": "realtime", "audio": {"input": {"turn_detection": None}}}})
            assert self.arb.auto_response is False
        self.wire: list[dict[str, Any]] = []  # client -> server, not yet processed
        self.server_active: str | None = None
        self.active_calls: list[str] = []
        self.user_speaking = False
        self.n = 0
        self.cancelled_calls: set[str] = set()
        self.calls_waiting_tool: list[str] = []
        self.unseen: set[str] = set()  # outputs no server response has seen (non-exempt)
        self.turn_pending = False  # user spoke; the server's reply has not started
        self.wishes: list[tuple[int, bool]] = []  # (creates sent before it, made in turn)
        self.ordinal: dict[str, int] = {}  # event_id of each create -> 1-based ordinal
        self.creates_on_wire = 0

    # client side

    def client_gets(self, event: dict[str, Any]) -> None:
        self.client_sends(self.arb.on_server_event(event))

    def client_sends(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            assert event["type"] == "response.create"
            # never two in flight / never while active (the client knows all the server did)
            assert self.arb.sent and self.creates_on_wire == 0, "two response.create in flight"
            assert self.server_active is None, "response.create while a response is active"
            assert not self.user_speaking, "response.create while the user speaks"
            waiting = [c for c in self.calls_waiting_tool if c not in self.cancelled_calls]
            assert not waiting, f"response.create before all outputs were in: {waiting}"
            if self.echo:  # without the echo an extra (never a missing) request is allowed
                assert self.unseen or self.wishes, "response.create without a reason"
            self.creates_on_wire += 1
            self.ordinal[event["event_id"]] = len(self.ordinal) + 1
            self.wire.append(event)

    def new_id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def start_response(self, tag: str | None) -> None:
        rid = self.new_id("r")
        self.server_active = rid
        self.active_calls = []
        self.unseen = {c for c in self.unseen if c in self.pending_on_wire()}
        if tag is None:
            self.wishes = [w for w in self.wishes if not w[1]]
        else:
            self.wishes = [w for w in self.wishes if w[0] >= self.ordinal[tag]]
        if not self.user_speaking:
            self.turn_pending = False
        self.client_gets(created(rid, tag if self.echo else None))

    def pending_on_wire(self) -> set[str]:
        return {e["item"]["call_id"] for e in self.wire if e["type"] == "conversation.item.create"}

    @rule()
    def user_requests(self) -> None:
        self.wishes.append((len(self.ordinal), self.user_speaking or self.turn_pending))
        self.client_sends(self.arb.request_response("text"))

    @precondition(lambda self: bool(self.calls_waiting_tool))
    @rule(data=st.data())
    def tool_finishes(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.calls_waiting_tool))
        self.calls_waiting_tool.remove(cid)
        self.wire.append({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": cid, "output": "ok"}})
        if cid not in self.cancelled_calls:
            self.unseen.add(cid)
        self.client_sends(self.arb.on_output_sent(cid))

    # server side

    @precondition(lambda self: bool(self.wire))
    @rule()
    def server_processes(self) -> None:
        event = self.wire.pop(0)
        if event["type"] == "response.create":
            self.creates_on_wire -= 1
            if self.server_active is not None:
                self.client_gets({"type": "error", "error": {
                    "type": "invalid_request_error", "code": ALREADY_ACTIVE,
                    "message": "busy", "event_id": event["event_id"]}})
            else:
                self.start_response(tag_of(event))
        else:
            self.client_gets(output_confirmed(event["item"]["call_id"]))

    @precondition(lambda self: self.server_active is not None)
    @rule()
    def model_calls_tool(self) -> None:
        assert self.server_active is not None
        cid = self.new_id("call_")
        self.active_calls.append(cid)
        self.calls_waiting_tool.append(cid)
        self.client_gets(call_done(self.server_active, cid))

    @precondition(lambda self: self.server_active is not None)
    @rule()
    def response_completes(self) -> None:
        rid, self.server_active = self.server_active, None
        assert rid is not None
        if not self.user_speaking:
            self.turn_pending = False
        self.client_gets(done(rid, calls=tuple(self.active_calls)))

    # Until the echo is known, a server-VAD response racing our request is indistinguishable
    # from ours (documented limit), so speech only happens with a declared echo.
    @precondition(lambda self: self.vad and self.declared and not self.user_speaking)
    @rule()
    def user_starts_speaking(self) -> None:
        self.user_speaking = self.turn_pending = True
        self.client_gets({"type": "input_audio_buffer.speech_started", "item_id": "u"})
        if self.server_active is not None:  # barge-in: the server cancels
            rid, self.server_active = self.server_active, None
            self.cancelled_calls.update(self.active_calls)
            self.unseen -= set(self.active_calls)
            self.client_gets(done(rid, status="cancelled"))

    @precondition(lambda self: self.user_speaking)
    @rule()
    def user_stops_speaking(self) -> None:
        self.user_speaking = False
        self.client_gets({"type": "input_audio_buffer.speech_stopped", "item_id": "u"})
        if self.server_active is None:
            self.start_response(None)  # server VAD answers the turn

    # invariants

    @invariant()
    def at_most_one_create_in_flight(self) -> None:
        assert self.creates_on_wire <= 1

    def teardown(self) -> None:
        # Let everything settle: the user falls silent, tools finish, the server drains its
        # queue and finishes responses. Then nothing may be owed, and nothing sent twice.
        if not hasattr(self, "arb"):
            return
        for _ in range(200):
            if self.user_speaking:
                self.user_stops_speaking()
            elif self.wire:
                self.server_processes()
            elif self.calls_waiting_tool:
                cid = self.calls_waiting_tool[0]
                self.calls_waiting_tool.remove(cid)
                self.wire.append({"type": "conversation.item.create", "item": {
                    "type": "function_call_output", "call_id": cid, "output": "ok"}})
                if cid not in self.cancelled_calls:
                    self.unseen.add(cid)
                self.client_sends(self.arb.on_output_sent(cid))
            elif self.server_active is not None:
                self.response_completes()
            else:
                break
        assert not self.wire and self.server_active is None
        assert self.arb.in_flight is None
        assert not self.unseen, f"outputs never answered by a response: {self.unseen}"
        assert not self.wishes, "a wished-for response never came"
        assert not self.arb.wants_response


ArbiterMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30,
                                            deadline=None)
test_arbiter_state_machine = ArbiterMachine.TestCase
