"""The emulator's sans-I/O server protocol, driven with plain dicts: no socket, no loop."""

from __future__ import annotations

import ast
import base64
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from realtalk.emulator import load_scenario
from realtalk.emulator.protocol import Close, Send, ServerProtocol, decode_frame
from realtalk.emulator.state import ScenarioProgress
from realtalk.emulator.voice import ToneAudio

SCENARIO: dict[str, Any] = {
    "turns": [
        {"user": "hello", "reply": "Welcome."},
        {
            "user": "time",
            "reply": [
                {"call": "get_time", "arguments": {"tz": "UTC"}},
                {"say": "It is {output}."},
            ],
        },
        {"user": "bill", "reply": [{"handoff": "billing"}]},
        {"audio": True, "transcript": "I need my bill", "reply": "Audio heard."},
    ]
}
EMULATOR = Path(__file__).parents[2] / "core" / "realtalk" / "emulator"


def make(scenario: dict[str, Any] | None = None, **options: Any) -> ServerProtocol:
    progress = ScenarioProgress(load_scenario(scenario or SCENARIO))
    return ServerProtocol(model="gpt-realtime", progress=progress, audio=ToneAudio(), **options)


def sent(protocol: ServerProtocol) -> list[dict[str, Any]]:
    """The events to send now (a Close is shown as {"close": code})."""
    out: list[dict[str, Any]] = []
    for action in protocol.actions_to_send():
        out.append(action.event if isinstance(action, Send) else {"close": action.code})
    return out


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("type", f"close {e.get('close')}") for e in events]


def user(protocol: ServerProtocol, text: str, now: float = 0.0) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    protocol.receive_event({"type": "conversation.item.create", "item": item}, now)


def text_session(protocol: ServerProtocol) -> None:
    update = {"type": "realtime", "output_modalities": ["text"]}
    protocol.receive_event({"type": "session.update", "session": update}, 0.0)
    sent(protocol)


def tone(ms: int, amplitude: float = 0.3) -> bytes:
    count = 24 * ms
    return struct.pack(
        f"<{count}h",
        *(int(amplitude * 32767 * math.sin(2 * math.pi * 440 * n / 24000)) for n in range(count)),
    )


