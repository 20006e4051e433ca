"""``realtalk transcribe``: what it shows, its one-line errors, and its signals.

The printer is fed actions directly; the command runs as a subprocess (the real console
entry point). Runs against a server are in ``tests/test_transcription.py`` (a scripted GA
server) and ``tests/cli/test_transcribe_e2e.py`` (the emulator).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from realtalk.audio import write_wav
from realtalk.cli.transcribe import TranscriptPrinter
from realtalk.plugins import BUILTIN_COMMANDS
from realtalk.protocol.transcription import ServerError, SpeakerSegment, Transcript, TranscriptDelta

ROOT = Path(__file__).resolve().parents[2]


def printer(*, live: bool) -> tuple[TranscriptPrinter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return TranscriptPrinter(out, err, live=live), out, err


# -- what is shown ----------------------------------------------------------------------------


def test_on_a_terminal_text_streams_and_the_transcript_ends_the_line() -> None:
    show, out, err = printer(live=True)
    show(TranscriptDelta("item_a", " Hello"))
    assert out.getvalue() == "Hello"
    show(TranscriptDelta("item_a", " world."))
    show(Transcript("item_a", "Hello world."))
    show(TranscriptDelta("item_b", "Next"))
    assert out.getvalue() == "Hello world.\nNext"
    show(Transcript("item_b", "Next one."))  # differs from what streamed: replaces it
    assert out.getvalue() == "Hello world.\nNext\r\033[KNext one.\n"
    assert err.getvalue() == ""


def test_piped_only_whole_segments_are_printed() -> None:
    show, out, _ = printer(live=False)
    show(TranscriptDelta("item_a", "Hel"))
    show(Transcript("item_a", " Hello. "))
    show(Transcript("item_b", ""))  # silence: nothing to print
    assert out.getvalue() == "Hello.\n"


def test_speakers_get_a_line_each() -> None:
    show, out, _ = printer(live=True)
    show(TranscriptDelta("item_a", "Good"))
    first = SpeakerSegment("item_a", "A", "Good morning.", 0.0, 1.0)
    show(first)
    show(SpeakerSegment("item_a", "B", " Morning! ", 1.2, 2.0))
    show(Transcript("item_a", "Good morning. Morning!", segments=(first,)))
    assert out.getvalue() == "Good\n[A] Good morning.\n[B] Morning!\n"


def test_failures_and_server_errors_are_warnings_on_stderr() -> None:
    show, out, err = printer(live=True)
    show(TranscriptDelta("item_a", "Half"))
    show(ServerError("rate_limited: Slow down."))
    show(Transcript("item_b", "", error="audio_unintelligible: Unclear."))
    assert out.getvalue() == "Half\n"
    assert err.getvalue() == ("realtalk: warning: server error: rate_limited: Slow down.\n"
                              "realtalk: warning: a segment was not transcribed (item_b): audio_unintelligible:"
                              " Unclear.\n")
    assert show.failed == 1


def test_a_line_left_open_is_ended_when_the_run_stops() -> None:
    show, out, _ = printer(live=True)
    show(TranscriptDelta("item_a", "cut"))
    show.close()
    assert out.getvalue() == "cut\n"


def test_transcribe_is_a_built_in_command_no_plugin_may_take() -> None:
    assert "transcribe" in BUILTIN_COMMANDS


# -- one line for what the user got wrong -----------------------------------------------------


def realtalk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    full["PYTHONPATH"] = str(ROOT / "core")
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "realtalk.cli", "transcribe", *args], capture_output=True,
                          text=True, env=full, timeout=60, check=False, cwd=ROOT)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "tone.wav"
    t = np.arange(24000) / 24000
    write_wav(path, (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16))
    return path


def test_a_file_that_is_no_wav_is_one_usage_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    result = realtalk("--wav", str(bad), "--emulator")
    assert result.returncode == 2
    assert result.stderr == (f"realtalk: error: argument --wav: {bad}: not a WAV file (no RIFF/WAVE header): use a"
                             " PCM WAV file (e.g. `sox in.mp3 -b 16 out.wav`) (see realtalk transcribe --help)\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "gpt-realtime"], ("realtalk: error: unknown transcription model 'gpt-realtime' (gpt-realtime is a"
                                  " conversation model: `realtalk run` uses it); choose one of gpt-transcribe, ")),
    (["--language", "english"], "realtalk: error: language 'english': give an ISO-639-1 code such as 'en' or 'de'"),
    (["--turn-detection", "semantic_vad", "--threshold", "0.3"],
     "realtalk: error: threshold is a server_vad setting; it does nothing with semantic_vad"),
    (["--model", "gpt-4o-transcribe-diarize", "--prompt", "names"],
     "realtalk: error: gpt-4o-transcribe-diarize takes no prompt"),
    (["--scenario", "agents/concierge.scenario.yaml"], "realtalk: error: argument --scenario: only with --emulator"),
])
def test_bad_options_are_one_usage_line_before_connecting(wav: Path, args: list[str], message: str) -> None:
    result = realtalk("--wav", str(wav), *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_the_microphone_without_turn_detection_is_refused() -> None:
    result = realtalk("--turn-detection", "none", "--emulator")
    assert result.returncode == 2
    assert result.stderr == ("realtalk: error: --turn-detection none commits the audio only at the end of --wav FILE;"
                             " from the microphone use server_vad or semantic_vad\n")


def test_no_key_for_openai_is_one_line_and_a_deprecated_model_a_warning(wav: Path) -> None:
    result = realtalk("--wav", str(wav), "--model", "whisper-1")
    assert result.returncode == 1
    assert result.stderr == ("realtalk: warning: whisper-1 is deprecated (shutdown announced for 2027-02-26);"
                             " gpt-transcribe is the current model\n"
                             "realtalk: error: no OpenAI API key: set OPENAI_API_KEY, or use --emulator (no key"
                             " needed)\n")


# -- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_ctrl_c_and_sigterm_stop_cleanly(wav: Path, sig: signal.Signals, code: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    appended = asyncio.Event()
    closed = asyncio.Event()

    async def server(ws: ServerConnection) -> None:
        await ws.send('{"type": "session.created", "event_id": "event_1", "session": {"type": "transcription"}}')
        async for raw in ws:
            if '"session.update"' in str(raw):
                await ws.send('{"type": "session.updated", "event_id": "event_2", "session": {"type": "transcription"}}')
            elif '"input_audio_buffer.append"' in str(raw):
                appended.set()
        closed.set()

    async with serve(server, "127.0.0.1", 0) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
        env["PYTHONPATH"] = str(ROOT / "core")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "realtalk.cli", "transcribe", "--url", f"ws://127.0.0.1:{port}/v1/realtime",
            "--wav", str(wav), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        await asyncio.wait_for(appended.wait(), 30)  # streaming at real-time pace: mid-file
        proc.send_signal(sig)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        await asyncio.wait_for(closed.wait(), 10)  # the server saw the connection end
    assert (proc.returncode, out, err) == (code, b"", b"")
