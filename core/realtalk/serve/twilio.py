"""Phone calls through Twilio Media Streams: the voice webhook, the media stream, and their rules.

A call reaches ``realtalk serve`` in two steps, as Twilio documents them:

1. Twilio POSTs the call's form fields to ``POST /twilio/voice`` (the number's voice
   webhook), signed with the account's auth token in ``X-Twilio-Signature``. The answer is
   TwiML that connects the call to a media stream: ``<Connect><Stream url="wss://HOST/
   twilio/stream">`` with two ``<Parameter>``: the agent, and a one-time stream token.
2. Twilio opens ``WS /twilio/stream`` and sends JSON messages: ``connected``, ``start``
   (with the parameters), ``media`` (20 ms of 8 kHz mu-law, base64), ``mark`` (the echo of
   one of ours), ``dtmf`` and ``stop``. We send ``media``, ``mark`` and ``clear``.

Twilio sends no credentials on the stream, so the stream is protected by the token the
webhook put in the TwiML: an HMAC (keyed with the auth token) over the call's ``CallSid``,
the agent and an expiry about a minute ahead, accepted once (:class:`StreamTokens`).

The rules live in sans-I/O objects, testable with plain strings and dicts:
:func:`verify_signature`, :class:`StreamTokens` and :class:`TwilioCall` (Twilio's
messages in, actions out; assistant audio in, Twilio frames out). The routes of
:func:`routes` only move data between the sockets, a :class:`TwilioCall` and the call's
:class:`~realtalk.session.Session`.

Audio is passed through unchanged both ways: the session's ``audio_format`` is
``audio/pcmu``, so the caller's mu-law goes to the Realtime server as it came
(``Session.append_wire_audio``) and the server's mu-law goes to Twilio as it came
(:class:`~realtalk.audio.remote.RemoteSink` with passthrough), cut in 20 ms frames. After
each frame we send a ``mark`` named ``e<epoch>:<samples>`` (the samples sent in the epoch
so far); Twilio echoes it once the caller has heard the audio before it, which is what
barge-in truncates to. On barge-in we send ``clear``: Twilio drops the audio it holds and
echoes the marks still pending at once; those name an older epoch and are ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from xml.sax.saxutils import quoteattr

import pybase64

from ..audio.remote import RemoteSink
from ..exceptions import RealtalkError
from ..protocol import codec
from ..results import ErrorEvent, SessionEvent
from ..waits import within
from . import logs
from .access import Admission, Refused
from .config import TWILIO_TOKEN_VARIABLE

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute
    from starlette.websockets import WebSocket

    from ..session import Session
    from .hub import SessionHub

__all__ = [
    "BadMessage",
    "Digit",
    "HangUp",
    "InputAudio",
    "Played",
    "StartCall",
    "Stopped",
    "StreamTokens",
    "TwilioCall",
    "routes",
    "signature",
    "signed_url",
    "stream_url",
    "twiml",
    "verify_signature",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
FRAME_BYTES = 160
"""Bytes of mu-law per media frame we send: 20 ms at 8 kHz, as Twilio recommends."""
MAX_MESSAGE_BYTES = 64 * 1024
"""A message from Twilio longer than this is a protocol error (a media message is ~300 bytes)."""
MAX_BAD_MESSAGES = 20
"""Bad messages tolerated in one call; one more hangs up."""
STREAM_TOKEN_TTL_S = 60.0
"""How long the one-time stream token of a webhook answer stays valid."""
DIGITS = frozenset("0123456789*#ABCD")
EVENTS = ("connected", "start", "media", "mark", "dtmf", "stop")
"""The events Twilio sends on a media stream."""


# -- the webhook's signature ------------------------------------------------------------


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature`` of a form POST: base64 of the HMAC-SHA1, keyed with
    the auth token, of the full URL followed by each parameter's name and value, the
    parameters sorted by name."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Whether ``signature`` is Twilio's signature of this POST (compared in constant time).

    ``url`` is the URL Twilio requested, as configured on the number (scheme, host, path
    and query string). As Twilio's own libraries do, the URL is also tried with its default
    port added or removed (``https://host/`` and ``https://host:443/``), since what Twilio
    signs depends on how the URL was written in the console.
    """
    given = signature.encode()
    ok = False
    for candidate in _url_variants(url):
        ok |= hmac.compare_digest(_sign(auth_token, candidate, params).encode(), given)
    return ok


