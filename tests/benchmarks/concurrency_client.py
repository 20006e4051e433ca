"""Client process of ``bench_concurrency.py``: N real-time voice sessions in one process.

Run by the benchmark, one fresh process per client variant::

    python tests/benchmarks/concurrency_client.py floor --url ws://127.0.0.1:PORT --steps 50,100

Variants:

- ``floor``: bare ``websockets``: ``json.loads`` each event and ``base64.b64decode`` each
  audio delta; the lag is taken right after decoding. The reference floor (stdlib codec).
- ``floor-fast``: the same with ``orjson`` and ``pybase64`` (realtalk's own codec
  libraries, called directly), frames sent as bytes in text frames: the floor for a
  client that has realtalk's codec but nothing else.
- ``realtalk``: ``realtalk.runner.open_session(agent, url=..., output=sink)`` per session;
  the sink is a ``WavFileSink(os.devnull, realtime=True)`` (it plays at real-time pace,
  like a speaker, counting what its clock says was played whenever it is fed or asked);
  the lag is taken when realtalk calls the sink's ``feed``, from the stamp the server
  wrote into the PCM.
- ``realtalk-instant``: the same with ``realtime=False`` (everything fed counts as played
  at once): what realtalk costs without real-time pacing.

Both send 100 ms of silence (``input_audio_buffer.append``, base64-encoded each time as a
microphone's audio would be) every 100 ms per session, on a per-session clock with a
random phase. The server streams audio to a session from its first append on.

For each step of the ramp: open the sessions it adds (idle), start their audio, warm up
``--warmup`` seconds, then measure ``--seconds`` seconds: the lag of every delta (server's
send time -> handed over), the process's CPU time (all threads) over wall time, RSS at the
end, and every garbage-collector run (``gc.callbacks``). Before the first step's audio
starts, the idle cost of its sessions is measured (RSS, and the objects the garbage
collector tracks: what a full collection walks). Each result is one JSON line on stdout;
the ramp stops after ``--patience`` steps in a row over ``--lag-limit-ms`` (p99) or
``--cpu-limit`` (a machine shared with other work can spoil one step).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from benchkit import percentile, rss_bytes, runq_seconds  # beside this script

REPO = Path(__file__).resolve().parents[2]
CHUNK_S = 0.1
SILENCE = bytes(4800)  # 100 ms of 24 kHz PCM16 mono
INSTRUCTIONS = "You are a load test, talk and talk."
AGENT_YAML = f"""\
name: loadtest
instructions: {INSTRUCTIONS}
modalities: [audio]
voice: marin
turn_detection: none
"""
OPEN_CONCURRENCY = 16  # sessions being opened at once


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def runq_wait_seconds() -> float:
    """Time the main thread spent runnable but not running (other processes had the CPU)."""
    return runq_seconds(os.getpid())


class Meter:
    """Lags and garbage-collector runs while ``on``; CPU and wall time between start and stop."""

    def __init__(self) -> None:
        self.on = False
        self.lags: list[float] = []
        self.gc_runs = [0, 0, 0]
        self.gc_longest = 0.0
        self._gc_started = 0.0
        self._t0 = self._cpu0 = self._wait0 = self._loop0 = 0.0
        self.profile: Any = None
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self.on:
            self.gc_runs[info["generation"]] += 1
            self.gc_longest = max(self.gc_longest, time.perf_counter() - self._gc_started)

    def start(self) -> None:
        self.lags = []
        self.gc_runs = [0, 0, 0]
        self.gc_longest = 0.0
        self._t0, self._cpu0, self._wait0 = time.time(), cpu_seconds(), runq_wait_seconds()
        self._loop0 = time.thread_time()  # called on the event loop's thread
        self.on = True
        if self.profile is not None:
            self.profile.enable()

    def stop(self) -> dict[str, Any]:
        self.on = False
        if self.profile is not None:
            self.profile.disable()
        t1, cpu1, wait1 = time.time(), cpu_seconds(), runq_wait_seconds()
        loop1 = time.thread_time()
        lags = sorted(lag * 1000 for lag in self.lags)
        return {
            "t0": self._t0,
            "t1": t1,
            "deltas": len(lags),
            "p50_ms": percentile(lags, 0.50),
            "p99_ms": percentile(lags, 0.99),
            "max_ms": lags[-1] if lags else float("nan"),
            "cpu_pct": 100 * (cpu1 - self._cpu0) / (t1 - self._t0),
            "cpu_s": cpu1 - self._cpu0,
            "loop_cpu_pct": 100 * (loop1 - self._loop0) / (t1 - self._t0),
            "runq_wait_pct": 100 * (wait1 - self._wait0) / (t1 - self._t0),
            "load": os.getloadavg()[0],
            "gc_runs": sum(self.gc_runs),
            "gc_gen2": self.gc_runs[2],
            "gc_longest_ms": self.gc_longest * 1000,
        }


class Paced:
    """Call ``send`` every 100 ms on this session's own clock (random phase) until stopped.

    A loop that fell behind catches up (a microphone's audio would have queued), but not
    by more than a second.
    """

    def __init__(self, send: Callable[[], Awaitable[None]]) -> None:
        self.send = send

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + random.random() * CHUNK_S
        while not stop.is_set():
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 1.0:
                due = now
            await self.send()
            due += CHUNK_S


async def stream_paced(
    read: Callable[[], Coroutine[Any, Any, None]],
    send: Callable[[], Awaitable[None]],
    opened: asyncio.Future[None],
    go: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """A floor session once set up: ``read`` in a task; say it is open; on ``go``, ``send``
    every 100 ms until ``stop``."""
    reader = asyncio.create_task(read())
    opened.set_result(None)
    await go.wait()
    await Paced(send).run(stop)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader


# -- the two clients ---------------------------------------------------------------------


async def floor_session(
    url: str, meter: Meter, opened: asyncio.Future[None], go: asyncio.Event, stop: asyncio.Event
) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        if json.loads(await ws.recv()).get("type") != "session.created":
            raise RuntimeError("expected session.created")
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "instructions": INSTRUCTIONS,
                        "output_modalities": ["audio"],
                        "audio": {"input": {"turn_detection": None}, "output": {"voice": "marin"}},
                    },
                }
            )
        )
        while json.loads(await ws.recv()).get("type") != "session.updated":
            pass

        async def read() -> None:
            async for raw in ws:
                event = json.loads(raw)
                if event.get("type") == "response.output_audio.delta":
                    base64.b64decode(event["delta"])
                    if meter.on:
                        meter.lags.append(time.time() - event["sent_at"])

        async def send() -> None:
            await ws.send(
                json.dumps(
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(SILENCE).decode("ascii"),
                    }
                )
            )

        await stream_paced(read, send, opened, go, stop)


async def floor_fast_session(
    url: str, meter: Meter, opened: asyncio.Future[None], go: asyncio.Event, stop: asyncio.Event
) -> None:
    import orjson
    import pybase64
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        if orjson.loads(await ws.recv(decode=False)).get("type") != "session.created":
            raise RuntimeError("expected session.created")
        update = {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": INSTRUCTIONS,
                "output_modalities": ["audio"],
                "audio": {"input": {"turn_detection": None}, "output": {"voice": "marin"}},
            },
        }
        await ws.send(orjson.dumps(update), text=True)
        while orjson.loads(await ws.recv(decode=False)).get("type") != "session.updated":
            pass

        async def read() -> None:
            while True:
                event = orjson.loads(await ws.recv(decode=False))
                if event.get("type") == "response.output_audio.delta":
                    pybase64.b64decode(event["delta"])
                    if meter.on:
                        meter.lags.append(time.time() - event["sent_at"])

        async def send() -> None:
            audio = pybase64.b64encode(SILENCE).decode("ascii")
            await ws.send(
                orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}), text=True
            )

        await stream_paced(read, send, opened, go, stop)


def realtalk_session_factory(agent: Path, *, realtime: bool) -> Any:
    from realtalk.audio import WavFileSink
    from realtalk.runner import open_session

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from concurrency_server import read_stamp

    class StampedSink(WavFileSink):
        """A real-time WAV sink that notes each delta's lag as realtalk hands it over."""

        lag_meter: Meter  # (not ``meter``: that is the sink's level-metering switch)

        def feed(self, item_id: str, pcm24k: bytes) -> None:
            if self.lag_meter.on:
                self.lag_meter.lags.append(time.time() - read_stamp(pcm24k))
            super().feed(item_id, pcm24k)

    async def realtalk_session(
        url: str, meter: Meter, opened: asyncio.Future[None], go: asyncio.Event, stop: asyncio.Event
    ) -> None:
        sink = StampedSink(os.devnull, realtime=realtime)
        sink.lag_meter = meter
        try:
            async with open_session(agent, url=url, output=sink) as session:
                opened.set_result(None)
                await go.wait()
                await Paced(lambda: session.append_audio(SILENCE)).run(stop)
        finally:
            sink.close()

    return realtalk_session


# -- the ramp ----------------------------------------------------------------------------


async def ramp(args: argparse.Namespace) -> None:
    urls = args.url.split(",")
    meter = Meter()
    if args.cprofile:
        import cProfile

        # CPU time of the event-loop thread: time spent waiting for the GIL (held by the
        # sinks' threads) or for a CPU is not counted as any function's own time.
        meter.profile = cProfile.Profile(
            time.thread_time if args.cprofile_clock == "cpu" else time.perf_counter
        )
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp:
        if args.variant.startswith("realtalk"):
            agent = Path(tmp) / "loadtest.yaml"
            agent.write_text(AGENT_YAML)
            run_session = realtalk_session_factory(agent, realtime=args.variant == "realtalk")
            from realtalk.runner import load_target

            load_target(agent)  # plugins load once per process: not a per-session cost
        elif args.variant == "floor-fast":
            run_session = floor_fast_session
        else:
            run_session = floor_session
        gc.collect()
        if args.gc_freeze:
            gc.freeze()  # what was imported and set up is never collected: not walked again
        base = rss_bytes()
        base_objects = len(gc.get_objects())
        emit({"kind": "base", "rss": base, "pid": os.getpid()})
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        failures: list[str] = []
        limit = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one(i: int, go: asyncio.Event) -> None:
            loop = asyncio.get_running_loop()
            opened: asyncio.Future[None] = loop.create_future()
            async with limit:
                task = asyncio.create_task(
                    run_session(urls[i % len(urls)], meter, opened, go, stop)
                )
                tasks.append(task)
                await asyncio.wait({opened, task}, return_when=asyncio.FIRST_COMPLETED)
            if not opened.done():
                exc = task.exception() if task.done() else None
                failures.append(f"session {i}: {type(exc).__name__}: {exc}")

        opened_total = 0
        misses = 0  # steps over the limits in a row
        for index, n in enumerate(args.steps):
            go = asyncio.Event()
            started = time.perf_counter()
            await asyncio.gather(*(one(i, go) for i in range(opened_total, n)))
            open_s = time.perf_counter() - started
            opened_total = n
            if failures:
                emit(
                    {
                        "kind": "failed",
                        "sessions": n,
                        "failures": failures[:5],
                        "count": len(failures),
                    }
                )
                break
            if index == 0:
                await asyncio.sleep(1.0)
                gc.collect()
                t0, cpu0 = time.time(), cpu_seconds()
                await asyncio.sleep(args.idle_seconds)
                t1, cpu1 = time.time(), cpu_seconds()
                gc.collect()
                emit(
                    {
                        "kind": "idle",
                        "sessions": n,
                        "rss": rss_bytes(),
                        "base": base,
                        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
                        "open_s": open_s,
                        # what a full collection walks, per session
                        "gc_objects": (len(gc.get_objects()) - base_objects) / n,
                    }
                )
            go.set()
            await asyncio.sleep(args.warmup)
            meter.start()
            emit({"kind": "measuring", "sessions": n, "t": time.time()})
            await asyncio.sleep(args.seconds)
            result = meter.stop()
            dead = sum(1 for t in tasks if t.done())
            result.update(
                kind="step",
                sessions=n,
                rss=rss_bytes(),
                base=base,
                open_s=open_s,
                threads=len(os.listdir("/proc/self/task")),
                dead=dead,
            )
            emit(result)
            if meter.profile is not None:
                meter.profile.dump_stats(args.cprofile)
                meter.profile = None  # the first measured step only
            over = result["p99_ms"] > args.lag_limit_ms or result["cpu_pct"] >= args.cpu_limit
            misses = misses + 1 if over else 0
            if dead or misses >= args.patience:
                break
        stop.set()
        closing = time.perf_counter()
        done, pending = await asyncio.wait(tasks, timeout=30) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        errors = [t.exception() for t in done if not t.cancelled() and t.exception()]
        emit(
            {
                "kind": "closed",
                "close_s": time.perf_counter() - closing,
                "pending": len(pending),
                "errors": [f"{type(e).__name__}: {e}" for e in errors[:3]],
                "error_count": len(errors),
            }
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variant", choices=["floor", "floor-fast", "realtalk", "realtalk-instant"])
    parser.add_argument("--url", required=True, help="server URL(s), comma-separated")
    parser.add_argument("--steps", required=True, type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--idle-seconds", type=float, default=2.0)
    parser.add_argument("--lag-limit-ms", type=float, default=50.0)
    parser.add_argument("--cpu-limit", type=float, default=95.0)
    parser.add_argument(
        "--cprofile",
        metavar="FILE",
        help="cProfile the event loop's thread during the first measured step",
    )
    parser.add_argument("--cprofile-clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() once imports are done, before any session opens",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=2,
        help="stop after this many steps in a row over the limits (default 2)",
    )
    parser.add_argument(
        "--core",
        type=Path,
        default=REPO / "core",
        help="import realtalk from this directory (default: the work tree's core/)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.core))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Imported before the base RSS is taken: imports are not a per-session cost.
    import websockets.asyncio.client  # noqa: F401

    if args.variant == "floor-fast":
        import orjson  # noqa: F401
        import pybase64  # noqa: F401

    if args.variant.startswith("realtalk"):
        import realtalk.runner  # noqa: F401
    asyncio.run(ramp(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
