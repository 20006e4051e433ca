"""Benchmark: how many real-time voice sessions one client process holds (p99 lag <= 50 ms).

Not part of the test suite (pytest collects only ``test_*.py``). Run it from the work tree::

    .venv/bin/python tests/benchmarks/bench_concurrency.py            # floor, floor-fast, then realtalk
    .venv/bin/python tests/benchmarks/bench_concurrency.py --profile 100

realtalk is imported from the work tree's ``core/`` (first on ``sys.path`` in the client
process), or from ``--core DIR`` (say, an export of a commit, to compare two versions).

Processes, all on 127.0.0.1:

- a load server (``concurrency_server.py``, one process per ``--servers``): for each
  session, after the setup handshake and from the session's first input audio on, real-time
  assistant audio, one ``response.output_audio.delta`` of 100 ms every 100 ms, inside
  responses of ``--response-s`` seconds; each delta carries the server's send time;
- one fresh client process per variant (``concurrency_client.py``), ramping up sessions:
  ``floor`` (bare websockets + ``json.loads`` + ``base64.b64decode``: the reference),
  ``floor-fast`` (bare websockets + ``orjson`` + ``pybase64``) and ``realtalk``
  (``open_session(..., output=WavFileSink(os.devnull, realtime=True))`` per session; the
  sink plays at real-time pace, like a speaker). All send 100 ms of silence every 100 ms
  per session. On request, ``realtalk-instant``: the same with ``realtime=False``
  (everything fed counts as played at once), to see what real-time pacing costs.

Per step (``--warmup`` s after the step's sessions started, then ``--seconds`` s measured):
lag = the client's time the delta reached the handover point (floor: decoded; realtalk: the
sink's ``feed``) minus the server's send time, as p50/p99/max over every delta of every
session; the client's CPU (all threads; 100 % = one core) and its event-loop thread's; the
client's CPU time per delta received (``CPU us/delta``: all the client's work, the appends
it sends included, divided by the deltas it handled; it does not move with the machine's
load, so it is the number to compare two versions with on a busy machine); how
long that thread waited for a CPU held by other processes (``runq``: high means the
machine, not the client, was the limit); RSS, and RSS per session (RSS at N minus RSS
before any session, / N); garbage-collector runs and the longest; the server's CPU and how
late its sends were against their schedule (if that grows, the server is the bottleneck).
The ramp stops after ``--patience`` steps in a row with p99 over ``--lag-limit-ms`` or
client CPU over ``--cpu-limit``; a step where the server's own sends were late by more than
the lag limit is marked (the machine, not the client, spoiled it). The
idle cost (sessions open, no audio) is measured with the first step's sessions.

``--gc-freeze`` makes the clients call ``gc.freeze()`` once their imports are done, before
any session opens: full collections then skip the tens of thousands of objects of the
imported modules (what a server application can do at start-up).

``--profile N`` then runs realtalk at N sessions once more under cProfile (the event-loop
thread, where all of realtalk's work happens: the real-time sinks run no thread) and prints the top functions by own time:
CPU time of that thread (``--profile-clock cpu``, the default), or wall time, which also
counts the time a call waited for the GIL or a lock (``wall``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from benchkit import fmt, git, niced, ramp_steps  # beside this script

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVER = HERE / "concurrency_server.py"
CLIENT = HERE / "concurrency_client.py"
VARIANTS = ("floor", "floor-fast", "realtalk", "realtalk-instant")


def nice_autogroup(nice: int) -> str:
    """Give the benchmark's own autogroup the niceness too; say what was done.

    With autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``, on in many
    Linux kernels and containers) the CPU is first shared evenly between sessions (each
    terminal, each job of a CI runner), and a process's nice value only counts inside its
    own session: ``nice -n -15`` alone does not win the CPU from a test suite running in
    another session. Writing the value to ``/proc/self/autogroup`` does (negative needs
    root); the servers and clients we start are in our session.
    """
    group = Path("/proc/self/autogroup")
    if not nice or not group.exists():
        return "no autogroup change"
    try:
        group.write_text(str(nice))
    except OSError as exc:
        return f"autogroup nice not set ({exc.strerror or exc})"
    return f"autogroup: {group.read_text().strip()}"


# -- the load server ---------------------------------------------------------------------


class LoadServer:
    """One server process; keeps its per-second counters (``t``, cumulative ``cpu``...)."""

    def __init__(self, response_s: float, nice: int) -> None:
        cmd = [sys.executable, str(SERVER), "--port", "0", "--response-s", str(response_s)]
        self.proc = subprocess.Popen(
            niced(nice, cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            raise SystemExit(f"the load server did not start (exit code {self.proc.wait()})")
        self.url = f"ws://127.0.0.1:{json.loads(first)['port']}"
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(json.loads(line))

    def window(self, t0: float, t1: float) -> dict[str, float]:
        """CPU % and the latest send (ms) between two times of the client's measurement."""
        lines = list(self.lines)
        before = [x for x in lines if x["t"] <= t0] or lines[:1]
        after = [x for x in lines if x["t"] >= t1] or lines[-1:]
        inside = [x for x in lines if t0 < x["t"] <= t1 + 1.0]
        a, b = before[-1], after[0]
        span = b["t"] - a["t"]
        return {
            "cpu_pct": 100 * (b["cpu"] - a["cpu"]) / span if span > 0 else float("nan"),
            "late_max_ms": max((x["late_max_ms"] for x in inside), default=float("nan")),
        }

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the server exits on EOF
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- a client process --------------------------------------------------------------------


