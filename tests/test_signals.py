"""Ctrl-C and SIGTERM stop ``realtalk run`` cleanly: the session closes and the ``--output``
WAV and ``--record`` files are complete (a real subprocess, a real signal)."""

from __future__ import annotations

import json
import math
import signal
import struct
import subprocess
import sys
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONCIERGE = ROOT / "agents" / "concierge.yaml"
RATE = 24_000


def tone_wav(path: Path, seconds: int = 20) -> Path:
    """Alternating seconds of a 440 Hz tone and of silence: turns for server VAD."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        second = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / RATE)))
                          for i in range(RATE))
        silence = bytes(2 * RATE)
        out.writeframes(b"".join(second if s % 2 == 0 else silence for s in range(seconds)))
    return path


@pytest.mark.parametrize(("stop", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_run_closes_the_session_and_completes_the_files(
    tmp_path: Path, stop: signal.Signals, exit_code: int
) -> None:
    wav_in, wav_out, record = tone_wav(tmp_path / "in.wav"), tmp_path / "out.wav", tmp_path / "run.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtalk.cli", "run", str(CONCIERGE), "--emulator", "--input", str(wav_in),
         "--output", str(wav_out), "--record", str(record)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        # The input is sent at real-time pace (20 s): once the assistant has answered the
        # first turn, audio has been written and the run is still in progress.
        for line in proc.stdout:
            if line.startswith("concierge: "):
                break
        else:
            pytest.fail("the run ended before the assistant answered")
        assert proc.poll() is None
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == exit_code, err
    assert "Traceback" not in err
    with wave.open(str(wav_out)) as saved:
        frames, width = saved.getnframes(), saved.getsampwidth()
    data_bytes = wav_out.stat().st_size - 44
    assert frames > 0 and frames * width == data_bytes  # the header tells the truth
    lines = record.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # no half-written line
    assert any(json.loads(line)["event"]["type"] == "response.done" for line in lines)