# -- sans-I/O --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["protocol.py", "responses.py"])
def test_sans_io_modules_import_no_io(name: str) -> None:
    tree = ast.parse((EMULATOR / name).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    banned = {
        m
        for m in imported
        for b in ("asyncio", "websockets", "numpy", "sounddevice")
        if m == b or m.startswith(b + ".")
    } | {m for m in imported if m in (".audio", "audio")}
    assert banned == set()


def test_importing_the_protocol_loads_no_numpy_or_websockets() -> None:
    code = (
        "import sys, realtalk.emulator.protocol; "
        "loaded = [m for m in ('numpy', 'websockets', 'sounddevice') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_decode_frame() -> None:
    assert decode_frame('{"type": "response.create"}') == ({"type": "response.create"}, None)
    assert decode_frame(b"\x00")[1] == (
        "invalid_event",
        "Expected a text WebSocket message; binary frames are not supported.",
    )
    assert decode_frame("{nope")[1][0] == "invalid_json"  # type: ignore[index]
    assert decode_frame("[1]")[1] == ("invalid_json", "Invalid event: expected a JSON object.")


# -- session ---------------------------------------------------------------------------


def test_session_created_first_with_event_ids() -> None:
    [created] = sent(make())
    assert created["type"] == "session.created"
    assert created["event_id"].startswith("event_")
    assert created["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200


def test_session_update_merges_and_echoes() -> None:
    protocol = make()
    sent(protocol)
    update = {
        "type": "realtime",
        "instructions": "Be brief.",
        "audio": {"output": {"voice": "marin"}},
    }
    protocol.receive_event({"type": "session.update", "session": update}, 0.0)
    [updated] = sent(protocol)
    assert updated["type"] == "session.updated"
    assert updated["session"]["instructions"] == "Be brief."
    assert updated["session"]["audio"]["output"] == {
        **updated["session"]["audio"]["output"],
        "voice": "marin",
    }
    assert protocol.session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}


def test_session_update_is_atomic() -> None:
    protocol = make()
    sent(protocol)
    before = protocol.session
    bad = {"type": "realtime", "instructions": "changed", "bogus_field": 1}
    protocol.receive_event({"type": "session.update", "session": bad, "event_id": "ev_1"}, 0.0)
    [error] = sent(protocol)
    assert error["error"]["code"] == "unknown_parameter"
    assert error["error"]["param"] == "session.bogus_field"
    assert error["error"]["event_id"] == "ev_1"
    assert protocol.session == before


def test_voice_is_locked_once_assistant_audio_exists() -> None:
    protocol = make()
    user(protocol, "hello")
    protocol.receive_event({"type": "response.create"}, 0.0)
    while protocol.next_deadline() is not None:
        protocol.receive_tick(protocol.next_deadline() or 0.0)
    sent(protocol)
    voice = {"type": "realtime", "audio": {"output": {"voice": "marin"}}}
    protocol.receive_event({"type": "session.update", "session": voice}, 0.0)
    assert sent(protocol)[0]["error"]["code"] == "cannot_update_voice"


def test_session_close_and_expiry_close_the_socket() -> None:
    protocol = make()
    sent(protocol)
    protocol.receive_event({"type": "session.close"}, 0.0)
    assert protocol.actions_to_send() == [Close(1000)]
    protocol.receive_event({"type": "response.create"}, 0.0)
    assert sent(protocol) == []  # nothing after a close

    protocol = make()
    sent(protocol)
    protocol.expire()
    error, close = sent(protocol)
    assert error["error"]["code"] == "session_expired"
    assert error["error"]["message"] == "Your session hit the maximum duration of 60 minutes."
    assert close == {"close": 1001}


# -- client errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "bogus"}, "invalid_value", "type"),
        ({"event_id": "x"}, "missing_required_parameter", "type"),
        ({"type": "response.cancel", "bogus": True}, "unknown_parameter", "bogus"),
        ({"type": "conversation.item.delete"}, "missing_required_parameter", "item_id"),
        ({"type": "input_audio_buffer.append", "audio": "%%"}, "invalid_value", "audio"),
        ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
        ({"type": "response.cancel"}, "response_cancel_not_active", None),
        ({"type": "response.create", "response": {"x": 1}}, "unknown_parameter", "response.x"),
        (
            {"type": "conversation.item.retrieve", "item_id": "nope"},
            "item_retrieve_invalid_item_id",
            "item_id",
        ),
    ],
)
def test_client_errors_keep_the_session(
    event: dict[str, Any], code: str, param: str | None
) -> None:
    protocol = make()
    sent(protocol)
    protocol.receive_event(event, 0.0)
    [error] = sent(protocol)
    assert (error["type"], error["error"]["code"], error["error"]["param"]) == (
        "error",
        code,
        param,
    )
    assert not protocol.closed


def test_bad_frame_is_an_error() -> None:
    protocol = make()
    sent(protocol)
    protocol.receive_bad_frame(("invalid_json", "Invalid event: expected a JSON object."), 0.0)
    [error] = sent(protocol)
    assert error["error"]["code"] == "invalid_json"


# -- items -----------------------------------------------------------------------------


def test_item_create_retrieve_delete() -> None:
    protocol = make()
    sent(protocol)
    first = {
        "id": "item_a",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "one"}],
    }
    second = {**first, "id": "item_b"}
    protocol.receive_event({"type": "conversation.item.create", "item": first}, 0.0)
    protocol.receive_event(
        {"type": "conversation.item.create", "item": second, "previous_item_id": "root"}, 0.0
    )
    events = sent(protocol)
    assert types(events) == ["conversation.item.added", "conversation.item.done"] * 2
    assert events[-1]["previous_item_id"] is None  # "root" prepends
    assert [i["id"] for i in protocol.items] == ["item_b", "item_a"]
    protocol.receive_event({"type": "conversation.item.create", "item": first}, 0.0)
    assert sent(protocol)[0]["error"]["code"] == "item_create_duplicate_item_id"
    protocol.receive_event({"type": "conversation.item.retrieve", "item_id": "item_a"}, 0.0)
    [retrieved] = sent(protocol)
    assert retrieved["item"]["content"][0]["text"] == "one"
    protocol.receive_event({"type": "conversation.item.delete", "item_id": "item_a"}, 0.0)
    [deleted] = sent(protocol)
    assert (deleted["type"], deleted["item_id"]) == ("conversation.item.deleted", "item_a")
    protocol.receive_event({"type": "conversation.item.delete", "item_id": "item_a"}, 0.0)
    assert sent(protocol)[0]["error"]["code"] == "item_delete_invalid_item_id"