_sign = signature  # (verify_signature's parameter hides the function's name)


def _url_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if parts.username is not None or default is None:
        return [url]
    try:
        port = parts.port
    except ValueError:
        return [url]
    if port is None:
        other = urlunsplit(parts._replace(netloc=f"{host}:{default}"))
    elif port == default:
        other = urlunsplit(parts._replace(netloc=host))
    else:
        return [url]
    return [url, other]


def signed_url(request_url: str, public_url: str | None) -> str:
    """The URL Twilio signed, as this server sees the request.

    Args:
        request_url: The request's URL (scheme, host, path and query) as the ASGI server
            reports it. Behind a proxy that terminates TLS this says ``http://`` and the
            internal host, unless the server trusts the proxy's ``X-Forwarded-Proto``.
        public_url: The server's public base URL (``--public-url``), when configured: its
            scheme, host and path prefix replace the request's; the request's path (below
            the prefix a proxy strips, if any) and query string are kept.
    """
    if not public_url:
        return request_url
    base = urlsplit(public_url.rstrip("/"))
    req = urlsplit(request_url)
    return urlunsplit((base.scheme, base.netloc, base.path + req.path, req.query, ""))


# -- the stream's one-time token -----------------------------------------------------------


class StreamTokens:
    """One-time tokens that let a media stream in: minted by the webhook, spent by the stream.

    A token is ``<expiry>.<nonce>.<mac>``, the MAC an HMAC-SHA256 keyed with ``key`` (the
    auth token) over the call's ``CallSid``, the agent, the expiry and the nonce. So a
    token is only good for the call and the agent it was made for, until its expiry, and
    (in this process) once. Another worker process of the same server accepts it too (it
    has the same key), but does not know it was spent here: with ``--workers N`` a stolen
    token can be replayed at most once per process within its minute.

    Sans-I/O: the clock is passed in.

    Args:
        key: The HMAC key.
        ttl_s: How long a minted token stays valid.
        max_spent: Spent nonces remembered (the oldest are forgotten; they have expired by
            then unless more than this many streams start within one ``ttl_s``).
    """

    def __init__(self, key: bytes, *, ttl_s: float = STREAM_TOKEN_TTL_S, max_spent: int = 4096) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self.max_spent = max_spent
        self._spent: OrderedDict[str, float] = OrderedDict()  # nonce -> expiry

    def mint(self, call_sid: str, agent: str, now: float) -> str:
        """A token for one stream of ``call_sid`` with ``agent``, valid ``ttl_s`` from ``now``."""
        expiry = int(now + self.ttl_s)
        nonce = secrets.token_urlsafe(12)
        return f"{expiry}.{nonce}.{self._mac(call_sid, agent, expiry, nonce)}"

    def spend(self, token: str, call_sid: str, agent: str, now: float) -> str | None:
        """Check ``token`` for this call and agent and mark it spent.

        Returns:
            None when it is good, else the reason it is refused (one line, without the token).
        """
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return "the stream token is malformed"
        expiry, nonce, mac = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(mac.encode(), self._mac(call_sid, agent, expiry, nonce).encode()):
            return "the stream token was not made for this call and agent by this server"
        if now > expiry:
            return f"the stream token expired {now - expiry:.0f} s ago (tokens last {self.ttl_s:g} s)"
        while self._spent and next(iter(self._spent.values())) < now:
            self._spent.popitem(last=False)
        if nonce in self._spent:
            return "the stream token was already used"
        self._spent[nonce] = expiry
        while len(self._spent) > self.max_spent:
            self._spent.popitem(last=False)
        return None

    def _mac(self, call_sid: str, agent: str, expiry: int, nonce: str) -> str:
        data = f"{call_sid}\n{agent}\n{expiry}\n{nonce}".encode()
        return base64.urlsafe_b64encode(hmac.new(self._key, data, hashlib.sha256).digest()).decode().rstrip("=")


