"""Output sinks: a speaker through PortAudio into an ALSA file, and WAV files."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pytest
from realtalk.audio import PlaybackTracker, WavFileSink, read_wav, resample
from realtalk.audio.playback import SILENCE_DBFS

SPEAKER_SCRIPT = """
import asyncio, json
import numpy as np
from realtalk.audio import SpeakerSink

async def main():
    x = np.load({src!r})
    sink = SpeakerSink({device!r}, rate={rate}, prebuffer_ms=40, autostart=False)
    for i in range(0, len(x), 960):  # 40 ms deltas, as the server sends them
        sink.feed("item_a", x[i : i + 960].tobytes())
    sink.end_item("item_a")
    # Start after queueing: the fake card is not paced by a clock, so it would outrun
    # a feeder and play gaps (a real device at real time would not).
    sink.start()
    await sink.drain()
    result = {{
        "rate": sink.rate, "channels": sink.channels,
        "played_ms": sink.tracker.played_ms("item_a"),
        "received_ms": sink.tracker.received_ms("item_a"),
        "callback_errors": sink.callback_errors,
    }}
    sink.close()
    print(json.dumps(result))

asyncio.run(main())
"""


def test_speaker_plays_speech_into_the_alsa_file(  # type: ignore[no-untyped-def]
    fake_alsa, speech_wav: Path, tmp_path: Path
) -> None:
    wav = read_wav(speech_wav)
    x = resample(wav.samples, wav.rate, 24000)
    np.save(tmp_path / "x.npy", x)
    r = fake_alsa.run(SPEAKER_SCRIPT.format(src=str(tmp_path / "x.npy"), device=None, rate=None))
    assert (r["rate"], r["channels"]) == (24000, 1)  # the fake card takes 24 kHz mono
    assert r["callback_errors"] == 0
    out = fake_alsa.output()
    # The file holds PortAudio's silent pre-roll, the speech sample for sample, then
    # silence: find the speech by its first non-zero sample.
    first_x = int(np.flatnonzero(x)[0])
    start = int(np.flatnonzero(out)[0]) - first_x
    assert np.array_equal(out[start : start + len(x)], x)
    assert not out[:start].any() and not out[start + len(x) :].any()
    # The tracker counted exactly the frames that reached the device.
    assert r["played_ms"] == r["received_ms"] == len(x) * 1000 // 24000


def test_speaker_resamples_for_a_48k_device(  # type: ignore[no-untyped-def]
    fake_alsa, tmp_path: Path, make_sine, measure_freq
) -> None:
    x = make_sine(440.0, 24000, 1.0)
    np.save(tmp_path / "x.npy", x)
    r = fake_alsa.run(
        SPEAKER_SCRIPT.format(src=str(tmp_path / "x.npy"), device="fakespeaker", rate=48000)
    )
    assert r["rate"] == 48000
    out = fake_alsa.output()
    nz = np.flatnonzero(out)
    played = out[nz[0] : nz[-1] + 1]
    assert abs(len(played) - 48000) < 100
    assert measure_freq(played, 48000) == pytest.approx(440.0, rel=0.01)
    assert r["received_ms"] == 1000
    assert abs(r["played_ms"] - 1000) <= 5


INTERRUPT_SCRIPT = """
import asyncio, json, time
import numpy as np
from realtalk.audio import SpeakerSink

