"""``realtalk.transcription`` (``realtalk.transcribe()``): the I/O of transcription sessions over a real loopback socket.

A scripted GA server (``websockets`` on 127.0.0.1) plays what the live server does in a
transcription session, including what the emulator does not: transcripts finishing out of
order, a refused setup, a server that never confirms or never finishes. Every event it
sends is validated against the ``openai`` package's server event types, and every event
the client sent against its client event types. The emulator end to end (the CLI) is in
``tests/cli/test_transcribe_e2e.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from realtalk.audio import write_wav
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from realtalk.exceptions import (
    AuthenticationFailed,
    ConfigError,
    ConnectionFailed,
    ServerRejected,
    SessionError,
)
from realtalk.protocol.transcription import Transcript, TranscriptDelta, TranscriptionOptions
from realtalk.transcription import transcribe, transcription_profile
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parent.parent
USAGE = {"type": "duration", "seconds": 0.4}


@dataclass
class Script:
    """What the scripted server does.

    Attributes:
        after_append: Events sent after the n-th ``input_audio_buffer.append`` (1-based).
        on_setup: Sent instead of ``session.updated`` for the first ``session.update``.
        on_commit: Sent when the client commits.
        confirm: Answer ``session.update`` at all.
    """

    after_append: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    on_setup: list[dict[str, Any]] | None = None
    on_commit: list[dict[str, Any]] = field(default_factory=list)
    confirm: bool = True
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    async def serve(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path)
        self.headers.append(dict(ws.request.headers))
        await self._send(ws, [{"type": "session.created", "session": {"type": "transcription"}}])
        appends = updates = 0
        async for raw in ws:
            event = json.loads(raw)
            self.received.append(event)
            if event["type"] == "session.update":
                updates += 1
                if not self.confirm:
                    continue
                if updates == 1 and self.on_setup is not None:
                    await self._send(ws, self.on_setup)
                else:
                    await self._send(ws, [{"type": "session.updated", "session": {"type": "transcription"}}])
            elif event["type"] == "input_audio_buffer.append":
                appends += 1
                await self._send(ws, self.after_append.get(appends, []))
            elif event["type"] == "input_audio_buffer.commit":
                await self._send(ws, self.on_commit)

    async def _send(self, ws: ServerConnection, events: list[dict[str, Any]]) -> None:
        for n, event in enumerate(events):
            full = {"event_id": f"event_{len(self.sent)}_{n}", **event}
            self.sent.append(full)
            await ws.send(json.dumps(full))


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[str]:
    async with serve(script.serve, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    assert server_event_problems(script.sent) == []
    assert client_event_problems(script.received) == []


def speech(item: str, start: int, end: int, previous: str | None = None) -> list[dict[str, Any]]:
    return [
        {"type": "input_audio_buffer.speech_started", "item_id": item, "audio_start_ms": start},
        {"type": "input_audio_buffer.speech_stopped", "item_id": item, "audio_end_ms": end},
        {"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": previous},
    ]


def completed(item: str, text: str) -> dict[str, Any]:
    return {"type": "conversation.item.input_audio_transcription.completed", "item_id": item, "content_index": 0,
            "transcript": text, "usage": USAGE}


def delta(item: str, text: str) -> dict[str, Any]:
    return {"type": "conversation.item.input_audio_transcription.delta", "item_id": item, "content_index": 0,
            "delta": text}


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    """One second of a tone at 16 kHz (resampled to 24 kHz on the way)."""
    path = tmp_path / "tone.wav"
    t = np.arange(16000) / 16000
    write_wav(path, (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), rate=16000)
    return path


async def collect(**kwargs: Any) -> list[Any]:
    return [action async for action in transcribe(**kwargs)]


# -- the session ----------------------------------------------------------------------------


async def test_transcripts_come_in_the_order_spoken(wav: Path) -> None:
    # The second segment finishes first: the client still gives the first one first.
    script = Script(after_append={
        3: speech("item_a", 0, 100),
        6: [*speech("item_b", 150, 230, "item_a"), delta("item_b", "Second"), completed("item_b", "Second one."),
            delta("item_a", "First"), completed("item_a", "First one.")],
    })
    async with scripted(script) as url:
        got = await collect(source=wav, url=url, realtime=False, language="en", timeout=10)
    assert [t.text for t in got] == ["First one.", "Second one."]
    assert all(isinstance(t, Transcript) and t.ok for t in got)
    setup = script.received[0]
    assert setup["session"]["audio"]["input"]["transcription"] == {"model": "gpt-transcribe", "language": "en"}
    # All the file (25 chunks of 40 ms) and its trailing silence, then the barrier.
    appends = [e for e in script.received if e["type"] == "input_audio_buffer.append"]
    assert len(appends) == 25 + 30  # 500 ms of VAD silence + 700 ms margin
    assert script.received[-1] == {"type": "session.update", "event_id": script.received[-1]["event_id"],
                                   "session": {"type": "transcription"}}


async def test_partial_gives_every_action_and_the_url_asks_for_a_transcription_session(wav: Path) -> None:
    script = Script(after_append={2: [*speech("item_a", 0, 40), delta("item_a", "Hi"), completed("item_a", "Hi.")]})
    async with scripted(script) as url:
        got = await collect(source=wav, url=url + "?x=1", realtime=False, partial=True, timeout=10)
    assert [a.type for a in got] == ["speech.started", "speech.stopped", "transcript.delta", "transcript.done"]
    assert got[2] == TranscriptDelta("item_a", "Hi")
    assert script.paths == ["/v1/realtime?x=1&intent=transcription"]


async def test_no_turn_detection_commits_the_file_at_its_end(wav: Path) -> None:
    script = Script(on_commit=[{"type": "input_audio_buffer.committed", "item_id": "item_all",
                                "previous_item_id": None}, completed("item_all", "Everything.")])
    async with scripted(script) as url:
        got = await collect(source=wav, url=url, realtime=False, turn_detection="none", timeout=10)
    assert [t.text for t in got] == ["Everything."]
    appends = [e for e in script.received if e["type"] == "input_audio_buffer.append"]
    assert len(appends) == 25  # no trailing silence without a VAD
    assert script.received[-1]["type"] == "input_audio_buffer.commit"


async def test_open_speech_at_the_end_is_committed(wav: Path) -> None:
    script = Script(after_append={50: [{"type": "input_audio_buffer.speech_started", "item_id": "item_tail",
                                        "audio_start_ms": 1900}]},
                    on_commit=[{"type": "input_audio_buffer.committed", "item_id": "item_tail",
                                "previous_item_id": None}, completed("item_tail", "and then")])
    async with scripted(script) as url:
        got = await collect(source=wav, url=url, realtime=False, timeout=10)
    assert [t.text for t in got] == ["and then"]
    assert [e["type"] for e in script.received[-2:]] == ["session.update", "input_audio_buffer.commit"]


async def test_a_failed_segment_is_yielded_with_its_error(wav: Path) -> None:
    script = Script(after_append={2: [*speech("item_a", 0, 40), {
        "type": "conversation.item.input_audio_transcription.failed", "item_id": "item_a", "content_index": 0,
        "error": {"type": "server_error", "code": "audio_unintelligible", "message": "Could not transcribe."}}]})
    async with scripted(script) as url:
        [got] = await collect(source=wav, url=url, realtime=False, timeout=10)
    assert got.error == "audio_unintelligible: Could not transcribe." and not got.ok


# -- what goes wrong is one line ------------------------------------------------------------


async def test_a_refused_setup_raises_what_the_server_said(wav: Path) -> None:
    script = Script(on_setup=[{"type": "error", "error": {
        "type": "invalid_request_error", "code": "invalid_value", "param": "session.audio.input.transcription.model",
        "message": "Invalid value: 'gpt-transcribe'. Supported values are: 'whisper-1'.", "event_id": None}}])
    async with scripted(script) as url:
        with pytest.raises(ServerRejected) as caught:
            await collect(source=wav, url=url, realtime=False)
    assert str(caught.value) == (
        "the server refused the transcription session: invalid_value: Invalid value: 'gpt-transcribe'. Supported"
        " values are: 'whisper-1'. (session.audio.input.transcription.model)")


async def test_a_server_that_never_confirms_is_a_bounded_wait(wav: Path) -> None:
    async with scripted(Script(confirm=False)) as url:
        with pytest.raises(SessionError) as caught:
            await collect(source=wav, url=url, realtime=False, setup_timeout=0.3)
    assert str(caught.value) == (f"{url}?intent=transcription did not confirm the transcription session"
                                 " (session.updated) within 0.3 s")


async def test_a_transcript_that_never_comes_is_a_bounded_wait(wav: Path) -> None:
    script = Script(after_append={2: speech("item_a", 0, 40)})
    async with scripted(script) as url:
        with pytest.raises(SessionError) as caught:
            await collect(source=wav, url=url, realtime=False, timeout=0.3)
    assert str(caught.value) == "1 segment(s) still without a transcript 0.3 s after the input ended"


async def test_a_server_error_mid_session_is_logged_and_the_run_goes_on(
        wav: Path, caplog: pytest.LogCaptureFixture) -> None:
    script = Script(after_append={
        1: [{"type": "error", "error": {"type": "invalid_request_error", "code": "rate_limited", "message": "Slow down.",
                                        "param": None, "event_id": None}}],
        2: [*speech("item_a", 0, 40), completed("item_a", "Fine.")]})
    async with scripted(script) as url:
        got = await collect(source=wav, url=url, realtime=False, timeout=10)
    assert [t.text for t in got] == ["Fine."]
    assert [r.getMessage() for r in caplog.records if r.name == "realtalk.transcription"] == [
        "server error: rate_limited: Slow down."]


async def test_bad_options_fail_before_connecting(wav: Path) -> None:
    with pytest.raises(ConfigError, match="^unknown transcription model 'gpt-realtime'"):
        await collect(source=wav, url="ws://127.0.0.1:9/v1/realtime", model="gpt-realtime")
    with pytest.raises(ConfigError, match="^turn detection none commits the audio only at the end of a WAV file"):
        await collect(url="ws://127.0.0.1:9/v1/realtime", options=TranscriptionOptions(turn_detection="none"))


def test_the_openai_profile_needs_a_key_and_never_sends_it_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationFailed, match="^no OpenAI API key: set OPENAI_API_KEY"):
        transcription_profile()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-openai")
    profile = transcription_profile()
    assert profile.ws_url == "wss://api.openai.com/v1/realtime?intent=transcription"
    assert profile.headers() == {"Authorization": "Bearer sk-secret-openai"}
    monkeypatch.delenv("REALTALK_API_KEY", raising=False)
    assert transcription_profile(url="ws://127.0.0.1:1/v1/realtime").headers() == {}


# -- the command over the same socket -------------------------------------------------------


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    full["PYTHONPATH"] = str(ROOT / "core")
    full.update(env or {})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "realtalk.cli", "transcribe", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=full)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_prints_one_line_per_segment_and_warns_of_a_failed_one(wav: Path) -> None:
    script = Script(after_append={2: [*speech("item_a", 0, 40), delta("item_a", "One"), completed("item_a", "One.")],
                                  4: [*speech("item_b", 80, 120, "item_a"), {
                                      "type": "conversation.item.input_audio_transcription.failed",
                                      "item_id": "item_b", "content_index": 0,
                                      "error": {"code": "audio_unintelligible", "message": "Unclear."}}]})
    async with scripted(script) as url:
        code, out, err = await run_cli("--url", url, "--wav", str(wav), "--fast")
    assert out == "One.\n"
    assert err == "realtalk: warning: a segment was not transcribed (item_b): audio_unintelligible: Unclear.\n"
    assert code == 1


async def test_the_command_json_lines(wav: Path) -> None:
    script = Script(after_append={2: [*speech("item_a", 0, 40), completed("item_a", "One.")]})
    async with scripted(script) as url:
        code, out, err = await run_cli("--url", url, "--wav", str(wav), "--fast", "--json")
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines] == ["speech.started", "speech.stopped", "transcript.done"]
    assert lines[-1] == {"type": "transcript.done", "item_id": "item_a", "text": "One.", "segments": [],
                         "error": None, "usage": USAGE, "languages": [], "logprobs": None}


async def test_the_command_says_in_one_line_that_the_server_refused(wav: Path) -> None:
    script = Script(on_setup=[{"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
                                                          "message": "Nope.", "param": "session.type",
                                                          "event_id": None}}])
    async with scripted(script) as url:
        code, out, err = await run_cli("--url", url, "--wav", str(wav), "--fast")
    assert (code, out) == (1, "")
    assert err == "realtalk: error: the server refused the transcription session: invalid_value: Nope. (session.type)\n"




def test_realtalk_transcribe_stays_the_function_whatever_was_imported() -> None:
    import inspect

    import realtalk
    import realtalk.cli.transcribe
    import realtalk.protocol.transcription
    import realtalk.transcription  # a submodule named like the function would replace it

    assert inspect.isasyncgenfunction(realtalk.transcribe)
    assert realtalk.transcribe is transcribe


# -- a connection that ends early -------------------------------------------------------------


class Dropping(Script):
    """Connection n (0-based) commits ``item_n`` after its 2nd append; the first ``drops``
    connections then end (``session_expired``, close 1001) before its transcript, the
    others transcribe it. Use it at real-time pace: a server that stops reading a client
    that is far ahead cannot finish its closing handshake (websockets waits 10 s)."""

    def __init__(self, drops: int) -> None:
        super().__init__()
        self.drops = drops
        self.appends_by_connection: list[int] = []

    async def serve(self, ws: ServerConnection) -> None:
        number = len(self.paths)
        self.paths.append(ws.request.path)
        self.appends_by_connection.append(0)
        await self._send(ws, [{"type": "session.created", "session": {"type": "transcription"}}])
        async for raw in ws:
            event = json.loads(raw)
            self.received.append(event)
            if event["type"] == "session.update":
                await self._send(ws, [{"type": "session.updated", "session": {"type": "transcription"}}])
            elif event["type"] == "input_audio_buffer.append":
                self.appends_by_connection[number] += 1
                if self.appends_by_connection[number] != 2:
                    continue
                await self._send(ws, speech(f"item_{number}", 0, 40))
                if number < self.drops:
                    await self._send(ws, [{"type": "error", "error": {
                        "type": "invalid_request_error", "code": "session_expired",
                        "message": "Your session hit the maximum duration of 60 minutes.", "param": None,
                        "event_id": None}}])
                    await ws.close(1001, "session expired")
                    return
                await self._send(ws, [completed(f"item_{number}", f"Heard on connection {number}.")])


async def test_a_connection_that_ends_is_replaced_and_its_segments_come_as_failed(
        wav: Path, caplog: pytest.LogCaptureFixture) -> None:
    script = Dropping(drops=1)
    async with scripted(script) as url:  # at real-time pace, so that input is left after the drop
        got = await collect(source=wav, url=url, timeout=10)
    assert [(t.item_id, t.text, t.ok) for t in got] == [("item_0", "", False), ("item_1", "Heard on connection 1.",
                                                                                True)]
    assert got[0].error.startswith("the connection ended before its transcript arrived (server closed the"
                                   " connection to ")
    assert len(script.paths) == 2 and script.appends_by_connection[1] > 2
    assert sum(script.appends_by_connection) <= 25 + 30  # the rest of the input, not all of it again
    assert [e["type"] for e in script.received].count("session.update") >= 3  # two setups and a barrier
    warnings = [r.getMessage() for r in caplog.records if r.name == "realtalk.transcription"]
    assert warnings[0] == "server error: session_expired: Your session hit the maximum duration of 60 minutes."
    assert warnings[1].endswith("; reconnecting (segments under way: 1 lost)")


async def test_connections_that_keep_ending_give_up_after_a_few(wav: Path) -> None:
    script = Dropping(drops=99)
    async with scripted(script) as url:
        with pytest.raises(ConnectionFailed) as caught:
            await collect(source=wav, url=url, timeout=10)
    assert len(script.paths) == 4  # the first, then MAX_RECONNECTS more
    assert str(caught.value).startswith("server closed the connection to ws://127.0.0.1:")