# -- the stream: Twilio's messages in, actions out ------------------------------------------


@dataclass(frozen=True)
class StartCall:
    """``start`` was good: open the call's session.

    Attributes:
        agent: The agent to talk to.
        call_sid: Twilio's id of the call.
        stream_sid: Twilio's id of the stream (every frame we send names it).
    """

    agent: str
    call_sid: str
    stream_sid: str


@dataclass(frozen=True)
class InputAudio:
    """The caller's audio: mu-law 8 kHz bytes, for ``Session.append_wire_audio``."""

    data: bytes


@dataclass(frozen=True)
class Played:
    """Twilio played our audio up to a mark: for ``RemoteSink.played(epoch, samples)``."""

    epoch: int
    samples: int


@dataclass(frozen=True)
class Digit:
    """The caller pressed a key (DTMF)."""

    digit: str


@dataclass(frozen=True)
class BadMessage:
    """A message we could not use; the call goes on. ``message`` is one line to log."""

    message: str


@dataclass(frozen=True)
class HangUp:
    """End the call: close the session and the stream. ``reason`` is one line to log."""

    reason: str


@dataclass(frozen=True)
class Stopped:
    """Twilio's ``stop``: the caller hung up (or the call was ended): close the session."""


Action: TypeAlias = StartCall | InputAudio | Played | Digit | BadMessage | HangUp | Stopped
"""What :meth:`TwilioCall.receive` asks for."""

TokenCheck: TypeAlias = Callable[[str, str, str], str | None]
"""``check(token, call_sid, agent)``: None when the stream may start, else the reason it may not."""

_MARK = re.compile(r"e(\d{1,9}):(\d{1,12})")


class _Bad(Exception):
    """One bad message (its text says what and where)."""


