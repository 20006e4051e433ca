"""Benchmark: how fast does ``interrupt()`` silence a playing sink?

Not part of the test suite (pytest only collects ``test_*.py``). Run it with::

    .venv/bin/python tests/benchmarks/bench_audio_interrupt.py            # fake ALSA card
    .venv/bin/python tests/benchmarks/bench_audio_interrupt.py --real     # your default device
    .venv/bin/python tests/benchmarks/bench_audio_interrupt.py --runs 500

For each run a sink plays a long item; once some of it has been played the benchmark
calls ``interrupt()`` and measures:

* ``interrupt()``: how long the call takes. When it returns no dropped frame can be
  consumed any more; the benchmark checks that (the tracker's played count for the item
  must not move afterwards) and reports any violation.
* ``to next block``: from the return of ``interrupt()`` until the consumer pulls its next
  block, which is silence: when the output really goes quiet, apart from what the device
  already holds (``device latency``, printed for the speaker). The fake ALSA card is not
  paced by a clock, so this is small there; a real card pulls every ``block_ms``. The
  real-time WAV sink has no consumer thread: it counts whole 10 ms blocks from its clock
  when asked, so there this is the time to the next block boundary.

Results print as p50 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def fake_card(root: Path) -> None:
    """Point ALSA at a file-plugin card (before sounddevice is imported)."""
    conf = root / "asound.conf"
    conf.write_text(
        "pcm.!default {\n"
        "    type file\n"
        '    slave.pcm "null"\n'
        f'    file "{root / "out.raw"}"\n'
        '    format "raw"\n'
        "}\n"
    )
    os.environ["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{conf}"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"  {name:<16} p50 {pct(ms, 0.5):8.3f} ms   p99 {pct(ms, 0.99):8.3f} ms   "
        f"max {max(ms):8.3f} ms   mean {statistics.fmean(ms):8.3f} ms"
    )


def bench(sink: object, runs: int, label: str) -> int:
    """Run the benchmark on a started sink; return the number of violations."""
    from realtalk.audio import OutputSink

    assert isinstance(sink, OutputSink)
    item = (1 + np.arange(24000 * 5) % 20000).astype("<i2").tobytes()
    call: list[float] = []
    to_block: list[float] = []
    violations = 0
    rng = np.random.default_rng(0)
    for run in range(runs):
        item_id = f"item_{run}"
        sink.feed(item_id, item)
        target = int(rng.integers(20, 200))  # interrupt somewhere in the first 200 ms
        deadline = time.monotonic() + 5
        while sink.tracker.played_ms(item_id) < target and time.monotonic() < deadline:
            time.sleep(0.0005)
        consumed = sink.frames_consumed
        t0 = time.perf_counter()
        sink.interrupt()
        t1 = time.perf_counter()
        played = sink.tracker.played_ms(item_id)
        while sink.frames_consumed == consumed and time.perf_counter() - t1 < 1:
            # Poll with a tiny sleep, not a spin: a spinning thread would hold the GIL
            # for the 5 ms switch interval and delay the audio callback it is timing.
            time.sleep(0.0001)
        t2 = time.perf_counter()
        call.append(t1 - t0)
        to_block.append(t2 - t1)
        time.sleep(0.02)  # let a few more blocks go by, then check nothing of it played
        if sink.tracker.played_ms(item_id) != played:
            violations += 1
    print(f"{label}: {runs} runs")
    report("interrupt()", call)
    report("to next block", to_block)
    latency = getattr(sink, "latency_ms", None)
    if latency is not None:
        print(f"  device latency   {latency:.1f} ms (audio already handed to the device)")
    print(f"  frames consumed after interrupt() returned: {violations} runs (must be 0)")
    return violations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--real", action="store_true", help="use the real default device")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if not args.real:
            fake_card(Path(tmp))
        from realtalk.audio import SpeakerSink, WavFileSink

        bad = 0
        with SpeakerSink(prebuffer_ms=0, block_ms=10) as speaker:
            where = "real default device" if args.real else "fake ALSA file-plugin card"
            bad += bench(speaker, args.runs, f"SpeakerSink ({where}, {speaker.rate} Hz)")
        with WavFileSink(Path(tmp) / "out.wav", realtime=True, tick_ms=10) as wav:
            bad += bench(wav, max(20, args.runs // 5), "WavFileSink (realtime, 10 ms blocks)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
