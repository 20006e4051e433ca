"""WebSocket connections to a Realtime server: profiles, handshake errors, backoff.

The only module in realtalk that imports ``websockets``. A :class:`ConnectionProfile` says
where to connect and how to authenticate (OpenAI, Azure OpenAI, or any compatible URL such
as the realtalk emulator); :func:`connect` opens a :class:`RealtimeConnection` that sends
and receives JSON events as dicts.

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import (
    parse_qsl,
    quote,
    quote_plus,
    unquote,
    unquote_plus,
    urlencode,
    urlsplit,
    urlunsplit,
)

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI, PayloadTooBig

from realtalk.exceptions import AuthenticationFailed, ConnectionFailed, ServerRejected
from realtalk.protocol.vocab import Dialect

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

OPENAI_URL = "wss://api.openai.com/v1/realtime"
AZURE_PREVIEW_API_VERSION = "2025-04-01-preview"
"""``api-version`` used for Azure's preview (beta-protocol) endpoint."""
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


# -- backoff ------------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Exponential backoff with full jitter (delay drawn uniformly from ``[0, cap]``).

    Args:
        initial: Cap of the first delay, in seconds.
        max: Largest cap, in seconds.
        factor: Growth of the cap per attempt.
        jitter: Full jitter if True; the cap itself if False.
        rng: Random source; pass ``random.Random(seed)`` for deterministic tests.
    """

    initial: float = 0.5
    max: float = 8.0
    factor: float = 2.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def cap(self, attempt: int) -> float:
        """The largest delay before retry number ``attempt`` (0-based)."""
        return float(min(self.max, self.initial * self.factor ** max(0, attempt)))

    def delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based), in seconds."""
        cap = self.cap(attempt)
        return self.rng.uniform(0.0, cap) if self.jitter else cap

    def delays(self) -> Iterator[float]:
        """An endless iterator of delays for attempts 0, 1, 2, ..."""
        attempt = 0
        while True:
            yield self.delay(attempt)
            attempt += 1


# -- secrets in URLs ----------------------------------------------------------------------------

_SECRET_PARAMS = frozenset({
    "key", "apikey", "token", "auth", "authorization", "sig", "signature", "secret",
    "password", "passwd", "pass", "pwd", "code", "credential", "credentials", "jwt",
    "bearer", "session", "sas",
})
_SECRET_SUFFIXES = ("_key", "_token", "_secret", "_sig", "_signature", "_password",
                    "_credential", "_jwt")


