"""Benchmark: client CPU per received server event, realtalk against a bare socket and its peers.

Not part of the test suite (pytest collects only ``test_*.py``). Run it from the project
venv::

    python tests/benchmarks/bench_ingest.py                 # 9 rounds, 3,000 audio deltas
    python tests/benchmarks/bench_ingest.py --rounds 3 --deltas 1000   # a quick look

A synthetic GA server runs in its own process (this file with ``--serve``: websockets on
127.0.0.1, no permessage-deflate). On connect it sends ``session.created``; it answers
``session.update`` with ``session.updated`` (the update merged into its session, so
instructions and tools are echoed), ``conversation.item.create`` with
``conversation.item.added`` + ``conversation.item.done``, and ``response.create`` with one
audio response: ``response.created``, the output item and content part, ``--deltas``
``response.output_audio.delta`` (100 ms of 24 kHz PCM16 each: 4,800 bytes, base64)
interleaved with as many ``response.output_audio_transcript.delta``, then the ``.done``
events and ``response.done``. A connection to the path ``/bare`` gets the response right
after ``session.created`` (the bare client sends nothing). The deltas are encoded once, as
WebSocket frames, and each response writes them to the socket in one go: the server is never
what a client waits for, so every client reads full buffers and is measured at its own
pace, not at the server's. Every event shape is checked against
``openai.types.realtime`` before the run (``realtalk.emulator.conformance``).

Each client runs in a fresh interpreter per round; its CPU (``time.process_time()``: all
of its threads, user + system) is measured from the moment it is connected and configured
(imports, plugin loading, connect and ``session.update`` excluded) until it has the
``response.done`` (for realtalk: until ``session.ask`` returns), and divided by the number
of events in the response. The clients:

1. bare socket (the floor): ``websockets`` + ``json.loads`` + ``base64.b64decode`` of audio;
   and the same with the fast codec realtalk uses (``recv(decode=False)`` + ``orjson.loads``
   + ``pybase64.b64decode``): the honest fast floor;
2. realtalk, WAV file: ``WavFileSink(path, realtime=False)`` (``run --output`` in text
   mode), ``open_session(url=..., output=...)`` + ``session.ask``;
3. realtalk, real-time sink: ``WavFileSink(path, realtime=True)``, a thread consuming at
   real-time pace, as a speaker does (``run --output`` in voice mode); the response arrives
   in about a second, so the window holds the feeding and the thread's ticks, not the
   writing of the minutes of audio that play out afterwards;
4. realtalk, no audio output (``output=None``, not text-only): audio deltas are not even
   base64-decoded, which the floor does;
5. the ``openai`` SDK: ``AsyncOpenAI(...).realtime.connect()``, ``response.create``, its
   typed events until ``response.done`` (audio deltas base64-decoded);
6. openai-agents: ``RealtimeRunner(...).run(model_config={"url": ...})``,
   ``send_message``, its session events until the raw ``response.done``. It runs under
   ``--peer-python`` (openai-agents is not a realtalk dependency); without it the row says
   "not installed".

The order of the clients rotates each round; the table has the median over rounds. The
server runs on another core while a client measures, so on a busy machine the numbers move:
the load average before and after is printed.

``--profile CLIENT`` runs one client once under cProfile (its measured window only, the main
thread's CPU time) and prints its top functions by own time per event instead of the table.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchkit import git_commit  # beside this script

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve()
PEER_PYTHON = "/tmp/oa/bin/python"
PEER_HINT = (
    "openai-agents is not installed in {python}; install it in a scratch venv: "
    "python3 -m venv /tmp/oa && /tmp/oa/bin/pip install openai-agents websockets, "
    "then pass --peer-python /tmp/oa/bin/python"
)

CHUNK_BYTES = 4800  # 100 ms of 24 kHz PCM16 mono
INSTRUCTIONS = "Read the long text aloud."
USER_TEXT = "Read it."
WORD = " word"
RESPONSE_ID = "resp_ingest000000001"
ITEM_ID = "item_ingest000000001"
EXTRA_EVENTS = 10  # response.created ... response.done, besides the deltas
CLIENT_TIMEOUT_S = 300


def stream_event_count(deltas: int) -> int:
    """Events from ``response.created`` to ``response.done``: the deltas and the 10 others."""
    return 2 * deltas + EXTRA_EVENTS


# -- the synthetic server -------------------------------------------------------------------


def audio_chunk() -> bytes:
    """100 ms of a 440 Hz tone, PCM16 LE."""
    samples = array.array(
        "h", (int(8000 * math.sin(2 * math.pi * 440 * n / 24000)) for n in range(CHUNK_BYTES // 2))
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def default_session() -> dict[str, Any]:
    """The emulator's session of a new connection, with a fixed id and these instructions."""
    from realtalk.emulator.config import default_session as emulator_session

    session = emulator_session("gpt-realtime", int(time.time()) + 3600)
    session.update(id="sess_ingest0001", instructions="You are a helpful assistant.")
    return session


