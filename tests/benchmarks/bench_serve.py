"""Benchmark: how many browser callers one ``realtalk serve`` process holds (p99 lag <= 50 ms).

Not part of the test suite (pytest collects only ``test_*.py``). Run it from the work tree,
on a quiet machine (it waits for the 1-minute load average to drop under ``--max-load``)::

    .venv/bin/python tests/benchmarks/bench_serve.py --steps 50,100,150,200,250
    .venv/bin/python tests/benchmarks/bench_serve.py --steps 100 --profile 100

Processes, all on 127.0.0.1:

- the emulator: ``realtalk emulator --port 0`` (real time, not ``--fast``) with a scenario
  of no turns and a ``fallback`` reply of about ``--reply-s`` seconds, so every speech
  segment gets a spoken reply, a 100 ms ``response.output_audio.delta`` every 100 ms;
- the target, one process, one variant after the other against the same emulator:

  - ``relay`` (the floor): this file's ``relay`` mode, a bare websockets server that speaks
    just enough of the browser protocol (``realtalk.v1``) for the callers: per connection
    it opens the emulator, sends one ``session.update``, says ``ready``, turns each binary
    microphone frame into an ``input_audio_buffer.append``, each audio delta into a binary
    frame and each ``response.done`` into a ``turn.done`` event, and parses and drops the
    callers' other messages (``played``). No session logic: what any relay must pay;
  - ``serve``: ``realtalk serve AGENTS --url EMULATOR`` (one process, no ``--workers``),
    its agent the same as the relay's session (audio out, server VAD, no tools);

- ``--clients`` load client processes (this file's ``client`` mode) sharing the callers,
  so the client is not the bottleneck. Each caller speaks ``realtalk.v1`` as the browser
  console does: it connects to ``/ws`` (subprotocol ``realtalk.v1``; with ``--token``, an
  ``Authorization: Bearer`` header), waits for ``ready``, then every 20 ms on its own clock
  (random phase) sends 20 ms of 24 kHz PCM16 microphone audio as a binary frame: half a
  second of a loud tone (speech to the emulator's VAD), then silence until the reply's
  ``turn.done`` has come and its audio has played, then speech again. It plays what it
  receives at real-time pace, as a browser's player would: while audio is queued it sends
  ``{"type": "played", "epoch": N, "samples": M}`` every 20 ms, and once when playback runs
  dry; a ``clear`` resets its queue to the new epoch. Permessage-deflate is offered as
  browsers do (``--compression none`` to not), whatever the server then accepts.

Per step (``--warmup`` s after the step's callers opened, then ``--seconds`` s measured):

- **lag**, how late each binary audio frame reached the caller against real-time pacing:
  within one reply, frame k arrives at a_k with s_k samples of the reply before it; the
  reply's schedule is anchored at its earliest frame, anchor = min_k (a_k - s_k / 24000),
  and the frame's lag is a_k - s_k / 24000 - anchor (>= 0: a frame that came in a burst
  after a stall shows how long the stall was). p50/p99/max over every frame of the replies
  that ended (``turn.done``) in the window. The emulator and the client processes are in
  the path of both variants: the relay's lag is the floor of this machine, the
  difference is the target's;
- **reply**: the last loud frame sent to the reply's first audio frame, p50/p99 (includes
  the emulator's 200 ms of silence detection);
- the target's CPU (% of one core, all threads, ``/proc/PID/stat``), CPU per caller, how
  long its main thread waited for a CPU held by other processes (``runq``: high means the
  machine, not the target, was the limit), the whole machine's busy share of all its
  cores (``/proc/stat``), RSS
  (``/proc/PID/status`` ``VmRSS``) and RSS per caller ((RSS at N - RSS before any caller)
  / N); the emulator's and the busiest client's CPU (if one of those nears 100 %, it, not
  the target, limited the step); errors (``error`` messages and events, callers closed,
  refused or failed to open), replies missing after 30 s, ``clear`` messages (barge-ins:
  none expected);
- the 1-minute load average at the end of the step.

The ramp of each variant stops after ``--patience`` steps in a row over the limit.
``--profile N`` then runs ``realtalk serve`` under cProfile (the process's CPU clock) for
one step of N callers and prints its top functions by own time; with ``--py-spy PATH``
under py-spy instead (sampling: the server runs unchanged, no per-call overhead), own and
inclusive shares of its busy samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import pstats
import random
import resource
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from benchkit import fmt, git_commit, niced, percentile, runq_seconds  # beside this script

RATE = 24_000
FRAME_S = 0.02  # the page's microphone frame, and how often it reports what it played
FRAME_SAMPLES = int(RATE * FRAME_S)
SPEECH_FRAMES = 25  # half a second of "speech" per turn
SILENCE_MS = 200  # the agent's server VAD: silence that ends the caller's turn
RESPEAK_S = 30.0  # no reply this long after speaking: speak again (counted as a miss)
OPEN_CONCURRENCY = 16
OPEN_TIMEOUT_S = 30.0
CHARS_PER_SECOND = 15  # the emulator's voice
INSTRUCTIONS = "You are a load test, answer every caller."
AGENT_YAML = f"""\
name: caller
description: the benchmark's agent (audio out, server VAD, no tools)
instructions: {INSTRUCTIONS}
voice: marin
modalities: [audio]
turn_detection: {{type: server_vad, silence_duration_ms: {SILENCE_MS}}}
"""
VARIANTS = ("relay", "serve")


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


# -- a caller (``client`` mode) ------------------------------------------------------------


def _mic_frames() -> tuple[bytes, bytes]:
    """20 ms of a loud 440 Hz tone (speech to the VAD) and 20 ms of silence, PCM16 LE."""
    tone = struct.pack(
        f"<{FRAME_SAMPLES}h",
        *(int(9000 * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(FRAME_SAMPLES)),
    )
    return tone, bytes(2 * FRAME_SAMPLES)


class CallerStats:
    """What the callers of one client process saw while ``on``."""

    def __init__(self) -> None:
        self.reset()
        self.on = False

    def reset(self) -> None:
        self.lags: list[float] = []
        self.replies: list[float] = []
        self.frames = 0
        self.replies_done = 0
        self.errors: list[str] = []
        self.error_count = 0
        self.closed = 0
        self.missed = 0
        self.clears = 0
        self.played_sent = 0
        self.on = True

    def error(self, text: str) -> None:
        if self.on:
            self.error_count += 1
            if len(self.errors) < 5:
                self.errors.append(text[:200])


class Player:
    """A browser's player: plays what came in at real-time pace, says what it played."""

    def __init__(self) -> None:
        self.epoch = 0
        self.received = 0  # samples of this epoch received
        self.played = 0.0  # samples of this epoch played
        self.since = 0.0  # loop time up to which ``played`` is counted
        self.playing = False

    def feed(self, samples: int, now: float) -> None:
        if self.received <= self.played:  # the queue was dry: playback starts now
            self.since = now
        self.received += samples

    def clear(self, epoch: int) -> None:
        self.epoch, self.received, self.played, self.playing = epoch, 0, 0.0, False

    def tick(self, now: float) -> dict[str, Any] | None:
        """The ``played`` report due at ``now``, if any (every tick while playing, and one
        when playback runs dry)."""
        if self.received > self.played:
            self.played = min(float(self.received), self.played + (now - self.since) * RATE)
            self.since = now
            self.playing = True
        elif self.playing:
            self.playing = False
        else:
            return None
        return {"type": "played", "epoch": self.epoch, "samples": int(self.played)}

    @property
    def idle(self) -> bool:
        return self.received <= self.played


