"""Voice sessions end to end: the runtime, real audio sinks and sources, the emulator's VAD."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from realtalk import AssistantDone, Interrupted, SessionEvent, SessionWarning
from realtalk.audio import WavFileSink, read_wav, resample
from realtalk.emulator import Emulator
from realtalk.emulator.audio import CHARS_PER_SECOND
from realtalk.emulator.conformance import client_event_problems
from realtalk.runner import open_session

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
    assert client_event_problems(emu.client_events()) == []
    [cut] = [e for e in events if isinstance(e, Interrupted)]
    [truncate] = emu.client_events("conversation.item.truncate")
    assert truncate["item_id"] == cut.item_id and truncate["audio_end_ms"] == cut.played_ms
    played = sink.tracker.played_ms(cut.item_id)
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
    assert cut.latency_ms >= 0


async def test_barge_in_before_anything_played_deletes_the_item(voice_agent: Path, tmp_path: Path) -> None:
    scenario = {"turns": [{"audio": True, "reply": LONG}, {"audio": True, "reply": "Yes?"}]}
    # A sink that queues without playing: nothing is heard before the user speaks again.
    sink = WavFileSink(tmp_path / "out.wav", realtime=True, autostart=False)
    async with Emulator(scenario, fast=False) as emu:
        async with open_session(voice_agent, emulator=emu, output=sink) as session:
            await speak(session, tone(0.8) + silence(0.6))
            await emu.wait_for("response.output_audio.delta", timeout=20)
            await speak(session, tone(0.6, 660) + silence(0.6))
            await session.wait_turn(20)
        sink.close()
    assert client_event_problems(emu.client_events()) == []
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
    assert "no input_audio_transcription" not in result.stderr
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
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        # The greeting plays, then the question is heard, get_time runs, and the reply
        # (its transcript printed when complete) plays into the fake speaker.
        # The question's transcript comes 500 ms after the commit (the emulator's live
        # timing), so on a loaded machine it may be printed after the reply: wait for both.
        while not (any(line.startswith("concierge: It is now") for line in lines)
                   and any(line.startswith("you: What time is it in Tokyo?") for line in lines)):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, f"no reply; output so far: {lines}"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    assert proc.stdout is not None and proc.stderr is not None
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    out = "".join(lines)
    assert proc.returncode in (0, 130), err
    assert "concierge: Good evening, welcome to Hotel Aurora." in out
    assert "→ get_time(" in out and "you: What time is it in Tokyo?" in out
    assert "Traceback" not in err
    played = np.fromfile(fake_alsa.outfile, dtype="<i2")
    assert np.count_nonzero(played) > 44100  # greeting and reply audio reached the speaker
    assert os.path.getsize(fake_alsa.outfile) > 0


# --- voices across handoffs, tools cut by barge-in, push-to-talk -----------------------------


def two_voices(tmp_path: Path, policy: str) -> Path:
    (tmp_path / "front.yaml").write_text("instructions: Front.\nvoice: marin\nhandoffs: [back]\n"
                                         "turn_detection: {type: server_vad, silence_duration_ms: 300}\n")
    (tmp_path / "back.yaml").write_text(f"instructions: Back.\nvoice: cedar\nvoice_policy: {policy}\n"
                                        "turn_detection: {type: server_vad, silence_duration_ms: 300}\n")
    return tmp_path / "front.yaml"


HANDOFF_SCENARIO = {"turns": [{"user": "hi", "reply": "Hello, I am the front desk."},
                              {"user": "back", "reply": [{"handoff": "back"}, {"say": "Back office here."}]}]}


async def test_voice_policy_keep_warns_and_leaves_the_voice(tmp_path: Path) -> None:
    events: list[SessionEvent] = []
    async with Emulator(HANDOFF_SCENARIO, fast=True) as emu, \
            open_session(two_voices(tmp_path, "keep"), emulator=emu, listeners=[events.append]) as session:
        await session.ask("hi")
        turn = await session.ask("to the back office")
    assert turn.handoffs == [("front", "back")] and turn.text == "Back office here."
    [warning] = [e.message for e in events if isinstance(e, SessionWarning)]
    assert "keeping marin" in warning and "voice_policy: reconnect" in warning
    update = emu.client_events("session.update")[-1]["session"]
    assert update["instructions"] == "Back." and "voice" not in update["audio"]["output"]
    assert len(emu.connections) == 1
    assert not [e for e in emu.errors() if e.get("code") == "cannot_update_voice"]


async def test_voice_policy_reconnect_opens_a_seeded_session_with_the_new_voice(tmp_path: Path) -> None:
    async with Emulator(HANDOFF_SCENARIO, fast=True) as emu, \
            open_session(two_voices(tmp_path, "reconnect"), emulator=emu) as session:
        await session.ask("hi")
        turn = await session.ask("to the back office")
    assert turn.handoffs == [("front", "back")] and turn.text == "Back office here."
    assert len(emu.connections) == 2
    second = emu.connections[1]
    update = second.client_events("session.update")[0]["session"]
    assert update["audio"]["output"]["voice"] == "cedar" and update["instructions"] == "Back."
    seeded = [e["item"] for e in second.client_events("conversation.item.create")]
    assert [i["type"] for i in seeded] == ["message", "message", "message", "function_call",
                                           "function_call_output"]
    assert seeded[1]["content"][0]["text"] == "Hello, I am the front desk."
    assert json.loads(seeded[-1]["output"]) == {"transferred_to": "back"}
    assert second.client_events("response.create")


async def test_barge_in_cancels_a_running_cancellable_tool(voice_agent: Path) -> None:
    import realtalk

    started = asyncio.Event()

    async def lookup() -> str:
        started.set()
        await asyncio.Event().wait()  # never finishes on its own
        return "unreachable"

    class Slow:
        __name__ = "slow-tools"

        @realtalk.hookimpl
        def register_tools(self, register: realtalk.Registrar) -> None:
            register("lookup", description="Slow lookup", handler=lookup)

    voice_agent.write_text(voice_agent.read_text() + "tools: [lookup]\n")
    scenario = {"turns": [{"audio": True, "reply": [{"call": "lookup"}, {"say": "{output}"}]},
                          {"audio": True, "reply": "Okay, never mind."}]}
    async with Emulator(scenario, fast=True) as emu, \
            open_session(voice_agent, emulator=emu, extra_plugins=[Slow()]) as session:
        await speak(session, tone(0.6) + silence(0.6))
        await asyncio.wait_for(started.wait(), 10)
        # The user starts speaking; the tool's cancelled output goes out while they
        # speak (as it would in real time), before the end of their turn.
        await speak(session, tone(0.6, 660))
        # Audio turns create no client items: the first one is the cancelled call's output.
        await emu.wait_for("conversation.item.create", direction="client", timeout=10)
        await speak(session, silence(0.6))
        first = await session.wait_turn(10)
        second = await session.wait_turn(10)
    assert first.tool_calls[0].status == "cancelled"
    outputs = [e["item"]["output"] for e in emu.client_events("conversation.item.create")
               if e["item"]["type"] == "function_call_output"]
    assert outputs == ['{"error": "cancelled: the user interrupted"}']
    assert second.text == "Okay, never mind."


async def test_push_to_talk_commits_on_enter(tmp_path: Path, speech_wav: Path) -> None:
    from realtalk.audio import WavFileSource
    from realtalk.cli.interactive import voice

    agent = tmp_path / "ptt.yaml"
    agent.write_text("instructions: Push to talk.\nturn_detection: none\n")
    spoken = threading.Event()
    presses = 0

    def reader(prompt: str) -> str:
        # Enter to start; Enter to send once the whole question was spoken; then quit.
        nonlocal presses
        presses += 1
        if presses == 2:
            assert spoken.wait(20)
        if presses > 2:
            raise EOFError
        return ""

    class Spoken(WavFileSource):
        async def __anext__(self) -> bytes:
            try:
                return await super().__anext__()
            except StopAsyncIteration:
                spoken.set()
                raise

    scenario = {"turns": [{"audio": True, "reply": "Heard you."}]}
    events: list[SessionEvent] = []
    async with Emulator(scenario, fast=True) as emu, \
            open_session(agent, emulator=emu, text_only=True, listeners=[events.append]) as session:
        source = Spoken(speech_wav, realtime=False)
        await voice(session, source, meter=False, reader=reader)
    assert emu.client_events("input_audio_buffer.commit")
    assert [e.text for e in events if isinstance(e, AssistantDone)] == ["Heard you."]
    # No server VAD: nothing was detected or answered by the server on its own.
    assert emu.server_events("input_audio_buffer.speech_started") == []


async def test_push_to_talk_with_nothing_recorded_sends_nothing(tmp_path: Path) -> None:
    agent = tmp_path / "ptt.yaml"
    agent.write_text("instructions: Push to talk.\nturn_detection: none\n")
    events: list[SessionEvent] = []
    async with Emulator({"turns": []}, fast=True) as emu, \
            open_session(agent, emulator=emu, text_only=True, listeners=[events.append]) as session:
        assert await session.commit_audio() is False
        await session.append_audio(silence(0.05))
        assert await session.commit_audio() is False
    assert emu.client_events("input_audio_buffer.commit") == []
    assert emu.client_events("response.create") == []
    assert [e.message for e in events if isinstance(e, SessionWarning)] == [
        "nothing recorded: hold the turn open longer before sending"] * 2


def test_audio_without_transcription_warns_about_reconnects(speech_wav: Path, tmp_path: Path) -> None:
    agent = tmp_path / "plain.yaml"
    agent.write_text("instructions: Talk.\n")
    result = subprocess.run(
        [sys.executable, "-m", "realtalk.cli", "run", str(agent), "--emulator", "--fast",
         "--input", str(speech_wav)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "no input_audio_transcription in the agent" in result.stderr