def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """Apply a ``session.update``'s session: objects merge, everything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def delta_events(deltas: int) -> list[dict[str, Any]]:
    """The interleaved audio and transcript deltas (the same for every connection)."""
    ids = {"response_id": RESPONSE_ID, "item_id": ITEM_ID, "output_index": 0, "content_index": 0}
    b64 = base64.b64encode(audio_chunk()).decode("ascii")
    events: list[dict[str, Any]] = []
    for n in range(deltas):
        events.append(
            {"type": "response.output_audio.delta", "event_id": f"event_a{n}", **ids, "delta": b64}
        )
        events.append(
            {
                "type": "response.output_audio_transcript.delta",
                "event_id": f"event_t{n}",
                **ids,
                "delta": WORD,
            }
        )
    return events


def response_events(
    deltas: int, previous_item_id: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The events before and after the deltas, for a response following ``previous_item_id``."""
    ids = {"response_id": RESPONSE_ID, "item_id": ITEM_ID, "output_index": 0, "content_index": 0}
    transcript = WORD * deltas
    response: dict[str, Any] = {
        "id": RESPONSE_ID,
        "object": "realtime.response",
        "status": "in_progress",
        "status_details": None,
        "output": [],
        "conversation_id": "conv_ingest",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}},
        "metadata": None,
        "usage": None,
    }
    item: dict[str, Any] = {
        "id": ITEM_ID,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    done_item = {
        **item,
        "status": "completed",
        "content": [{"type": "output_audio", "transcript": transcript}],
    }
    place = {"previous_item_id": previous_item_id}
    head = [
        {"type": "response.created", "response": response},
        {"type": "response.output_item.added", **_slot(), "item": item},
        {"type": "conversation.item.added", **place, "item": item},
        {"type": "response.content_part.added", **ids, "part": {"type": "audio", "transcript": ""}},
    ]
    audio_tokens = deltas * 2  # 100 ms is 2 tokens at 50 ms a token
    text_tokens = len(transcript) // 16 + 1
    usage = {
        "total_tokens": audio_tokens + text_tokens + 10,
        "input_tokens": 10,
        "output_tokens": audio_tokens + text_tokens,
        "input_token_details": {
            "text_tokens": 10,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
    }
    tail = [
        {"type": "response.output_audio.done", **ids},
        {"type": "response.output_audio_transcript.done", **ids, "transcript": transcript},
        {
            "type": "response.content_part.done",
            **ids,
            "part": {"type": "audio", "transcript": transcript},
        },
        {"type": "conversation.item.done", **place, "item": done_item},
        {"type": "response.output_item.done", **_slot(), "item": done_item},
        {
            "type": "response.done",
            "response": {
                **response,
                "status": "completed",
                "status_details": {"type": "completed"},
                "output": [done_item],
                "usage": usage,
            },
        },
        {
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "tokens", "limit": 40000, "remaining": 30000, "reset_seconds": 1.5}
            ],
        },
    ]
    for n, event in enumerate([*head, *tail]):
        event["event_id"] = f"event_r{n}"
    return head, tail