def test_truncate_assistant_audio() -> None:
    protocol = make()
    user(protocol, "hello")
    protocol.receive_event({"type": "response.create"}, 0.0)
    while protocol.next_deadline() is not None:
        protocol.receive_tick(protocol.next_deadline() or 0.0)
    events = sent(protocol)
    item_id = next(e["item"]["id"] for e in events if e["type"] == "response.output_item.done")
    assert protocol.responder.audio_ms[item_id] == 533  # "Welcome.": 8 characters at 15 a second
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    protocol.receive_event({**truncate, "audio_end_ms": 700}, 0.0)
    assert (
        sent(protocol)[0]["error"]["message"]
        == "Audio content of 533ms is already shorter than 700ms"
    )
    protocol.receive_event({**truncate, "audio_end_ms": 200}, 0.0)
    [truncated] = sent(protocol)
    assert truncated["type"] == "conversation.item.truncated"
    assert protocol.items[-1]["content"][0]["transcript"] == "Wel"  # 15 characters a second
    user_id = protocol.items[0]["id"]
    protocol.receive_event({**truncate, "item_id": user_id, "audio_end_ms": 0}, 0.0)
    assert sent(protocol)[0]["error"]["code"] == "item_truncate_invalid_item_id"


# -- responses -------------------------------------------------------------------------


def test_text_response_say() -> None:
    protocol = make()
    text_session(protocol)
    user(protocol, "hello there")
    sent(protocol)
    protocol.receive_event({"type": "response.create", "response": {"metadata": {"k": "v"}}}, 0.0)
    events = sent(protocol)
    assert types(events) == [
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
    done = events[-2]["response"]
    assert done["status"] == "completed" and done["metadata"] == {"k": "v"}
    assert done["output"][0]["content"] == [{"type": "output_text", "text": "Welcome."}]
    assert events[1]["item"]["status"] == "in_progress"  # a snapshot, not the finished item
    assert protocol.responder.active is None and protocol.next_deadline() is None


def test_call_then_continuation_with_the_output() -> None:
    protocol = make()
    text_session(protocol)
    user(protocol, "what time is it")
    protocol.receive_event({"type": "response.create"}, 0.0)
    events = sent(protocol)
    done = events[-2]["response"]
    [call] = done["output"]
    assert (call["type"], call["name"], call["arguments"]) == (
        "function_call",
        "get_time",
        '{"tz":"UTC"}',
    )
    assert (
        "".join(e["delta"] for e in events if e["type"].endswith("arguments.delta"))
        == call["arguments"]
    )
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "noon"}
    protocol.receive_event({"type": "conversation.item.create", "item": output}, 0.0)
    assert protocol.responder.active is None  # a tool output alone triggers nothing
    protocol.receive_event({"type": "response.create"}, 0.0)
    said = [e for e in sent(protocol) if e["type"] == "response.output_text.done"]
    assert said[0]["text"] == "It is noon."


def test_handoff_is_a_transfer_call() -> None:
    protocol = make()
    text_session(protocol)
    user(protocol, "my bill please")
    protocol.receive_event({"type": "response.create"}, 0.0)
    [call] = sent(protocol)[-2]["response"]["output"]
    assert call["name"] == "transfer_to_billing" and call["arguments"] == "{}"


def test_fallback_for_unmatched_text() -> None:
    protocol = make()
    text_session(protocol)
    user(protocol, "zzz")
    protocol.receive_event({"type": "response.create"}, 0.0)
    text = next(e["text"] for e in sent(protocol) if e["type"] == "response.output_text.done")
    assert text == "[emulator] no scenario turn matches: 'zzz'"


