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


def test_credentials_in_urls_are_scrubbed(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    with Recorder(path, secrets=["tok-FROM-PROFILE-1"]) as rec:
        rec.record("server", {"type": "error", "error": {"message": (
            "bad url wss://bob:pw-SECRET-2@gw.example/v1/realtime?model=m&api-key=k-SECRET-3"
            "&access_token=at-SECRET-4&sig=sig-SECRET-5")}})
        rec.record("client", {"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "c",
            "output": "see https://x.example/a?api_key=k-SECRET-6&page=2 and tok-FROM-PROFILE-1"}})
    text = path.read_text(encoding="utf-8")
    for secret in ("tok-FROM-PROFILE-1", "pw-SECRET-2", "k-SECRET-3", "at-SECRET-4",
                   "sig-SECRET-5", "k-SECRET-6"):
        assert secret not in text
    got = [g["event"] for g in lines(path)]
    assert got[0]["error"]["message"] == (
        "bad url wss://***@gw.example/v1/realtime?model=m&api-key=***&access_token=***&sig=***")
    assert got[1]["item"]["output"] == "see https://x.example/a?api_key=***&page=2 and ***"


def test_large_strings_and_images_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    huge = "x" * 300_000
    image = "data:image/png;base64," + "A" * 200_000
    with Recorder(path, max_chars=1000) as rec:
        rec.record("client", {"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "c", "output": huge}})
        rec.record("client", {"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_image", "image_url": image}]}})
    got = [g["event"]["item"] for g in lines(path)]
    assert got[0]["output"] == "x" * 1000 + "…<299000 more chars>"
    assert got[1]["content"][0]["image_url"] == f"<image/png {len(image)} chars>"
    assert all(len(line) < 2000 for line in path.read_text(encoding="utf-8").splitlines())
    # Opting out keeps everything.
    assert scrub_event({"type": "x", "s": huge}, max_chars=None)["s"] == huge
    assert scrub_event({"type": "x", "u": image}, record_audio=True)["u"] == image


async def test_a_real_session_record_is_bounded_and_secret_free(tmp_path: Path) -> None:
    import realtalk
    from realtalk.connection import ConnectionProfile
    from realtalk.emulator import Emulator
    from realtalk.protocol.validate import check_server_event
    from realtalk.runner import open_session

    class Tools:
        __name__ = "record-tools"

        @realtalk.hookimpl
        def register_tools(self, register: realtalk.Registrar) -> None:
            register("dump", description="A very large result", handler=lambda: "y" * 500_000)

    agent = tmp_path / "a.yaml"
    agent.write_text("description: Test\ninstructions: Be brief.\ntools: [dump]\n")
    record = tmp_path / "run.jsonl"
    async with Emulator(api_key=KEY) as emu:
        emu.use({"turns": [{"user": "dump", "reply": [{"call": "dump", "arguments": {}},
                                                      {"say": "Done."}]}]})
        url = f"{emu.url}?token=tok-URL-SECRET-1"
        async with open_session(agent, url=url, api_key=KEY, record=record,
                                extra_plugins=[Tools()]) as session:
            turn = await session.ask("dump it")
        assert turn.tool_calls[0].status == "ok"
        # The runtime's own events are well typed: the boundary check finds nothing to say.
        for event in emu.server_events():
            assert check_server_event(event) == (event, [])
    text = record.read_text(encoding="utf-8")
    assert KEY not in text and "tok-URL-SECRET-1" not in text
    assert ConnectionProfile.url(url, api_key=KEY).secrets  # what a caller should pass on
    events = [json.loads(line)["event"] for line in text.splitlines()]
    assert any(e.get("type") == "response.output_audio.delta" for e in events)
    assert all(len(line) < 110_000 for line in text.splitlines())  # 500 kB output, cut
    assert "<audio " in text


def test_lines_are_utf8_json_and_values_orjson_refuses_are_still_written(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    with Recorder(path) as rec:
        rec.record("client", {"type": "x", "text": "café ☕"})
        # Not from a server (frames are parsed to string keys), but a client event may hold
        # an integer key, a huge integer or a lone surrogate: the line is still written.
        rec.record("client", {"type": "y", "keys": {1: "one"}, "big": 2**70, "s": "\ud800"})
        with pytest.raises(TypeError):
            rec.record("client", {"type": "z", "value": object()})
    raw = path.read_bytes().splitlines()
    assert len(raw) == 2 and "café ☕".encode() in raw[0]  # non-ASCII as is
    got = [g["event"] for g in lines(path)]
    assert got == [{"type": "x", "text": "café ☕"},
                   {"type": "y", "keys": {"1": "one"}, "big": 2**70, "s": "\ud800"}]