async def caller(url: str, token: str | None, compression: str | None, stats: CallerStats,
                 frames: tuple[bytes, bytes], opened: asyncio.Future[None],
                 stop: asyncio.Event) -> None:
    import orjson
    from websockets.asyncio.client import connect

    tone, silence = frames
    loop = asyncio.get_running_loop()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with connect(
        url, subprotocols=["realtalk.v1"], additional_headers=headers, compression=compression,  # type: ignore[list-item]
        max_size=2**20, ping_interval=None, open_timeout=OPEN_TIMEOUT_S,
    ) as ws:
        async def ready() -> None:  # session events may come before it
            while True:
                message = await ws.recv()
                data = orjson.loads(message) if isinstance(message, str) else {}
                if data.get("type") == "ready":
                    return
                if data.get("type") == "refused":
                    raise RuntimeError(f"refused: {data.get('code')}: {data.get('reason')}")

        await asyncio.wait_for(ready(), OPEN_TIMEOUT_S)
        player = Player()
        answered = asyncio.Event()
        answered.set()  # no greeting: the caller speaks first
        spoke_at = 0.0  # loop time of the last loud frame
        arrivals: list[tuple[float, int]] = []  # this reply's frames: (arrival, samples before)
        reply_samples = 0

        def reply_done() -> None:
            nonlocal arrivals, reply_samples
            if arrivals and stats.on:
                anchor = min(a - s / RATE for a, s in arrivals)
                stats.lags.extend(a - s / RATE - anchor for a, s in arrivals)
                stats.frames += len(arrivals)
                stats.replies_done += 1
            arrivals, reply_samples = [], 0
            answered.set()

        async def read() -> None:
            nonlocal reply_samples
            async for message in ws:
                now = loop.time()
                if isinstance(message, bytes):
                    if not message or len(message) % 2:
                        stats.error(f"an audio frame of {len(message)} bytes")
                    if not arrivals and stats.on and not answered.is_set():
                        stats.replies.append(now - spoke_at)
                    arrivals.append((now, reply_samples))
                    reply_samples += len(message) // 2
                    player.feed(len(message) // 2, now)
                    continue
                data = orjson.loads(message)
                kind = data.get("type")
                if kind == "event":
                    event = data["event"]
                    if event.get("type") == "turn.done":
                        reply_done()
                    elif event.get("type") == "error":
                        stats.error(f"error event: {event.get('message', event)}")
                elif kind == "clear":
                    player.clear(int(data["epoch"]))
                    if stats.on:
                        stats.clears += 1
                elif kind in ("error", "closing", "refused"):
                    stats.error(f"{kind}: {data.get('message') or data.get('reason')}")

        reader = asyncio.create_task(read())
        opened.set_result(None)
        due = loop.time() + random.random() * FRAME_S
        loud = 0
        try:
            while not stop.is_set() and not reader.done():
                now = loop.time()
                if due > now:
                    await asyncio.sleep(due - now)
                elif now - due > 1.0:
                    due = now  # fell far behind: do not burst
                now = loop.time()
                report = player.tick(now)
                if report is not None:
                    await ws.send(orjson.dumps(report), text=True)
                    if stats.on:
                        stats.played_sent += 1
                if not loud and (
                    (answered.is_set() and player.idle) or now - spoke_at > RESPEAK_S
                ):
                    if not answered.is_set() and stats.on:
                        stats.missed += 1
                    answered.clear()
                    arrivals.clear()
                    reply_samples = 0
                    loud = SPEECH_FRAMES
                if loud:
                    loud -= 1
                    await ws.send(tone)
                    spoke_at = loop.time()
                else:
                    await ws.send(silence)
                due += FRAME_S
        finally:
            if reader.done() and stats.on:
                stats.closed += 1
                if not reader.cancelled() and reader.exception() is not None:
                    stats.error(f"closed: {reader.exception()}")
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def client_main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    frames = _mic_frames()
    stats = CallerStats()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    failures: list[str] = []
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)
    lines: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
    compression = None if args.compression == "none" else args.compression

    def read_stdin() -> None:
        for line in sys.stdin:
            asyncio.run_coroutine_threadsafe(lines.put(line), loop).result()
        asyncio.run_coroutine_threadsafe(lines.put(""), loop).result()

    threading.Thread(target=read_stdin, daemon=True).start()

    async def one(i: int) -> None:
        opened: asyncio.Future[None] = loop.create_future()
        async with limit:
            task = asyncio.create_task(
                caller(args.url, args.token, compression, stats, frames, opened, stop)
            )
            tasks.append(task)
            await asyncio.wait({opened, task}, return_when=asyncio.FIRST_COMPLETED)
        if not opened.done():
            exc = task.exception() if task.done() else None
            failures.append(f"caller {i}: {type(exc).__name__}: {exc}")

    cpu0 = t0 = 0.0
    while line := await lines.get():
        cmd = json.loads(line)
        if cmd["cmd"] == "open":
            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(len(tasks), cmd["n"])))
            emit({"kind": "opened", "failures": failures[:3], "failed": len(failures),
                  "open_s": time.perf_counter() - started})
        elif cmd["cmd"] == "measure":
            stats.reset()
            t0, cpu0 = time.time(), sum(os.times()[:2])
            emit({"kind": "measuring"})
        elif cmd["cmd"] == "report":
            stats.on = False
            t1 = time.time()
            emit({
                "kind": "report",
                "lags": stats.lags,
                "replies": stats.replies,
                "frames": stats.frames,
                "replies_done": stats.replies_done,
                "errors": stats.errors,
                "error_count": stats.error_count,
                "closed": stats.closed + sum(1 for t in tasks if t.done()),
                "missed": stats.missed,
                "clears": stats.clears,
                "played_sent": stats.played_sent,
                "cpu_pct": 100 * (sum(os.times()[:2]) - cpu0) / (t1 - t0),
            })
    stop.set()
    if tasks:
        await asyncio.wait(tasks, timeout=10)