def test_audio_is_paced_by_ticks_and_one_response_at_a_time() -> None:
    protocol = make(audio_speed=1.0)  # real time: a chunk each 100 ms
    user(protocol, "hello", now=10.0)
    sent(protocol)
    protocol.receive_event({"type": "response.create"}, 10.0)
    first = sent(protocol)
    assert types(first).count("response.output_audio.delta") == 1  # the first chunk is due now
    assert protocol.next_deadline() == pytest.approx(10.1)
    protocol.receive_tick(10.05)
    assert sent(protocol) == []  # not due yet
    protocol.receive_event({"type": "response.create"}, 10.05)
    assert sent(protocol)[0]["error"]["code"] == "conversation_already_has_active_response"
    protocol.receive_tick(10.3)  # chunks due at 10.1, 10.2 and 10.3
    assert types(sent(protocol)).count("response.output_audio.delta") == 3
    protocol.receive_event({"type": "response.cancel"}, 10.3)
    events = sent(protocol)
    assert events[-2]["response"]["status_details"] == {
        "type": "cancelled",
        "reason": "client_cancelled",
    }
    assert events[-2]["response"]["output"][0]["status"] == "incomplete"
    assert protocol.next_deadline() is None


# -- VAD -------------------------------------------------------------------------------


def test_vad_on_appended_audio_commits_and_responds() -> None:
    protocol = make(transcription_delay=0)  # the transcription at once, before the response
    update = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
    protocol.receive_event({"type": "session.update", "session": update}, 0.0)
    sent(protocol)
    protocol.receive_audio(bytes(48 * 500), 0.0)  # silence
    assert sent(protocol) == []
    speech = base64.b64encode(tone(400)).decode()
    protocol.receive_event({"type": "input_audio_buffer.append", "audio": speech}, 0.0)
    [started] = sent(protocol)
    assert started["type"] == "input_audio_buffer.speech_started"
    assert started["audio_start_ms"] == 200  # 500 ms in, minus 300 ms prefix padding
    protocol.receive_audio(bytes(48 * 300), 0.0)
    events = sent(protocol)
    assert types(events)[:9] == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        *["conversation.item.input_audio_transcription.delta"] * 4,  # a word each
        "conversation.item.input_audio_transcription.completed",
    ]
    assert events[0]["audio_end_ms"] == 900
    assert events[0]["item_id"] == started["item_id"] == events[1]["item_id"]
    assert events[8]["transcript"] == "I need my bill"
    assert "response.created" in types(events)  # create_response
    # Speech during the response interrupts it (interrupt_response).
    protocol.receive_audio(tone(100), 0.0)
    events = sent(protocol)
    assert events[0]["type"] == "input_audio_buffer.speech_started"
    assert events[-2]["response"]["status_details"]["reason"] == "turn_detected"


def test_no_turn_detection_means_manual_commit() -> None:
    protocol = make()
    sent(protocol)
    update = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    protocol.receive_event({"type": "session.update", "session": update}, 0.0)
    protocol.receive_audio(tone(400), 0.0)
    assert types(sent(protocol)) == ["session.updated"]  # no VAD events
    protocol.receive_event({"type": "input_audio_buffer.commit"}, 0.0)
    assert types(sent(protocol)) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    protocol.receive_event({"type": "response.create"}, 0.0)
    while protocol.next_deadline() is not None:
        protocol.receive_tick(protocol.next_deadline() or 0.0)
    transcript = [
        e for e in sent(protocol) if e["type"] == "response.output_audio_transcript.delta"
    ]
    assert "".join(e["delta"] for e in transcript) == "Audio heard."  # the audio turn matched


def test_deleting_a_committed_item_lets_its_audio_go() -> None:
    protocol = make()
    sent(protocol)
    update = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    protocol.receive_event({"type": "session.update", "session": update}, 0.0)
    protocol.receive_audio(tone(400), 0.0)
    protocol.receive_event({"type": "input_audio_buffer.commit"}, 0.0)
    item_id = sent(protocol)[-1]["item"]["id"]
    assert list(protocol.item_audio) == [item_id]
    protocol.receive_event({"type": "conversation.item.delete", "item_id": item_id}, 0.0)
    assert types(sent(protocol)) == ["conversation.item.deleted"]
    assert protocol.item_audio == {}