def _slot() -> dict[str, Any]:
    return {"response_id": RESPONSE_ID, "output_index": 0}


def conformance_problems() -> list[str]:
    """Every event shape the server sends, checked against ``openai.types.realtime``."""
    from realtalk.emulator.conformance import server_event_problems

    head, tail = response_events(2, "item_user")
    session = default_session()
    user_item = {
        "id": "item_user",
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": USER_TEXT}],
    }
    others = [
        {"type": "session.created", "event_id": "event_s0", "session": session},
        {"type": "session.updated", "event_id": "event_s1", "session": session},
        {
            "type": "conversation.item.added",
            "event_id": "event_u0",
            "item": user_item,
            "previous_item_id": None,
        },
        {
            "type": "conversation.item.done",
            "event_id": "event_u1",
            "item": user_item,
            "previous_item_id": None,
        },
    ]
    return server_event_problems([*others, *head, *delta_events(2), *tail])


async def serve(deltas: int) -> None:
    """Serve until stdin closes; print the port first."""
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve
    from websockets.exceptions import ConnectionClosed
    from websockets.frames import Frame, Opcode

    # Framed once (server frames are unmasked; no extension is negotiated).
    blob = b"".join(
        Frame(Opcode.TEXT, json.dumps(e, separators=(",", ":")).encode()).serialize(mask=False)
        for e in delta_events(deltas)
    )
    counter = iter(range(10**9))

    def dumps(event: dict[str, Any]) -> str:
        event.setdefault("event_id", f"event_c{next(counter)}")
        return json.dumps(event, separators=(",", ":"))

    async def stream(ws: ServerConnection, previous: str | None) -> None:
        head, tail = response_events(deltas, previous)
        for event in head:
            await ws.send(dumps(event))
        ws.transport.write(blob)  # buffered by asyncio; the next send() waits for the drain
        for event in tail:
            await ws.send(dumps(event))

    async def handle(ws: ServerConnection) -> None:
        session = default_session()
        items: list[str] = []
        try:
            await ws.send(dumps({"type": "session.created", "session": session}))
            if ws.request is not None and ws.request.path.startswith("/bare"):
                await stream(ws, None)
            async for message in ws:
                event = json.loads(message)
                kind = event.get("type")
                if kind == "session.update":
                    merge(session, event.get("session") or {})
                    await ws.send(dumps({"type": "session.updated", "session": session}))
                elif kind == "conversation.item.create":
                    item = dict(event.get("item") or {})
                    item.setdefault("id", f"item_user{len(items)}")
                    item.update(object="realtime.item", status="completed")
                    previous = items[-1] if items else None
                    for done in ("added", "done"):
                        await ws.send(
                            dumps(
                                {
                                    "type": f"conversation.item.{done}",
                                    "item": item,
                                    "previous_item_id": previous,
                                }
                            )
                        )
                    items.append(item["id"])
                elif kind == "response.create":
                    await stream(ws, items[-1] if items else None)
                    items.append(ITEM_ID)
        except ConnectionClosed:
            pass

    async with ws_serve(handle, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# -- the clients (each in a fresh interpreter: this file with --client NAME) --------------

PROFILE: dict[str, Any] = {}  # "out": where the measured window's cProfile stats go


def window_start() -> float:
    """Start the measured window (and the profiler, with ``--profile``)."""
    if "out" in PROFILE:
        import cProfile

        # CPU time of this thread, not wall time: on a loaded machine, time spent preempted
        # would otherwise land on whatever function was running.
        PROFILE["profiler"] = cProfile.Profile(time.thread_time)
        PROFILE["profiler"].enable()
    return time.process_time()


def window_end(start: float) -> float:
    """The window's CPU seconds; stops the profiler and writes its stats."""
    cpu = time.process_time() - start
    profiler = PROFILE.pop("profiler", None)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(PROFILE["out"])
    return cpu


async def client_bare(url: str, tmp: Path) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    async with connect(url.replace("/v1/realtime", "/bare"), compression=None, max_size=None) as ws:
        start = window_start()
        events = audio = 0
        async for message in ws:
            event = json.loads(message)
            events += 1
            kind = event["type"]
            if kind == "response.output_audio.delta":
                audio += len(base64.b64decode(event["delta"]))
            elif kind == "response.done":
                break
        cpu = window_end(start)
    return {"cpu_s": cpu, "events": events - 1, "audio_bytes": audio}  # less session.created


async def client_bare_fast(url: str, tmp: Path) -> dict[str, Any]:
    import orjson
    import pybase64
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url.replace("/v1/realtime", "/bare"), compression=None, max_size=None) as ws:
        start = window_start()
        events = audio = 0
        with contextlib.suppress(ConnectionClosed):
            while True:
                event = orjson.loads(await ws.recv(decode=False))
                events += 1
                kind = event["type"]
                if kind == "response.output_audio.delta":
                    audio += len(pybase64.b64decode(event["delta"]))
                elif kind == "response.done":
                    break
        cpu = window_end(start)
    return {"cpu_s": cpu, "events": events - 1, "audio_bytes": audio}  # less session.created


