"""The emulator's WebSocket server: handshake, faults, and the record of every event."""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import re
import ssl
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ..protocol import codec
from ..protocol.vocab import error_event, new_event_id
from ..waits import within
from .adapter import Options, WebSocketAdapter
from .protocol import DEFAULT_TRANSCRIPTION_DELAY
from .responses import DEFAULT_AUDIO_SPEED
from .scenario import Scenario, load_scenario
from .state import MAX_RECORDED_EVENTS, ConnectionRecord, ScenarioProgress
from .tls import server_context

__all__ = ["Emulator"]

PATHS = ("/v1/realtime", "/openai/v1/realtime")  # OpenAI, and Azure's GA path
PING_INTERVAL = 20.0  # the real server pings about every 20 s
MAX_MESSAGE = 16 * 1024 * 1024  # input_audio_buffer.append allows 15 MiB of audio
SUBPROTOCOL = Subprotocol("realtime")
"""The subprotocol browser-style clients offer, and the live server selects."""
KEY_SUBPROTOCOL = "openai-insecure-api-key."
"""Browser-style clients send the API key as a subprotocol with this prefix."""


class Emulator:
    """A loopback Realtime server speaking the GA protocol, driven by a scenario.

    Use it as an async context manager::

        async with Emulator(scenario="agents/concierge.scenario.yaml", fast=True) as emu:
            connect_to(emu.url)
            ...
            assert emu.server_events("response.done")

    Args:
        scenario: A scenario file path, a parsed mapping, a Scenario, or None (every input
            gets the fallback reply).
        host: Interface to listen on.
        port: Port; 0 picks a free one (see :attr:`port` after start).
        api_key: When set, clients must present it (``Authorization: Bearer``, an
            ``api-key`` header, an ``api-key`` query parameter, or the subprotocol
            ``openai-insecure-api-key.<key>`` that browser-style clients offer).
        fast: Send audio (and delayed transcriptions) as fast as possible, in the order
            they fall due, instead of paced by ``audio_speed``.
        expire_after: Seconds after which each session expires (``session_expired``,
            close 1001); ``expires_at`` in ``session.created`` matches. Default 60 minutes.
        refuse_connections: Answer the first N connection attempts with HTTP 429.
        drop_after_events: Abort a connection's socket (no close frame) once it has been
            sent this many server events.
        drop_connections: How many connections the drop fault hits (default 1: a client
            that reconnects after the drop gets a healthy session).
        latency_ms: Delay before the server reacts to each client event (and before
            ``session.created``).
        audio_speed: How much faster than real time assistant audio is sent when not
            ``fast`` (default 4.0, as the live server streams ahead of playback; 1.0:
            real time).
        transcription_delay_ms: Milliseconds from a commit to its input transcription
            events (default 500: as live, they usually come after the response to the
            same audio has started; 0: at once, before it).
        ping_interval: Seconds between keepalive pings (None: no pings).
        record_audio: Record audio payloads whole; by default each is recorded as its
            length (``"<audio 4800 bytes>"``), so the record stays small.
        max_recorded_events: How many events each connection's record keeps; the oldest
            go first and are counted in ``ConnectionRecord.discarded`` (None: no bound).
        per_connection: Each connection plays the scenario from its first turn. By
            default the connections share one place in the script, so that a client
            that reconnects goes on where it was; a server whose callers are strangers
            (``realtalk serve --emulator``) wants each to get the whole script.
        max_connections: How many connection records :attr:`connections` keeps (the
            oldest go first; None: all), so that an emulator serving for days stays
            bounded.
        tls_cert: A PEM certificate file: serve ``wss://`` (with ``tls_key``).
        tls_key: The PEM private key of ``tls_cert`` (unencrypted).

    Raises:
        ScenarioError: The scenario is invalid.
        ConfigError: Only one of ``tls_cert`` and ``tls_key`` is given, or they cannot be
            read or used (see :func:`realtalk.emulator.tls.server_context`).
        ValueError: ``max_recorded_events`` is below 1, ``audio_speed`` not above 0, or
            ``transcription_delay_ms`` below 0.
    """

    def __init__(
        self,
        scenario: str | Path | Mapping[str, Any] | Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        fast: bool = False,
        expire_after: float = 3600.0,
        refuse_connections: int = 0,
        drop_after_events: int | None = None,
        drop_connections: int = 1,
        latency_ms: float = 0.0,
        audio_speed: float = DEFAULT_AUDIO_SPEED,
        transcription_delay_ms: float = DEFAULT_TRANSCRIPTION_DELAY * 1000,
        ping_interval: float | None = PING_INTERVAL,
        record_audio: bool = False,
        max_recorded_events: int | None = MAX_RECORDED_EVENTS,
        per_connection: bool = False,
        max_connections: int | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
    ) -> None:
        if audio_speed <= 0:
            raise ValueError(f"audio_speed must be above 0, not {audio_speed}")
        if transcription_delay_ms < 0:
            raise ValueError(
                f"transcription_delay_ms must be 0 or more, not {transcription_delay_ms}"
            )
        if max_recorded_events is not None and max_recorded_events < 1:
            raise ValueError(
                f"max_recorded_events must be at least 1 or None, not {max_recorded_events}"
            )
        self.scenario = load_scenario(scenario)
        self.tls: ssl.SSLContext | None = server_context(tls_cert, tls_key)
        self.host = host
        self.api_key = api_key
        self.refuse_connections = refuse_connections
        self.options = Options(
            fast=fast,
            expire_after=expire_after,
            drop_after_events=drop_after_events,
            drops_left=drop_connections,
            latency_ms=latency_ms,
            audio_speed=audio_speed,
            transcription_delay_ms=transcription_delay_ms,
        )
        self.ping_interval = ping_interval
        self.record_audio = record_audio
        self.max_recorded_events = max_recorded_events
        self.progress = ScenarioProgress(self.scenario)
        self.per_connection = per_connection
        self.connections: collections.deque[ConnectionRecord] = collections.deque(maxlen=max_connections)
        self.refused = 0
        self._port = port
        self._server: Server | None = None
        self._changed = asyncio.Event()  # set whenever any event is recorded

    def use(self, scenario: str | Path | Mapping[str, Any] | Scenario | None) -> None:
        """Replace the scenario and start it from its first turn (also while serving).

        Raises:
            ScenarioError: The scenario is invalid.
        """
        self.scenario = load_scenario(scenario)
        self.progress = ScenarioProgress(self.scenario)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening.

        Raises:
            OSError: The address cannot be bound (for example, the port is in use).
        """
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            ping_interval=self.ping_interval,
            max_size=MAX_MESSAGE,
            ssl=self.tls,
            logger=_handshake_logger(),
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection (1001 going away) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Emulator:  # noqa: PYI034
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    # -- addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (the real one once started, even when 0 was asked)."""
        return self._port

    @property
    def url(self) -> str:
        """The Realtime endpoint, e.g. ``ws://127.0.0.1:PORT/v1/realtime`` (``wss://`` with TLS)."""
        return f"{self._scheme('ws')}://{self._netloc}/v1/realtime"

    @property
    def base_url(self) -> str:
        """The HTTP base URL to give the ``openai`` SDK, e.g. ``http://127.0.0.1:PORT/v1``
        (``https://`` with TLS)."""
        return f"{self._scheme('http')}://{self._netloc}/v1"

    @property
    def websocket_base_url(self) -> str:
        """The ``websocket_base_url`` for the ``openai`` SDK, e.g. ``ws://127.0.0.1:PORT/v1``
        (``wss://`` with TLS)."""
        return f"{self._scheme('ws')}://{self._netloc}/v1"

    def _scheme(self, plain: str) -> str:
        return plain + "s" if self.tls is not None else plain

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self._port}"

    # -- records ---------------------------------------------------------------------

    def client_events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Every client event recorded on every connection, optionally only those of ``type``.

        Audio payloads are ``"<audio N bytes>"`` unless the emulator was made with
        ``record_audio=True``.
        """
        return [e for c in self.connections for e in c.client_events(type)]

    def server_events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Every server event recorded on every connection, optionally only those of ``type``.

        Audio payloads (``response.output_audio.delta``'s ``delta``) are
        ``"<audio N bytes>"`` unless the emulator was made with ``record_audio=True``.
        """
        return [e for c in self.connections for e in c.server_events(type)]

    def errors(self) -> list[dict[str, Any]]:
        """The inner ``error`` objects of every ``error`` event sent."""
        return [e for c in self.connections for e in c.errors()]

    async def wait_for(
        self,
        type: str,
        *,
        direction: str = "server",
        count: int = 1,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Wait until ``count`` events of ``type`` have been recorded, on any connection.

        Args:
            type: The event type, e.g. ``"response.done"``.
            direction: ``"server"`` (sent) or ``"client"`` (received).
            count: How many such events to wait for.
            timeout: Seconds before giving up.

        Returns:
            The ``count``-th such event.

        Raises:
            TimeoutError: Fewer than ``count`` arrived in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            select = self.server_events if direction == "server" else self.client_events
            found = select(type)
            if len(found) >= count:
                return found[count - 1]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"emulator: {len(found)} of {count} {direction} {type!r} events "
                    f"after {timeout} s"
                )
            self._changed.clear()
            try:
                await within(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    # -- handshake -------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path.rstrip("/") not in PATHS:
            return connection.respond(
                HTTPStatus.NOT_FOUND, "Not Found: the Realtime endpoint is /v1/realtime\n"
            )
        if self.refused < self.refuse_connections:
            self.refused += 1
            response = connection.respond(
                HTTPStatus.TOO_MANY_REQUESTS,
                '{"error": {"message": "Rate limit reached (emulated).", '
                '"type": "requests", "code": "rate_limit_exceeded"}}\n',
            )
            response.headers["Retry-After"] = "1"
            return response
        return None

    def _handshake_error(
        self, headers: Headers, path: str
    ) -> tuple[str | None, str, int, str] | None:
        query = parse_qs(urlsplit(path).query)
        if self.api_key is not None:
            auth = headers.get("Authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            token = token or headers.get("api-key") or (query.get("api-key") or [""])[0]
            token = token or _subprotocol_key(headers)
            if not token:
                return (
                    None,
                    "Missing bearer or basic authentication in header",
                    3000,
                    "invalid_request_error",
                )
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):  # no timing leak
                shown = token[:3] + "*" * 4 + token[-4:] if len(token) > 8 else "*" * len(token)
                return (
                    "invalid_api_key",
                    (
                        f"Incorrect API key provided: {shown}. You can find "
                        "your API key at https://platform.openai.com/account/api-keys."
                    ),
                    3000,
                    "invalid_request_error.invalid_api_key",
                )
        if headers.get("OpenAI-Beta", "").strip().lower().startswith("realtime"):
            return (
                "beta_api_shape_disabled",
                (
                    "The Realtime Beta API is no longer supported. "
                    "Please use /v1/realtime for the GA API."
                ),
                4000,
                "invalid_request_error.beta_api_shape_disabled",
            )
        if not (query.get("model") or [""])[0] and not _transcription_intent(path):
            return (
                "missing_model",
                "You must provide a model parameter",
                4000,
                "invalid_request_error.missing_model",
            )
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        record = ConnectionRecord(
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.raw_items()},
            record_audio=self.record_audio,
            max_events=self.max_recorded_events,
        )
        record.listener = self._changed.set
        self.connections.append(record)
        refusal = self._handshake_error(request.headers, request.path)
        if refusal is not None:
            code, message, close_code, reason = refusal
            record.handshake_error = code or "missing_auth"
            event = {
                "event_id": new_event_id(),
                **error_event("invalid_request_error", code, message),
            }
            record.add("server", event)
            record.close_code = close_code
            try:
                await ws.send(codec.dumps(event), text=True)
                await ws.close(close_code, reason)
            except ConnectionClosed:
                pass
            return
        models = parse_qs(urlsplit(request.path).query).get("model")
        model = models[0] if models else None
        progress = ScenarioProgress(self.scenario) if self.per_connection else self.progress
        transcription = model is None and _transcription_intent(request.path)
        await WebSocketAdapter(ws, record, self.options, progress, model, transcription).run()


