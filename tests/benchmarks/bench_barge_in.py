"""Benchmark: barge-in, from ``speech_started`` arriving to playback silenced and truncate sent.

Not part of the test suite (pytest collects only ``test_*.py``). Run it with::

    .venv/bin/python tests/benchmarks/bench_barge_in.py            # 100 barge-ins
    .venv/bin/python tests/benchmarks/bench_barge_in.py --runs 300

One session runs against the emulator (real-time audio pacing) with a WAV sink that
consumes at real-time pace, so the playback tracker counts frames really played. Each
run: the user speaks, the assistant starts a long reply, once 200 ms of it has been
played the user speaks again; the emulator's VAD sends ``speech_started`` and the session
stops playback, drops the queue and sends ``conversation.item.truncate``. The session
measures, per barge-in, the time from receiving ``speech_started`` to having sent the
truncate (``interrupted`` event, ``latency_ms``), which includes silencing the sink.
The benchmark also checks that each truncate is within one 10 ms block of the played
count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from realtalk import Interrupted, SessionEvent
from realtalk.audio import WavFileSink
from realtalk.emulator import Emulator
from realtalk.runner import open_session

RATE = 24000
LONG = "A long answer that goes on and on so that it can be interrupted at leisure. " * 2


def tone(seconds: float, freq: float) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 0.3 * 32767).astype("<i2").tobytes()


async def speak(session: Any, pcm: bytes) -> None:
    step = RATE * 2 * 40 // 1000
    for start in range(0, len(pcm), step):
        await session.append_audio(pcm[start:start + step])


async def run(runs: int) -> tuple[list[float], int]:
    tmp = Path(tempfile.mkdtemp())
    agent = tmp / "talker.yaml"
    agent.write_text(textwrap.dedent("""
        instructions: Talk.
        turn_detection: {type: server_vad, silence_duration_ms: 200, prefix_padding_ms: 100}
    """))
    scenario = {"turns": [{"audio": True, "reply": LONG} for _ in range(runs + 1)]}
    sink = WavFileSink(tmp / "out.wav", realtime=True)
    cuts: list[Interrupted] = []

    def collect(event: SessionEvent) -> None:
        if isinstance(event, Interrupted):
            cuts.append(event)

    off_by_more_than_a_block = 0
    heard: set[str] = set()  # items played 200 ms or more (the tracker keeps the newest 256)
    async with Emulator(scenario, fast=False, audio_speed=1.0) as emu, \
            open_session(agent, emulator=emu, output=sink, listeners=[collect]) as session:
        await speak(session, tone(0.5, 440) + bytes(RATE * 2 // 2))
        for index in range(runs):
            deadline = time.monotonic() + 20
            while True:
                heard.update(i.item_id for i in sink.tracker.snapshot() if i.played_ms >= 200)
                if len(heard) > index:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the reply did not start playing")
                await asyncio.sleep(0.005)
            await speak(session, tone(0.4, 660) + bytes(RATE * 2 // 2))
            while len(cuts) <= index:
                await asyncio.sleep(0.005)
            cut = cuts[index]
            if abs(sink.tracker.played_ms(cut.item_id) - cut.played_ms) > 10:
                off_by_more_than_a_block += 1
    sink.close()
    return [c.latency_ms for c in cuts], off_by_more_than_a_block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    latencies, off = asyncio.run(run(args.runs))
    latencies.sort()

    def p(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    print(f"barge-in runs: {len(latencies)}")
    print(f"speech_started -> playback silenced + truncate sent: p50 {p(0.5):.3f} ms, "
          f"p99 {p(0.99):.3f} ms, max {latencies[-1]:.3f} ms, mean {statistics.mean(latencies):.3f} ms")
    print(f"truncates more than one 10 ms block away from the played count: {off}")


if __name__ == "__main__":
    main()