async def client_realtalk(url: str, tmp: Path, sink: str) -> dict[str, Any]:
    from realtalk.audio import WavFileSink
    from realtalk.runner import open_session

    agent = tmp / "ingest.yaml"
    agent.write_text(f"name: ingest\ninstructions: {INSTRUCTIONS}\nmodalities: [audio]\n")
    wav = tmp / "out.wav"
    output = None if sink == "none" else WavFileSink(wav, realtime=sink == "realtime")
    async with open_session(agent, url=url, output=output, text_only=False) as session:
        start = window_start()
        result = await session.ask(USER_TEXT, timeout=CLIENT_TIMEOUT_S)
        cpu = window_end(start)
    if output is not None:
        output.close()
    out: dict[str, Any] = {"cpu_s": cpu, "transcript_chars": len(result.text)}
    if sink == "wav":
        out["audio_bytes"] = wav.stat().st_size - 44  # the header
    return out


async def client_openai(url: str, tmp: Path) -> dict[str, Any]:
    from openai import AsyncOpenAI

    base = url.removesuffix("/realtime")
    client = AsyncOpenAI(
        api_key="x", base_url=base.replace("ws://", "http://"), websocket_base_url=base
    )
    async with client.realtime.connect(model="gpt-realtime") as conn:
        start = window_start()
        await conn.response.create()
        events = audio = 0
        async for event in conn:
            events += 1
            if event.type == "response.output_audio.delta":
                audio += len(base64.b64decode(event.delta))
            elif event.type == "response.done":
                break
        cpu = window_end(start)
    return {"cpu_s": cpu, "events": events - 1, "audio_bytes": audio}


async def client_agents(url: str, tmp: Path) -> dict[str, Any]:
    from agents.realtime import RealtimeAgent, RealtimeRunner

    def raw(event: Any, kind: str) -> bool:
        if event.type != "raw_model_event" or getattr(event.data, "type", None) != (
            "raw_server_event"
        ):
            return False
        data = event.data.data
        return isinstance(data, dict) and data.get("type") == kind

    runner = RealtimeRunner(RealtimeAgent(name="ingest", instructions=INSTRUCTIONS))
    session = await runner.run(model_config={"url": url + "?model=gpt-realtime", "api_key": "x"})
    async with session:
        events = session.__aiter__()
        while not raw(await asyncio.wait_for(events.__anext__(), 30), "session.updated"):
            pass
        await asyncio.sleep(0.05)  # its second (tracing) session.update, answered
        start = window_start()
        await session.send_message(USER_TEXT)
        audio = 0
        while True:
            event = await asyncio.wait_for(events.__anext__(), CLIENT_TIMEOUT_S)
            if event.type == "audio":
                audio += len(event.audio.data)
            elif raw(event, "response.done"):
                break
        cpu = window_end(start)
    return {"cpu_s": cpu, "audio_bytes": audio}


