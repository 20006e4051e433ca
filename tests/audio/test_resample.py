"""Resampling to and from 24 kHz: pitch, length, and seamless chunking."""

from __future__ import annotations

import numpy as np
import pytest
from realtalk.audio import Resampler, resample


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_one_shot_to_24k_keeps_pitch_and_duration(rate, make_sine, measure_freq) -> None:  # type: ignore[no-untyped-def]
    x = make_sine(440.0, rate, 1.0)
    y = resample(x, rate, 24000)
    assert y.dtype == np.int16
    assert abs(len(y) - 24000) <= 1
    assert measure_freq(y, 24000) == pytest.approx(440.0, rel=0.01)


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_streaming_in_odd_chunks_equals_one_shot(rate, make_sine, measure_freq) -> None:  # type: ignore[no-untyped-def]
    x = make_sine(1000.0, rate, 1.0)
    r = Resampler(rate, 24000)
    rng = np.random.default_rng(1)
    out: list[bytes] = []
    pos = 0
    while pos < len(x):
        n = int(rng.integers(1, 2000))
        out.append(r.process(x[pos : pos + n].tobytes()))
        pos += n
    out.append(r.flush())
    y = np.frombuffer(b"".join(out), dtype="<i2")
    assert abs(len(y) - 24000) <= 2
    assert measure_freq(y, 24000) == pytest.approx(1000.0, rel=0.01)
    # No clicks at chunk edges: the sample-to-sample step never exceeds what a
    # 1 kHz sine at this amplitude can do (2*pi*f/fs*A), plus a little filter ripple.
    max_step = 2 * np.pi * 1000 / 24000 * 0.5 * 32767
    steady = y[200:-200].astype(np.int64)
    assert np.abs(np.diff(steady)).max() < max_step * 1.05
    # And it matches the streaming result of one big chunk.
    r2 = Resampler(rate, 24000)
    whole = np.frombuffer(r2.process(x.tobytes()) + r2.flush(), dtype="<i2")
    n = min(len(whole), len(y))
    # Float inside, rounded once: chunking changes nothing but float rounding.
    assert np.abs(whole[:n].astype(int) - y[:n].astype(int)).max() <= 1


def test_passthrough_at_equal_rates() -> None:
    r = Resampler(24000, 24000)
    assert r.passthrough
    data = np.arange(100, dtype=np.int16).tobytes()
    assert r.process(data) == data
    assert r.flush() == b""


def test_from_24k_to_8k(make_sine, measure_freq) -> None:  # type: ignore[no-untyped-def]
    y = resample(make_sine(300.0, 24000, 1.0).tobytes(), 24000, 8000)
    assert len(y) == 8000
    assert measure_freq(y, 8000) == pytest.approx(300.0, rel=0.01)


def test_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 24000)


@pytest.mark.parametrize(("src", "dst"), [(24000, 8000), (22050, 24000), (24000, 48000)])
def test_digital_silence_stays_silent(src: int, dst: int) -> None:
    # soxr dithers int16 output; we must not turn silence into noise (VAD, echo gate).
    assert not resample(np.zeros(src, np.int16), src, dst).any()
    r = Resampler(src, dst)
    assert not np.frombuffer(r.process(bytes(2 * src)) + r.flush(), "<i2").any()


def test_full_scale_input_clips_instead_of_wrapping() -> None:
    square = np.tile(np.array([32767] * 20 + [-32768] * 20, np.int16), 600)
    y = resample(square, 24000, 48000)  # filter overshoot would exceed int16
    assert y.max() == 32767 and y.min() == -32768
    assert (np.abs(np.diff(y.astype(int))) < 40000).all()  # no wrap-around jumps