def _transcription_intent(path: str) -> bool:
    """``?intent=transcription`` (with no model): a transcription session."""
    return (parse_qs(urlsplit(path).query).get("intent") or [""])[0] == "transcription"


# -- subprotocols and secrets ------------------------------------------------------------


def _offered(headers: Headers) -> list[str]:
    """The subprotocols a client offered (``Sec-WebSocket-Protocol``, maybe several headers)."""
    return [
        p.strip()
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for p in value.split(",")
        if p.strip()
    ]


def _subprotocol_key(headers: Headers) -> str:
    """The key offered as ``openai-insecure-api-key.<key>``, or ``""``."""
    for protocol in _offered(headers):
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
    return ""


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Select ``realtime`` when offered, as the live server does; never the key's protocol.

    A client that offers subprotocols and gets none back (browsers, Node's WebSocket)
    aborts the handshake, so this is what lets them connect at all.
    """
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


_SECRETS = re.compile(
    r"(openai-insecure-api-key\.|[?&]api-key=|^< authorization: \S+ |^< authorization: |^< api-key: )"
    r"[^\s,&]+",
    re.IGNORECASE,
)


class _RedactSecrets(logging.Filter):
    """Mask API keys in the handshake records websockets logs at DEBUG (``realtalk -v``):
    the request line's ``api-key`` query, the ``Authorization`` and ``api-key`` headers
    and the key offered as a subprotocol."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _SECRETS.sub(lambda m: m.group(1) + "***", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _handshake_logger() -> logging.Logger:
    """The logger websockets writes to, with :class:`_RedactSecrets` on it (once)."""
    logger = logging.getLogger("realtalk.emulator.websocket")
    if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
        logger.addFilter(_RedactSecrets())
    return logger