class TwilioCall:
    """One media stream's rules, without I/O.

    Feed every message Twilio sends to :meth:`receive` and carry out the actions it
    returns; send what :meth:`audio` and :meth:`clear` return.

    Args:
        agents: The agents a call may ask for (its ``agent`` parameter).
        default_agent: The agent of a call that names none.
        check_token: Decides on the ``token`` parameter of ``start``; None lets any
            stream in (tests of the rules only: the routes always check).
        max_bad: Bad messages tolerated before hanging up.

    Attributes:
        stream_sid, call_sid, agent: From ``start`` (None before it).
        epoch: The playback epoch (0, then the one :meth:`clear` was given).
        sent_samples: Samples of assistant audio sent in this epoch.
        bad: Bad messages so far.
    """

    def __init__(self, *, agents: Collection[str], default_agent: str,
                 check_token: TokenCheck | None, max_bad: int = MAX_BAD_MESSAGES) -> None:
        self.agents = agents
        self.default_agent = default_agent
        self.check_token = check_token
        self.max_bad = max_bad
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.agent: str | None = None
        self.epoch = 0
        self.sent_samples = 0
        self.bad = 0
        self.received = 0
        self.done = False

    # -- Twilio -> us -----------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> list[Action]:
        """One frame from Twilio -> what to do. Nothing is done once the call is over."""
        if self.done:
            return []
        self.received += 1
        try:
            return self._receive(frame)
        except _Bad as bad:
            self.bad += 1
            line = f"bad Twilio message #{self.received}: {bad}"
            if self.bad > self.max_bad:
                self.done = True
                return [BadMessage(line), HangUp(f"more than {self.max_bad} bad messages from Twilio")]
            return [BadMessage(line)]

    def _receive(self, frame: str | bytes) -> list[Action]:
        if isinstance(frame, bytes):
            raise _Bad("a binary frame (Twilio sends JSON text)")
        if len(frame) > MAX_MESSAGE_BYTES:
            raise _Bad(f"{len(frame)} characters, more than the {MAX_MESSAGE_BYTES} allowed")
        try:
            message = codec.loads(frame)
        except codec.DecodeError:
            raise _Bad("not JSON") from None
        if not isinstance(message, dict):
            raise _Bad(f"a JSON {type(message).__name__}, not an object")
        event = message.get("event")
        if not isinstance(event, str):
            raise _Bad("event is missing (or not a string)")
        if event not in EVENTS:
            raise _Bad(f"event {_short(event)} is not one of {', '.join(EVENTS)}")
        if event not in ("connected", "start"):
            if self.stream_sid is None:
                raise _Bad(f"{event} before start")
            if message.get("streamSid") != self.stream_sid:
                raise _Bad(f"{event}: streamSid {_short(message.get('streamSid'))} is not this stream's")
        handler: Callable[[dict[str, Any]], list[Action]] = getattr(self, f"_{event}")
        return handler(message)

    def _connected(self, message: dict[str, Any]) -> list[Action]:
        return []

    def _start(self, message: dict[str, Any]) -> list[Action]:
        if self.stream_sid is not None:
            raise _Bad("start: the stream has already started")
        start = _object(message, "start")
        stream_sid = _text(start, "start.streamSid", message.get("streamSid"))
        call_sid = _text(start, "start.callSid")
        fmt = _object(start, "mediaFormat", "start.mediaFormat")
        got = (fmt.get("encoding"), fmt.get("sampleRate"), fmt.get("channels"))
        params = start.get("customParameters", {})
        if not isinstance(params, dict):
            raise _Bad("start.customParameters is not an object")
        self.done = True  # until the checks below pass: a refused start ends the call
        if got != ("audio/x-mulaw", 8000, 1):
            return [HangUp(f"start.mediaFormat is {_short(got)}; only audio/x-mulaw 8000 Hz mono"
                           " is supported")]
        agent = params.get("agent") or self.default_agent
        if not isinstance(agent, str) or agent not in self.agents:
            return [HangUp(f"start.customParameters.agent {_short(agent)} is not an agent here")]
        if self.check_token is not None:
            token = params.get("token")
            if not isinstance(token, str) or not token:
                return [HangUp("stream refused: start.customParameters.token is missing (streams come"
                               " from /twilio/voice answers)")]
            refused = self.check_token(token, call_sid, agent)
            if refused is not None:
                return [HangUp(f"stream refused: {refused}")]
        self.done = False
        self.stream_sid, self.call_sid, self.agent = stream_sid, call_sid, agent
        return [StartCall(agent, call_sid, stream_sid)]

    def _media(self, message: dict[str, Any]) -> list[Action]:
        media = _object(message, "media")
        track = media.get("track", "inbound")
        if track != "inbound":
            raise _Bad(f"media.track {_short(track)} is not 'inbound'")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise _Bad("media.payload is missing (or not a string)")
        try:
            data = pybase64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad("media.payload is not base64") from None
        return [InputAudio(data)] if data else []

    def _mark(self, message: dict[str, Any]) -> list[Action]:
        mark = _object(message, "mark")
        name = mark.get("name")
        found = _MARK.fullmatch(name) if isinstance(name, str) else None
        if found is None:
            raise _Bad(f"mark.name {_short(name)} is not one of ours (e<epoch>:<samples>)")
        epoch, samples = int(found[1]), int(found[2])
        if epoch > self.epoch:
            raise _Bad(f"mark.name {name!r} names epoch {epoch}, still to come (now {self.epoch})")
        if epoch < self.epoch:
            return []  # echoed by a clear: that audio was dropped, not played
        return [Played(epoch, samples)]

    def _dtmf(self, message: dict[str, Any]) -> list[Action]:
        dtmf = _object(message, "dtmf")
        digit = dtmf.get("digit")
        if not isinstance(digit, str) or digit not in DIGITS:
            raise _Bad(f"dtmf.digit {_short(digit)} is not one of 0-9, *, #, A-D")
        return [Digit(digit)]

    def _stop(self, message: dict[str, Any]) -> list[Action]:
        self.done = True
        return [Stopped()]


    # -- us -> Twilio ----------------------------------------------------------------------

    def audio(self, data: bytes) -> list[str]:
        """Assistant audio (mu-law bytes) -> Twilio frames (JSON text): 20 ms ``media``
        frames, each followed by its ``mark``. A tail under 20 ms is sent as a shorter
        frame at once, not held back for the next chunk."""
        if self.stream_sid is None:
            return []
        frames: list[str] = []
        for at in range(0, len(data), FRAME_BYTES):
            chunk = data[at:at + FRAME_BYTES]
            self.sent_samples += len(chunk)
            frames.append(_json({"event": "media", "streamSid": self.stream_sid,
                                 "media": {"payload": codec.b64encode(chunk)}}))
            frames.append(_json({"event": "mark", "streamSid": self.stream_sid,
                                 "mark": {"name": f"e{self.epoch}:{self.sent_samples}"}}))
        return frames

    def clear(self, epoch: int) -> str:
        """Barge-in: the ``clear`` frame; what is sent next counts in ``epoch`` from 0."""
        self.epoch, self.sent_samples = epoch, 0
        return _json({"event": "clear", "streamSid": self.stream_sid})


