"""Input sources: microphone through PortAudio from an ALSA infile, and WAV files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from realtalk.audio import WavFileSource, read_wav, resample, write_wav

MIC_SCRIPT = """
import asyncio, json, sys
import numpy as np
from realtalk.audio import MicrophoneSource

async def main():
    mic = MicrophoneSource({device!r}, chunk_ms={chunk_ms}, rate={rate})
    sizes, chunks = set(), []
    async with mic:
        async for chunk in mic:
            sizes.add(len(chunk))
            chunks.append(chunk)
            if len(chunks) * {chunk_ms} >= {seconds} * 1000:
                break
        level = mic.level_dbfs
    np.save({out!r}, np.frombuffer(b"".join(chunks), dtype="<i2"))
    print(json.dumps({{"sizes": sorted(sizes), "level": level, "rate": mic.rate,
                       "channels": mic.channels, "dropped_ms": mic.dropped_ms}}))

asyncio.run(main())
"""


def _record(
    fake_alsa,
    tmp_path: Path,
    *,
    rate: int | None,
    seconds: float,
    chunk_ms: int = 40,
    device: str | None = None,
) -> tuple[dict, np.ndarray]:  # type: ignore[type-arg]
    out = tmp_path / "rec.npy"
    script = MIC_SCRIPT.format(
        device=device, chunk_ms=chunk_ms, rate=rate, seconds=seconds, out=str(out)
    )
    meta = fake_alsa.run(script)
    return meta, np.load(out)


def test_microphone_records_speech_as_24k(fake_alsa, speech_wav: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    speech = read_wav(speech_wav)
    assert speech.rate == 22050
    # The fake card runs at its default 44.1 kHz: the infile is raw PCM16 at that rate,
    # with silence after the speech (past its end the file plugin returns junk).
    at_device = resample(speech.samples, 22050, 44100)
    padded = np.concatenate([at_device, np.zeros(44100 * 4, np.int16)])
    fake_alsa.infile.write_bytes(padded.astype("<i2").tobytes())
    meta, got = _record(fake_alsa, tmp_path, rate=None, seconds=speech.duration_s + 0.5)
    assert meta["rate"] == 44100 and meta["channels"] == 1
    assert meta["sizes"] == [40 * 48]  # every chunk exactly 40 ms of 24 kHz PCM16
    want = resample(speech.samples, 22050, 24000).astype(np.float64)
    n = len(want)
    # Align (soxr's filters delay the stream by a few samples) and correlate.
    best = max((float(np.dot(got[lag : lag + n], want)), lag) for lag in range(200))
    lag = best[1]
    seg = got[lag : lag + n].astype(np.float64)
    corr = np.dot(seg, want) / np.sqrt(np.dot(seg, seg) * np.dot(want, want))
    assert corr > 0.99
    assert lag < 100  # under 5 ms of added latency


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_microphone_at_native_rates_keeps_pitch(  # type: ignore[no-untyped-def]
    fake_alsa, tmp_path: Path, rate: int, make_sine, measure_freq
) -> None:
    tone = make_sine(440.0, rate, 3.0)
    fake_alsa.infile.write_bytes(tone.astype("<i2").tobytes())
    meta, got = _record(fake_alsa, tmp_path, rate=rate, seconds=2.0, chunk_ms=20, device="fakemic")
    assert meta["rate"] == rate
    assert meta["sizes"] == [20 * 48]
    assert len(got) == 48000  # 2 s at 24 kHz
    assert measure_freq(got, 24000) == pytest.approx(440.0, rel=0.01)
    # A 0.5-amplitude sine is -9 dBFS RMS; the level meter sees the device's blocks.
    assert meta["level"] == pytest.approx(-9.03, abs=0.5)


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
async def test_wav_source_at_any_rate_yields_24k(  # type: ignore[no-untyped-def]
    tmp_path: Path, rate: int, make_sine, measure_freq
) -> None:
    path = tmp_path / f"tone{rate}.wav"
    write_wav(path, make_sine(1000.0, rate, 1.0), rate)
    src = WavFileSource(path, chunk_ms=40, realtime=False, trailing_silence_ms=100)
    chunks = [c async for c in src]
    assert {len(c) for c in chunks} == {1920}
    assert len(chunks) == src.total_chunks == 25 + 3  # 1 s, then 100 ms -> 3 chunks
    audio = np.frombuffer(b"".join(chunks[:25]), dtype="<i2")
    assert measure_freq(audio, 24000) == pytest.approx(1000.0, rel=0.01)
    tail = np.frombuffer(b"".join(chunks[25:]), dtype="<i2")
    assert not tail.any()
    assert src.level_dbfs == -100.0


async def test_wav_source_speech_matches_one_shot_resample(speech_wav: Path) -> None:
    src = WavFileSource(speech_wav, chunk_ms=100, realtime=False)
    got = np.frombuffer(b"".join([c async for c in src]), dtype="<i2")
    wav = read_wav(speech_wav)
    want = resample(wav.samples, wav.rate, 24000)
    assert np.array_equal(got[: len(want)], want)
    assert not got[len(want) :].any()
    assert src.duration_ms == len(want) * 1000 // 24000


async def test_wav_source_paces_at_real_time(tmp_path: Path, make_sine) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.wav"
    write_wav(path, make_sine(440.0, 24000, 0.4), 24000)
    loop = asyncio.get_running_loop()
    src = WavFileSource(path, chunk_ms=40, realtime=True)
    stamps = []
    async for _ in src:
        stamps.append(loop.time())
    assert len(stamps) == 10
    # Chunk n is due n * 40 ms after the first: the clock, not the consumer, sets pace.
    for n, t in enumerate(stamps):
        assert t - stamps[0] >= n * 0.040 - 0.002
    assert stamps[-1] - stamps[0] < 0.36 + 0.2


async def test_wav_source_fast_mode_does_not_wait(tmp_path: Path, make_sine) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "long.wav"
    write_wav(path, make_sine(440.0, 24000, 20.0), 24000)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    count = 0
    async for _ in WavFileSource(path, realtime=False):
        count += 1
    assert count == 500
    assert loop.time() - t0 < 2.0  # 20 s of audio, far faster than real time


async def test_wav_source_can_stop_early(tmp_path: Path, make_sine) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.wav"
    write_wav(path, make_sine(440.0, 24000, 1.0), 24000)
    src = WavFileSource(path, realtime=False)
    async with src:
        first = await src.__anext__()
        await src.aclose()
        rest = [c async for c in src]
    assert len(first) == 1920 and rest == []


def test_chunk_length_is_validated(tmp_path: Path, make_sine) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.wav"
    write_wav(path, make_sine(440.0, 24000, 0.1), 24000)
    with pytest.raises(ValueError, match="between 20 and 100"):
        WavFileSource(path, chunk_ms=10)


def test_bad_input_file_fails_at_construction(tmp_path: Path) -> None:
    from realtalk.exceptions import ConfigError

    bad = tmp_path / "in.wav"
    bad.write_bytes(b"ID3\x03 this is an mp3")
    with pytest.raises(ConfigError, match=r"in\.wav: not a WAV file"):
        WavFileSource(bad)


LOST_DEVICE_SCRIPT = """
import asyncio, json, time
from realtalk.audio import MicrophoneSource
from realtalk.exceptions import AudioDeviceError