async def main():
    sink = SpeakerSink(prebuffer_ms=0, autostart=False)
    sink.meter = True
    # 20 s of a ramp that never hits zero, so every frame in the file says where it came from.
    a = (1 + np.arange(24000 * 20) % 30000).astype("<i2")
    sink.feed("item_a", a.tobytes())
    sink.start()
    deadline = time.monotonic() + 10
    # The callback counts a block as played, then measures it: wait for both.
    while (sink.tracker.played_ms("item_a") < 50 or sink.level == -100.0) and time.monotonic() < deadline:
        pass
    playing_level = sink.level
    dropped_ms = sink.interrupt()
    at_return = sink.tracker.played_ms("item_a")
    level_after = sink.level
    b = np.full(2400, -5000, dtype="<i2")  # then a new item: the stream keeps running
    sink.feed("item_b", b.tobytes())
    await sink.drain()
    later = sink.tracker.played_ms("item_a")
    sink.close()
    print(json.dumps({{"dropped_ms": dropped_ms, "at_return": at_return, "later": later,
                       "playing_level": playing_level, "level_after": level_after,
                       "b_played": sink.tracker.played_ms("item_b"),
                       "truncate": sink.tracker.truncate_point("item_a")}}))

asyncio.run(main())
"""


def test_interrupt_stops_the_speaker_at_once(fake_alsa) -> None:  # type: ignore[no-untyped-def]
    r = fake_alsa.run(INTERRUPT_SCRIPT.format())
    assert r["dropped_ms"] > 0  # it really was cut mid-item
    assert r["at_return"] >= 50
    assert r["later"] == r["at_return"]  # nothing of item_a was consumed after interrupt()
    assert r["truncate"] == r["at_return"]
    assert r["b_played"] == 100
    assert r["playing_level"] > -40.0
    assert r["level_after"] == -100.0
    out = fake_alsa.output()
    a_idx = np.flatnonzero(out > 0)
    b_idx = np.flatnonzero(out == -5000)
    # item_a reached the device as one contiguous prefix of what was fed, exactly as
    # long as the tracker says, and nothing of it after item_b began.
    a_frames = out[a_idx[0] : a_idx[-1] + 1]
    want = (1 + np.arange(len(a_frames)) % 30000).astype(np.int16)
    assert np.array_equal(a_frames, want)
    assert len(a_frames) * 1000 // 24000 == r["at_return"]
    assert len(b_idx) == 2400 and b_idx[0] > a_idx[-1]


# -- WAV file sink (no device) -----------------------------------------------------------


def test_wav_sink_instant_mode_counts_everything_played(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    tracker = PlaybackTracker()
    a = np.arange(4800, dtype=np.int16)
    b = -np.arange(2400, dtype=np.int16)
    with WavFileSink(path, tracker=tracker, realtime=False) as sink:
        sink.feed("a", a.tobytes())
        sink.feed("b", b.tobytes())
        assert not sink.is_playing and sink.queued_ms == 0
        assert sink.wait_drained(timeout=0)
    got = read_wav(path)
    assert got.rate == 24000
    assert np.array_equal(got.samples, np.concatenate([a, b]))
    assert tracker.played_ms("a") == tracker.received_ms("a") == 200
    assert tracker.played_ms("b") == tracker.received_ms("b") == 100


async def test_wav_sink_real_time_paced_and_awaitable(tmp_path: Path, make_sine) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "out.wav"
    x = make_sine(440.0, 24000, 0.3)
    sink = WavFileSink(path, realtime=True, autostart=False)
    sink.feed("a", x.tobytes())  # queued until the output starts
    assert sink.is_playing and sink.queued_ms == 300
    t0 = time.monotonic()
    await sink.drain()  # starts the output, then waits for the clock to consume it
    elapsed = time.monotonic() - t0
    sink.close()
    assert 0.28 <= elapsed < 1.0  # consumed by the clock, not all at once
    assert np.array_equal(read_wav(path).samples, x)
    assert sink.tracker.played_ms("a") == 300


async def test_wav_sink_interrupt_keeps_exactly_what_was_played(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    sink = WavFileSink(path, realtime=True)
    sink.meter = True
    sink.start()
    x = (1 + np.arange(24000 * 2) % 30000).astype(np.int16)
    sink.feed("a", x.tobytes())
    deadline = time.monotonic() + 5
    while sink.tracker.played_ms("a") < 100 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)  # waiting for a condition, not hiding a race
    level_playing = sink.level
    dropped = sink.interrupt()
    played = sink.tracker.played_ms("a")
    assert not sink.is_playing
    await sink.drain()  # returns at once: nothing queued
    sink.feed("b", np.full(480, -3, np.int16).tobytes())  # usable after an interrupt
    await sink.drain()
    sink.close()
    assert 100 <= played < 2000
    assert dropped == pytest.approx(2000 - played, abs=2)
    assert level_playing > -40.0
    samples = read_wav(path).samples
    a_part = samples[samples > 0]
    assert np.array_equal(a_part, x[: len(a_part)])
    assert len(a_part) * 1000 // 24000 == played
    assert sink.tracker.truncate_point("a") == played
    assert np.array_equal(samples[len(a_part) :], np.full(480, -3, np.int16))


async def test_wav_sink_drain_on_idle_returns_and_close_is_idempotent(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "o.wav", realtime=True)
    sink.start()
    await asyncio.wait_for(sink.drain(), timeout=1)
    sink.close()
    sink.close()
    sink.feed("a", b"\x01\x00" * 10)  # after close: ignored, not an error
    assert sink.tracker.received_ms("a") == 0
    assert read_wav(tmp_path / "o.wav").samples.size == 0


def test_feed_starts_the_output_by_default(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "o.wav", realtime=False)
    sink.feed("a", np.arange(1, 241, dtype=np.int16).tobytes())
    assert sink.tracker.played_ms("a") == 10 and not sink.is_playing
    sink.close()
    assert read_wav(tmp_path / "o.wav").samples.tolist() == list(range(1, 241))


def test_wav_sink_audio_fed_before_start_is_written_on_start(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "o.wav", realtime=False, autostart=False)
    sink.feed("a", np.arange(1, 481, dtype=np.int16).tobytes())
    assert sink.tracker.played_ms("a") == 0 and sink.queued_ms == 20
    sink.start()
    assert sink.tracker.played_ms("a") == 20 and not sink.is_playing
    sink.close()
    assert read_wav(tmp_path / "o.wav").samples.tolist() == list(range(1, 481))


def test_wav_sink_reports_an_unwritable_path(tmp_path: Path) -> None:
    from realtalk.exceptions import ConfigError

    sink = WavFileSink(tmp_path / "missing" / "o.wav", realtime=False)
    with pytest.raises(ConfigError, match="cannot write WAV file"):
        sink.start()


LOST_SPEAKER_SCRIPT = """
import asyncio, json
import numpy as np
from realtalk.audio import SpeakerSink