def _json(message: dict[str, Any]) -> str:
    return codec.dumps(message).decode()


def _object(parent: dict[str, Any], key: str, where: str | None = None) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise _Bad(f"{where or key} is missing (or not an object)")
    return value


def _text(parent: dict[str, Any], where: str, fallback: object = None) -> str:
    value = parent.get(where.rsplit(".", 1)[-1], fallback)
    if not isinstance(value, str) or not value:
        raise _Bad(f"{where} is missing (or not a string)")
    return value


def _short(value: object) -> str:
    """A value for an error line: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the routes: sockets only ----------------------------------------------------------------

START_TIMEOUT_S = 10.0
"""How long a new stream may take to send ``start``."""
IDLE_TIMEOUT_S = 20.0
"""A stream silent this long is dead: Twilio sends media every 20 ms while the call lasts."""
SEND_TIMEOUT_S = 10.0
"""How long one frame to Twilio may take to send before the call is given up."""
APPEND_TIMEOUT_S = 10.0
"""How long the session may take to accept the caller's audio (a reconnect in progress)."""
GREET_TIMEOUT_S = 120.0
MAX_OUTBOX = 8192
"""Frames queued for Twilio (two per 20 ms of audio: about 80 s of assistant audio)."""
MAX_WEBHOOK_BYTES = 64 * 1024


def routes(hub: SessionHub) -> list[BaseRoute]:
    """``POST /twilio/voice`` (the number's voice webhook) and ``WS /twilio/stream``."""
    from starlette.routing import Route, WebSocketRoute

    phone = _Phone(hub)
    return [Route("/twilio/voice", phone.voice, methods=["POST"]),
            WebSocketRoute("/twilio/stream", phone.stream)]


