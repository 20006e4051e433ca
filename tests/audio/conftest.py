"""Fixtures for the audio tests: speech from espeak-ng, sines, and fake sound cards.

Devices are faked with ALSA's ``file`` plugin (see docs/audio.md): PortAudio sees an
ordinary ALSA device whose capture reads a raw file (``infile``) and whose playback
writes one (``file``). The ``null`` slave is not paced by a clock, so such a device runs
as fast as the callback can go. PortAudio reads the ALSA configuration once, when
sounddevice is imported, so device tests run a short script in a subprocess with
``ALSA_CONFIG_PATH`` set; the script prints one JSON line that the test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by what they need, so `-m "not portaudio"` selects the rest."""
    here = Path(__file__).parent
    for item in items:
        if here not in item.path.parents:
            continue
        names = getattr(item, "fixturenames", ())
        if "fake_alsa" in names or "no_sound_card" in names:
            item.add_marker(pytest.mark.portaudio)
        if "speech_wav" in names:
            item.add_marker(pytest.mark.espeak)


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> npt.NDArray[np.int16]:
    """A sine as int16."""
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_freq(x: npt.ArrayLike, rate: int) -> float:
    """The strongest frequency in ``x`` (Hann window, parabolic peak interpolation)."""
    a = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(a * np.hanning(len(a))))
    k = int(np.argmax(spec[1:-1])) + 1
    alpha, beta, gamma = np.log(spec[k - 1 : k + 2] + 1e-12)
    offset = 0.5 * (alpha - gamma) / (alpha - 2 * beta + gamma)
    return float((k + offset) * rate / len(a))


@pytest.fixture
def make_sine() -> Callable[..., npt.NDArray[np.int16]]:
    """``make_sine(freq, rate, seconds, amp=0.5)`` -> int16 array."""
    return sine


@pytest.fixture
def measure_freq() -> Callable[[npt.ArrayLike, int], float]:
    """``measure_freq(samples, rate)`` -> dominant frequency in Hz."""
    return dominant_freq


@pytest.fixture
def speech_wav(tmp_path: Path, require: Callable[[bool, str], None]) -> Path:
    """'What time is it in Tokyo?' spoken by espeak-ng, at its own 22.05 kHz."""
    exe = shutil.which("espeak-ng")
    require(exe is not None, "espeak-ng (apt-get install espeak-ng)")
    assert exe is not None
    out = tmp_path / "speech.wav"
    subprocess.run([exe, "-w", str(out), "What time is it in Tokyo?"], check=True)
    return out


def _portaudio_available() -> bool:
    import ctypes.util

    return ctypes.util.find_library("portaudio") is not None


@dataclass
class FakeAlsa:
    """A fake ALSA sound card made of files, for a subprocess."""

    root: Path
    infile: Path
    outfile: Path
    env: dict[str, str]

    def run(self, script: str, timeout: float = 60.0) -> dict[str, Any]:
        """Run ``script`` in a fresh Python with this ALSA config; return its JSON line."""
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert proc.returncode == 0, f"script failed ({proc.returncode}):\n{proc.stderr}"
        last = proc.stdout.strip().splitlines()[-1]
        result: dict[str, Any] = json.loads(last)
        return result

    def run_raw(self, script: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``script`` and return the completed process, whatever its exit code."""
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def output(self, dtype: str = "<i2") -> npt.NDArray[Any]:
        """What was played into the fake speaker."""
        return np.fromfile(self.outfile, dtype=dtype)


def _alsa_env(conf: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The system alsa.conf first (it defines the plugin types and pcm.null), then ours.
    env["ALSA_CONFIG_PATH"] = f"{SYSTEM_ALSA_CONF}:{conf}"
    env.pop("PULSE_SERVER", None)
    return env


@pytest.fixture
def fake_alsa(tmp_path: Path, require: Callable[[bool, str], None]) -> FakeAlsa:
    """A fake sound card: capture reads ``infile``, playback writes ``outfile`` (raw)."""
    require(_portaudio_available(), "libportaudio2 (apt-get install libportaudio2)")
    require(SYSTEM_ALSA_CONF.exists(), f"{SYSTEM_ALSA_CONF} (apt-get install libasound2)")
    root = tmp_path / "alsa"
    root.mkdir()
    infile = root / "in.raw"
    outfile = root / "out.raw"
    infile.write_bytes(b"")
    conf = root / "asound.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            pcm.!default {{
                type asym
                playback.pcm "fakespeaker"
                capture.pcm "fakemic"
            }}
            pcm.fakespeaker {{
                type file
                slave.pcm "null"
                file "{outfile}"
                format "raw"
            }}
            pcm.fakemic {{
                type file
                slave.pcm "null"
                file "/dev/null"
                infile "{infile}"
                format "raw"
            }}
            """
        )
    )
    return FakeAlsa(root=root, infile=infile, outfile=outfile, env=_alsa_env(conf))


@pytest.fixture
def no_sound_card(tmp_path: Path, require: Callable[[bool, str], None]) -> FakeAlsa:
    """An ALSA config whose default device points at a card that does not exist."""
    require(_portaudio_available(), "libportaudio2 (apt-get install libportaudio2)")
    require(SYSTEM_ALSA_CONF.exists(), f"{SYSTEM_ALSA_CONF} (apt-get install libasound2)")
    conf = tmp_path / "nodev.conf"
    conf.write_text("pcm.!default { type hw card 99 }\nctl.!default { type hw card 99 }\n")
    return FakeAlsa(
        root=tmp_path, infile=tmp_path / "none", outfile=tmp_path / "none", env=_alsa_env(conf)
    )
