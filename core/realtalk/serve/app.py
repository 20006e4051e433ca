"""The ASGI application of ``realtalk serve``: routes, and the browser's WebSocket.

:func:`create_app` builds a Starlette app around a :class:`~realtalk.serve.hub.SessionHub`:

- ``GET /`` the console page, ``GET /static/...`` its files;
- ``GET /agents``: the agents a caller may pick;
- ``WS /ws``: one session per connection, speaking the ``realtalk.v1`` protocol
  (:mod:`realtalk.serve.caller` holds its rules);
- ``POST /token``: a short-lived token, for a caller holding the mint key;
- ``GET /healthz``, ``GET /readyz``, ``GET /metrics``;
- Twilio's webhook and media stream, from :func:`realtalk.serve.twilio.routes`.

The WebSocket handler only moves data. A reader task feeds the page's frames to a
:class:`~realtalk.serve.caller.BrowserCaller` and carries out its actions; session
events, audio and replies go through one bounded outbox to a writer task. Audio is never
dropped silently: a page that does not keep up is closed with a reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..exceptions import RealtalkError
from ..protocol import codec
from ..results import ApprovalRequest, SessionEvent
from ..session import Session
from ..waits import within
from . import logs
from .access import Admission, Refused, bearer
from .caller import (
    PROTOCOL,
    Answer,
    AppendAudio,
    BrowserCaller,
    Bye,
    Close,
    Commit,
    Played,
    Reply,
    SendText,
    Switch,
)
from .config import ServeConfig
from .hub import SessionHub

__all__ = ["OUTBOX_BYTES", "OUTBOX_ITEMS", "SEND_TIMEOUT_S", "create_app"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
TOKEN_PREFIX = "realtalk.token."
OUTBOX_ITEMS = 4096
"""Messages and audio frames waiting for a page (about a minute of 20 ms audio)."""
OUTBOX_BYTES = 8 * 1024 * 1024
"""Bytes waiting for a page (almost three minutes of 24 kHz PCM16)."""
SEND_TIMEOUT_S = 10.0
"""Longest a single send to a page may take before the page counts as gone."""
CLOSE_TIMEOUT_S = 5.0
"""Longest the goodbye (queued frames, ``closing``, close) may take."""


def create_app(config: ServeConfig, hub: SessionHub | None = None) -> Starlette:
    """The server's ASGI application.

    Args:
        config: What to serve.
        hub: The sessions (default: a new hub for ``config``, whose agents are loaded now).

    Raises:
        ConfigError: The config or the agents have a problem.
    """
    hub = hub if hub is not None else SessionHub(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.drain(0)  # the serve command drained already; tests and embedders may not
            await hub.stop()

    routes: list[BaseRoute] = [
        Route("/", _index),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        Route("/agents", _agents),
        WebSocketRoute("/ws", _browser),
        Route("/token", _token, methods=["POST"]),
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", _metrics),
    ]
    twilio = _twilio_routes(hub)
    routes += twilio
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    app.state.phones = bool(twilio)
    return app


def _twilio_routes(hub: SessionHub) -> list[BaseRoute]:
    """The Twilio routes, when :mod:`realtalk.serve.twilio` provides them."""
    try:
        from . import twilio
    except ImportError as exc:
        log.warning("no phone calls: %s", exc)
        return []
    make = getattr(twilio, "routes", None)
    return list(make(hub)) if make is not None else []


def _hub(request: Request | WebSocket) -> SessionHub:
    hub: SessionHub = request.app.state.hub
    return hub


# --- HTTP ----------------------------------------------------------------------------------


async def _index(request: Request) -> Response:
    page = STATIC / "index.html"
    if not page.is_file():
        return PlainTextResponse("the console page is not installed (realtalk/serve/static/index.html)\n",
                                 status_code=404)
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


async def _agents(request: Request) -> Response:
    hub = _hub(request)
    graph = hub.target.graph
    return JSONResponse({
        "default": hub.default_agent,
        "agents": [{"name": name, "description": graph.agents[name].description} for name in hub.agents],
    })


async def _healthz(request: Request) -> Response:
    hub = _hub(request)
    return JSONResponse({"status": "ok", "pid": os.getpid(), "active_sessions": hub.active,
                         "draining": hub.draining})


async def _readyz(request: Request) -> Response:
    hub = _hub(request)
    if hub.draining:
        return JSONResponse({"status": "draining", "pid": os.getpid()}, status_code=503)
    return JSONResponse({"status": "ready", "pid": os.getpid()})


async def _metrics(request: Request) -> Response:
    hub = _hub(request)
    body, content_type = hub.metrics.render()
    return Response(body, media_type=content_type)


async def _token(request: Request) -> Response:
    """``POST /token``: a short-lived token, for a caller presenting the mint key."""
    hub = _hub(request)
    minter = hub.policy.minter
    if minter is None:
        return JSONResponse({"error": "minted tokens are not configured on this server"
                                      " (REALTALK_SERVE_TOKEN_SECRET, REALTALK_SERVE_MINT_KEY)"}, status_code=404)
    if not hub.policy.mint_allowed(request.headers.get("authorization"), hub.config.mint_key):
        log.info("POST /token refused: no valid mint key from %s", request.client.host if request.client else "?")
        return JSONResponse({"error": "POST /token needs Authorization: Bearer <mint key>"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    token, expires = minter.mint()
    return JSONResponse({"token": token, "expires_at": expires, "ttl_s": minter.ttl_s},
                        headers={"Cache-Control": "no-store"})


# --- the browser's WebSocket ---------------------------------------------------------------


def _offered(websocket: WebSocket) -> list[str]:
    header = websocket.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


async def _browser(websocket: WebSocket) -> None:
    hub = _hub(websocket)
    offered = _offered(websocket)
    subprotocol = PROTOCOL if PROTOCOL in offered else None
    token = next((p[len(TOKEN_PREFIX):] for p in offered if p.startswith(TOKEN_PREFIX)), None)
    token = token or bearer(websocket.headers.get("authorization"))
    client = websocket.client.host if websocket.client else "unknown"
    try:
        admission = hub.admit(client=client, token=token, origin=websocket.headers.get("origin"),
                              host=websocket.headers.get("host"), kind="browser")
    except Refused as exc:
        await _refuse(websocket, subprotocol, exc)
        return
    try:
        agent = hub.agent_or_refuse(websocket.query_params.get("agent"))
    except Refused as exc:
        hub.release(admission)
        hub.refused("browser")
        await _refuse(websocket, subprotocol, exc)
        return
    await _BrowserConnection(hub, websocket, admission, agent, subprotocol).run()


async def _refuse(websocket: WebSocket, subprotocol: str | None, refused: Refused) -> None:
    """Accept, say why in a ``refused`` message, close with 4000 + the HTTP status."""
    with contextlib.suppress(Exception):
        await within(_say_refused(websocket, subprotocol, refused), CLOSE_TIMEOUT_S)


async def _say_refused(websocket: WebSocket, subprotocol: str | None, refused: Refused) -> None:
    await websocket.accept(subprotocol=subprotocol)
    await websocket.send_text(json.dumps(refused.as_message()))
    await websocket.close(4000 + refused.status, refused.code)


class _Close:
    """The outbox's last item: close the connection."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class _Outbox:
    """What waits for the page, bounded in items and bytes; audio can be withdrawn (barge-in)."""

    def __init__(self) -> None:
        self.items: collections.deque[str | bytes | _Close] = collections.deque()
        self.size = 0
        self.closed = False
        self._ready = asyncio.Event()

    def put(self, item: str | bytes) -> bool:
        """Queue ``item``; False when the bounds are reached (nothing queued)."""
        if self.closed:
            return True
        if len(self.items) >= OUTBOX_ITEMS or self.size + len(item) > OUTBOX_BYTES:
            return False
        self.items.append(item)
        self.size += len(item)
        self._ready.set()
        return True

    def drop_audio(self) -> None:
        """Withdraw the audio not sent yet (it belongs to an epoch the page must not count)."""
        kept = [item for item in self.items if not isinstance(item, bytes)]
        self.items = collections.deque(kept)
        self.size = sum(len(i) for i in kept if isinstance(i, str))

    def close(self, code: int, reason: str, *, flush: bool = True) -> None:
        """Queue the close (after what is queued, unless not ``flush``); later puts are ignored."""
        if self.closed:
            return
        if not flush:
            self.items.clear()
            self.size = 0
        self.items.append(_Close(code, reason))
        self.closed = True
        self._ready.set()

    async def get(self) -> str | bytes | _Close:
        while not self.items:
            self._ready.clear()
            await self._ready.wait()  # bounded by the connection: the handler cancels the writer
        item = self.items.popleft()
        if not isinstance(item, _Close):
            self.size -= len(item)
        return item