def run_client(name: str, url: str, installed_realtalk: bool, profile_out: str | None,
               core: str | None = None) -> int:
    if profile_out is not None:
        PROFILE["out"] = profile_out
    if name.startswith("baseline-"):  # realtalk from another tree (--baseline)
        assert core is not None
        sys.path.insert(0, core)
        name = "realtalk-" + name.removeprefix("baseline-")
    elif name.startswith("realtalk") and not installed_realtalk:
        sys.path.insert(0, str(REPO / "core"))
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        tmp = Path(folder)
        if name == "bare":
            result = asyncio.run(client_bare(url, tmp))
        elif name == "bare-fast":
            result = asyncio.run(client_bare_fast(url, tmp))
        elif name.startswith("realtalk-"):
            result = asyncio.run(client_realtalk(url, tmp, name.removeprefix("realtalk-")))
        elif name == "openai":
            result = asyncio.run(client_openai(url, tmp))
        elif name == "agents":
            try:
                import agents.realtime  # noqa: F401
            except ImportError:
                print(json.dumps({"missing": True}))
                return 0
            result = asyncio.run(client_agents(url, tmp))
        else:
            raise SystemExit(f"unknown client {name!r}")
    print(json.dumps(result))
    return 0


# -- the driver -----------------------------------------------------------------------------

CLIENTS = [
    ("bare", "bare socket (`websockets` + `json.loads` + `b64decode`)"),
    ("bare-fast", "bare socket with orjson + pybase64 (`recv(decode=False)`)"),
    ("realtalk-wav", "realtalk, WAV file (`WavFileSink(realtime=False)`)"),
    ("realtalk-realtime", "realtalk, real-time sink (`WavFileSink(realtime=True)`)"),
    ("realtalk-none", "realtalk, no audio output (`output=None`)"),
    ("openai", "openai SDK `realtime.connect()`"),
    ("agents", "openai-agents `RealtimeRunner`"),
]


def measure(
    name: str,
    url: str,
    args: argparse.Namespace,
    expected: dict[str, int],
    profile_out: str | None = None,
) -> dict[str, Any]:
    python = args.peer_python if name == "agents" else sys.executable
    command = [python, str(HERE), "--client", name, "--url", url]
    if name.startswith("baseline-"):
        command += ["--core", str(Path(args.baseline).resolve() / "core")]
    if args.installed_realtalk:
        command.append("--installed-realtalk")
    if profile_out is not None:
        command += ["--profile-out", profile_out]
    if name == "agents" and not Path(python).exists():
        return {"missing": True}
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S + 60, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"client {name} failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    for key, value in expected.items():
        if key in result and result[key] != value:
            raise SystemExit(f"client {name}: {key} {result[key]}, expected {value}")
    return result