async def main():
    mic = MicrophoneSource("fakemic", max_queue_ms=1000)
    n = 0
    async with mic:
        # A stalled consumer (the worst case, made certain here): the unclocked fake
        # device fills the queue to its cap before each read and before the loss.
        time.sleep(0.5)
        await mic.__anext__()
        time.sleep(0.5)
        mic._stream.abort()  # PortAudio ends the stream as when a device is unplugged
        try:
            async for _ in mic:
                n += 1
            error = None
        except AudioDeviceError as exc:
            error = str(exc)
    print(json.dumps({"error": error, "chunks_after": n}))

asyncio.run(main())
"""


def test_a_lost_microphone_ends_iteration_with_one_line(fake_alsa) -> None:  # type: ignore[no-untyped-def]
    fake_alsa.infile.write_bytes(bytes(44100 * 2 * 3))
    r = fake_alsa.run(LOST_DEVICE_SCRIPT)
    # What was captured before the loss is still delivered: at most max_queue_ms, which
    # the queue may overshoot by one device block, plus the block being read and what
    # the resampler holds; never the cap twice over.
    assert 1000 // 40 - 2 <= r["chunks_after"] <= 1000 // 40 + 3
    assert r["error"] == (
        "input audio device 'fakemic' stopped delivering audio: check the device, "
        "or use --input FILE.wav, or --text"
    )
