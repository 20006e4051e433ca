"""WebSocket connections to a Realtime server: handshake errors, retries, frames.

The only client module that imports ``websockets``. Given a
:class:`~realtalk.profiles.ConnectionProfile` (where and how to connect; re-exported here),
:func:`connect` opens a :class:`RealtimeConnection` that sends and receives JSON events as
dicts.

Handshake policy (reference §1, §6):

* HTTP 429 and 5xx on the upgrade, refused connections, DNS failures and timeouts are
  retried with exponential backoff and full jitter (:class:`Backoff`); after the last
  attempt :class:`~realtalk.exceptions.ConnectionFailed` says how many attempts were made.
* HTTP 401/403 raise :class:`~realtalk.exceptions.AuthenticationFailed`; other 4xx raise
  :class:`~realtalk.exceptions.ServerRejected`. Neither is retried.
* A 101 is not success: OpenAI reports a bad key or model as an ``error`` event followed by
  close 3000 (:class:`~realtalk.exceptions.AuthenticationFailed`) or 4000
  (:class:`~realtalk.exceptions.ServerRejected`). :func:`connect` waits for the first event
  to catch these, and keeps it for :meth:`RealtimeConnection.recv`.

The API key is only ever placed in a request header. It never appears in a ``repr``, an
exception message or a log line: every message built here passes through the profile's
redaction. Credentials written into the URL itself (``user:pass@``, or query parameters
such as ``api-key``, ``token``, ``sig``) are sent as given but shown as ``***``
(:func:`redact_url`, :attr:`ConnectionProfile.display_url`).

A frame larger than ``max_size`` ends the connection with close 1009 and raises
:class:`FrameTooLarge`, which names the limit and the frame's size.

Frames are parsed and encoded by :mod:`realtalk.protocol.codec` (orjson: about 3x faster
to parse than ``json.loads`` and 20x faster to encode). A frame orjson refuses is parsed
again by the stdlib, so what the stdlib accepted still arrives (``NaN``, lone surrogates);
a frame neither accepts (not JSON, not UTF-8, nested too deep) is logged and skipped.
Integers beyond 64 bits arrive as floats. An event we send that orjson cannot encode (a
key that is not a string, an integer beyond 64 bits) is encoded by the stdlib as before;
one neither can encode raises a ``TypeError`` naming the event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI, PayloadTooBig

from realtalk.exceptions import AuthenticationFailed, ConnectionFailed, ServerRejected
from realtalk.profiles import (
    AZURE_PREVIEW_API_VERSION,
    Backoff,
    ConnectionProfile,
    is_loopback_host,
    redact_url,
    url_secrets,
)
from realtalk.protocol import codec
from realtalk.protocol.vocab import Dialect, error_line
from realtalk.waits import within

__all__ = [
    "AZURE_PREVIEW_API_VERSION",
    "Backoff",
    "CloseInfo",
    "ConnectionClosed",
    "ConnectionProfile",
    "FrameTooLarge",
    "RealtimeConnection",
    "connect",
    "redact_url",
    "url_secrets",
]

log = logging.getLogger("realtalk.connection")

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
"""Largest incoming frame accepted: audio deltas and retrieved items can be large."""


class ConnectionClosed(ConnectionFailed):
    """An open connection ended (socket dropped, server closed, session expired).

    Raised by :meth:`RealtimeConnection.recv` and :meth:`RealtimeConnection.send`. The
    session reconnects on it. Closes that retrying cannot fix (3000, 4000) raise
    :class:`~realtalk.exceptions.AuthenticationFailed` /
    :class:`~realtalk.exceptions.ServerRejected` instead.

    Attributes:
        code: The WebSocket close code (1006 when the socket dropped without one).
        reason: The close reason, possibly empty.
    """

    def __init__(self, message: str, *, code: int, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class FrameTooLarge(ConnectionClosed):
    """The server sent a frame over ``max_size``; the connection was closed with 1009.

    Reconnecting rarely helps: the same item (a long retrieved audio item, a huge tool
    output echoed back) is likely to come again. Raise ``max_size`` in :func:`connect`, or
    end the session.

    Attributes:
        limit: The ``max_size`` in bytes that the frame exceeded.
        size: The frame's size in bytes, when websockets reported it (else None).
    """

    def __init__(
        self, message: str, *, code: int, reason: str, limit: int | None, size: int | None
    ) -> None:
        super().__init__(message, code=code, reason=reason)
        self.limit = limit
        self.size = size


@dataclass(frozen=True)
class CloseInfo:
    """How a connection ended.

    Attributes:
        code: WebSocket close code (1006: dropped without a close frame).
        reason: Close reason text.
        by_server: Whether the server closed it (False when we called ``close()``).
        error: The last ``error`` event's one-line summary before the close, if any.
    """

    code: int
    reason: str
    by_server: bool
    error: str | None = None


# -- the connection -------------------------------------------------------------------------


class RealtimeConnection:
    """One open WebSocket to a Realtime server, speaking JSON dicts.

    Made by :func:`connect`. Receive with ``await recv()`` or ``async for event in conn``;
    send with ``await send(event)``; end with ``await close()``. Events are passed through
    as the server sent them (normalise with ``protocol.events``).

    Attributes:
        profile: The profile it was opened with.
        attempts: How many connection attempts :func:`connect` needed.
        max_size: The largest incoming frame accepted, in bytes (None: unlimited).
    """

    def __init__(
        self,
        ws: ClientConnection,
        profile: ConnectionProfile,
        *,
        first: dict[str, Any] | None = None,
        attempts: int = 1,
        max_size: int | None = None,
    ) -> None:
        self._ws = ws
        self.profile = profile
        self.attempts = attempts
        self.max_size = max_size
        self._pending: list[dict[str, Any]] = [first] if first is not None else []
        self._closed_by_us = False
        self._last_error: str | None = None
        self._too_large: FrameTooLarge | None = None

    def __repr__(self) -> str:
        state = "closed" if self.close_info is not None else "open"
        return f"<RealtimeConnection {self.profile.display_url} {state}>"

    @property
    def dialect(self) -> Dialect:
        """The profile's dialect (``"ga"`` or ``"beta"``)."""
        return self.profile.dialect

    @property
    def close_info(self) -> CloseInfo | None:
        """How the connection ended, or ``None`` while it is open."""
        code = self._ws.close_code
        if code is None:
            return None
        reason = self._ws.close_reason or ""
        if self._too_large is not None:  # we closed it: websockets reports 1006 then
            code, reason = self._too_large.code, self._too_large.reason
        return CloseInfo(
            code=code,
            reason=reason,
            by_server=not self._closed_by_us,
            error=self._last_error,
        )

    async def send(self, event: dict[str, Any]) -> None:
        """Send one client event as a JSON text frame.

        Raises:
            ConnectionClosed: The connection is closed (the event was not sent).
            TypeError: The event holds a value JSON cannot (an object of an unknown
                class); nothing was sent.
        """
        try:
            data = codec.dumps(event)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"cannot send {event.get('type')!r}: a value in it is not JSON ({exc})") from None
        try:
            await self._ws.send(data, text=True)
        except WsConnectionClosed as exc:
            raise self._closed_error(exc) from None

    async def recv(self) -> dict[str, Any]:
        """Receive the next server event.

        Frames that are not a JSON object are logged and skipped.

        Raises:
            FrameTooLarge: The server sent a frame over ``max_size`` (we closed with 1009).
            ConnectionClosed: The connection ended; reconnect if appropriate.
            AuthenticationFailed: The server closed with 3000.
            ServerRejected: The server closed with 4000.
        """
        if self._pending:
            return self._note(self._pending.pop(0))
        while True:
            try:
                raw = await self._ws.recv(decode=False)  # UTF-8 is checked by the parser
            except WsConnectionClosed as exc:
                raise self._closed_error(exc) from None
            event = codec.loads_lenient(raw)
            if type(event) is not dict:
                log.warning("ignoring a frame that is not a JSON object (%d bytes)", len(raw))
                continue
            if event.get("type") == "error":
                self._last_error = error_line(event.get("error"))
            return event

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        """Yield events until the connection closes; then stop (see :attr:`close_info`).

        A fatal close (3000/4000) and :class:`FrameTooLarge` still raise, so they cannot be
        mistaken for an end.
        """
        while True:
            try:
                yield await self.recv()
            except FrameTooLarge:
                raise
            except ConnectionClosed:
                return

    async def close(self, code: int = 1000, reason: str = "", *, timeout: float | None = None) -> None:
        """Close the connection (idempotent). Nothing else to do afterwards.

        Args:
            code: The close code.
            reason: The close reason.
            timeout: Seconds allowed for the closing handshake; after them the socket is
                dropped (no close frame awaited). None waits as long as websockets does.
        """
        if self._ws.close_code is None:
            self._closed_by_us = True
        if timeout is None:
            await self._ws.close(code, reason)
            return
        try:
            await within(self._ws.close(code, reason), timeout)
        except (asyncio.TimeoutError, OSError):
            self.abort()

    def abort(self) -> None:
        """Drop the socket at once, without a closing handshake (idempotent)."""
        self._closed_by_us = True
        self._ws.transport.abort()

    def _note(self, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("type") == "error":
            self._last_error = error_line(event.get("error"))
        return event

    def _closed_error(self, exc: WsConnectionClosed) -> ConnectionFailed:
        sent = exc.sent
        if exc.rcvd is None and sent is not None and sent.code == 1009 and not self._closed_by_us:
            self._too_large = self._too_large_error(exc, sent.reason)
            return self._too_large
        rcvd = exc.rcvd
        code = rcvd.code if rcvd is not None else 1006
        reason = rcvd.reason if rcvd is not None else ""
        fatal = _fatal_close(self.profile, code, reason, self._last_error)
        if fatal is not None and not self._closed_by_us:
            return fatal
        detail = f"{code}" + (f" {reason}" if reason else "")
        if self._closed_by_us:
            msg = f"connection to {self.profile.display_url} was closed by us ({detail})"
        elif rcvd is None:
            msg = f"connection to {self.profile.display_url} dropped without a close frame"
        else:
            msg = f"server closed the connection to {self.profile.display_url} ({detail})"
        return ConnectionClosed(self.profile.redact(msg), code=code, reason=reason)


    def _too_large_error(self, exc: WsConnectionClosed, reason: str) -> FrameTooLarge:
        # websockets chains the parser's PayloadTooBig (size and limit) as the cause.
        cause = exc.__cause__
        size = limit = None
        if isinstance(cause, PayloadTooBig) and cause.message is None:
            size, limit = cause.size, cause.max_size
        limit = limit if limit is not None else self.max_size
        what = f"a {_bytes(size)} frame" if size is not None else "a frame"
        over = f"over the {_bytes(limit)} limit" if limit is not None else "over the size limit"
        msg = (
            f"{self.profile.display_url} sent {what}, {over} (max_size); the connection was"
            " closed with 1009 message too big. Raise max_size in connect(), or avoid"
            " what made the server send it (a long audio item retrieved, a huge tool output)"
        )
        return FrameTooLarge(
            self.profile.redact(msg), code=1009, reason=reason, limit=limit, size=size
        )


def _bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB ({n} bytes)"
    return f"{n} bytes"


def _fatal_close(
    profile: ConnectionProfile, code: int, reason: str, error: str | None
) -> ConnectionFailed | None:
    """Map close 3000/4000 (with the error event before it) to an actionable exception."""
    said = error or reason or f"close {code}"
    where = profile.display_url
    if code == 3000:
        env = f"; check {profile.key_env}" if profile.key_env else "; check the API key"
        return AuthenticationFailed(
            profile.redact(f"{where} refused the credentials (close 3000): {said}{env}")
        )
    if code == 4000:
        text = f"{said} {reason}"
        if "beta_api_shape_disabled" in text:
            hint = "; the server only speaks the GA protocol: drop the beta profile (--beta)"
        elif "invalid_model" in text or "missing_model" in text:
            what = "deployment" if profile.kind == "azure" else "model"
            hint = f"; check the {what} name {profile.model!r}"
        else:
            hint = ""
        return ServerRejected(
            profile.redact(f"{where} rejected the session (close 4000): {said}{hint}")
        )
    return None


# -- connect --------------------------------------------------------------------------------


async def connect(
    profile: ConnectionProfile,
    *,
    retries: int = 4,
    backoff: Backoff | None = None,
    open_timeout: float = 10.0,
    first_event_timeout: float = 10.0,
    ping_interval: float | None = 20.0,
    max_size: int | None = DEFAULT_MAX_SIZE,
    proxy: str | Literal[True] | None = True,
    on_retry: Callable[[int, int, float, str], None] | None = None,
) -> RealtimeConnection:
    """Open a connection, retrying what is worth retrying.

    Args:
        profile: Where and how to connect.
        retries: Retries after the first attempt (so ``retries + 1`` attempts at most).
        backoff: Delays between attempts; default ``Backoff()`` (0.5 s doubling to 8 s,
            full jitter). A ``Retry-After`` header on 429/503 is honoured up to ``max``.
        open_timeout: Seconds allowed for TCP + TLS + upgrade, per attempt.
        first_event_timeout: Seconds to wait for the first event after the upgrade (where
            OpenAI reports bad keys and models). If none comes, the connection is returned
            as is.
        ping_interval: WebSocket keepalive ping interval (None disables our pings; the
            server's pings are always answered).
        max_size: Largest incoming frame in bytes (None: unlimited).
        proxy: ``True`` honours the usual proxy environment variables (``HTTPS_PROXY``,
            ``NO_PROXY``...) except for a loopback host (``localhost``, ``127.0.0.0/8``,
            ``::1``: always direct), a URL forces a proxy, ``None`` connects directly.
        on_retry: Called before each retry with the attempt about to start, the number
            of attempts, the delay in seconds and why the last attempt failed.

    Returns:
        An open :class:`RealtimeConnection`; its first :meth:`~RealtimeConnection.recv`
        returns the first event (normally ``session.created``).

    Raises:
        AuthenticationFailed: HTTP 401/403 or close 3000 (not retried).
        ServerRejected: Another HTTP 4xx, or close 4000 (not retried).
        FrameTooLarge: The first event was larger than ``max_size`` (not retried).
        ConnectionFailed: Every attempt failed for a retryable reason.
    """
    delays = backoff or Backoff()
    if proxy is True and is_loopback_host(urlsplit(profile.ws_url).hostname or ""):
        proxy = None  # a local emulator or gateway: no proxy lookup per connection
    attempts = retries + 1
    last = "no attempt made"
    retry_after: float | None = None
    for attempt in range(attempts):
        if attempt:
            delay = delays.delay(attempt - 1)
            if retry_after is not None:
                delay = min(max(delay, retry_after), max(delays.max, delay))
            log.info(
                "retrying %s in %.2f s (attempt %d of %d): %s",
                profile.display_url, delay, attempt + 1, attempts, last,
            )
            if on_retry is not None:
                on_retry(attempt + 1, attempts, delay, last)
            await asyncio.sleep(delay)
        retry_after = None
        try:
            ws = await ws_connect(
                profile.ws_url,
                additional_headers=profile.headers(),
                open_timeout=open_timeout,
                ping_interval=ping_interval,
                max_size=max_size,
                proxy=proxy,
                # No permessage-deflate (the official SDK offers none either): with a server
                # that accepts it, it doubles the CPU per event on both sides.
                compression=None,
                user_agent_header="realtalk (websockets)",
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            phrase = exc.response.reason_phrase
            if status == 429 or status >= 500:
                last = f"HTTP {status} {phrase}".strip()
                retry_after = _parse_retry_after(exc.response.headers.get("Retry-After"))
                continue
            if status in (401, 403):
                env = f"; check {profile.key_env}" if profile.key_env else ""
                raise AuthenticationFailed(
                    profile.redact(
                        f"{profile.display_url} refused the credentials (HTTP {status}){env}"
                    )
                ) from None
            raise ServerRejected(
                profile.redact(
                    f"{profile.display_url} refused the WebSocket upgrade (HTTP {status}"
                    f" {phrase}); check the URL and model"
                )
            ) from None
        except InvalidURI:
            raise ConnectionFailed(f"invalid URL {profile.display_url}") from None
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
            last = profile.redact(_describe(exc))
            continue
        conn = await _check_first_event(ws, profile, first_event_timeout, attempt + 1, max_size)
        if conn is not None:
            return conn
        last = "the server closed the connection right after the upgrade"
    noun = "attempt" if attempts == 1 else "attempts"
    raise ConnectionFailed(
        profile.redact(
            f"could not connect to {profile.display_url} after {attempts} {noun}: {last}"
        )
    )


async def _check_first_event(
    ws: ClientConnection,
    profile: ConnectionProfile,
    timeout: float,
    attempts: int,
    max_size: int | None,
) -> RealtimeConnection | None:
    """Read the first event; turn an error + close 3000/4000 into an exception.

    Returns None when the server closed without a fatal code (worth another attempt).
    """
    conn = RealtimeConnection(ws, profile, attempts=attempts, max_size=max_size)
    try:
        first = await within(conn.recv(), timeout)
    except asyncio.TimeoutError:
        log.warning("no event from %s within %.1f s of connecting", profile.display_url, timeout)
        return conn
    except FrameTooLarge:
        raise  # the same first event would come again: not worth another attempt
    except ConnectionClosed:
        return None
    if first.get("type") != "error":
        conn._pending.insert(0, first)
        return conn
    # OpenAI closes in the same millisecond after a fatal error; a non-fatal error leaves
    # the socket open, so wait only briefly for the close.
    try:
        await within(ws.wait_closed(), min(timeout, 1.0))
    except asyncio.TimeoutError:
        conn._pending.insert(0, first)
        return conn
    code = ws.close_code if ws.close_code is not None else 1006
    fatal = _fatal_close(profile, code, ws.close_reason or "", error_line(first.get("error")))
    if fatal is not None:
        raise fatal
    return None


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out opening the connection"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and ("Name or service" in text or "nodename" in text):
        return f"cannot resolve the host name ({text})"
    return text
