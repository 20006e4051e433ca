"""EchoGate: half-duplex gating that still lets a barge-in through."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from realtalk.audio import EchoGate, WavFileSink, dbfs


@dataclass
class Playback:
    """A playback state the test sets by hand (any OutputSink provides the same two)."""

    is_playing: bool = False
    level: float = -100.0
    meter: bool = False


def tone(amp: float, ms: int = 40) -> bytes:
    n = 24 * ms
    return (
        np.round(amp * 32767 * np.sin(2 * np.pi * 300 * np.arange(n) / 24000))
        .astype("<i2")
        .tobytes()
    )


QUIET = tone(0.01)  # about -43 dBFS: echo of the assistant
LOUD = tone(0.5)  # about -9 dBFS: someone talking into the mic
SILENT = bytes(len(QUIET))


def test_levels_of_the_fixtures() -> None:
    assert dbfs(np.frombuffer(LOUD, "<i2")) == pytest.approx(-9.03, abs=0.1)
    assert dbfs(np.frombuffer(QUIET, "<i2")) == pytest.approx(-43.0, abs=0.2)


def test_headphones_pass_everything() -> None:
    gate = EchoGate(Playback(is_playing=True, level=-10.0), "headphones")
    assert gate.process(QUIET) == QUIET
    assert gate.gated_chunks == 0


def test_passes_when_nothing_plays() -> None:
    gate = EchoGate(Playback())
    assert gate.process(QUIET) == QUIET


def test_gates_echo_but_lets_a_barge_in_through_and_holds() -> None:
    pb = Playback(is_playing=True, level=-20.0)
    gate = EchoGate(pb, margin_db=6.0, hold_ms=120)
    assert gate.process(QUIET) == SILENT  # same length: the server's timeline stays intact
    assert gate.gated_chunks == 1
    assert gate.process(LOUD) == LOUD  # -9 >= -20 + 6: a person talking over it
    assert gate.passed_over_playback == 1
    # Held open for 120 ms (3 chunks) so syllable gaps are not chopped, then shut again.
    assert [gate.process(QUIET) for _ in range(3)] == [QUIET] * 3
    assert gate.process(QUIET) == SILENT


def test_margin_is_configurable() -> None:
    pb = Playback(is_playing=True, level=-20.0)
    assert EchoGate(pb, margin_db=15.0).process(LOUD) == SILENT  # -9 < -20 + 15
    assert EchoGate(pb, margin_db=-30.0).process(QUIET) == QUIET  # -43 >= -50


def test_quiet_mic_never_opens_the_gate_over_a_silent_moment() -> None:
    pb = Playback(is_playing=True, level=-100.0)  # a pause inside the assistant's turn
    gate = EchoGate(pb, floor_dbfs=-40.0)
    assert gate.process(QUIET) == SILENT  # below the floor, whatever the margin
    assert gate.process(LOUD) == LOUD


def test_keeps_gating_for_the_tail_after_playback_stops() -> None:
    pb = Playback(is_playing=True, level=-20.0)
    gate = EchoGate(pb, tail_ms=200)
    assert gate.process(QUIET) == SILENT
    pb.is_playing = False
    pb.level = -100.0
    # The room and the device buffer still ring: 200 ms = 5 chunks of 40 ms.
    assert [gate.process(QUIET) for _ in range(5)] == [SILENT] * 5
    assert gate.process(QUIET) == QUIET


def test_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError, match="half-duplex, headphones"):
        EchoGate(Playback(), "full-duplex")  # type: ignore[arg-type]


async def test_with_a_real_sink(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "o.wav", realtime=True)
    sink.start()
    gate = EchoGate(sink, tail_ms=80, hold_ms=0)
    assert gate.process(QUIET) == QUIET  # nothing playing yet
    sink.feed("a", tone(0.1, ms=3000))  # about -23 dBFS of assistant audio
    deadline = time.monotonic() + 5
    while sink.level < -30 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)  # wait for the consumer's first block
    assert sink.level == pytest.approx(-23.0, abs=0.5)
    assert gate.process(QUIET) == SILENT
    assert gate.process(LOUD) == LOUD
    sink.interrupt()  # what the runtime does on speech_started
    assert [gate.process(QUIET) for _ in range(3)] == [SILENT, SILENT, QUIET]
    sink.close()