# -- the bare relay (``relay`` mode): the floor -------------------------------------------


def session_update() -> dict[str, Any]:
    """What the relay configures: the same session as the benchmark's agent."""
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": INSTRUCTIONS,
            "output_modalities": ["audio"],
            "audio": {
                "input": {"turn_detection": {"type": "server_vad",
                                             "silence_duration_ms": SILENCE_MS}},
                "output": {"voice": "marin"},
            },
        },
    }


async def relay_main(args: argparse.Namespace) -> None:
    import orjson
    import pybase64
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    update = orjson.dumps(session_update())
    turn_done = orjson.dumps({"type": "event", "event": {"type": "turn.done"}})
    upstream_url = args.emulator
    compression = None if args.compression == "none" else args.compression

    async def handle(ws: ServerConnection) -> None:
        async with connect(upstream_url, compression=None, max_size=None, ping_interval=None,
                           open_timeout=OPEN_TIMEOUT_S,
                           additional_headers={"Authorization": "Bearer relay"}) as up:
            created = orjson.loads(await asyncio.wait_for(up.recv(decode=False), OPEN_TIMEOUT_S))
            if created.get("type") != "session.created":
                raise RuntimeError("expected session.created")
            await up.send(update, text=True)
            while orjson.loads(await asyncio.wait_for(up.recv(decode=False), OPEN_TIMEOUT_S)
                               ).get("type") != "session.updated":
                pass
            await ws.send(orjson.dumps({"type": "ready", "session_id": "relay",
                                        "agent": "caller", "agents": ["caller"],
                                        "audio": {"rate": RATE, "format": "pcm16"}}), text=True)

            async def down() -> None:
                while True:
                    event = orjson.loads(await up.recv(decode=False))
                    kind = event["type"]
                    if kind == "response.output_audio.delta":
                        await ws.send(pybase64.b64decode(event["delta"]))
                    elif kind == "response.done":
                        await ws.send(turn_done, text=True)

            downward = asyncio.create_task(down())
            try:
                async for message in ws:
                    if isinstance(message, bytes):
                        audio = pybase64.b64encode_as_string(message)
                        await up.send(orjson.dumps({"type": "input_audio_buffer.append",
                                                    "audio": audio}), text=True)
                    else:
                        orjson.loads(message)  # ``played`` and the like: parsed, dropped
            except ConnectionClosed:
                pass
            finally:
                downward.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await downward

    def select(ws: ServerConnection, offered: Any) -> Any:
        return "realtalk.v1" if "realtalk.v1" in offered else None

    async with serve(handle, "127.0.0.1", args.port, compression=compression,
                     select_subprotocol=select, max_size=2**16, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1] if server.sockets else args.port
        emit({"port": port})
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, done.set_result, None)
        loop.add_signal_handler(signal.SIGINT, done.set_result, None)
        await done


