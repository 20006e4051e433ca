"""Benchmark: how many real-time voice sessions one emulator process serves (p99 lag <= 50 ms).

Not part of the test suite (pytest collects only ``test_*.py``). Run it from the work tree::

    .venv/bin/python tests/benchmarks/bench_emulator_capacity.py --nice -15
    .venv/bin/python tests/benchmarks/bench_emulator_capacity.py --steps 150,300 --nice -15
    .venv/bin/python tests/benchmarks/bench_emulator_capacity.py --profile 300 --nice -15

Processes, all on 127.0.0.1:

- the emulator: ``realtalk emulator --port 0`` (real time, not ``--fast``) with a scenario
  of no turns and a long ``fallback``, so every speech segment gets a spoken reply of
  about ``--reply-s`` seconds; ``--profile N`` runs it under cProfile instead, for one step
  of N sessions, and prints its top functions;
- ``--clients`` load client processes (this file, ``client`` mode: bare websockets, orjson,
  pybase64) sharing the sessions. Each session streams 100 ms of input audio every 100 ms
  on its own clock: half a second of a loud tone (speech to the emulator's VAD), then
  silence until the reply's ``response.done``, then speech again; so each session gets
  continuous spoken replies, one ``response.output_audio.delta`` of 100 ms every 100 ms.

Per step (``--warmup`` s after the step's sessions opened, then ``--seconds`` s measured):

- lag: how late each delta arrived against its real-time schedule. The emulator sends
  delta n of a response 100 ms * n after the first; the schedule of a response is anchored
  at its earliest delta (min over n of arrival_n - 100 ms * n), so lag >= 0 and a delta that
  came in a burst after a stall shows how long it stalled. p50/p99/max over every delta of
  the responses that ended in the window (the client processes are kept well below a core
  each, so the lag is the emulator's);
- reply: speech end (the last loud chunk sent) to the reply's first delta, p50 (the
  emulator's VAD waits ``silence_duration_ms``, 200 ms, first);
- the emulator's CPU (% of one core, from ``/proc``), CPU ms per session-second (the
  development metric: CPU time over sessions x seconds), RSS, RSS per session ((RSS at N -
  RSS before any session) / N) and RSS growth per session-minute over the window (a bounded
  emulator stays near 0 once warm); the clients' CPU; errors (``error`` events, sessions
  closed or failed to open).

The ramp stops after ``--patience`` steps in a row with p99 over ``--lag-limit-ms``.
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
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from benchkit import fmt, git_commit, niced, percentile, ramp_steps, rss_bytes, runq_seconds

RATE = 24_000
CHUNK_S = 0.1
CHUNK_SAMPLES = int(RATE * CHUNK_S)
SPEECH_CHUNKS = 5  # half a second of "speech" per turn
RESPEAK_S = 30.0  # no reply this long after speaking: speak again (counted as a miss)
OPEN_CONCURRENCY = 16
CHARS_PER_SECOND = 15  # the emulator's voice


# -- the load client (``client`` mode) ----------------------------------------------------


def _frames() -> tuple[bytes, bytes]:
    import orjson
    import pybase64

    tone = struct.pack(
        f"<{CHUNK_SAMPLES}h",
        *(int(9000 * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(CHUNK_SAMPLES)),
    )
    silence = bytes(2 * CHUNK_SAMPLES)
    return tuple(  # type: ignore[return-value]
        orjson.dumps({"type": "input_audio_buffer.append", "audio": pybase64.b64encode_as_string(p)})
        for p in (tone, silence)
    )


class ClientStats:
    def __init__(self) -> None:
        self.on = False
        self.lags: list[float] = []
        self.replies: list[float] = []
        self.deltas = 0
        self.responses = 0
        self.errors: list[str] = []
        self.closed = 0
        self.missed = 0

    def reset(self) -> None:
        self.lags, self.replies, self.errors = [], [], []
        self.deltas = self.responses = self.closed = self.missed = 0
        self.on = True


async def client_session(url: str, stats: ClientStats, frames: tuple[bytes, bytes],
                         opened: asyncio.Future[None], stop: asyncio.Event) -> None:
    import orjson
    import pybase64
    from websockets.asyncio.client import connect

    tone, silence = frames
    loop = asyncio.get_running_loop()
    async with connect(
        url, compression=None, max_size=None, ping_interval=None, open_timeout=30
    ) as ws:
        if orjson.loads(await ws.recv(decode=False))["type"] != "session.created":
            raise RuntimeError("expected session.created first")
        speak = asyncio.Event()
        speak.set()
        spoke_at = 0.0  # loop time of the last loud chunk

        async def read() -> None:
            arrivals: list[float] = []
            async for raw in ws:
                now = loop.time()
                event = orjson.loads(raw)
                kind = event["type"]
                if kind == "response.output_audio.delta":
                    if len(pybase64.b64decode(event["delta"])) == 0:
                        stats.errors.append("an empty audio delta")
                    if not arrivals and stats.on:
                        stats.replies.append(now - spoke_at)
                    arrivals.append(now)
                elif kind == "response.done":
                    if arrivals and stats.on:
                        anchor = min(a - n * CHUNK_S for n, a in enumerate(arrivals))
                        stats.lags.extend(a - n * CHUNK_S - anchor for n, a in enumerate(arrivals))
                        stats.deltas += len(arrivals)
                        stats.responses += 1
                    arrivals = []
                    speak.set()
                elif kind == "error" and stats.on:
                    stats.errors.append(str(event["error"].get("code")))

        reader = asyncio.create_task(read())
        opened.set_result(None)
        due = loop.time() + random.random() * CHUNK_S
        loud = 0
        try:
            while not stop.is_set() and not reader.done():
                now = loop.time()
                if due > now:
                    await asyncio.sleep(due - now)
                elif now - due > 1.0:
                    due = now  # fell far behind: do not burst
                if speak.is_set() or loop.time() - spoke_at > RESPEAK_S:
                    if not speak.is_set() and stats.on:
                        stats.missed += 1
                    speak.clear()
                    loud = SPEECH_CHUNKS
                if loud:
                    loud -= 1
                    await ws.send(tone, text=True)
                    spoke_at = loop.time()
                else:
                    await ws.send(silence, text=True)
                due += CHUNK_S
        finally:
            if reader.done() and stats.on:
                stats.closed += 1
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def client_main(url: str) -> None:
    loop = asyncio.get_running_loop()
    frames = _frames()
    stats = ClientStats()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    failures: list[str] = []
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)
    lines: asyncio.Queue[str] = asyncio.Queue(maxsize=16)

    def read_stdin() -> None:
        for line in sys.stdin:
            asyncio.run_coroutine_threadsafe(lines.put(line), loop).result()
        asyncio.run_coroutine_threadsafe(lines.put(""), loop).result()

    threading.Thread(target=read_stdin, daemon=True).start()

    async def one(i: int) -> None:
        opened: asyncio.Future[None] = loop.create_future()
        async with limit:
            task = asyncio.create_task(client_session(url, stats, frames, opened, stop))
            tasks.append(task)
            await asyncio.wait({opened, task}, return_when=asyncio.FIRST_COMPLETED)
        if not opened.done():
            exc = task.exception() if task.done() else None
            failures.append(f"session {i}: {type(exc).__name__}: {exc}")

    def emit(record: dict[str, Any]) -> None:
        print(json.dumps(record), flush=True)

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
                "deltas": stats.deltas,
                "responses": stats.responses,
                "errors": stats.errors[:5],
                "error_count": len(stats.errors),
                "closed": stats.closed + sum(1 for t in tasks if t.done()),
                "missed": stats.missed,
                "cpu_pct": 100 * (sum(os.times()[:2]) - cpu0) / (t1 - t0),
            })
    stop.set()
    await asyncio.wait(tasks, timeout=10) if tasks else None


# -- the emulator process -----------------------------------------------------------------


class EmulatorProcess:
    """``realtalk emulator`` in a process of its own; reads its CPU and RSS from ``/proc``."""

    def __init__(self, scenario: Path, nice: int, profile: str | None = None) -> None:
        args = ["emulator", "--port", "0", "--audio-speed", "1", "--scenario", str(scenario)]
        cmd = [str(Path(sys.executable).parent / "realtalk"), *args]
        if profile:  # this file's ``profile`` mode: the same command under cProfile
            cmd = [sys.executable, str(Path(__file__).resolve()), "profile", profile, *args]
        self.proc = subprocess.Popen(niced(nice, cmd), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if "listening on" not in first:
            raise SystemExit(f"the emulator did not start: {first!r} (exit {self.proc.wait()})")
        self.url = first.split("listening on ", 1)[1].strip() + "?model=gpt-realtime"
        self.proc.stdout.readline()  # the scenario line

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def runq_seconds(self) -> float:
        """Time its main thread was runnable but waited for a CPU held by other processes."""
        return runq_seconds(self.proc.pid)

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # closes every session; cProfile writes its file
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Client:
    def __init__(self, url: str, nice: int) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "client", "--url", url]
        self.proc = subprocess.Popen(
            niced(nice, cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
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
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_ramp(args: argparse.Namespace, steps: list[int], scenario: Path,
             profile: str | None = None) -> list[dict[str, Any]]:
    emulator = EmulatorProcess(scenario, args.nice, profile)
    clients = [Client(emulator.url, args.nice) for _ in range(args.clients)]
    results: list[dict[str, Any]] = []
    try:
        time.sleep(1.0)
        base = emulator.rss()
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
            t0, cpu0, rss0 = time.time(), emulator.cpu_seconds(), emulator.rss()
            wait0 = emulator.runq_seconds()
            time.sleep(args.seconds)
            for client in clients:
                client.send(cmd="report")
            t1, cpu1, rss1 = time.time(), emulator.cpu_seconds(), emulator.rss()
            wait1 = emulator.runq_seconds()
            reports = [c.receive() for c in clients]
            lags = sorted(1000 * x for r in reports for x in r["lags"])
            replies = sorted(1000 * x for r in reports for x in r["replies"])
            window = t1 - t0
            row = {
                "sessions": n,
                "p50_ms": percentile(lags, 0.5),
                "p99_ms": percentile(lags, 0.99),
                "max_ms": lags[-1] if lags else float("nan"),
                "reply_p50_ms": percentile(replies, 0.5),
                "deltas_per_s": len(lags) / window,
                "responses": sum(r["responses"] for r in reports),
                "cpu_pct": 100 * (cpu1 - cpu0) / window,
                "cpu_ms_per_session_s": 1000 * (cpu1 - cpu0) / (n * window),
                "runq_pct": 100 * (wait1 - wait0) / window,
                "rss": rss1,
                "rss_per_session_kb": (rss1 - base) / n / 1024,
                "growth_kb_per_session_min": (rss1 - rss0) / n / 1024 / (window / 60),
                "client_cpu_pct": max(r["cpu_pct"] for r in reports),
                "errors": sum(r["error_count"] for r in reports),
                "error_samples": [e for r in reports for e in r["errors"]][:3],
                "closed": sum(r["closed"] for r in reports),
                "missed": sum(r["missed"] for r in reports),
                "failed": failed,
                "failures": [f for o in opened for f in o["failures"]][:3],
                "load": os.getloadavg()[0],
            }
            results.append(row)
            print(
                f"  {n} sessions: p99 {row['p99_ms']:.1f} ms, emulator CPU {row['cpu_pct']:.0f} %"
                f" ({row['cpu_ms_per_session_s']:.2f} ms per session-second, runq"
                f" {row['runq_pct']:.0f} %), RSS"
                f" {rss1 / 2**20:.0f} MB, clients {row['client_cpu_pct']:.0f} %, errors"
                f" {row['errors']}, closed {row['closed']}, failed {failed}",
                file=sys.stderr,
                flush=True,
            )
            misses = misses + 1 if row["p99_ms"] > args.lag_limit_ms else 0
            if failed or row["closed"] or misses >= args.patience:
                break
    finally:
        for client in clients:
            client.stop()
        emulator.stop()
    return results


def report(rows: list[dict[str, Any]], limit_ms: float) -> None:
    ok = [r["sessions"] for r in rows if r["p99_ms"] <= limit_ms and not r["closed"]
          and not r["failed"] and not r["errors"]]
    best = max(ok) if ok else None
    print(
        "| sessions | lag p50 ms | p99 ms | max ms | reply p50 ms | deltas/s | emulator CPU %"
        " | CPU ms per session-s | emulator runq % | RSS MB | RSS/session KB | growth KB/session-min"
        " | busiest client CPU % | errors | load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        b = "**" if r["sessions"] == best else ""
        print(
            f"| {b}{r['sessions']}{b} | {fmt(r['p50_ms'])} | {b}{fmt(r['p99_ms'])}{b}"
            f" | {fmt(r['max_ms'])} | {fmt(r['reply_p50_ms'], 0)} | {r['deltas_per_s']:.0f}"
            f" | {r['cpu_pct']:.0f} | {r['cpu_ms_per_session_s']:.2f} | {r['runq_pct']:.0f}"
            f" | {r['rss'] / 2**20:.0f}"
            f" | {r['rss_per_session_kb']:.0f} | {r['growth_kb_per_session_min']:.0f}"
            f" | {r['client_cpu_pct']:.0f} | {r['errors'] + r['closed'] + r['failed']}"
            f" | {r['load']:.1f} |"
        )
    for r in rows:
        problems = r["error_samples"] + r["failures"]
        if problems or r["closed"] or r["missed"]:
            print(
                f"\nat {r['sessions']}: {r['errors']} error events, {r['closed']} sessions"
                f" closed, {r['failed']} failed to open, {r['missed']} turns unanswered"
                f" {RESPEAK_S:g} s; {'; '.join(problems)}"
            )
    reached = f"{best}" if best else "none"
    if best is not None and best == rows[-1]["sessions"]:
        reached += " (the last step: the limit is higher)"
    print(f"\nmost sessions with p99 <= {limit_ms:g} ms: **{reached}**\n")


def print_profile(path: str, top: int = 25) -> None:
    stats = pstats.Stats(path)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    rows = [(key, v) for key, v in rows if "epoll" not in key[2] and "select" not in key[2]]
    total = sum(v[2] for _, v in rows)
    print(
        f"profiled own CPU time outside epoll: {total:.1f} s (cProfile inflates Python calls)\n"
    )
    print("| function | own s | own % | calls | cumulative s |\n|---|---:|---:|---:|---:|")
    for (file, line, name), (_cc, calls, tottime, cumtime, _callers) in rows[:top]:
        where = file
        for prefix in (str(REPO) + "/", sys.prefix + "/", sys.base_prefix + "/"):
            where = where.removeprefix(prefix)
        label = f"`{name}` ({where}:{line})" if line else f"`{name}`"
        print(f"| {label} | {tottime:.2f} | {100 * tottime / total:.1f} | {calls} | {cumtime:.2f} |")
    print()


def profiled_emulator(out: str, argv: list[str]) -> int:
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


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "profile":
        return profiled_emulator(sys.argv[2], sys.argv[3:])
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        parser = argparse.ArgumentParser(description="a load client process (run by the benchmark)")
        parser.add_argument("mode")
        parser.add_argument("--url", required=True)
        client_args = parser.parse_args()
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        asyncio.run(client_main(client_args.url))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step", type=int, default=50, help="sessions added per step (default 50)")
    parser.add_argument("--max-sessions", type=int, default=1000)
    parser.add_argument(
        "--steps",
        type=lambda s: sorted({int(x) for x in s.split(",")}),
        help="the session counts to try, comma-separated (instead of --step/--max-sessions)",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measured per step")
    parser.add_argument("--warmup", type=float, default=5.0, help="per step, before measuring")
    parser.add_argument("--reply-s", type=float, default=8.0,
                        help="length of each spoken reply (default 8 s)")
    parser.add_argument("--clients", type=int, default=2, help="load client processes (default 2)")
    parser.add_argument("--lag-limit-ms", type=float, default=50.0)
    parser.add_argument("--patience", type=int, default=2,
                        help="stop after this many steps in a row over the limit (default 2)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the emulator and clients (negative needs root)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then run the emulator under cProfile for one step of N sessions")
    args = parser.parse_args()
    steps = args.steps or ramp_steps(args.step, args.max_sessions)
    if not steps:
        parser.error("--max-sessions is below --step: no step to run")

    command = shlex.join(
        [Path(sys.executable).name, str(Path(__file__).relative_to(REPO)), *sys.argv[1:]]
    )
    started = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
        scenario = Path(tmp) / "capacity.scenario.yaml"
        words = ("Thank you for calling, this is the emulator speaking at real-time pace. " * 20)
        reply = words[: int(args.reply_s * CHARS_PER_SECOND)].strip()
        scenario.write_text(json.dumps({"name": "capacity", "fallback": reply, "turns": []}))
        print(f"emulator capacity: steps {steps}", file=sys.stderr, flush=True)
        rows = run_ramp(args, steps, scenario)
        profile_path = str(Path(tmp) / "emulator.prof")
        if args.profile:
            print(f"profiling the emulator at {args.profile} sessions", file=sys.stderr, flush=True)
            profiled = run_ramp(args, [args.profile], scenario, profile_path)
        load_after = os.getloadavg()
        print(f"command: (cd {REPO} && {command})")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python"
            f" {platform.python_version()}, realtalk at {git_commit(REPO)}"
        )
        print(
            f"load average (1/5/15 min) before: {', '.join(f'{x:.2f}' for x in load_before)};"
            f" after: {', '.join(f'{x:.2f}' for x in load_after)}; run took"
            f" {time.monotonic() - started:.0f} s"
        )
        print(
            f"realtalk emulator (real time) in its own process, {args.clients} load client"
            f" processes; replies of {args.reply_s:g} s; each step: {args.warmup:g} s warm-up,"
            f" {args.seconds:g} s measured; limit p99 <= {args.lag_limit_ms:g} ms\n"
        )
        report(rows, args.lag_limit_ms)
        if args.profile:
            print(f"### the emulator under cProfile, {args.profile} sessions\n")
            report(profiled, args.lag_limit_ms)
            if os.path.exists(profile_path):
                print_profile(profile_path)
            else:
                print("profile: the emulator wrote no profile\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
