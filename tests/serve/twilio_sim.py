"""A Twilio Media Streams simulator: a phone call as Twilio makes it, for the tests.

It follows Twilio's documented behaviour:

- the voice webhook: a form POST of the call's fields, signed in ``X-Twilio-Signature``
  (HMAC-SHA1 with the auth token over the URL and the sorted fields, base64);
- the TwiML answer: ``<Connect><Stream url="wss://...">`` with its ``<Parameter>``s, which
  come back in ``start.customParameters``;
- the stream: ``connected``, ``start`` (``audio/x-mulaw`` 8000 Hz mono), then a ``media``
  message every 20 ms for the whole call, at real-time pace (160 bytes of mu-law: the
  caller's speech, else silence), ``dtmf`` when a key is pressed, ``stop`` at hang-up;
- playback: media it receives is queued and played on its own clock at real-time pace;
  a ``mark`` is echoed when the audio queued before it has played; ``clear`` drops the
  queued audio and echoes the pending marks at once.

Everything it sends and receives is kept for the test to check.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import json
import secrets
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from realtalk.audio.g711 import ulaw_encode
from realtalk.audio.resample import resample
from realtalk.audio.wav import read_wav
from websockets.asyncio.client import ClientConnection, connect

FRAME = 160  # bytes of mu-law per media message: 20 ms at 8 kHz
SILENCE = b"\xff" * FRAME  # mu-law of 0


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """What Twilio puts in ``X-Twilio-Signature`` (written here from Twilio's documentation,
    independently of realtalk.serve.twilio)."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def speech_ulaw(text: str, folder: Path) -> bytes:
    """``text`` spoken by espeak-ng, as 8 kHz mu-law, from its first loud sample (so the
    speech starts with the first frame sent; the test must ``require`` espeak-ng)."""
    exe = shutil.which("espeak-ng")
    assert exe is not None, "espeak-ng is needed (the test must `require` it)"
    wav = folder / f"speech-{secrets.token_hex(4)}.wav"
    subprocess.run([exe, "-w", str(wav), text], check=True, timeout=30)
    audio = read_wav(wav)
    pcm = resample(audio.samples, audio.rate, 8000)
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 3000)
    return ulaw_encode(pcm[loud[0]:] if len(loud) else pcm).tobytes()


@dataclass
class Stream:
    """Where the TwiML says to stream: the URL and the ``<Parameter>``s."""

    url: str
    parameters: dict[str, str]


def parse_twiml(text: str) -> Stream:
    """The ``<Connect><Stream>`` of a TwiML answer."""
    root = ET.fromstring(text)
    assert root.tag == "Response", text
    stream = root.find("./Connect/Stream")
    assert stream is not None, text
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return Stream(stream.get("url", ""), params)


@dataclass
class Echo:
    """A mark we echoed: its name, whether a clear flushed it, and how many clears came before."""

    name: str
    cleared: bool
    clears_before: int
    at: float  # time.monotonic() when echoed