async def main():
    sink = SpeakerSink()
    sink.feed("a", np.ones(24000 * 60, dtype="<i2").tobytes())
    sink.start()
    sink._stream.abort()  # PortAudio ends the stream as when a device is unplugged
    await asyncio.wait_for(sink.drain(), timeout=10)  # must not wait for 60 s of audio
    print(json.dumps({"failed": sink.failed, "playing": sink.is_playing,
                      "played": sink.tracker.played_ms("a")}))
    sink.close()

asyncio.run(main())
"""


def test_a_lost_speaker_releases_drain_and_says_why(fake_alsa) -> None:  # type: ignore[no-untyped-def]
    r = fake_alsa.run(LOST_SPEAKER_SCRIPT)
    assert r["failed"] == "output audio device 'default' stopped"
    assert r["playing"] is False


def test_feed_rejects_half_samples(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "o.wav", realtime=False)
    with pytest.raises(ValueError, match="got 3 bytes for item_9"):
        sink.feed("item_9", b"\x00\x01\x02")
    assert sink.tracker.received_ms("item_9") == 0
    sink.close()


BAD_RATE_SCRIPT = """
import json
from realtalk.audio import MicrophoneSource, SpeakerSink
from realtalk.exceptions import AudioDeviceError
import asyncio
out = {}
try:
    SpeakerSink(rate=7)
except AudioDeviceError as exc:
    out["speaker"] = str(exc)
async def main():
    try:
        async with MicrophoneSource(rate=7):
            pass
    except AudioDeviceError as exc:
        out["mic"] = str(exc)