# -- the processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (a ``--workers`` server's children)."""
    pids, index = [pid], 0
    while index < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[index]}/task"):
                with open(f"/proc/{pids[index]}/task/{task}/children") as f:
                    pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        index += 1
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree (all threads), from ``/proc/PID/stat``."""
    total = 0
    for one in tree_pids(pid):
        try:
            with open(f"/proc/{one}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process tree, from ``VmRSS`` in ``/proc/PID/status``."""
    total = 0
    for one in tree_pids(pid):
        try:
            with open(f"/proc/{one}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def machine_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # up to steal (guest time is counted in user already)
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


class Process:
    """A process of the benchmark; stopped with SIGINT (then killed after 60 s)."""

    proc: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class EmulatorProcess(Process):
    """``realtalk emulator`` (real time) with the benchmark's scenario."""

    def __init__(self, scenario: Path, nice: int) -> None:
        cmd = [str(Path(sys.executable).parent / "realtalk"), "emulator", "--port", "0",
               "--audio-speed", "1", "--scenario", str(scenario)]
        self.proc = subprocess.Popen(niced(nice, cmd), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if "listening on" not in first:
            raise SystemExit(f"the emulator did not start: {first!r} (exit {self.proc.wait()})")
        self.url = first.split("listening on ", 1)[1].strip()
        self.proc.stdout.readline()  # the scenario line


class RelayProcess(Process):
    """This file's ``relay`` mode: the bare relay to the emulator."""

    def __init__(self, emulator_url: str, args: argparse.Namespace) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "relay", "--emulator",
               emulator_url + "?model=gpt-realtime", "--compression", args.compression]
        self.proc = subprocess.Popen(niced(args.nice, cmd), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            raise SystemExit(f"the relay did not start (exit {self.proc.wait()})")
        self.url = f"ws://127.0.0.1:{json.loads(first)['port']}/ws"


class ServeProcess(Process):
    """``realtalk serve AGENTS --url EMULATOR``, ready once ``/healthz`` answers 200.

    ``profile``: the file a profile goes to. With ``args.py_spy`` the server runs under
    ``py-spy record`` (sampling, the server unchanged; ``pid`` is then the server's, the
    py-spy process its parent), otherwise under cProfile (this file's ``profile`` mode).
    """

    def __init__(self, agents: Path, emulator_url: str, args: argparse.Namespace,
                 profile: str | None = None) -> None:
        port = free_port()
        serve_args = ["serve", str(agents), "--url", emulator_url, "--host", "127.0.0.1",
                      "--port", str(port), *shlex.split(args.serve_args)]
        cmd = [str(Path(sys.executable).parent / "realtalk"), *serve_args]
        self.spied = bool(profile and args.py_spy)
        if profile and args.py_spy:
            # --function: one entry per function; idle threads (waiting in epoll) are not
            # sampled, so the samples are CPU time.
            cmd = [args.py_spy, "record", "--format", "raw", "--function", "--rate", "250",
                   "--output", profile, "--", *cmd]
        elif profile:
            cmd = [sys.executable, str(Path(__file__).resolve()), "profile", profile, *serve_args]
        env = {**os.environ, "OPENAI_API_KEY": "bench-not-a-key"}  # the emulator takes any
        if args.token:
            env["REALTALK_SERVE_TOKEN"] = args.token
        self.command = shlex.join(["realtalk", *serve_args])
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - open while the process runs
        self.proc = subprocess.Popen(niced(args.nice, cmd), env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, text=True)
        self.url = f"ws://127.0.0.1:{port}/ws"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                tail = self.log.read()[-2000:]
                self.stop()
                raise SystemExit(f"realtalk serve did not become healthy in 60 s:\n{tail}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        if not self.spied:
            return self.proc.pid
        children = tree_pids(self.proc.pid)[1:]
        return children[0] if children else self.proc.pid

    def stop(self) -> None:
        if self.spied and self.proc.poll() is None:
            # The server drains and exits on SIGINT; py-spy then writes its file and exits.
            os.kill(self.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
                return
            except subprocess.TimeoutExpired:
                pass
        super().stop()

    def log_lines(self) -> int:
        self.log.seek(0)
        return sum(1 for _ in self.log)

    def log_tail(self, chars: int = 1500) -> str:
        self.log.seek(0)
        return self.log.read()[-chars:]


class Client:
    """A load client process (this file's ``client`` mode), driven through its stdin."""

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "client", "--url", url,
               "--compression", args.compression]
        if args.token:
            cmd += ["--token", args.token]
        self.proc = subprocess.Popen(
            niced(args.nice, cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"a load client exited ({self.proc.wait()})")
        return dict(json.loads(line))

    def stop(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the ramp ------------------------------------------------------------------------------


def run_ramp(variant: str, args: argparse.Namespace, steps: list[int], agents: Path,
             emulator: EmulatorProcess, profile: str | None = None) -> list[dict[str, Any]]:
    target: RelayProcess | ServeProcess
    if variant == "relay":
        target = RelayProcess(emulator.url, args)
    else:
        target = ServeProcess(agents, emulator.url, args, profile)
    clients = [Client(target.url, args) for _ in range(args.clients)]
    results: list[dict[str, Any]] = []
    try:
        time.sleep(1.0)
        base = rss_bytes(target.pid)
        misses = 0
        for n in steps:
            shares = [n // len(clients) + (i < n % len(clients)) for i in range(len(clients))]
            for client, share in zip(clients, shares):
                client.send(cmd="open", n=share)
            opened = [c.receive() for c in clients]
            failed = sum(o["failed"] for o in opened)
            time.sleep(args.warmup)
            for client in clients:
                client.send(cmd="measure")
            for client in clients:
                client.receive()
            t0, cpu0, rss0 = time.time(), cpu_seconds(target.pid), rss_bytes(target.pid)
            emu0 = cpu_seconds(emulator.pid)
            lines0 = target.log_lines() if isinstance(target, ServeProcess) else 0
            runq0, (busy0, total0) = runq_seconds(target.pid), machine_times()
            time.sleep(args.seconds)
            for client in clients:
                client.send(cmd="report")
            t1, cpu1, rss1 = time.time(), cpu_seconds(target.pid), rss_bytes(target.pid)
            emu1 = cpu_seconds(emulator.pid)
            lines1 = target.log_lines() if isinstance(target, ServeProcess) else 0
            runq1, (busy1, total1) = runq_seconds(target.pid), machine_times()
            reports = [c.receive() for c in clients]
            lags = sorted(1000 * x for r in reports for x in r["lags"])
            replies = sorted(1000 * x for r in reports for x in r["replies"])
            window = t1 - t0
            row = {
                "variant": variant,
                "callers": n,
                "p50_ms": percentile(lags, 0.5),
                "p99_ms": percentile(lags, 0.99),
                "max_ms": lags[-1] if lags else float("nan"),
                "reply_p50_ms": percentile(replies, 0.5),
                "reply_p99_ms": percentile(replies, 0.99),
                "frames_per_s": len(lags) / window,
                "replies": sum(r["replies_done"] for r in reports),
                "cpu_pct": 100 * (cpu1 - cpu0) / window,
                "rss": rss1,
                "rss0": rss0,
                "base": base,
                "emulator_cpu_pct": 100 * (emu1 - emu0) / window,
                "client_cpu_pct": max(r["cpu_pct"] for r in reports),
                "errors": sum(r["error_count"] for r in reports),
                "error_samples": [e for r in reports for e in r["errors"]][:3],
                "closed": sum(r["closed"] for r in reports),
                "missed": sum(r["missed"] for r in reports),
                "clears": sum(r["clears"] for r in reports),
                "failed": failed,
                "failures": [f for o in opened for f in o["failures"]][:3],
                "log_lines_per_s": (lines1 - lines0) / window,
                "runq_pct": 100 * (runq1 - runq0) / window,
                "machine_pct": 100 * (busy1 - busy0) / max(1e-9, total1 - total0),
                "load": os.getloadavg()[0],
            }
            results.append(row)
            print(
                f"  {variant} {n} callers: p99 {fmt(row['p99_ms'])} ms, CPU"
                f" {row['cpu_pct']:.0f} %, RSS {rss1 / 2**20:.0f} MB, emulator"
                f" {row['emulator_cpu_pct']:.0f} %, clients {row['client_cpu_pct']:.0f} %,"
                f" errors {row['errors']}, closed {row['closed']}, failed {failed}, log lines"
                f" {row['log_lines_per_s']:.0f}/s, runq {row['runq_pct']:.0f} %, machine"
                f" {row['machine_pct']:.0f} % busy,"
                f" load {row['load']:.2f}",
                file=sys.stderr, flush=True,
            )
            misses = misses + 1 if not ok(row, args.lag_limit_ms) else 0
            if failed or row["closed"] or misses >= args.patience:
                break
    finally:
        for client in clients:
            client.stop()
        target.stop()
        if isinstance(target, ServeProcess) and (
            any(r["failed"] or r["closed"] or r["errors"] for r in results)
        ):
            print(f"  the end of realtalk serve's log:\n{target.log_tail()}", file=sys.stderr)
    return results


def ok(row: dict[str, Any], limit_ms: float) -> bool:
    return bool(row["p99_ms"] <= limit_ms and not row["closed"] and not row["failed"]
                and not row["errors"])


def report(rows: list[dict[str, Any]], limit_ms: float) -> int | None:
    """The table of one variant; returns the most callers held within the limit."""
    good = [r["callers"] for r in rows if ok(r, limit_ms)]
    best = max(good) if good else None
    print(
        "| callers | lag p50 ms | p99 ms | max ms | reply p50 / p99 ms | frames/s"
        " | CPU % | CPU % per caller | runq % | RSS MB | RSS/caller KB | emulator CPU %"
        " | busiest client CPU % | machine busy % | errors | load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        b = "**" if r["callers"] == best else ""
        print(
            f"| {b}{r['callers']}{b} | {fmt(r['p50_ms'])} | {b}{fmt(r['p99_ms'])}{b}"
            f" | {fmt(r['max_ms'])} | {fmt(r['reply_p50_ms'], 0)} / {fmt(r['reply_p99_ms'], 0)}"
            f" | {r['frames_per_s']:.0f} | {r['cpu_pct']:.0f}"
            f" | {r['cpu_pct'] / r['callers']:.2f} | {r['runq_pct']:.0f} | {r['rss'] / 2**20:.0f}"
            f" | {(r['rss'] - r['base']) / r['callers'] / 1024:.0f}"
            f" | {r['emulator_cpu_pct']:.0f} | {r['client_cpu_pct']:.0f} | {r['machine_pct']:.0f}"
            f" | {r['errors'] + r['closed'] + r['failed']} | {r['load']:.2f} |"
        )
    for r in rows:
        problems = r["error_samples"] + r["failures"]
        if problems or r["closed"] or r["missed"] or r["clears"]:
            print(
                f"\nat {r['callers']}: {r['errors']} errors, {r['closed']} callers closed,"
                f" {r['failed']} failed to open, {r['missed']} turns unanswered"
                f" {RESPEAK_S:g} s, {r['clears']} clears; {'; '.join(problems)}"
            )
    reached = f"{best}" if best else "none"
    if best is not None and best == rows[-1]["callers"]:
        reached += " (the last step: the limit is higher)"
    print(f"\nmost callers with p99 <= {limit_ms:g} ms: **{reached}**")
    held = [r for r in rows if r["callers"] == best]
    if held:
        # Past the limit a starved target does less work per caller: take the step it held.
        r = held[0]
        print(f"CPU per caller at {r['callers']}: {r['cpu_pct'] / r['callers']:.2f} % of a core, so"
              f" a core to itself would hold about {100 * r['callers'] / r['cpu_pct']:.0f} callers at"
              f" 100 % (fewer with headroom for p99)")
    print()
    return best


def print_profile(path: str, top: int = 30) -> None:
    stats = pstats.Stats(path)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    rows = [(key, v) for key, v in rows if "epoll" not in key[2] and "select" not in key[2]]
    total = sum(v[2] for _, v in rows)
    print(f"profiled own CPU time outside epoll: {total:.1f} s (cProfile inflates Python"
          " calls)\n")
    print("| function | own s | own % | calls | cumulative s |\n|---|---:|---:|---:|---:|")
    for (file, line, name), (_cc, calls, tottime, cumtime, _callers) in rows[:top]:
        where = file
        for prefix in (str(REPO) + "/", sys.prefix + "/", sys.base_prefix + "/"):
            where = where.removeprefix(prefix)
        label = f"`{name}` ({where}:{line})" if line else f"`{name}`"
        print(f"| {label} | {tottime:.2f} | {100 * tottime / total:.1f} | {calls} | {cumtime:.2f} |")
    print()


def print_py_spy(path: str, top: int = 30) -> None:
    """py-spy's samples (``--format raw``: one ``frame;frame;... count`` line per stack) as
    own and inclusive shares of the server's busy samples, by function."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = imports = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            if "_find_and_load" in stack:  # start-up (and lazy) imports: not per caller
                imports += n
                continue
            total += n
            frames = stack.split(";")
            own[frames[-1]] = own.get(frames[-1], 0) + n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n

    def label(frame: str) -> str:
        for prefix in (str(REPO) + "/", sys.prefix + "/", sys.base_prefix + "/"):
            frame = frame.replace(prefix, "")
        return frame.replace("|", "/")

    print(f"py-spy: {total} busy samples of the server's threads (250 a second per thread;"
          f" {imports} more in imports, left out), shares of those {total}\n")
    print("| function (own time) | own % |\n|---|---:|")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| `{label(frame)}` | {100 * n / total:.1f} |")
    # The frames every stack goes through (the CLI, asyncio's loop) say nothing.
    print("\n| function (inclusive, under the event loop) | inclusive % |\n|---|---:|")
    shown = [(f, n) for f, n in inclusive.items() if n < 0.75 * total]
    for frame, n in sorted(shown, key=lambda kv: -kv[1])[:top]:
        print(f"| `{label(frame)}` | {100 * n / total:.1f} |")
    print()


def profiled_serve(out: str, argv: list[str]) -> int:
    """``realtalk ARGV`` under cProfile on the process's CPU clock (waits are not work)."""
    import cProfile

    from realtalk.cli import main as realtalk

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        return realtalk(argv)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


def wait_until_quiet(max_load: float, wait_s: float) -> float:
    """The 1-minute load average once it is under ``max_load`` (or after ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    load = os.getloadavg()[0]
    while load >= max_load and time.monotonic() < deadline:
        print(f"waiting for a quiet machine: load average {load:.2f} >= {max_load:g}",
              file=sys.stderr, flush=True)
        time.sleep(10)
        load = os.getloadavg()[0]
    return load


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "profile" and len(sys.argv) > 2:
        return profiled_serve(sys.argv[2], sys.argv[3:])
    if mode in ("client", "relay"):
        parser = argparse.ArgumentParser(description=f"the benchmark's {mode} process")
        parser.add_argument("mode")
        parser.add_argument("--url")
        parser.add_argument("--emulator")
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--token")
        parser.add_argument("--compression", default="deflate")
        sub = parser.parse_args()
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        asyncio.run(client_main(sub) if mode == "client" else relay_main(sub))
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps",
        type=lambda s: sorted({int(x) for x in s.split(",")}),
        default=[50, 100, 150, 200, 250],
        help="the caller counts to try, comma-separated (default 50,100,150,200,250)",
    )
    parser.add_argument("--variants", default="relay,serve",
                        help="comma-separated, in order (default relay,serve)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured per step")
    parser.add_argument("--warmup", type=float, default=5.0, help="per step, before measuring")
    parser.add_argument("--reply-s", type=float, default=4.0,
                        help="length of each spoken reply (default 4 s)")
    parser.add_argument("--clients", type=int, default=2,
                        help="load client processes (default 2)")
    parser.add_argument("--lag-limit-ms", type=float, default=50.0)
    parser.add_argument("--patience", type=int, default=2,
                        help="stop after this many steps in a row over the limit (default 2)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of every process started (negative needs root)")
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate",
                        help="offer permessage-deflate as browsers do (default), or not")
    parser.add_argument("--token", help="send it as a Bearer token; realtalk serve gets it as"
                        " REALTALK_SERVE_TOKEN")
    parser.add_argument(
        "--serve-args",
        default="--max-sessions 10000 --max-per-client 10000",
        help="more options of realtalk serve (default: caps above any step: every caller"
             " comes from 127.0.0.1)",
    )
    parser.add_argument("--max-load", type=float, default=1.5,
                        help="wait for the 1-minute load average to drop under this")
    parser.add_argument("--quiet-wait-s", type=float, default=300.0,
                        help="how long to wait for that before measuring anyway (default 300)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then run realtalk serve under a profiler for one step of N callers")
    parser.add_argument("--profile-file", metavar="PATH",
                        help="keep the profile in this file (default: a temporary one)")
    parser.add_argument("--py-spy", metavar="PATH",
                        help="with --profile: sample with this py-spy executable instead of"
                             " cProfile (pip install py-spy in a scratch venv)")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if not variants or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants: comma-separated names of {', '.join(VARIANTS)}")

    command = shlex.join(
        [Path(sys.executable).name, str(Path(__file__).relative_to(REPO)), *sys.argv[1:]]
    )
    load_start = wait_until_quiet(args.max_load, args.quiet_wait_s)
    started = time.monotonic()
    load_before = os.getloadavg()
    best: dict[str, int | None] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        agents = Path(tmp) / "agents"
        agents.mkdir()
        (agents / "caller.yaml").write_text(AGENT_YAML)
        scenario = Path(tmp) / "load.scenario.yaml"
        words = "Thank you for calling, this is the emulator speaking at real-time pace. " * 20
        reply = words[: int(args.reply_s * CHARS_PER_SECOND)].strip()
        scenario.write_text(json.dumps({"name": "load", "fallback": reply, "turns": []}))
        print(f"realtalk serve: steps {args.steps}, variants {variants}", file=sys.stderr,
              flush=True)
        emulator = EmulatorProcess(scenario, args.nice)
        tables: dict[str, list[dict[str, Any]]] = {}
        profiled: list[dict[str, Any]] = []
        profile_path = args.profile_file or str(Path(tmp) / ("serve.spy" if args.py_spy else "serve.prof"))
        try:
            for variant in variants:
                tables[variant] = run_ramp(variant, args, args.steps, agents, emulator)
            if args.profile:
                print(f"profiling realtalk serve at {args.profile} callers", file=sys.stderr,
                      flush=True)
                profiled = run_ramp("serve", args, [args.profile], agents, emulator,
                                    profile_path)
        finally:
            emulator.stop()
        load_after = os.getloadavg()
        print(f"command: (cd {REPO} && {command})")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python"
            f" {platform.python_version()}, realtalk at {git_commit(REPO)}"
        )
        print(
            f"load average (1/5/15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}"
            f" (1-min {load_start:.2f} when the wait for a quiet machine ended); after:"
            f" {', '.join(f'{x:.2f}' for x in load_after)}; run took"
            f" {time.monotonic() - started:.0f} s"
        )
        print(
            f"one realtalk emulator (real time) process, {args.clients} load client processes;"
            f" replies of {args.reply_s:g} s; mic frames of {FRAME_S * 1000:g} ms;"
            f" compression offered: {args.compression}; each step: {args.warmup:g} s warm-up,"
            f" {args.seconds:g} s measured; limit p99 <= {args.lag_limit_ms:g} ms\n"
        )
        for variant in variants:
            title = "bare relay (the floor)" if variant == "relay" else "realtalk serve"
            print(f"### {title}\n")
            best[variant] = report(tables[variant], args.lag_limit_ms)
        if "relay" in tables and "serve" in tables:
            pairs = [(r, s) for r in tables["relay"] for s in tables["serve"]
                     if r["callers"] == s["callers"]]
            if pairs:
                print("realtalk's overhead over the relay, same callers:\n")
                print("| callers | CPU % relay / serve | RSS/caller KB relay / serve"
                      " | p99 ms relay / serve |\n|---:|---:|---:|---:|")
                for r, s in pairs:
                    print(
                        f"| {r['callers']} | {r['cpu_pct']:.0f} / {s['cpu_pct']:.0f}"
                        f" | {(r['rss'] - r['base']) / r['callers'] / 1024:.0f}"
                        f" / {(s['rss'] - s['base']) / s['callers'] / 1024:.0f}"
                        f" | {fmt(r['p99_ms'])} / {fmt(s['p99_ms'])} |"
                    )
                print()
        if args.profile:
            profiler = "py-spy" if args.py_spy else "cProfile"
            print(f"### realtalk serve under {profiler}, {args.profile} callers\n")
            report(profiled, args.lag_limit_ms)
            if os.path.exists(profile_path):
                (print_py_spy if args.py_spy else print_profile)(profile_path)
            else:
                print("profile: realtalk serve wrote no profile\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