@dataclass
class Call:
    """One simulated call on a server.

    Args:
        base_url: The server's ``http://host:port``.
        auth_token: The Twilio auth token the server knows.
    """

    base_url: str
    auth_token: str
    call_sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    account_sid: str = "AC" + "0" * 32
    stream_sid: str = field(default_factory=lambda: "MZ" + secrets.token_hex(16))
    ws: ClientConnection | None = None
    received: list[dict[str, Any]] = field(default_factory=list)   # every message from the server
    audio: bytearray = field(default_factory=bytearray)            # every media payload received
    played: bytearray = field(default_factory=bytearray)           # what the caller heard
    echoes: list[Echo] = field(default_factory=list)
    clears: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)       # every non-media message sent
    spoken: bytearray = field(default_factory=bytearray)           # every media payload sent
    # For each utterance: how many marks were echoed when its first frame was sent.
    echoes_before_speech: list[int] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""
    read_error: str | None = None

    def __post_init__(self) -> None:
        self._queue: collections.deque[tuple[str, bytes | str]] = collections.deque()  # ("audio"|"mark", ...)
        self._arrived = asyncio.Event()  # the player's wake-up
        self._changed = asyncio.Event()  # the waiters' wake-up
        self._idle = True  # nothing playing
        self._clock = 0.0  # when the audio played so far ends (monotonic)
        self._mic: collections.deque[bytes] = collections.deque()
        self._utterance_starts = False
        self._mic_empty = asyncio.Event()
        self._mic_empty.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._sequence = 0
        self._chunk = 0

    # -- the webhook ----------------------------------------------------------------------

    def form(self) -> dict[str, str]:
        """The fields Twilio posts to a voice webhook."""
        return {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": self.call_sid,
                "CallStatus": "ringing", "Direction": "inbound", "From": "+15550001111",
                "To": "+15550002222", "Caller": "+15550001111", "Called": "+15550002222"}

    async def ring(self, path: str = "/twilio/voice", *, signed_url: str | None = None,
                   signature: str | None = None, sign: bool = True) -> httpx.Response:
        """POST the voice webhook, signed as Twilio signs it (for ``signed_url``, default the
        URL posted to), unless a ``signature`` is given or ``sign`` is false."""
        url = self.base_url + path
        form = self.form()
        headers = {}
        if sign:
            headers["X-Twilio-Signature"] = signature or twilio_signature(self.auth_token, signed_url or url, form)
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await client.post(url, data=form, headers=headers)

    # -- the stream -----------------------------------------------------------------------

    async def connect(self, stream: Stream, *, url: str | None = None, parameters: dict[str, str] | None = None,
                      media_format: dict[str, Any] | None = None) -> None:
        """Open the stream the TwiML names (or ``url``, e.g. plain ``ws://`` in a test
        where the server cannot terminate TLS), send ``connected`` and ``start``, and
        start the media clock and the player."""
        target = url or stream.url
        self.ws = await connect(target, open_timeout=10, close_timeout=2, max_size=2**20)
        self._tasks.append(asyncio.create_task(self._read()))
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send({"event": "start", "sequenceNumber": self._next(), "streamSid": self.stream_sid, "start": {
            "streamSid": self.stream_sid, "accountSid": self.account_sid, "callSid": self.call_sid,
            "tracks": ["inbound"], "customParameters": parameters if parameters is not None else stream.parameters,
            "mediaFormat": media_format or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        self._tasks.append(asyncio.create_task(self._media_clock()))
        self._tasks.append(asyncio.create_task(self._player()))

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send one message (a dict as JSON, or any text as it is)."""
        assert self.ws is not None
        if isinstance(message, dict) and message.get("event") != "media":
            self.sent.append(message)
        with contextlib.suppress(Exception):  # the server may have hung up
            await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    async def speak(self, ulaw: bytes, timeout: float = 30.0) -> None:
        """Say ``ulaw`` (8 kHz mu-law) into the call, paced in real time; returns once sent."""
        self._utterance_starts = True
        for at in range(0, len(ulaw), FRAME):
            self._mic.append(ulaw[at:at + FRAME].ljust(FRAME, b"\xff"))
        self._mic_empty.clear()
        await asyncio.wait_for(self._mic_empty.wait(), timeout)

    async def press(self, digit: str) -> None:
        """A DTMF key."""
        await self.send({"event": "dtmf", "streamSid": self.stream_sid, "sequenceNumber": self._next(),
                         "dtmf": {"track": "inbound_track", "digit": digit}})

    async def hang_up(self) -> None:
        """The caller hangs up: ``stop``, and the socket closes."""
        await self.send({"event": "stop", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                         "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.ws is not None:
            await self.ws.close()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Until the server closes the stream."""
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Wait until ``condition()`` holds (checked after each change), at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            if condition():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: not within {timeout} s ({len(self.audio)} bytes received,"
                                   f" {len(self.played)} played, {self.clears} clears, closed: {self.closed.is_set()})")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def played_out(self, timeout: float = 30.0, *, at_least: int = 1) -> None:
        """Until at least ``at_least`` bytes of audio arrived and all of it has played."""
        await self.until(lambda: len(self.audio) >= at_least and self._idle and not self._queue,
                         "audio played out", timeout)

    async def wait_for(self, event: str, count: int = 1, timeout: float = 30.0) -> dict[str, Any]:
        """The ``count``-th message of this ``event`` from the server (waits for it)."""
        def found() -> list[dict[str, Any]]:
            return [m for m in self.received if m.get("event") == event]

        await self.until(lambda: len(found()) >= count, f"{count} {event!r} message(s)", timeout)
        return found()[count - 1]

    # -- inside: what Twilio does on its own ------------------------------------------------

    async def _media_clock(self) -> None:
        """A media message every 20 ms, at real-time pace: speech when there is some, else silence."""
        start = time.monotonic()
        while True:
            self._chunk += 1
            if self._mic and self._utterance_starts:
                self._utterance_starts = False
                self.echoes_before_speech.append(len(self.echoes))
            payload = self._mic.popleft() if self._mic else SILENCE
            if not self._mic:
                self._mic_empty.set()
            self.spoken += payload
            await self.send({"event": "media", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                             "media": {"track": "inbound", "chunk": str(self._chunk),
                                       "timestamp": str((self._chunk - 1) * 20),
                                       "payload": base64.b64encode(payload).decode()}})
            await asyncio.sleep(max(0.0, start + self._chunk * 0.02 - time.monotonic()))

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                message = json.loads(frame)
                self.received.append(message)
                event = message.get("event")
                if event == "media":
                    data = base64.b64decode(message["media"]["payload"])
                    self.audio += data
                    self._queue.append(("audio", data))
                elif event == "mark":
                    self._queue.append(("mark", message["mark"]["name"]))
                elif event == "clear":
                    self.clears += 1
                    pending = [item for kind, item in self._queue if kind == "mark"]
                    self._queue.clear()
                    for name in pending:
                        assert isinstance(name, str)
                        await self._echo(name, cleared=True)
                self._arrived.set()
                self._changed.set()
        except Exception as exc:  # noqa: BLE001 - the connection ended; the test reads how
            self.read_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self.closed.set()
            self._changed.set()

    async def _player(self) -> None:
        """Play the queue on our own clock: audio takes its duration, a mark is echoed when reached."""
        while True:
            if not self._queue:
                self._idle = True
                self._changed.set()
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if self._idle:  # starting after silence: the clock starts now
                self._idle, self._clock = False, time.monotonic()
            kind, item = self._queue.popleft()
            if kind == "mark":
                assert isinstance(item, str)
                await self._echo(item, cleared=False)
                continue
            assert isinstance(item, bytes)
            clears = self.clears
            self._clock += len(item) / 8000
            await asyncio.sleep(max(0.0, self._clock - time.monotonic()))
            if self.clears == clears:
                self.played += item
            else:  # cleared mid-chunk: Twilio stops at once; the chunk counts as not heard
                self._clock = time.monotonic()
            self._changed.set()

    async def _echo(self, name: str, *, cleared: bool) -> None:
        self.echoes.append(Echo(name, cleared, self.clears, time.monotonic()))
        await self.send({"event": "mark", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                         "mark": {"name": name}})


def ws_url(base_url: str, stream_url: str) -> str:
    """The TwiML's ``wss://`` stream URL redirected to the test server's plain ``ws://``."""
    parts = urlsplit(stream_url)
    return "ws://" + urlsplit(base_url).netloc + parts.path