class _Outbox:
    """Frames waiting to go to Twilio: bounded; a clear drops the audio still queued."""

    def __init__(self, limit: int = MAX_OUTBOX) -> None:
        self.limit = limit
        self.reason: str | None = None  # why sending stopped
        self.code = 1000  # the stream's close code for it
        self._frames: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()

    def put(self, frames: list[str]) -> None:
        if self.reason is not None:
            return
        if len(self._frames) + len(frames) > self.limit:
            self.stop(f"more than {self.limit} frames queued for Twilio (it is not reading)")
            return
        self._frames.extend(frames)
        self._ready.set()

    def clear(self, frame: str) -> None:
        """Barge-in: what is queued will not be heard; ``frame`` (the ``clear``) goes next."""
        self._frames.clear()
        self.put([frame])

    def stop(self, reason: str, code: int = 1000) -> None:
        if self.reason is None:
            self.reason, self.code = reason, code
        self._frames.clear()
        self._ready.set()

    async def get(self) -> str | None:
        """The next frame, or None once stopped (waits while the call lasts)."""
        while not self._frames:
            if self.reason is not None:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()


class _Phone:
    """The two routes, sharing the hub and the stream tokens."""

    def __init__(self, hub: SessionHub) -> None:
        self.hub = hub
        auth_token = hub.config.twilio_auth_token
        self.tokens = StreamTokens(auth_token.encode()) if auth_token else None

    # -- POST /twilio/voice ------------------------------------------------------------------

    async def voice(self, request: Request) -> Response:
        """Check Twilio's signature, then answer TwiML that connects the call to the stream."""
        from starlette.responses import Response

        def refuse(status: int, reason: str) -> Response:
            log.warning("twilio webhook refused (%d): %s", status, reason)
            self.hub.refused("phone")
            return Response(reason + "\n", status_code=status, media_type="text/plain")

        auth_token = self.hub.config.twilio_auth_token
        if auth_token is None or self.tokens is None:
            return refuse(503, f"Twilio calls are off: {TWILIO_TOKEN_VARIABLE} is not set, so Twilio's"
                               " signature cannot be checked")
        if self.hub.draining:
            return refuse(503, "the server is shutting down; try again in a moment")
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_WEBHOOK_BYTES:
            return refuse(413 if length.isdigit() else 411,
                          f"the webhook body must have a Content-Length of at most {MAX_WEBHOOK_BYTES} bytes")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return refuse(415, f"the webhook body must be application/x-www-form-urlencoded, not {_printable(kind)!r}")
        try:
            body = (await within(request.body(), SEND_TIMEOUT_S)).decode()
        except (asyncio.TimeoutError, UnicodeDecodeError):
            return refuse(400, "the webhook body did not arrive whole as UTF-8")
        params = dict(parse_qsl(body, keep_blank_values=True))
        url = signed_url(str(request.url), self.hub.config.public_url)
        given = request.headers.get(SIGNATURE_HEADER)
        if not given:
            return refuse(403, f"{SIGNATURE_HEADER} is missing: only Twilio may call this webhook")
        if not verify_signature(auth_token, url, params, given):
            return refuse(403, f"{SIGNATURE_HEADER} does not match this request for {url} (is this the"
                               " URL configured in Twilio? Behind a proxy, set --public-url)")
        call_sid = params.get("CallSid", "")
        if not call_sid:
            return refuse(400, "the webhook form has no CallSid")
        try:
            agent = self.hub.agent_or_refuse(request.query_params.get("agent"))
        except Refused as exc:
            return refuse(exc.status, exc.reason)
        token = self.tokens.mint(call_sid, agent, time.time())
        stream = stream_url(url)
        log.info("twilio call %s: connecting to agent %s", _printable(call_sid), agent)
        return Response(twiml(stream, {"agent": agent, "token": token}), media_type="text/xml")

    # -- WS /twilio/stream ---------------------------------------------------------------------

    def _check_token(self, token: str, call_sid: str, agent: str) -> str | None:
        if self.tokens is None:
            return f"Twilio calls are off ({TWILIO_TOKEN_VARIABLE} is not set)"
        return self.tokens.spend(token, call_sid, agent, time.time())

    async def stream(self, ws: WebSocket) -> None:
        """One call's media stream: admit it, run its session, move audio both ways."""
        await ws.accept()
        call = TwilioCall(agents=self.hub.agents, default_agent=self.hub.default_agent,
                          check_token=self._check_token)
        start = await self._until_start(ws, call)
        if start is None:
            return
        # Every call comes from Twilio's few addresses: each call is its own client (the
        # process's --max-sessions applies; --max-per-client would refuse calls of others).
        try:
            admission = self.hub.admit(client=f"twilio:{_printable(start.call_sid)}", token=None, origin=None,
                                       kind="phone")
        except Refused as exc:
            log.warning("twilio call %s refused: %s", _printable(start.call_sid), exc.reason)
            await _close(ws, 1008, exc.reason)
            return
        outbox = _Outbox()
        sink = RemoteSink(lambda data: outbox.put(call.audio(data)), lambda epoch: outbox.clear(call.clear(epoch)),
                          audio_format="audio/pcmu")

        ended: list[str] = []

        async def on_end(code: str, reason: str) -> None:  # the hub ends the call
            ended.append(reason)
            outbox.stop(reason)

        def failed(event: SessionEvent) -> None:
            if isinstance(event, ErrorEvent) and event.fatal:
                outbox.stop(f"the session failed: {event.message}", 1011)

        code, reason, started = 1000, "the call ended", False
        context = logs.session_id.set(admission.session_id)
        try:
            async with self.hub.session(admission, start.agent, output=sink, audio_format="audio/pcmu",
                                        listeners=[failed], on_end=on_end) as session:
                started = True
                log.info("twilio call %s: stream %s", _printable(start.call_sid), _printable(start.stream_sid))
                code, reason = await self._run(ws, call, session, sink, outbox, admission)
        except RealtalkError as exc:
            code, reason = 1011, f"the session {'failed' if started else 'could not start'}: {exc}"
            log.warning("twilio call %s: %s", _printable(start.call_sid), reason)
        except asyncio.CancelledError:  # the hub ended the call, which did not leave in time
            code, reason = (1000, ended[0]) if ended else (1011, "the call was cancelled")
            await _close(ws, code, reason)
            raise
        finally:
            sink.close()
            log.info("twilio call %s ended: %s", _printable(start.call_sid), reason)
            logs.session_id.reset(context)
        await _close(ws, code, reason)

    async def _until_start(self, ws: WebSocket, call: TwilioCall) -> StartCall | None:
        """Read until a good ``start`` (None: refused, bad, silent or gone; the socket is closed)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                frame = await _receive(ws, deadline - time.monotonic())
            except asyncio.TimeoutError:
                log.warning("twilio stream refused: no start message within %g s", START_TIMEOUT_S)
                self.hub.refused("phone")
                await _close(ws, 1008, f"no start message within {START_TIMEOUT_S:g} s")
                return None
            if frame is None:
                return None
            for action in call.receive(frame):
                if isinstance(action, StartCall):
                    return action
                if isinstance(action, BadMessage):
                    log.warning("%s", action.message)
                elif isinstance(action, (HangUp, Stopped)):
                    reason = action.reason if isinstance(action, HangUp) else "stopped before it started"
                    log.warning("twilio stream refused: %s", reason)
                    self.hub.refused("phone")
                    await _close(ws, 1008, reason)
                    return None

    async def _run(self, ws: WebSocket, call: TwilioCall, session: Session, sink: RemoteSink,
                   outbox: _Outbox, admission: Admission) -> tuple[int, str]:
        """Move data until the call ends; returns the close code and why it ended."""
        tasks = {
            asyncio.create_task(self._read(ws, call, session, sink, admission), name="realtalk-twilio-read"),
            asyncio.create_task(self._write(ws, outbox), name="realtalk-twilio-write"),
        }
        greeting = asyncio.create_task(self._greet(session), name="realtalk-twilio-greet")
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = next(iter(done))
            failure = first.exception()
            if failure is not None:  # a bug: ended visibly, with its traceback in the log
                log.error("twilio stream failed", exc_info=failure)
                return 1011, f"server error: {type(failure).__name__}"
            return first.result()
        finally:
            outbox.stop("the call ended")
            for task in (*tasks, greeting):
                task.cancel()
            await asyncio.wait({*tasks, greeting}, timeout=SEND_TIMEOUT_S)

    async def _read(self, ws: WebSocket, call: TwilioCall, session: Session, sink: RemoteSink,
                    admission: Admission) -> tuple[int, str]:
        while True:
            try:
                frame = await _receive(ws, IDLE_TIMEOUT_S)
            except asyncio.TimeoutError:
                return 1011, f"no message from Twilio for {IDLE_TIMEOUT_S:g} s"
            if frame is None:
                return 1000, "Twilio closed the stream"
            for action in call.receive(frame):
                if isinstance(action, InputAudio):
                    try:
                        await within(session.append_wire_audio(action.data), APPEND_TIMEOUT_S)
                    except asyncio.TimeoutError:
                        return 1011, f"the session took over {APPEND_TIMEOUT_S:g} s to take the caller's audio"
                    except RealtalkError as exc:
                        return 1011, f"the session failed: {exc}"
                elif isinstance(action, Played):
                    sink.played(action.epoch, action.samples)
                elif isinstance(action, Digit):
                    log.info("dtmf: the caller pressed %s", action.digit)
                    session.warn(f"dtmf: the caller pressed {action.digit}")
                elif isinstance(action, BadMessage):
                    log.warning("%s", action.message)
                    session.warn(action.message)
                elif isinstance(action, HangUp):
                    log.warning("hanging up: %s", action.reason)
                    return 1008, action.reason
                elif isinstance(action, Stopped):
                    self.hub.outcome(admission, "completed")
                    return 1000, "the caller hung up"

    async def _write(self, ws: WebSocket, outbox: _Outbox) -> tuple[int, str]:
        while True:
            frame = await outbox.get()
            if frame is None:
                return outbox.code, outbox.reason or "the call ended"
            try:
                await within(ws.send_text(frame), SEND_TIMEOUT_S)
            except asyncio.TimeoutError:
                return 1011, f"a frame to Twilio took over {SEND_TIMEOUT_S:g} s to send"
            except Exception:  # noqa: BLE001 - the socket is gone
                return 1000, "Twilio closed the stream"

    async def _greet(self, session: Session) -> None:
        """The agent speaks first, when it has a greeting (a phone call starts with it)."""
        try:
            await session.greet(timeout=GREET_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the call goes on without it
            log.warning("the greeting failed: %s", exc)


def stream_url(webhook_url: str) -> str:
    """The stream's URL for TwiML, beside the webhook's: ``wss://`` for an ``https://``
    webhook (Twilio takes only ``wss://``; ``ws://`` for a plain local test)."""
    parts = urlsplit(webhook_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rsplit("/twilio/voice", 1)[0] + "/twilio/stream"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def twiml(stream: str, parameters: Mapping[str, str]) -> str:
    """``<Response><Connect><Stream url=...>`` with a ``<Parameter>`` for each of ``parameters``."""
    params = "".join(f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url={quoteattr(stream)}>'
            f"{params}</Stream></Connect></Response>")


async def _receive(ws: WebSocket, timeout: float) -> str | bytes | None:
    """The next frame, or None when the socket closed.

    Raises:
        asyncio.TimeoutError: Nothing came within ``timeout`` seconds.
    """
    try:
        message = await within(ws.receive(), max(timeout, 0.001))
    except RuntimeError:  # received after the disconnect
        return None
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    return text if text is not None else bytes(message.get("bytes") or b"")


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Close the stream (Twilio then ends the call: no TwiML verb follows ``<Connect>``)."""
    with contextlib.suppress(Exception):
        await within(ws.close(code, reason.encode()[:120].decode(errors="ignore")), SEND_TIMEOUT_S)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:64])