def run_client(
    variant: str,
    servers: list[LoadServer],
    steps: list[int],
    args: argparse.Namespace,
    cprofile: str | None = None,
) -> list[dict[str, Any]]:
    cmd = [
        sys.executable,
        str(CLIENT),
        variant,
        "--url",
        ",".join(s.url for s in servers),
        "--steps",
        ",".join(map(str, steps)),
        "--seconds",
        str(args.seconds),
        "--warmup",
        str(args.warmup),
        "--lag-limit-ms",
        str(args.lag_limit_ms),
        "--cpu-limit",
        str(args.cpu_limit),
        "--patience",
        str(args.patience),
        "--cprofile-clock",
        args.profile_clock,
        "--core",
        str(args.core),
    ]
    if cprofile:
        cmd += ["--cprofile", cprofile]
    if args.gc_freeze:
        cmd.append("--gc-freeze")
    proc = subprocess.Popen(niced(args.nice, cmd), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    records: list[dict[str, Any]] = []
    for line in proc.stdout:
        record = json.loads(line)
        records.append(record)
        if record["kind"] == "step":
            windows = [s.window(record["t0"], record["t1"]) for s in servers]
            record["server_cpu_pct"] = sum(w["cpu_pct"] for w in windows)
            record["server_late_ms"] = max(w["late_max_ms"] for w in windows)
            print(
                f"  {variant} {record['sessions']:>5} sessions: p99 {record['p99_ms']:.1f} ms,"
                f" CPU {record['cpu_pct']:.0f} %"
                f" ({1e6 * record['cpu_s'] / max(1, record['deltas']):.0f} us/delta),"
                f" server CPU {record['server_cpu_pct']:.0f} %",
                file=sys.stderr,
                flush=True,
            )
        elif record["kind"] in ("failed", "closed") and (
            record.get("failures") or record.get("errors")
        ):
            print(f"  {variant}: {record}", file=sys.stderr, flush=True)
    if proc.wait() != 0:
        print(f"  {variant}: the client process exited with {proc.returncode}", file=sys.stderr)
    return records


# -- the report --------------------------------------------------------------------------


def mark(step: dict[str, Any], limit_ms: float) -> str:
    """A dagger where the server itself sent late: the machine, not the client, was short."""
    return " †" if step["server_late_ms"] > limit_ms else ""


def report(variant: str, records: list[dict[str, Any]], limit_ms: float) -> int | None:
    steps = [r for r in records if r["kind"] == "step"]
    ok = [r["sessions"] for r in steps if r["p99_ms"] <= limit_ms and not r["dead"]]
    best = max(ok) if ok else None
    print(f"### {variant}\n")
    print(
        "| sessions | lag p50 ms | p99 ms | max ms | client CPU % | CPU us/delta "
        "| loop thread CPU % | runq % | RSS MB "
        "| RSS/session KB | GC runs (gen 2) | longest GC ms | server CPU % | server late ms "
        "| load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in steps:
        bold = "**" if r["sessions"] == best else ""
        per_session = (r["rss"] - r["base"]) / r["sessions"] / 1024
        per_delta = 1e6 * r["cpu_s"] / r["deltas"] if r["deltas"] else float("nan")
        print(
            f"| {bold}{r['sessions']}{bold} | {fmt(r['p50_ms'])} | {bold}{fmt(r['p99_ms'])}{bold}"
            f" | {fmt(r['max_ms'])} | {fmt(r['cpu_pct'], 0)} | {fmt(per_delta, 0)}"
            f" | {fmt(r['loop_cpu_pct'], 0)}"
            f" | {fmt(r['runq_wait_pct'], 0)}"
            f" | {r['rss'] / 2**20:.0f} | {per_session:.0f}"
            f" | {r['gc_runs']} ({r['gc_gen2']}) | {fmt(r['gc_longest_ms'])}"
            f" | {fmt(r['server_cpu_pct'], 0)} | {fmt(r['server_late_ms'])}{mark(r, limit_ms)}"
            f" | {r['load']:.1f} |"
        )
    for r in records:
        if r["kind"] == "idle":
            print(
                f"\nidle: {r['sessions']} sessions open, no audio: "
                f"{(r['rss'] - r['base']) / r['sessions'] / 1024:.0f} KB RSS per session, "
                f"{r.get('gc_objects', float('nan')):.0f} objects tracked by the garbage collector"
                f" per session; client CPU {r['cpu_pct']:.1f} %; opened in {r['open_s']:.1f} s; "
                f"RSS before any session {r['base'] / 2**20:.0f} MB"
            )
        elif r["kind"] == "failed":
            print(
                f"\nsessions failed to open at {r['sessions']}: {r['count']} ({r['failures'][0]})"
            )
        elif r["kind"] == "closed" and (r["pending"] or r["error_count"]):
            print(
                f"\nclosing: {r['pending']} sessions did not close in 30 s, "
                f"{r['error_count']} ended with an error ({'; '.join(r['errors'])})"
            )
    if any(mark(r, limit_ms) for r in steps):
        print(f"\n†: the server's own sends were over {limit_ms:g} ms late in this step")
    reached = f"{best}" if best else "none"
    if best is not None and steps and best == steps[-1]["sessions"]:
        reached += " (the last step: the limit is higher)"
    print(f"\nmost sessions with p99 <= {limit_ms:g} ms: **{reached}**\n")
    return best


def print_profile(path: str, seconds: float, sessions: int, clock: str, top: int = 20) -> None:
    stats = pstats.Stats(path)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    # Waiting in epoll is the loop being idle, not work.
    rows = [(key, v) for key, v in rows if "epoll" not in key[2] and "select" not in key[2]]
    total = sum(v[2] for _, v in rows)
    what = "CPU time" if clock == "cpu" else "wall time (GIL and lock waits included)"
    print(
        f"### realtalk under cProfile, {sessions} sessions, {seconds:.0f} s, event-loop thread,"
        f" own {what}\n"
    )
    print(
        f"profiled own time outside epoll: {total:.2f} s, {100 * total / seconds:.0f} % of the"
        " window (cProfile inflates Python-level calls); own % is of that time\n"
    )
    print("| function | own s | own % | calls | cumulative s |\n|---|---:|---:|---:|---:|")
    for (file, line, name), (_cc, calls, tottime, cumtime, _callers) in rows[:top]:
        where = file
        for prefix in (str(REPO) + "/", sys.prefix + "/", sys.base_prefix + "/"):
            where = where.removeprefix(prefix)
        label = f"`{name}` ({where}:{line})" if line else f"`{name}`"
        print(
            f"| {label} | {tottime:.2f} | {100 * tottime / total:.1f} | {calls} | {cumtime:.2f} |"
        )
    print()


def core_description(core: Path) -> str:
    if core.resolve() != (REPO / "core").resolve():
        return f"realtalk from {core}"
    try:
        head = git(REPO, "rev-parse", "--short", "HEAD", check=True).strip()
        dirty = git(REPO, "status", "--porcelain", "--", "core", check=True).split("\n")
    except (OSError, subprocess.SubprocessError):
        return "realtalk from the work tree's core/"
    changed = [line[3:] for line in dirty if line.strip()]
    note = f", with uncommitted changes in {', '.join(changed)}" if changed else ""
    return f"realtalk from the work tree's core/ at {head}{note}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variants",
        default="floor,floor-fast,realtalk",
        help="comma-separated, in order (default floor,floor-fast,realtalk); also"
        " realtalk-instant: the sink without real-time pacing",
    )
    parser.add_argument(
        "--step",
        type=int,
        default=50,
        help="sessions added per step (doubled after 6 steps; default 50)",
    )
    parser.add_argument("--max-sessions", type=int, default=1000)
    parser.add_argument(
        "--steps",
        type=lambda s: sorted({int(x) for x in s.split(",")}),
        help="the session counts to try, comma-separated (instead of --step/--max-sessions)",
    )
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="measured per step (default 15)"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="per step, before measuring")
    parser.add_argument(
        "--response-s",
        type=float,
        default=3.0,
        help="length of each server response in seconds (default 3)",
    )
    parser.add_argument("--servers", type=int, default=1, help="load server processes (default 1)")
    parser.add_argument("--lag-limit-ms", type=float, default=50.0)
    parser.add_argument(
        "--cpu-limit",
        type=float,
        default=95.0,
        help="stop the ramp at this client CPU %% (default 95)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server and clients at this niceness, and set it for the benchmark's"
        " autogroup too (negative needs root; for a machine shared with other work)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="then profile realtalk at N sessions (cProfile; 0: off)",
    )
    parser.add_argument("--profile-clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="the clients call gc.freeze() after their imports, before opening sessions"
        " (as a server application can): full collections then skip the modules' objects",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=2,
        help="stop a ramp after this many steps in a row over the limits (default 2)",
    )
    parser.add_argument(
        "--core",
        type=Path,
        default=REPO / "core",
        help="import realtalk from here (default: the work tree's core/)",
    )
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}: choose from {VARIANTS}")
    steps = args.steps or ramp_steps(args.step, args.max_sessions)
    if not steps:
        parser.error("--max-sessions is below --step: no step to run")

    command = shlex.join(
        [Path(sys.executable).name, str(Path(__file__).relative_to(REPO)), *sys.argv[1:]]
    )
    started = time.monotonic()
    autogroup = nice_autogroup(args.nice)
    load_before = os.getloadavg()
    servers = [LoadServer(args.response_s, args.nice) for _ in range(args.servers)]
    results: dict[str, list[dict[str, Any]]] = {}
    scratch = tempfile.TemporaryDirectory(prefix="bench-concurrency-")
    profile_path = str(Path(scratch.name) / "realtalk.prof") if args.profile else ""
    try:
        for variant in variants:
            print(f"{variant}: steps {steps}", file=sys.stderr, flush=True)
            results[variant] = run_client(variant, servers, steps, args)
        if args.profile:
            print(f"profiling realtalk at {args.profile} sessions", file=sys.stderr, flush=True)
            results["profile"] = run_client("realtalk", servers, [args.profile], args, profile_path)
    finally:
        for server in servers:
            server.stop()
    load_after = os.getloadavg()

    print(f"command: (cd {REPO} && {command})")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {core_description(args.core)}"
    )
    print(
        f"nice {args.nice}, {autogroup}; load average (1/5/15 min) before: "
        f"{', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}; run took "
        f"{time.monotonic() - started:.0f} s"
    )
    print(
        f"{args.servers} load server process(es), no compression, responses of "
        f"{args.response_s:g} s of real-time audio (a 100 ms delta every 100 ms per session); "
        f"{'gc.freeze() after imports; ' if args.gc_freeze else ''}"
        f"each step: {args.warmup:g} s warm-up, {args.seconds:g} s measured; "
        f"limit p99 <= {args.lag_limit_ms:g} ms, client CPU < {args.cpu_limit:g} %\n"
    )
    best = {v: report(v, results[v], args.lag_limit_ms) for v in variants}
    print(
        "most sessions with p99 <= {:g} ms: {}\n".format(
            args.lag_limit_ms,
            ", ".join(f"{v} {b if b is not None else 'none'}" for v, b in best.items()),
        )
    )
    if profile_path:
        if os.path.exists(profile_path):
            steps_run = [r for r in results["profile"] if r["kind"] == "step"]
            window = steps_run[0]["t1"] - steps_run[0]["t0"] if steps_run else args.seconds
            print_profile(profile_path, window, args.profile, args.profile_clock)
        else:
            print("profile: the client wrote no profile (did the session fail to open?)\n")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
