"""Voice sessions end to end: the runtime, real audio sinks and sources, the emulator's VAD."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from realtalk.audio import WavFileSink, read_wav, resample
from realtalk.emulator import Emulator
from realtalk.emulator.audio import CHARS_PER_SECOND
from realtalk.runner import open_session
from realtalk.session import SessionEvent

ROOT = Path(__file__).resolve().parents[2]
CONCIERGE = ROOT / "agents" / "concierge.yaml"
RATE = 24000


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(RATE * seconds) * 2)


async def speak(session: Any, pcm: bytes, chunk_ms: int = 40) -> None:
    step = RATE * 2 * chunk_ms // 1000
    for start in range(0, len(pcm), step):
        await session.append_audio(pcm[start:start + step])


@pytest.fixture
def voice_agent(tmp_path: Path) -> Path:
    path = tmp_path / "talker.yaml"
    path.write_text(textwrap.dedent("""
        instructions: Talk.
        turn_detection: {type: server_vad, silence_duration_ms: 300}
    """))
    return path


LONG = "This is a long answer that keeps going so that there is time to interrupt it. " * 3


async def test_barge_in_truncates_to_what_was_played(voice_agent: Path, tmp_path: Path) -> None:
    scenario = {"turns": [{"audio": True, "reply": LONG}, {"audio": True, "reply": "Yes?"}]}
    sink = WavFileSink(tmp_path / "out.wav", realtime=True)
    events: list[SessionEvent] = []
    async with Emulator(scenario, fast=False) as emu:
        async with open_session(voice_agent, emulator=emu, output=sink, listeners=[events.append]) as session:
            await speak(session, tone(0.8) + silence(0.6))
            # Wait until the reply has really been playing for a while (frames consumed).
            deadline = time.monotonic() + 20
            while not any(sink.tracker.played_ms(i.item_id) >= 700 for i in sink.tracker.snapshot()):
                assert time.monotonic() < deadline, "the reply never started playing"
                await asyncio.sleep(0.02)
            await speak(session, tone(0.6, 660) + silence(0.6))
            interrupted = await session.wait_turn(20)
            answer = await session.wait_turn(20)
        sink.close()
    [cut] = [e.data for e in events if e.type == "interrupted"]
    [truncate] = emu.client_events("conversation.item.truncate")
    assert truncate["item_id"] == cut["item_id"] and truncate["audio_end_ms"] == cut["played_ms"]
    played = sink.tracker.played_ms(cut["item_id"])
    # Within one block (the WAV sink consumes 10 ms ticks) of what was actually played.
    assert abs(truncate["audio_end_ms"] - played) <= 10
    assert 700 <= played < len(LONG) / CHARS_PER_SECOND * 1000
    # The server cut its response for the user's new turn, and agreed with our truncation.
    cancelled = [e["response"] for e in emu.server_events("response.done") if e["response"]["status"] == "cancelled"]
    assert cancelled and cancelled[0]["status_details"]["reason"] == "turn_detected"
    [truncated] = emu.server_events("conversation.item.truncated")
    assert truncated["audio_end_ms"] == truncate["audio_end_ms"]
    # The first turn ends with what was heard; the user's new turn gets its answer.
    assert LONG.startswith(interrupted.text) and len(interrupted.text) < len(LONG) / 2
    assert answer.text == "Yes?"
    assert cut["latency_ms"] >= 0


async def test_barge_in_before_anything_played_deletes_the_item(voice_agent: Path, tmp_path: Path) -> None:
    scenario = {"turns": [{"audio": True, "reply": LONG}, {"audio": True, "reply": "Yes?"}]}
    # A sink that queues without playing: nothing is heard before the user speaks again.
    sink = WavFileSink(tmp_path / "out.wav", realtime=True, autostart=False)
    async with Emulator(scenario, fast=False) as emu:
        async with open_session(voice_agent, emulator=emu, output=sink) as session:
            await speak(session, tone(0.8) + silence(0.6))
            deadline = time.monotonic() + 20
            while not emu.server_events("response.output_audio.delta"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await speak(session, tone(0.6, 660) + silence(0.6))
            await session.wait_turn(20)
        sink.close()
    assert emu.client_events("conversation.item.truncate") == []
    [delete] = emu.client_events("conversation.item.delete")
    first_item = emu.server_events("response.output_audio.delta")[0]["item_id"]
    assert delete["item_id"] == first_item


def test_wav_in_wav_out_from_the_command_line(speech_wav: Path, tmp_path: Path) -> None:
    reply = tmp_path / "reply.wav"
    result = subprocess.run(
        [sys.executable, "-m", "realtalk.cli", "run", str(CONCIERGE), "--emulator",
         "--input", str(speech_wav), "--output", str(reply), "--fast", "--json"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    said = [e["text"] for e in events if e["type"] == "assistant.done"]
    assert [e["name"] for e in events if e["type"] == "tool.finished"] == ["get_time"]
    assert any(e["type"] == "user.transcript" for e in events)
    audio = read_wav(reply)
    assert audio.rate == RATE
    # The emulator speaks 15 characters a second: the file holds the scripted reply.
    expected_s = sum(len(text) for text in said) / CHARS_PER_SECOND
    assert abs(audio.duration_s - expected_s) < 0.2
    assert np.abs(audio.samples).max() > 1000


def test_g711_session_from_a_wav_file(speech_wav: Path, tmp_path: Path) -> None:
    agent = tmp_path / "phone.yaml"
    agent.write_text("instructions: Phone line.\naudio_format: g711_ulaw\n"
                     "turn_detection: {type: server_vad, silence_duration_ms: 300}\n")
    scenario = tmp_path / "phone.scenario.yaml"
    scenario.write_text("turns:\n  - audio: true\n    reply: Hello from the phone line.\n")
    reply = tmp_path / "reply.wav"
    result = subprocess.run(
        [sys.executable, "-m", "realtalk.cli", "run", str(agent), "--emulator", "--fast",
         "--input", str(speech_wav), "--output", str(reply)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "Hello from the phone line." in result.stdout
    audio = read_wav(reply)
    assert abs(audio.duration_s - len("Hello from the phone line.") / CHARS_PER_SECOND) < 0.2


def test_voice_mode_through_portaudio(fake_alsa: Any, speech_wav: Path) -> None:
    """A spoken question recorded through sounddevice reaches the emulator's VAD, and the
    scripted reply is played through sounddevice into the fake speaker's file."""
    speech = read_wav(speech_wav)
    at_device = resample(speech.samples, speech.rate, 44100)
    # Past its end the file plugin returns junk: pad with plenty of silence.
    padded = np.concatenate([at_device, np.zeros(44100 * 30, np.int16)])
    fake_alsa.infile.write_bytes(padded.astype("<i2").tobytes())
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtalk.cli", "run", str(CONCIERGE), "--emulator", "--echo", "headphones"],
        env=fake_alsa.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            played = np.fromfile(fake_alsa.outfile, dtype="<i2") if fake_alsa.outfile.exists() else np.zeros(0)
            if np.count_nonzero(played) > 44100:  # a second of the reply has been played
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no reply reached the speaker"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130), err
    assert "→ get_time(" in out and "you: What time is it in Tokyo?" in out
    assert "Traceback" not in err
    assert os.path.getsize(fake_alsa.outfile) > 0
