"""Tests for realtalk.recorder: JSON lines, audio placeholders, secret scrubbing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from realtalk.recorder import Recorder, scrub_event

KEY = "sk-proj-THISISASECRET0123456789"
AUDIO = base64.b64encode(b"\x01\x02" * 2400).decode()  # 4800 bytes


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_lines_are_written_and_flushed_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "run.jsonl"
    rec = Recorder(path, secrets=[KEY])
    rec.record("client", {"type": "session.update", "session": {"type": "realtime"}})
    # Readable before close: a crash now would lose nothing.
    first = lines(path)
    assert first == [{"t": first[0]["t"], "dir": "client",
                      "event": {"type": "session.update", "session": {"type": "realtime"}}}]
    rec.record("server", {"type": "session.created", "session": {"id": "s"}})
    got = lines(path)
    assert [g["dir"] for g in got] == ["client", "server"]
    assert 0 <= got[0]["t"] <= got[1]["t"]
    rec.close()
    rec.close()
    rec.record("server", {"type": "late"})  # ignored after close
    assert len(lines(path)) == 2 and rec.closed and rec.count == 2


def test_audio_is_replaced_by_its_length(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with Recorder(path) as rec:
        rec.record("client", {"type": "input_audio_buffer.append", "audio": AUDIO})
        rec.record("server", {"type": "response.output_audio.delta", "item_id": "i",
                              "delta": AUDIO})
        rec.record("server", {"type": "response.output_text.delta", "delta": "hello"})
        rec.record("client", {"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_audio", "audio": AUDIO, "transcript": None}]}})
        rec.record("client", {"type": "session.update", "session": {
            "type": "realtime", "audio": {"output": {"voice": "marin"}}}})
    got = [g["event"] for g in lines(path)]
    assert got[0]["audio"] == "<audio 4800 bytes>"
    assert got[1]["delta"] == "<audio 4800 bytes>"
    assert got[2]["delta"] == "hello"  # text deltas are kept
    assert got[3]["item"]["content"][0]["audio"] == "<audio 4800 bytes>"
    assert got[4]["session"]["audio"] == {"output": {"voice": "marin"}}


def test_record_audio_keeps_payloads(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with Recorder(path, record_audio=True) as rec:
        rec.record("server", {"type": "response.output_audio.delta", "delta": AUDIO})
    assert lines(path)[0]["event"]["delta"] == AUDIO


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    custom = "my-azure-key-42"
    with Recorder(path, secrets=[KEY, custom, ""]) as rec:
        rec.record("server", {"type": "error", "error": {
            "message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}})
        rec.record("client", {"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": f"my key is {custom}"}]}})
        rec.record("server", {"type": "x", "note": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz"})
        rec.record("server", {"type": "x", "list": ["sk-otherkeyABCDEFGHIJKLMNOP"]})
    text = path.read_text(encoding="utf-8")
    assert KEY not in text and custom not in text
    assert "abcdefghijklmnopqrstuvwxyz" not in text and "sk-otherkey" not in text
    assert text.count("***") == 4


def test_scrub_event_does_not_mutate_and_rejects_bad_direction(tmp_path: Path) -> None:
    event = {"type": "input_audio_buffer.append", "audio": AUDIO}
    assert scrub_event(event)["audio"] == "<audio 4800 bytes>"
    assert event["audio"] == AUDIO
    with Recorder(tmp_path / "x.jsonl") as rec, pytest.raises(ValueError, match="direction"):
        rec.record("sideways", event)
