"""Load server for ``bench_concurrency.py``: real-time assistant audio to every session.

Run as a script (the benchmark starts it in a process of its own)::

    python tests/benchmarks/concurrency_server.py --port 0

It prints ``{"port": N}`` once listening, then one JSON line of counters per second, and
exits when its standard input closes (the benchmark ended) or after ``--lifetime`` seconds.

Per connection, speaking the GA protocol on 127.0.0.1 (no compression):

- ``session.created`` at once; ``session.update`` -> ``session.updated`` echoing the
  update's session (so its instructions and tools);
- from the first ``input_audio_buffer.append`` on (sessions opened and quiet cost no audio),
  endless responses of ``--response-s`` seconds: ``response.created``, the output item and
  content part, one ``response.output_audio.delta`` of 100 ms (24 kHz PCM16) every 100 ms,
  then the ``done`` events down to ``response.done``; the next response starts at the next
  tick;
- every ``input_audio_buffer.append`` is discarded without parsing it.

Each delta is stamped with ``time.time()`` just before it is written to the socket, twice:
in the field ``sent_at`` and in the first 8 bytes of its PCM (a little-endian double), so a
client that sees only the decoded audio (a sink's ``feed``) can compute the lag too. The
audio is base64-encoded once: the stamp fills the first 12 bytes, which encode to exactly
the first 16 base64 characters, and only those are encoded per send. Every frame goes out
as UTF-8 bytes sent as a text frame (``ws.send(data, text=True)``): the deltas are joined
from pre-encoded pieces, the other events encoded with ``realtalk.protocol.codec``
(orjson), so the server spends little per frame. ``bench_concurrency.py --servers N``
spreads the sessions over N such processes.

Each line of counters says how late the sends were against their 100 ms schedule (the
server's own lag: if it grows, the server, not the client, is the bottleneck) and the
server's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import struct
import sys
import threading
import time
from typing import Any

from realtalk.protocol import codec
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

RATE = 24_000
CHUNK_S = 0.1
CHUNK_BYTES = int(RATE * CHUNK_S) * 2  # 4800: 100 ms of PCM16 mono
STAMP_BYTES = 12  # the stamp (8) padded to a multiple of 3 so base64 splits cleanly


def make_audio() -> bytes:
    """100 ms of a quiet 440 Hz-ish square wave (any non-silent PCM16 will do)."""
    period = RATE // 440
    samples = [(800 if (i % period) < period // 2 else -800) for i in range(CHUNK_BYTES // 2)]
    return struct.pack(f"<{len(samples)}h", *samples)


AUDIO = make_audio()
AUDIO_TAIL_B64 = base64.b64encode(AUDIO[STAMP_BYTES:])  # bytes, ready to join into a frame
PAD = bytes(STAMP_BYTES - 8)


def stamp_b64(t: float) -> bytes:
    return base64.b64encode(struct.pack("<d", t) + PAD)


def read_stamp(pcm: bytes) -> float:
    """The send time a delta's decoded PCM carries (for clients)."""
    return float(struct.unpack_from("<d", pcm, 0)[0])


class Stats:
    def __init__(self) -> None:
        self.connections = 0
        self.streaming = 0
        self.deltas = 0
        self.appends = 0
        self.late_max = 0.0  # seconds, since the last report
        self.late_sum = 0.0
        self.late_n = 0

    def report(self) -> dict[str, Any]:
        line = {
            "t": time.time(),
            "cpu": time.process_time(),
            "connections": self.connections,
            "streaming": self.streaming,
            "deltas": self.deltas,
            "appends": self.appends,
            "late_max_ms": round(self.late_max * 1000, 2),
            "late_mean_ms": round(self.late_sum / self.late_n * 1000, 3) if self.late_n else 0.0,
        }
        self.late_max = self.late_sum = 0.0
        self.late_n = 0
        return line


STATS = Stats()


async def send(ws: ServerConnection, frame: bytes | str | dict[str, Any]) -> None:
    """Send one text frame: a dict encoded with the codec, a str as UTF-8, bytes as they are."""
    if isinstance(frame, dict):
        frame = codec.dumps(frame)
    elif isinstance(frame, str):
        frame = frame.encode()
    await ws.send(frame, text=True)