@contextlib.contextmanager
def synthetic_server(deltas: int) -> Iterator[str]:
    """The server in its own process; yields its URL."""
    server = subprocess.Popen(
        [sys.executable, str(HERE), "--serve", "--deltas", str(deltas)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield f"ws://127.0.0.1:{int(server.stdout.readline())}/v1/realtime"
    finally:
        server.communicate(timeout=10)  # closing its stdin stops it


def profile(
    name: str, url: str, args: argparse.Namespace, expected: dict[str, int], events: int
) -> None:
    """Run ``name`` once under cProfile; print its top functions by own time per event."""
    import pstats

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        out = str(Path(folder) / "client.prof")
        result = measure(name, url, args, expected, profile_out=out)
        stats: Any = pstats.Stats(out).stats
    total = sum(tt for _, _, tt, _, _ in stats.values())
    print(
        f"{name} under cProfile (the main thread's CPU time; deterministic profiling inflates "
        f"many small calls): {result['cpu_s'] * 1e6 / events:.1f} µs/event of CPU, "
        f"{total * 1e6 / events:.1f} µs/event profiled\n"
    )
    print("| function | own µs/event | calls/event | cumulative µs/event |\n|---|---|---|---|")
    ranked = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)
    for (file, line, func), (_, calls, own, cumulative, _) in ranked[: args.top]:
        where = func if file == "~" else f"{func} ({short_path(file)}:{line})"
        print(
            f"| `{where}` | {own * 1e6 / events:.2f} | {calls / events:.2f} | "
            f"{cumulative * 1e6 / events:.2f} |"
        )


def short_path(file: str) -> str:
    for marker in ("/core/", "/site-packages/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return Path(file).name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="fresh processes per client")
    parser.add_argument("--deltas", type=int, default=3000, help="audio deltas (100 ms each)")
    parser.add_argument(
        "--peer-python",
        default=PEER_PYTHON,
        help="interpreter with openai-agents installed (its row says 'not installed' otherwise)",
    )
    parser.add_argument(
        "--installed-realtalk",
        action="store_true",
        help="benchmark the installed realtalk, not the work tree's core/",
    )
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="also measure realtalk from another checkout (e.g. a git worktree of an older "
        "commit): its rows are marked 'baseline', so one run gives before and after",
    )
    parser.add_argument("--core", help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="each round's µs/event to stderr")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        metavar="CLIENT",
        choices=[name for name, _ in CLIENTS],
        help="instead of the table: run CLIENT once under cProfile (the measured window only) "
        "and print its top functions by own time per event",
    )
    parser.add_argument("--top", type=int, default=15, help="functions listed by --profile")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.deltas))
        return 0
    if args.client:
        return run_client(args.client, args.url, args.installed_realtalk, args.profile_out, args.core)

    if not args.installed_realtalk:
        sys.path.insert(0, str(REPO / "core"))
    problems = conformance_problems()
    if problems:
        print("the synthetic server's events are not valid GA events:", *problems, sep="\n  ")
        return 1

    events = stream_event_count(args.deltas)
    expected = {
        "events": events,
        "audio_bytes": args.deltas * CHUNK_BYTES,
        "transcript_chars": len(WORD * args.deltas) - 1,  # realtalk strips the text
    }
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"command: (cd {REPO} && {command})")
    print(f"commit: {git_commit(REPO)}")
    print(f"machine: nproc {os.cpu_count()}, Python {sys.version.split()[0]}")
    load_before = os.getloadavg()
    if args.profile:
        with synthetic_server(args.deltas) as url:
            profile(args.profile, url, args, expected, events)
        return 0
    clients = list(CLIENTS)
    if args.baseline:
        clients += [(f"baseline-{name.removeprefix('realtalk-')}", f"baseline ({args.baseline}): {label}")
                    for name, label in CLIENTS if name.startswith("realtalk-")]
    samples: dict[str, list[float]] = {name: [] for name, _ in clients}
    missing = False
    with synthetic_server(args.deltas) as url:
        for index in range(args.rounds):
            shift = index % len(clients)
            for name, _ in [*clients[shift:], *clients[:shift]]:
                if name == "agents" and missing:
                    continue
                result = measure(name, url, args, expected)
                if result.get("missing"):
                    missing = True
                    continue
                samples[name].append(result["cpu_s"] * 1e6 / events)
                if args.verbose:
                    print(
                        f"round {index} {name}: {samples[name][-1]:.2f} µs/event", file=sys.stderr
                    )
    load_after = os.getloadavg()
    loads = [" ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after)]
    print(f"load average (1/5/15 min) before: {loads[0]}, after: {loads[1]}")
    print(
        f"events per response: {events} ({args.deltas} audio deltas of {CHUNK_BYTES} bytes + "
        f"{args.deltas} transcript deltas + {EXTRA_EVENTS} others); rounds: {args.rounds}\n"
    )
    floor = statistics.median(samples["bare"])
    fast = statistics.median(samples["bare-fast"])
    print("| client | µs/event (median) | × bare socket | × bare socket, orjson + pybase64 |")
    print("|---|---|---|---|")
    for name, label in clients:
        if not samples[name]:
            print(f"| {label} | not installed | - | - |")
            continue
        median = statistics.median(samples[name])
        print(f"| {label} | {median:.2f} | {median / floor:.2f} | {median / fast:.2f} |")
    if missing:
        print("\n" + PEER_HINT.format(python=args.peer_python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
