"""Benchmark: what an HTTP tool call and an MCP tool call cost, against their bare floors.

Run on demand (pytest does not collect it)::

    python tests/benchmarks/bench_tool_sources.py --runs 1000 --peer-python /tmp/oa/bin/python

Everything is on loopback, the servers in their own processes (their CPU is not counted):

1. HTTP tool call. A small JSON endpoint (bare asyncio, keep-alive, started as
   ``bench_tool_sources.py --http-server``). Measured: the floor, one ``httpx2.AsyncClient``
   reused for every GET (keep-alive); a fresh ``AsyncClient`` per GET (what an HTTP tool
   did until the SSL context was shared: each client builds one, loading the CA bundle);
   a fresh client per GET given one shared ``ssl.SSLContext`` (what it does now); realtalk's HTTP tool (``http:`` section, ``returns:
   json``) called through :func:`realtalk.toolcalls.run_tool`, the path a session uses.
2. MCP tool call. A stdio server written with the SDK (``MCPServer``, a trivial ``echo``
   tool; ``bench_tool_sources.py --mcp-server``). Measured: the floor, ``mcp.client.Client``
   with ``StdioServerParameters`` calling ``echo``; realtalk's MCP tool, opened by the
   realtalk-mcp plugin's opener (``open_server``, what ``open_sources`` calls per server)
   and called through ``run_tool``; optionally (``--peer-python``) openai-agents'
   ``MCPServerStdio.call_tool``, run by that interpreter in a subprocess.
3. Server start: ``--starts`` times, from nothing to the server's tool list in hand (floor:
   ``Client`` entered + ``list_tools``; realtalk: ``open_server``, which also builds the
   tools; openai-agents: ``connect()`` + ``list_tools()``). Closing is not timed.

Per call: wall latency (p50, p99, nearest rank) and the client process's CPU time
(``time.process_time``, all its threads) per call. The variants of a part run interleaved,
``--batch`` calls at a time, the order alternating, so other load falls on all alike; the
garbage collector is frozen after setup.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import fmt, git_commit, percentile  # beside this script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve()
BODY = json.dumps({"city": "Lisbon", "current": {"temperature_2m": 21.5, "wind_speed_10m": 11.2}}).encode()
STARTUP_S = 30.0  # bound on a server's start (a cold import of the SDK)

# --- the servers (run as this script in a child process) ---------------------------------


def http_server() -> None:
    """A JSON endpoint on 127.0.0.1 (HTTP/1.1, keep-alive, one write per answer): prints
    its port, then serves until killed. Bare asyncio, so that the server adds little."""
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
              + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):  # GET: no body
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def mcp_server() -> None:
    """An MCP server over stdio with one trivial tool."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench")

    @server.tool()
    def echo(text: str) -> str:
        """Say text back."""
        return text

    server.run("stdio")


def mcp_command() -> tuple[str, list[str]]:
    return sys.executable, [str(SCRIPT), "--mcp-server"]


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Variant:
    """One way of making a call: ``call()`` does one; its measurements accumulate here."""

    name: str
    call: Callable[[], Awaitable[None]]
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    def row(self) -> str:
        ordered = sorted(self.latencies_ms)
        cpu_us = self.cpu_s / len(ordered) * 1e6 if ordered else float("nan")
        return (f"| {self.name} | {fmt(percentile(ordered, 0.5), 3)} | {fmt(percentile(ordered, 0.99), 3)} "
                f"| {fmt(cpu_us, 0)} |")


async def batch(variant: Variant, n: int) -> None:
    cpu = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        await variant.call()
        variant.latencies_ms.append((time.perf_counter() - t) * 1e3)
    variant.cpu_s += time.process_time() - cpu


async def interleaved(variants: list[Variant], runs: int, size: int, warmup: int) -> None:
    for variant in variants:
        await batch(variant, warmup)
        variant.latencies_ms.clear()
        variant.cpu_s = 0.0
    gc.collect()
    gc.freeze()
    done, turn = 0, 0
    while done < runs:
        n = min(size, runs - done)
        order = variants if turn % 2 == 0 else variants[::-1]
        for variant in order:
            await batch(variant, n)
        done += n
        turn += 1
    gc.unfreeze()


def table(title: str, variants: list[Variant]) -> None:
    print(f"\n{title}\n\n| | p50 ms | p99 ms | CPU µs/call |\n|---|---|---|---|")
    for variant in variants:
        print(variant.row())


