"""``realtalk transcribe`` from the microphone: PortAudio's fake sound card (ALSA's file
plugin) into a scripted GA transcription server on loopback, until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parents[2]
APPENDS_BEFORE_SPEECH = 10


async def test_the_microphone_is_transcribed_until_ctrl_c(fake_alsa: Any) -> None:
    # Past its end the file plugin returns junk: plenty of audio for the run.
    fake_alsa.infile.write_bytes(np.zeros(44100 * 60, np.int16).astype("<i2").tobytes())
    received: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def send(ws: ServerConnection, event: dict[str, Any]) -> None:
        event = {"event_id": f"event_{len(sent)}", **event}
        sent.append(event)
        await ws.send(json.dumps(event))

    async def server(ws: ServerConnection) -> None:
        await send(ws, {"type": "session.created", "session": {"type": "transcription"}})
        appends = 0
        async for raw in ws:
            event = json.loads(raw)
            received.append(event)
            if event["type"] == "session.update":
                await send(ws, {"type": "session.updated", "session": {"type": "transcription"}})
            elif event["type"] == "input_audio_buffer.append":
                appends += 1
                if appends == APPENDS_BEFORE_SPEECH:
                    ids = {"item_id": "item_mic"}
                    await send(ws, {"type": "input_audio_buffer.committed", **ids, "previous_item_id": None})
                    await send(ws, {"type": "conversation.item.input_audio_transcription.completed", **ids,
                                    "content_index": 0, "transcript": "Hello from the microphone.",
                                    "usage": {"type": "duration", "seconds": 0.4}})

    async with serve(server, "127.0.0.1", 0) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        env = {k: v for k, v in fake_alsa.env.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
        env["PYTHONPATH"] = str(ROOT / "core")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "realtalk.cli", "transcribe", "--url", f"ws://127.0.0.1:{port}/v1/realtime",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            raise AssertionError(f"no transcript in 60 s; stdout {out!r}, stderr {err!r}, "
                                 f"the server received {[e['type'] for e in received][:20]}") from None
        proc.send_signal(2)  # Ctrl-C
        rest, err = await asyncio.wait_for(proc.communicate(), 30)
    assert (line, rest, err, proc.returncode) == (b"Hello from the microphone.\n", b"", b"", 130)
    appends = [e for e in received if e["type"] == "input_audio_buffer.append"]
    assert len(appends) >= APPENDS_BEFORE_SPEECH
    assert server_event_problems(sent) == [] and client_event_problems(received) == []


def test_no_microphone_is_one_line(no_sound_card: Any) -> None:
    import subprocess

    env = {k: v for k, v in no_sound_card.env.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    env["PYTHONPATH"] = str(ROOT / "core")
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", "transcribe", "--emulator"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("realtalk: error: no microphone found: transcribe a file with --wav FILE.wav, or name"
                             " a device with --input-device (see realtalk devices)\n")