asyncio.run(main())
print(json.dumps(out))
"""


def test_impossible_rates_fail_with_one_line(fake_alsa) -> None:  # type: ignore[no-untyped-def]
    r = fake_alsa.run(BAD_RATE_SCRIPT)
    assert r["speaker"] == (
        "output device 2 ('default') does not accept 16-bit audio at 7 Hz: "
        "pick another with --output-device"
    )
    assert r["mic"].startswith("input audio device failed: ")
    assert r["mic"].endswith("; use --input FILE.wav, or --text")
    assert "\n" not in r["mic"]


def test_late_deltas_of_an_interrupted_item_never_play(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "o.wav", realtime=True, autostart=False)
    sink.feed("a", np.full(2400, 7, np.int16).tobytes())  # queued, output not started
    assert sink.interrupt() == 100
    # The server keeps streaming the cancelled response for a moment.
    sink.feed("a", np.full(2400, 7, np.int16).tobytes())
    assert sink.queued_ms == 0 and not sink.is_playing
    assert sink.tracker.received_ms("a") == 200  # received is still the truth
    assert sink.tracker.truncate_point("a") is None  # nothing heard: delete the item
    sink.feed("b", np.full(480, -9, np.int16).tobytes())  # the next response plays
    assert sink.queued_ms == 20
    assert sink.wait_drained(timeout=5)
    sink.close()
    assert read_wav(tmp_path / "o.wav").samples.tolist() == [-9] * 480


def test_the_level_is_measured_only_while_metering() -> None:
    sink = WavFileSink(os.devnull, realtime=False)
    sink.start()
    loud = np.full(2400, 20000, dtype=np.int16).tobytes()
    sink.feed("a", loud)
    assert sink.level == SILENCE_DBFS  # off by default: no pass over every block
    sink.meter = True
    sink.feed("b", loud)
    assert sink.level > -10.0
    sink.close()


async def test_real_time_wav_sinks_run_no_thread(tmp_path: Path) -> None:
    import threading

    before = threading.active_count()
    sinks = [WavFileSink(tmp_path / f"{n}.wav", realtime=True) for n in range(20)]
    for sink in sinks:
        sink.start()
        sink.feed("a", np.full(2400, 1000, dtype=np.int16).tobytes())  # 100 ms each
    assert threading.active_count() == before  # played from the clock, lazily
    await asyncio.wait_for(asyncio.gather(*(sink.drain() for sink in sinks)), 10)
    assert all(sink.tracker.played_ms("a") == 100 for sink in sinks)
    for sink in sinks:
        sink.close()
    assert all(len(read_wav(tmp_path / f"{n}.wav").samples) == 2400 for n in range(20))


# -- the real-time WAV sink driven by a clock of the test's own --------------------------


class FakeClock:
    """A time source the test moves by hand: the sink plays what this clock says is due."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ramp(n: int, start: int = 1) -> np.ndarray:
    return (start + np.arange(n) % 30000).astype(np.int16)


