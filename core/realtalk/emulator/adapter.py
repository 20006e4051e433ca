"""The WebSocket side of one emulated session: frames in, actions out, in real time.

:class:`ServerProtocol` decides everything a session says; this adapter reads frames,
paces the audio the protocol streams (real time, or as fast as the socket takes it),
runs the timers, applies the faults (expiry, drop, latency), sends and records. Three
tasks share one protocol: the reader, the pacer (``receive_tick`` at each deadline) and
the expiry timer; every send goes through :meth:`WebSocketAdapter.flush`, which takes the
protocol's actions and performs them in order under a lock. A hosted MCP request (list a
server's tools, call one) runs as its own task (:func:`.mcpclient.perform`, bounded); its
result goes back to the protocol, and what that decides is flushed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..protocol import codec
from ..waits import within
from . import mcpclient
from .hosted import McpRequest
from .protocol import DEFAULT_TRANSCRIPTION_DELAY, Close, ServerProtocol, decode_frame
from .responses import DEFAULT_AUDIO_SPEED
from .state import ConnectionRecord, ScenarioProgress
from .voice import ToneAudio

__all__ = ["Options", "WebSocketAdapter"]


@dataclass
class Options:
    """Per-emulator settings, shared by its sessions.

    Attributes:
        fast: Send audio and timers at once (in the order they fall due), unpaced.
        expire_after: Seconds until ``session_expired`` (and close 1001).
        drop_after_events: Abort the socket (no close frame) after this many server events.
        drops_left: How many more connections the drop fault may hit; shared, so a client
            that reconnects after a drop gets a healthy session.
        latency_ms: Delay before the server reacts to each client event.
        audio_speed: How much faster than real time assistant audio is sent when not
            ``fast`` (1.0: real time; the default is live-like).
        transcription_delay_ms: Milliseconds from a commit to its input transcription
            events (0: at once, before the response).
    """

    fast: bool = False
    expire_after: float = 3600.0
    drop_after_events: int | None = None
    drops_left: int = 1
    latency_ms: float = 0.0
    audio_speed: float = DEFAULT_AUDIO_SPEED
    transcription_delay_ms: float = DEFAULT_TRANSCRIPTION_DELAY * 1000


class _Dropped(Exception):
    """The drop fault fired; stop everything."""


class WebSocketAdapter:
    """Serves one connection that passed the handshake with a :class:`ServerProtocol`.

    Args:
        ws: The upgraded connection.
        record: Where its events are recorded.
        options: The emulator's settings and faults.
        progress: The emulator's scenario progress.
        model: The model the client asked for (None: a transcription session).
        transcription: Serve a transcription session (``?intent=transcription``).
    """

    def __init__(
        self,
        ws: ServerConnection,
        record: ConnectionRecord,
        options: Options,
        progress: ScenarioProgress,
        model: str | None,
        transcription: bool = False,
    ) -> None:
        self.ws = ws
        self.record = record
        self.options = options
        self.protocol = ServerProtocol(
            model=model,
            progress=progress,
            audio=ToneAudio(),
            created_at=time.time(),
            expire_after=options.expire_after,
            now=time.monotonic(),
            transcription=transcription,
            audio_speed=options.audio_speed,
            transcription_delay=options.transcription_delay_ms / 1000.0,
        )
        self.sent = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()  # the protocol may have a new deadline
        self._mcp_tasks: set[asyncio.Task[None]] = set()  # hosted MCP requests out

    async def run(self) -> None:
        """Serve the session until the client leaves, it expires, or a fault ends it."""
        pacer = asyncio.create_task(self._pace())
        expiry = asyncio.create_task(self._expire())
        try:
            await self._delay()
            await self.flush()  # session.created
            async for message in self.ws:
                await self._handle(message)
        except (_Dropped, ConnectionClosed):
            pass
        finally:
            pacer.cancel()
            expiry.cancel()
            for task in self._mcp_tasks:
                task.cancel()
            await asyncio.gather(pacer, expiry, *self._mcp_tasks, return_exceptions=True)

    # -- sending ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """Perform the protocol's pending actions in order: record and send, or close.

        Raises:
            _Dropped: The drop fault fired (the socket is aborted).
            ConnectionClosed: The client went away.
        """
        actions = self.protocol.actions_to_send()  # taken at once: order is kept
        if actions:
            self._wake.set()  # a response may have started or ended
        async with self._lock:
            for action in actions:
                if self.record.dropped:
                    raise _Dropped
                if isinstance(action, McpRequest):
                    task = asyncio.create_task(self._mcp(action))
                    self._mcp_tasks.add(task)
                    task.add_done_callback(self._mcp_tasks.discard)
                    continue
                if isinstance(action, Close):
                    self.record.close_code = action.code
                    await self.ws.close(action.code, action.reason)
                    return
                self.record.add("server", action.event)
                await self.ws.send(codec.dumps(action.event), text=True)
                self.sent += 1
                limit = self.options.drop_after_events
                if limit is not None and self.sent >= limit and self.options.drops_left > 0:
                    self.options.drops_left -= 1
                    self.record.dropped = True
                    self.ws.transport.abort()  # no close frame: the "network" just vanished
                    raise _Dropped

    async def _mcp(self, request: McpRequest) -> None:
        """Talk to a hosted MCP server, then hand the protocol the result."""
        result = await mcpclient.perform(request)
        self.protocol.receive_mcp_result(request.token, result, time.monotonic())
        try:
            await self.flush()
        except (_Dropped, ConnectionClosed):
            pass

    # -- reading ---------------------------------------------------------------------------

    async def _handle(self, message: str | bytes) -> None:
        event, problem = decode_frame(message)
        if event is not None:
            self.record.add("client", event)
        elif isinstance(message, bytes):
            self.record.add("client", {"_binary": len(message)})
        else:
            self.record.add("client", {"_raw": message})
        if event is None or not str(event.get("type")).endswith("input_audio_buffer.append"):
            # Appends get no reply; delaying them would only make the audio fall behind.
            await self._delay()
        if event is not None:
            self.protocol.receive_event(event, time.monotonic())
        elif problem is not None:
            self.protocol.receive_bad_frame(problem, time.monotonic())
        await self.flush()

    async def _delay(self) -> None:
        if self.options.latency_ms > 0:
            await asyncio.sleep(self.options.latency_ms / 1000.0)

    # -- timers ----------------------------------------------------------------------------

    async def _pace(self) -> None:
        # Ticks the protocol at each deadline (a response's next audio chunk, a timer): at that moment, or
        # at once when fast (the deadline becomes the protocol's clock).
        try:
            while True:
                self._wake.clear()
                deadline = self.protocol.next_deadline()
                if deadline is None:
                    await self._wake.wait()
                    continue
                if self.options.fast:
                    await asyncio.sleep(0)  # let the reader in between chunks
                    self.protocol.receive_tick(deadline)
                else:
                    delay = deadline - time.monotonic()
                    if delay > 0:
                        try:
                            # A cancel or a new response wakes us early.
                            await within(self._wake.wait(), delay)
                            continue
                        except asyncio.TimeoutError:
                            pass
                    self.protocol.receive_tick(time.monotonic())
                await self.flush()
        except (_Dropped, ConnectionClosed):
            pass

    async def _expire(self) -> None:
        await asyncio.sleep(self.options.expire_after)
        self.protocol.expire()
        try:
            await self.flush()
        except (_Dropped, ConnectionClosed):
            pass