class _BrowserConnection:
    """One page's connection: moves frames between the socket, the caller and the session."""

    def __init__(self, hub: SessionHub, websocket: WebSocket, admission: Admission, agent: str,
                 subprotocol: str | None) -> None:
        from ..audio.remote import RemoteSink
        from ..pricing import UsageTotals

        self.hub = hub
        self.ws = websocket
        self.admission = admission
        self.agent = agent
        self.subprotocol = subprotocol
        self.outbox = _Outbox()
        self.ended = asyncio.Event()
        self.gone = False  # the page left (or stopped receiving): nothing more can be said
        self.session: Session | None = None
        self.approvals: dict[str, asyncio.Future[bool]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.totals = UsageTotals(hub.model_of(agent), hub.prices)
        self.caller = BrowserCaller(hub.agents, usage=self._usage)
        self.sink = RemoteSink(self._send_audio, self._send_clear)

    # -- outgoing -------------------------------------------------------------------------

    def _put(self, item: str | bytes) -> None:
        if not self.outbox.put(item):
            self._end("server_error", "the page is not receiving fast enough; closing rather than losing audio",
                      flush=False)

    def _send(self, message: dict[str, Any]) -> None:
        try:
            text = codec.dumps(message).decode()
        except (TypeError, ValueError):  # a value JSON does not know (a tool's own object)
            text = json.dumps(message, ensure_ascii=False, default=str)
        self._put(text)

    def _send_audio(self, data: bytes) -> None:
        self._put(data)

    def _send_clear(self, epoch: int) -> None:
        self.outbox.drop_audio()
        self._send(self.caller.clear(epoch))

    def _end(self, code: str, reason: str, *, flush: bool = True) -> None:
        """Say ``closing`` and close (1000, or 1011 for a server error), once; after what is
        queued unless not ``flush`` (the outbox is full)."""
        if self.outbox.closed:
            self.ended.set()
            return
        if code != "bye":
            log.info("closing the page's connection: %s (%s)", code, reason)
        if not flush:  # make room for the goodbye
            self.outbox.items.clear()
            self.outbox.size = 0
        self._send(self.caller.closing(code, reason))
        self.outbox.close(1011 if code == "server_error" else 1000, code)
        self.ended.set()

    async def _on_end(self, code: str, reason: str) -> None:
        """The hub ends the session (``max_session``, ``draining``)."""
        self._end(code, reason)

    async def _write(self) -> None:
        """Send the outbox to the page until its close item (or the page is gone)."""
        try:
            while True:
                item = await self.outbox.get()
                if isinstance(item, _Close):
                    await within(self.ws.close(item.code, item.reason), SEND_TIMEOUT_S)
                    return
                if isinstance(item, bytes):
                    await within(self.ws.send_bytes(item), SEND_TIMEOUT_S)
                else:
                    await within(self.ws.send_text(item), SEND_TIMEOUT_S)
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError) as exc:
            log.info("the page stopped receiving (%s)", type(exc).__name__)
            self.gone = True
        finally:
            self.ended.set()

    # -- session events -------------------------------------------------------------------

    def _on_event(self, event: SessionEvent) -> None:
        for message in self.caller.event(event):
            self._send(message)
        if event.type == "error" and getattr(event, "fatal", False):
            self._end("server_error", f"the session failed: {getattr(event, 'message', '')}")

    def _usage(self, event: SessionEvent) -> dict[str, Any] | None:
        from ..pricing import UsageTotals

        agent = getattr(event, "agent", self.agent)
        turn = UsageTotals(self.hub.model_of(agent) if agent in self.hub.agents else self.totals.model,
                           self.hub.prices)
        turn.add_all(getattr(event, "usage", ()))
        self.totals.add_totals(turn)
        return {"type": "usage", "turn": turn.as_dict(), "session": self.totals.as_dict()}

    async def _approve(self, request: ApprovalRequest) -> bool:
        """Ask the page; no answer within the approval timeout is a refusal."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.approvals[request.call_id] = future
        self._send(self.caller.approval(request))
        try:
            return await within(future, self.hub.config.approval_timeout_s)
        except asyncio.TimeoutError:
            self._send({"type": "error", "message": f"no answer to the approval of {request.tool} within"
                                                    f" {self.hub.config.approval_timeout_s:g} s: refused"})
            return False
        finally:
            self.approvals.pop(request.call_id, None)
            self.caller.approval_ended(request.call_id)

    # -- incoming -------------------------------------------------------------------------

    async def _read(self, session: Session) -> None:
        """Feed the page's frames to the caller and carry out its actions, until it leaves."""
        try:
            while not self.ended.is_set():
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    self.gone = True
                    return
                data = message.get("bytes")
                if data is not None:
                    actions = self.caller.receive_bytes(data)
                else:
                    actions = self.caller.receive_text(message.get("text") or "")
                for action in actions:
                    await self._do(action, session)
        except (WebSocketDisconnect, RuntimeError):
            self.gone = True
        except RealtalkError as exc:  # the session failed or closed under a send
            self._end("server_error", f"the session could not go on: {exc}")
        finally:
            self.ended.set()

    async def _do(self, action: object, session: Session) -> None:
        if isinstance(action, AppendAudio):
            await session.append_audio(action.data)
        elif isinstance(action, Played):
            self.sink.played(action.epoch, action.samples)
        elif isinstance(action, SendText):
            await session.send_text(action.text)
        elif isinstance(action, Commit):
            await session.commit_audio()
        elif isinstance(action, Answer):
            future = self.approvals.get(action.call_id)
            if future is not None and not future.done():
                future.set_result(action.allow)
        elif isinstance(action, Switch):
            self._spawn(self._switch(session, action.agent))
        elif isinstance(action, Bye):
            self.hub.outcome(self.admission, "completed")
            self._end("bye", "the page said goodbye")
        elif isinstance(action, Reply):
            if action.message.get("type") == "error":
                self.hub.metrics.error("client")
            self._send(action.message)
        elif isinstance(action, Close) and not self.outbox.closed:
            log.info("closing the page's connection: %s", action.reason)
            self.outbox.close(action.code, action.reason)
            self.ended.set()

    async def _switch(self, session: Session, agent: str) -> None:
        with contextlib.suppress(RealtalkError, asyncio.TimeoutError):
            await session.switch_agent(agent, self.hub.config.max_session_s)

    async def _greet(self, session: Session) -> None:
        with contextlib.suppress(RealtalkError, asyncio.TimeoutError):
            await session.greet(self.hub.config.max_session_s)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- the connection's life ------------------------------------------------------------

    async def run(self) -> None:
        hub = self.hub
        try:
            await within(self.ws.accept(subprotocol=self.subprotocol), SEND_TIMEOUT_S)
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            hub.release(self.admission)
            return
        context = logs.session_id.set(self.admission.session_id)
        writer = asyncio.create_task(self._write(), name="realtalk-page-writer")
        reader: asyncio.Task[None] | None = None
        try:
            async with hub.session(self.admission, self.agent, output=self.sink, approve=self._approve,
                                   listeners=[self._on_event], on_end=self._on_end) as session:
                self.session = session
                self._send(self.caller.ready(self.admission.session_id, self.agent, hub.config.max_session_s))
                if session.agent.greeting:
                    self._spawn(self._greet(session))
                reader = asyncio.create_task(self._read(session), name="realtalk-page-reader")
                await self.ended.wait()  # bounded: the hub ends the session after max_session_s
        except RealtalkError as exc:
            log.warning("the session failed: %s", exc)
            self._end("server_error", f"the session could not go on: {exc}")
        except Exception as exc:
            log.exception("the page's connection failed")
            self._end("server_error", f"internal error ({type(exc).__name__})")
        finally:
            for task in [*self.tasks, *([reader] if reader is not None else [])]:
                task.cancel()
            self.sink.close()
            if self.gone:
                writer.cancel()
            else:
                self._end("server_error", "the session ended")  # no-op when the reason was said
                # The goodbye goes out (bounded); a page that does not take it is dropped.
                done, _ = await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT_S)
                if not done:
                    writer.cancel()
            hub.release(self.admission)
            logs.session_id.reset(context)