def test_the_clock_decides_what_was_played_in_whole_blocks(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = WavFileSink(tmp_path / "o.wav", clock=clock)  # 10 ms blocks
    x = ramp(2400)
    sink.feed("a", x.tobytes())  # 100 ms, starts the output at 100.0
    assert sink.tracker.played_ms("a") == 0 and sink.queued_ms == 100
    clock.now += 0.035  # three whole blocks are due, the fourth is not finished
    # Asking the tracker is enough: nothing else ran since the feed.
    assert sink.tracker.played_ms("a") == 30
    assert sink.queued_ms == 70 and sink.is_playing and sink.frames_consumed == 720
    clock.now += 0.5
    assert sink.tracker.played_ms("a") == 100 and not sink.is_playing
    assert sink.frames_consumed == 53 * 240  # 53 whole blocks, the silence included
    sink.close()
    assert np.array_equal(read_wav(tmp_path / "o.wav").samples, x)


def test_interrupt_drops_exactly_what_the_clock_has_not_played(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = WavFileSink(tmp_path / "o.wav", clock=clock)
    x = ramp(24000)
    sink.feed("a", x.tobytes())  # 1 s
    clock.now += 0.2571
    assert sink.interrupt() == 750  # 250 ms played (25 blocks), the rest dropped
    assert sink.tracker.truncate_point("a") == 250
    clock.now += 1.0
    sink.feed("a", x.tobytes())  # a late delta of the cancelled item: never plays
    assert sink.tracker.played_ms("a") == 250 and not sink.is_playing
    sink.close()
    assert np.array_equal(read_wav(tmp_path / "o.wav").samples, x[:6000])


def test_a_gap_is_written_as_silence_from_the_block_the_audio_arrived_in(tmp_path: Path) -> None:
    # As a consumer pulling a block every 10 ms would write it: audio first in its
    # block, silence when the queue has run dry, new audio from the next block on.
    clock = FakeClock()
    a, b = ramp(480), ramp(480, start=5000)
    paths = {}
    for write_silence in (True, False):
        path = paths[write_silence] = tmp_path / f"{write_silence}.wav"
        clock.now = 100.0
        sink = WavFileSink(path, clock=clock, write_silence=write_silence)
        sink.feed("a", a.tobytes())  # 20 ms at 0 ms
        clock.now += 0.055  # ran dry at 20 ms; b arrives within the block at 50-60 ms
        sink.feed("b", b.tobytes())
        clock.now += 0.045
        assert sink.tracker.played_ms("b") == 20 and not sink.is_playing
        sink.close()
    gap = np.zeros(1200 - 480, np.int16)
    assert np.array_equal(read_wav(paths[True]).samples, np.concatenate([a, gap, b, gap]))
    assert np.array_equal(read_wav(paths[False]).samples, np.concatenate([a, b]))


def test_wait_drained_and_drain_follow_the_sinks_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = WavFileSink(tmp_path / "o.wav", clock=clock)
    sink.feed("a", bytes(4800))
    assert not sink.wait_drained(timeout=0)  # 100 ms queued, the clock has not moved
    clock.now += 0.1
    assert sink.wait_drained(timeout=0)

    async def drain_while_the_clock_moves() -> None:
        sink.feed("b", bytes(4800))
        task = asyncio.create_task(sink.drain())
        await asyncio.sleep(0)  # drain() has set its one timer, for 100 ms from now
        assert not task.done()
        clock.now += 0.2  # the timer, when it fires, finds the queue dry
        await asyncio.wait_for(task, 5)

    asyncio.run(drain_while_the_clock_moves())
    assert sink.tracker.played_ms("b") == 100
    sink.close()


def test_the_level_is_that_of_the_last_block_played(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = WavFileSink(tmp_path / "o.wav", clock=clock)
    sink.meter = True
    sink.feed("a", np.full(2400, 20000, np.int16).tobytes())
    clock.now += 0.05
    assert sink.level > -10.0
    clock.now += 0.2  # the queue ran dry at 100 ms: the last block was silence
    assert sink.level == SILENCE_DBFS
    sink.close()


def test_a_write_error_stops_the_sink_and_releases_drain(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = WavFileSink("/dev/full", clock=clock)
    sink.feed("a", bytes(48000 * 2))  # 2 s: more than the file's buffer
    clock.now += 1.0
    assert not sink.is_playing  # the write failed: the queue was dropped
    assert sink.failed is not None and sink.failed.startswith("cannot write /dev/full: ")
    assert sink.wait_drained(timeout=0)
    sink.close()


def test_recent_interrupted_items_stay_silenced(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = WavFileSink(tmp_path / "o.wav", clock=clock)
    for n in range(200):  # a long session: the set of cut items stays bounded
        sink.feed(f"item_{n}", bytes(480))
        sink.interrupt()
    sink.feed("item_199", bytes(480))
    assert not sink.is_playing
    sink.close()