# --- HTTP --------------------------------------------------------------------------------


def start_http_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--http-server"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    deadline = time.monotonic() + STARTUP_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}"


async def http_part(base: str, runs: int, size: int, warmup: int) -> list[Variant]:
    import httpx2
    from realtalk.httptools import http_handler
    from realtalk.toolcalls import run_tool
    from realtalk.tools import ToolContext, make_tool

    url = f"{base}/weather"
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    handler = http_handler("weather", {"url": f"{base}/weather", "query": {"city": "{city}"}}, parameters,
                           plugin="bench")
    tool = make_tool("weather", "The weather.", parameters, handler, plugin="bench")
    context = ToolContext("call_1", "weather", "bench")

    ssl_context = httpx2.create_ssl_context()
    async with httpx2.AsyncClient() as reused:
        async def floor_reused() -> None:
            response = await reused.get(url, params={"city": "Lisbon"})
            json.loads(response.content)

        async def floor_fresh() -> None:
            async with httpx2.AsyncClient() as client:
                response = await client.get(url, params={"city": "Lisbon"})
                json.loads(response.content)

        async def floor_fresh_shared_ssl() -> None:
            async with httpx2.AsyncClient(verify=ssl_context) as client:
                response = await client.get(url, params={"city": "Lisbon"})
                json.loads(response.content)

        async def realtalk_tool() -> None:
            outcome = await run_tool(tool, {"city": "Lisbon"}, context)
            assert outcome.status == "ok", outcome.output

        variants = [Variant("floor: httpx2.AsyncClient reused", floor_reused),
                    Variant("floor: fresh httpx2.AsyncClient per call", floor_fresh),
                    Variant("floor: fresh httpx2.AsyncClient per call, one SSL context", floor_fresh_shared_ssl),
                    Variant("realtalk HTTP tool, `run_tool`", realtalk_tool)]
        await interleaved(variants, runs, size, warmup)
    return variants


# --- MCP ---------------------------------------------------------------------------------


def mcp_spec() -> Any:
    from realtalk.toolsources import parse_servers

    command, args = mcp_command()
    return parse_servers([{"name": "bench", "command": command, "args": args, "startup_timeout_s": STARTUP_S}])[0]


def stdio_params() -> Any:
    from mcp.client.stdio import StdioServerParameters

    command, args = mcp_command()
    return StdioServerParameters(command=command, args=args)


async def open_realtalk() -> Any:
    from realtalk_mcp.source import open_server

    return await open_server(mcp_spec(), lambda warning: print("warning:", warning, file=sys.stderr))


async def mcp_part(runs: int, size: int, warmup: int) -> list[Variant]:
    from mcp.client import Client
    from realtalk.toolcalls import run_tool
    from realtalk.tools import ToolContext

    source = await open_realtalk()
    try:
        (tool,) = source.tools
        context = ToolContext("call_1", tool.name, "bench")
        async with Client(stdio_params()) as client:
            async def floor() -> None:
                result = await client.call_tool("echo", {"text": "hi"})
                assert not result.is_error

            async def realtalk_tool() -> None:
                outcome = await run_tool(tool, {"text": "hi"}, context)
                assert outcome.status == "ok", outcome.output

            variants = [Variant("floor: `mcp.client.Client.call_tool`", floor),
                        Variant("realtalk MCP tool, `run_tool`", realtalk_tool)]
            await interleaved(variants, runs, size, warmup)
    finally:
        await source.aclose()
    return variants


async def starts(count: int) -> list[Variant]:
    from mcp.client import Client

    async def floor() -> None:
        async with Client(stdio_params()) as client:
            await client.list_tools()
            floor_variant.latencies_ms.append((time.perf_counter() - started) * 1e3)

    async def realtalk_open() -> None:
        source = await open_realtalk()
        realtalk_variant.latencies_ms.append((time.perf_counter() - started) * 1e3)
        await source.aclose()

    floor_variant = Variant("floor: `Client` entered + `list_tools`", floor)
    realtalk_variant = Variant("realtalk-mcp `open_server` (start, list, build tools)", realtalk_open)
    variants = [floor_variant, realtalk_variant]
    for i in range(count + 1):
        for variant in variants if i % 2 == 0 else variants[::-1]:
            started = time.perf_counter()
            await variant.call()
            if i == 0:  # a warm-up start: the interpreter's first imports
                variant.latencies_ms.clear()
    return variants


