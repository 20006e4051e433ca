"""The browser protocol realtalk.v1 (realtalk.serve.caller), with plain strings, bytes and
dicts: each page message to its action, each bad message to its one-line error, the
messages the page gets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from realtalk.results import ApprovalRequest, session_event
from realtalk.serve.caller import (
    MAX_BAD_MESSAGES,
    Answer,
    AppendAudio,
    BrowserCaller,
    Bye,
    Close,
    Commit,
    Played,
    Reply,
    SendText,
    Switch,
)


def caller() -> BrowserCaller:
    return BrowserCaller(["concierge", "billing"])


def text(message: Any) -> str:
    return json.dumps(message)


def error_of(actions: list[Any]) -> str:
    assert isinstance(actions[0], Reply), actions
    assert actions[0].message["type"] == "error"
    message: str = actions[0].message["message"]
    assert "\n" not in message
    return message


def test_good_messages_become_actions() -> None:
    page = caller()
    assert page.receive_bytes(b"\x01\x00" * 480) == [AppendAudio(b"\x01\x00" * 480)]
    assert page.receive_bytes(b"") == []
    assert page.receive_text(text({"type": "text", "text": "hello"})) == [SendText("hello")]
    assert page.receive_text(text({"type": "played", "epoch": 2, "samples": 480})) == [Played(2, 480)]
    assert page.receive_text(text({"type": "switch", "agent": "billing"})) == [Switch("billing")]
    assert page.receive_text(text({"type": "bye", "extra": "ignored"})) == [Bye()]
    assert page.bad == 0


def test_push_to_talk_commits_on_release() -> None:
    page = caller()
    assert page.receive_text(text({"type": "ptt", "down": False})) == []  # never pressed
    assert page.receive_text(text({"type": "ptt", "down": True})) == []
    assert page.receive_text(text({"type": "ptt", "down": True})) == []
    assert page.receive_text(text({"type": "ptt", "down": False})) == [Commit()]
    assert page.receive_text(text({"type": "ptt", "down": False})) == []


def test_approvals_are_answered_once() -> None:
    page = caller()
    request = ApprovalRequest(tool="refund", arguments={"amount": 5}, agent="billing", call_id="call_1")
    assert page.approval(request) == {"type": "approval", "call_id": "call_1", "agent": "billing",
                                      "tool": "refund", "arguments": {"amount": 5}}
    assert page.receive_text(text({"type": "approve", "call_id": "call_1", "allow": False})) == [
        Answer("call_1", False)]
    assert "no approval is waiting for 'call_1'" in error_of(
        page.receive_text(text({"type": "approve", "call_id": "call_1", "allow": True})))
    page.approval(request)
    page.approval_ended("call_1")  # timed out
    assert page.pending == []


@pytest.mark.parametrize(("frame", "expected"), [
    (b"\x00" * (64 * 1024 + 2), "audio frame of 65538 bytes is over the 65536-byte limit"),
    (b"\x00", "audio frame of 1 bytes is not whole PCM16 samples (2 bytes each)"),
    ("x" * (16 * 1024 + 1), "message of 16385 bytes is over the 16384-byte limit"),
    ("é" * (8 * 1024 + 1), "message of 16386 bytes is over the 16384-byte limit"),
    ("{", "message is not JSON (unexpected end of data: line 1 column 2"),
    ("42", "message must be a JSON object, not int"),
    ("{}", 'message has no "type" (a string)'),
    (text({"type": 7}), 'message has no "type" (a string)'),
    (text({"type": "hello\nworld"}), "unknown message type 'hello?world'; expected one of text, ptt,"),
    (text({"type": "text", "text": 5}), 'field "text" of the text message must be a string (not \'5\')'),
    (text({"type": "text", "text": ""}), 'field "text" of the text message is empty'),
    (text({"type": "ptt"}), 'field "down" of the ptt message must be true or false (missing)'),
    (text({"type": "ptt", "down": 1}), 'field "down" of the ptt message must be true or false (not \'1\')'),
    (text({"type": "played", "epoch": True, "samples": 1}), 'field "epoch" of the played message must be a whole number'),
    (text({"type": "played", "epoch": 0}), 'field "samples" of the played message must be a whole number (missing)'),
    (text({"type": "played", "epoch": -1, "samples": 0}), 'field "epoch" of the played message must be 0 or more (not -1)'),
    (text({"type": "approve", "call_id": "c", "allow": "yes"}), 'field "allow" of the approve message must be true or false'),
    (text({"type": "approve", "allow": True}), 'field "call_id" of the approve message must be a string (missing)'),
    (text({"type": "switch", "agent": "ghost"}), "field \"agent\": unknown agent 'ghost'; agents: concierge, billing"),
    (text({"type": "switch"}), 'field "agent" of the switch message must be a string (missing)'),
])
def test_bad_messages_get_one_line_errors(frame: str | bytes, expected: str) -> None:
    page = caller()
    actions = page.receive_bytes(frame) if isinstance(frame, bytes) else page.receive_text(frame)
    assert len(actions) == 1
    assert expected in error_of(actions)
    assert page.bad == 1


def test_the_bad_message_after_the_limit_closes() -> None:
    page = caller()
    for _ in range(MAX_BAD_MESSAGES):
        assert len(page.receive_text("[]")) == 1
    actions = page.receive_text("[]")
    assert actions[1] == Close(1008, "too many bad messages (21)")


def test_messages_to_the_page() -> None:
    usage = {"type": "usage", "turn": {}, "session": {}}
    page = BrowserCaller(["concierge"], usage=lambda event: usage)
    assert page.ready("s1", "concierge", 900) == {
        "type": "ready", "session_id": "s1", "agent": "concierge", "agents": ["concierge"],
        "audio": {"rate": 24000, "format": "pcm16"}, "max_session_s": 900}
    delta = session_event("assistant.delta", agent="concierge", delta="Hi")
    assert page.event(delta) == [{"type": "event", "event": {"type": "assistant.delta", "agent": "concierge",
                                                              "delta": "Hi"}}]
    done = session_event("turn.done", agent="concierge", text="Hi")
    messages = page.event(done)
    assert [m["type"] for m in messages] == ["event", "usage"]
    assert messages[0]["event"]["type"] == "turn.done"
    assert json.loads(json.dumps(messages))[0]["event"]["usage"] == []  # plain JSON
    assert BrowserCaller.clear(3) == {"type": "clear", "epoch": 3}
    assert BrowserCaller.closing("draining", "bye now") == {"type": "closing", "code": "draining", "reason": "bye now"}