async def stream(ws: ServerConnection, conn_no: int, response_chunks: int) -> None:
    """Endless real-time responses, one 100 ms delta per tick, until the socket closes."""
    loop = asyncio.get_running_loop()
    due = loop.time() + random.random() * CHUNK_S
    response_no = 0
    STATS.streaming += 1
    try:
        while True:
            response_no += 1
            rid = f"resp_{conn_no}_{response_no}"
            iid = f"item_{conn_no}_{response_no}"
            ids = f'"response_id":"{rid}","item_id":"{iid}","output_index":0,"content_index":0'
            item = {
                "id": iid,
                "object": "realtime.item",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            head = (
                f'{{"type":"response.output_audio.delta",{ids},'
                f'"event_id":"evt_{conn_no}_{response_no}_'
            ).encode()
            for n in range(response_chunks):
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if n == 0:
                    await send(
                        ws,
                        {
                            "type": "response.created",
                            "response": {
                                "id": rid,
                                "object": "realtime.response",
                                "status": "in_progress",
                                "output": [],
                                "output_modalities": ["audio"],
                            },
                        },
                    )
                    await send(
                        ws,
                        {
                            "type": "response.output_item.added",
                            "response_id": rid,
                            "output_index": 0,
                            "item": item,
                        },
                    )
                    await send(
                        ws,
                        {
                            "type": "conversation.item.added",
                            "item": item,
                            "previous_item_id": None,
                        },
                    )
                    await send(
                        ws,
                        f'{{"type":"response.content_part.added",{ids},'
                        '"part":{"type":"audio","transcript":""}}',
                    )
                t = time.time()
                late = loop.time() - due
                STATS.late_max = max(STATS.late_max, late)
                STATS.late_sum += late
                STATS.late_n += 1
                await ws.send(
                    b"".join(
                        (
                            head,
                            f'{n}","sent_at":{t!r},"delta":"'.encode(),
                            stamp_b64(t),
                            AUDIO_TAIL_B64,
                            b'"}',
                        )
                    ),
                    text=True,
                )
                STATS.deltas += 1
                due += CHUNK_S
            done_item = {
                **item,
                "status": "completed",
                "content": [{"type": "output_audio", "transcript": ""}],
            }
            await send(ws, f'{{"type":"response.output_audio.done",{ids}}}')
            await send(
                ws, f'{{"type":"response.output_audio_transcript.done",{ids},"transcript":""}}'
            )
            await send(
                ws,
                f'{{"type":"response.content_part.done",{ids},'
                '"part":{"type":"audio","transcript":""}}',
            )
            await send(
                ws,
                {"type": "conversation.item.done", "item": done_item, "previous_item_id": None},
            )
            await send(
                ws,
                {
                    "type": "response.output_item.done",
                    "response_id": rid,
                    "output_index": 0,
                    "item": done_item,
                },
            )
            await send(
                ws,
                {
                    "type": "response.done",
                    "response": {
                        "id": rid,
                        "object": "realtime.response",
                        "status": "completed",
                        "status_details": {"type": "completed"},
                        "output": [done_item],
                        "output_modalities": ["audio"],
                        "usage": None,
                    },
                },
            )
    except ConnectionClosed:
        pass
    finally:
        STATS.streaming -= 1


def make_handler(response_chunks: int) -> Any:
    counter = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal counter
        counter += 1
        conn_no = counter
        STATS.connections += 1
        session: dict[str, Any] = {
            "id": f"sess_{conn_no}",
            "object": "realtime.session",
            "type": "realtime",
            "model": "gpt-realtime",
            "instructions": "",
            "tools": [],
            "output_modalities": ["audio"],
            "expires_at": int(time.time()) + 3600,
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": RATE}, "turn_detection": None},
                "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "marin"},
            },
        }
        streamer: asyncio.Task[None] | None = None
        try:
            await send(ws, {"type": "session.created", "session": session})
            while True:
                raw = await ws.recv(decode=False)
                if b'"input_audio_buffer.append"' in raw[:80]:
                    STATS.appends += 1
                    if streamer is None:
                        streamer = asyncio.create_task(stream(ws, conn_no, response_chunks))
                    continue
                event = codec.loads(raw)
                if event.get("type") == "session.update":
                    session = {**session, **event.get("session", {})}
                    await send(ws, {"type": "session.updated", "session": session})
        except ConnectionClosed:
            pass
        finally:
            STATS.connections -= 1
            if streamer is not None:
                streamer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await streamer

    return handler


async def main_async(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    def watch_stdin() -> None:
        # The benchmark holds our stdin open; EOF means it is gone (even if killed).
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stdin_closed.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    response_chunks = max(1, round(args.response_s / CHUNK_S))
    async with serve(
        make_handler(response_chunks),
        "127.0.0.1",
        args.port,
        compression=None,
        max_size=None,
        ping_interval=None,
        max_queue=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        deadline = loop.time() + args.lifetime
        while not stdin_closed.is_set() and loop.time() < deadline:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stdin_closed.wait(), 1.0)
            print(json.dumps(STATS.report()), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--response-s",
        type=float,
        default=3.0,
        help="length of each response in seconds (default 3)",
    )
    parser.add_argument(
        "--lifetime",
        type=float,
        default=1800.0,
        help="exit after this many seconds whatever happens (default 1800)",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