def start_table(variants: list[Variant]) -> None:
    print("\n| server start → tool list in hand | p50 ms | max ms |\n|---|---|---|")
    for variant in variants:
        ordered = sorted(variant.latencies_ms)
        print(f"| {variant.name} | {fmt(percentile(ordered, 0.5), 1)} | {fmt(ordered[-1] if ordered else float('nan'), 1)} |")


# --- the openai-agents peer (run by its interpreter) -----------------------------------------


async def peer_worker(runs: int, count: int) -> dict[str, Any]:
    """openai-agents' ``MCPServerStdio``: start times and per-call latency and CPU."""
    from agents.mcp import MCPServerStdio

    command, args = json.loads(os.environ["BENCH_MCP_COMMAND"])
    params = {"command": command, "args": args}
    start_ms = []
    for i in range(count + 1):
        server = MCPServerStdio(params, client_session_timeout_seconds=STARTUP_S)
        t = time.perf_counter()
        await server.connect()
        await server.list_tools()
        if i:
            start_ms.append((time.perf_counter() - t) * 1e3)
        await server.cleanup()
    server = MCPServerStdio(params, client_session_timeout_seconds=STARTUP_S)
    await server.connect()
    try:
        await server.list_tools()
        variant = Variant("openai-agents `MCPServerStdio.call_tool`", lambda: _peer_call(server))
        await interleaved([variant], runs, runs, max(10, runs // 20))
    finally:
        await server.cleanup()
    return {"start_ms": start_ms, "latencies_ms": variant.latencies_ms, "cpu_s": variant.cpu_s}


async def _peer_call(server: Any) -> None:
    result = await server.call_tool("echo", {"text": "hi"})
    assert not result.is_error


def run_peer(python: str, runs: int, count: int) -> dict[str, Any] | str:
    env = {**os.environ, "BENCH_MCP_COMMAND": json.dumps(mcp_command())}
    done = subprocess.run([python, str(SCRIPT), "--peer-worker", "--mcp-runs", str(runs), "--starts", str(count)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    if done.returncode != 0:
        return f"the peer failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- main --------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


async def measure(args: argparse.Namespace, base: str) -> None:
    size, warmup = args.batch, max(20, args.runs // 20)
    http = await http_part(base, args.runs, size, warmup)
    table(f"HTTP tool call, {args.runs} calls each (GET, 96-byte JSON answer, keep-alive server):", http)
    mcp = await mcp_part(args.mcp_runs, size, warmup)
    peer = run_peer(args.peer_python, args.mcp_runs, args.starts) if args.peer_python else None
    if isinstance(peer, dict):
        variant = Variant("openai-agents `MCPServerStdio.call_tool` (own process, not interleaved)", _nothing,
                          peer["latencies_ms"], peer["cpu_s"])
        mcp.append(variant)
    table(f"MCP tool call (stdio, `echo`), {args.mcp_runs} calls each:", mcp)
    started = await starts(args.starts)
    if isinstance(peer, dict):
        started.append(Variant("openai-agents `connect()` + `list_tools()`", _nothing, peer["start_ms"]))
    start_table(started)
    if isinstance(peer, str):
        print(f"\nopenai-agents: {peer}")


async def _nothing() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000, help="HTTP calls per variant (default 1000)")
    parser.add_argument("--mcp-runs", type=int, default=1000, help="MCP calls per variant (default 1000)")
    parser.add_argument("--starts", type=int, default=10, help="server starts per variant (default 10)")
    parser.add_argument("--batch", type=int, default=50, help="calls in a row per variant (default 50)")
    parser.add_argument("--core", type=Path, default=REPO / "core",
                        help="the realtalk core/ to measure (default: this work tree's), e.g. a baseline worktree's")
    parser.add_argument("--peer-python", help="an interpreter with openai-agents (e.g. /tmp/oa/bin/python)")
    parser.add_argument("--http-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mcp-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.http_server:
        http_server()
        return
    if args.mcp_server:
        mcp_server()
        return
    if args.peer_worker:
        print(json.dumps(asyncio.run(peer_worker(args.mcp_runs, args.starts))))
        return
    sys.path[:0] = [str(args.core.resolve()), str(args.core.resolve().parent / "plugins" / "realtalk-mcp")]
    import realtalk

    print(f"commit {git_commit(REPO)}, realtalk from {Path(realtalk.__file__).parent}, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load_average()}")
    proc, base = start_http_server()
    try:
        asyncio.run(measure(args, base))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