def _is_secret_param(name: str) -> bool:
    norm = unquote_plus(name).strip().lower().replace("-", "_")
    return norm in _SECRET_PARAMS or norm.endswith(_SECRET_SUFFIXES)


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials written into ``url``, in every form they may appear in a message.

    That is the ``user:pass`` userinfo and its password, and the values of query parameters
    named like secrets (``api-key``, ``api_key``, ``key``, ``token``, ``access_token``,
    ``sig``, ``signature``, ``secret``, ``password``, anything ending in ``_key``,
    ``_token``, ``_secret``...), each raw, decoded and re-encoded. Longest first, so that
    replacing them in order never leaves part of one behind.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found: set[str] = set()
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and userinfo:
        found.add(userinfo)
        _, colon, password = userinfo.partition(":")
        if colon and password:
            found.update((password, unquote(password)))
    for pair in parts.query.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and _is_secret_param(name):
            plain = unquote_plus(value)
            found.update((value, plain, quote_plus(plain), quote(plain, safe="")))
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def redact_url(url: str) -> str:
    """``url`` with userinfo shown as ``***@`` and secret query values as ``***``.

    Other parts are kept as written. Works on any string: one that does not parse as a URL
    is returned unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        name, eq, value = pair.partition("=")
        pairs.append(f"{name}=***" if eq and value and _is_secret_param(name) else pair)
    query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# -- profiles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionProfile:
    """Where to connect and how to authenticate. Build one with a constructor below.

    Attributes:
        kind: ``"openai"``, ``"azure"`` or ``"url"``.
        ws_url: The full WebSocket URL including the query (never contains :attr:`api_key`;
            it may hold credentials the user wrote into it: show :attr:`display_url`).
        model: The model (or Azure deployment) requested, when known.
        beta: Opt-in legacy beta protocol (sends ``OpenAI-Beta: realtime=v1``).
        api_key: The secret; excluded from ``repr`` and comparisons.
        auth: ``"bearer"`` (``Authorization: Bearer``), ``"api-key"`` (Azure header) or
            ``"none"``.
        key_env: The environment variable the key comes from, for error messages.
    """

    kind: Literal["openai", "azure", "url"]
    ws_url: str
    model: str | None = None
    beta: bool = False
    api_key: str | None = field(default=None, repr=False, compare=False)
    auth: Literal["bearer", "api-key", "none"] = "bearer"
    key_env: str | None = None

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def openai(
        cls, model: str, api_key: str | None = None, *, beta: bool = False
    ) -> ConnectionProfile:
        """OpenAI: ``wss://api.openai.com/v1/realtime?model=<model>``, Bearer auth.

        Args:
            model: The Realtime model, e.g. ``gpt-realtime``.
            api_key: The key; defaults to ``$OPENAI_API_KEY``.
            beta: Speak the legacy beta protocol (OpenAI rejects it since May 2026).

        Raises:
            AuthenticationFailed: No key given and ``OPENAI_API_KEY`` is not set.
        """
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if not key:
            raise AuthenticationFailed(
                "no OpenAI API key: set OPENAI_API_KEY, or use --emulator (no key needed)"
            )
        return cls(
            kind="openai",
            ws_url=_with_query(OPENAI_URL, {"model": model}),
            model=model,
            beta=beta,
            api_key=key,
            auth="bearer",
            key_env="OPENAI_API_KEY",
        )

    @classmethod
    def azure(
        cls,
        deployment: str,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        beta: bool = False,
    ) -> ConnectionProfile:
        """Azure OpenAI GA: ``wss://<resource>/openai/v1/realtime?model=<deployment>``.

        With ``beta=True`` the preview endpoint is used instead
        (``/openai/realtime?api-version=...&deployment=...``), plus the beta header.

        Args:
            deployment: The Azure deployment name of the realtime model.
            endpoint: ``https://<resource>.openai.azure.com``; defaults to
                ``$AZURE_OPENAI_ENDPOINT``.
            api_key: Defaults to ``$AZURE_OPENAI_API_KEY``; sent as the ``api-key`` header.
            beta: Use the preview (beta) protocol.

        Raises:
            ConnectionFailed: No endpoint given and ``AZURE_OPENAI_ENDPOINT`` is not set.
            AuthenticationFailed: No key given and ``AZURE_OPENAI_API_KEY`` is not set.
        """
        base = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT") or ""
        if not base:
            raise ConnectionFailed(
                "no Azure endpoint: set AZURE_OPENAI_ENDPOINT to https://<resource>.openai.azure.com"
            )
        key = api_key or os.environ.get("AZURE_OPENAI_API_KEY") or None
        if not key:
            raise AuthenticationFailed("no Azure OpenAI API key: set AZURE_OPENAI_API_KEY")
        parts = urlsplit(base if "://" in base else "https://" + base)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/")
        for suffix in ("/openai/v1/realtime", "/openai/v1", "/openai/realtime", "/openai"):
            if path.endswith(suffix):
                path = path[: -len(suffix)]
                break
        if beta:
            path += "/openai/realtime"
            query = {"api-version": AZURE_PREVIEW_API_VERSION, "deployment": deployment}
        else:
            path += "/openai/v1/realtime"
            query = {"model": deployment}
        url = urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))
        return cls(
            kind="azure",
            ws_url=url,
            model=deployment,
            beta=beta,
            api_key=key,
            auth="api-key",
            key_env="AZURE_OPENAI_API_KEY",
        )

    @classmethod
    def url(
        cls,
        url: str,
        api_key: str | None = None,
        model: str | None = None,
        *,
        beta: bool = False,
    ) -> ConnectionProfile:
        """Any Realtime-compatible server (the realtalk emulator, a proxy, a gateway).

        Args:
            url: ``ws://`` or ``wss://`` URL (``http(s)`` is converted). A ``model`` query
                parameter is added when ``model`` is given and the URL has none.
            api_key: Sent as ``Authorization: Bearer`` when given; nothing otherwise.
            model: The model to request.
            beta: Speak the legacy beta protocol.

        Raises:
            ConnectionFailed: The URL is not a WebSocket URL.
        """
        parts = urlsplit(url)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        if scheme not in ("ws", "wss") or not parts.netloc:
            shown = redact_url(url)
            for secret in url_secrets(url):
                shown = shown.replace(secret, "***")
            raise ConnectionFailed(
                f"not a WebSocket URL: {shown!r}; expected ws://host:port/path or wss://..."
            )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if model and "model" not in query:
            query["model"] = model
        ws_url = urlunsplit((scheme, parts.netloc, parts.path or "/", urlencode(query), ""))
        return cls(
            kind="url",
            ws_url=ws_url,
            model=query.get("model") or model,
            beta=beta,
            api_key=api_key or None,
            auth="bearer" if api_key else "none",
        )

    # -- derived --------------------------------------------------------------------------------

    @property
    def dialect(self) -> Dialect:
        """The protocol dialect: ``"beta"`` for beta profiles, else ``"ga"``."""
        return "beta" if self.beta else "ga"

    @property
    def display_url(self) -> str:
        """The URL for messages and logs: no key, userinfo as ``***@``, secret query values
        (``api-key``, ``token``, ``sig``...) as ``***``."""
        return self.redact(redact_url(self.ws_url))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret string of this profile (the key, credentials in the URL), for
        scrubbing logs and records (e.g. ``Recorder(..., secrets=profile.secrets)``)."""
        key = (self.api_key,) if self.api_key and len(self.api_key) >= 4 else ()
        return key + url_secrets(self.ws_url)

    def __repr__(self) -> str:
        return (
            f"ConnectionProfile(kind={self.kind!r}, url={self.display_url!r},"
            f" model={self.model!r}, beta={self.beta!r}, auth={self.auth!r})"
        )

    def headers(self) -> dict[str, str]:
        """The request headers for the upgrade. Contains the secret: never log it."""
        headers: dict[str, str] = {}
        if self.api_key and self.auth == "bearer":
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self.api_key and self.auth == "api-key":
            headers["api-key"] = self.api_key
        if self.beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        return headers

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret of the profile replaced by ``***``.

        The API key, and the credentials in the URL wherever they appear: the URL's
        userinfo becomes ``***@``, secret query values (raw or percent-encoded) ``***``.
        """
        if self.api_key and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "***")
        if "@" in self.ws_url or "=" in self.ws_url:
            userinfo = self.ws_url.partition("://")[2].partition("/")[0].rpartition("@")[0]
            if userinfo:
                text = text.replace(userinfo + "@", "***@")
            for secret in url_secrets(self.ws_url):
                text = text.replace(secret, "***")
        return text


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


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
        """
        try:
            await self._ws.send(json.dumps(event, separators=(",", ":")))
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
                raw = await self._ws.recv()
            except WsConnectionClosed as exc:
                raise self._closed_error(exc) from None
            event = _decode(raw)
            if event is None:
                log.warning("ignoring a frame that is not a JSON object (%d chars)", len(raw))
                continue
            return self._note(event)

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
            await asyncio.wait_for(self._ws.close(code, reason), timeout)
        except (asyncio.TimeoutError, OSError):
            self.abort()

    def abort(self) -> None:
        """Drop the socket at once, without a closing handshake (idempotent)."""
        self._closed_by_us = True
        self._ws.transport.abort()

    def _note(self, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("type") == "error":
            self._last_error = _error_line(event)
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


def _decode(raw: str | bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return event if isinstance(event, dict) else None


def _error_line(event: dict[str, Any]) -> str:
    err = event.get("error")
    if not isinstance(err, dict):
        return "error"
    code = err.get("code") or err.get("type") or "error"
    message = str(err.get("message") or "").strip()
    return f"{code}: {message}" if message else str(code)


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
            ``NO_PROXY``...), a URL forces a proxy, ``None`` connects directly.

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
        first = await asyncio.wait_for(conn.recv(), timeout=timeout)
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
        await asyncio.wait_for(ws.wait_closed(), timeout=min(timeout, 1.0))
    except asyncio.TimeoutError:
        conn._pending.insert(0, first)
        return conn
    code = ws.close_code if ws.close_code is not None else 1006
    fatal = _fatal_close(profile, code, ws.close_reason or "", _error_line(first))
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
