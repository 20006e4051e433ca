"""Recorded traffic and scenario progress, shared by the emulator's connections.

The record is bounded so that a long-running emulator (a load target) does not grow
without end: audio payloads are kept as their length only (``"<audio 4800 bytes>"``)
unless asked for, and each connection keeps its latest ``max_events`` events.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..protocol.events import audio_byte_length
from .scenario import Scenario, Step, Turn

__all__ = [
    "MAX_RECORDED_EVENTS",
    "ConnectionRecord",
    "EventRecord",
    "ScenarioProgress",
    "UserInput",
    "without_audio",
]

MAX_RECORDED_EVENTS = 100_000
"""Default number of events each connection's record keeps (the oldest go first)."""

_AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
_APPENDS = frozenset({"input_audio_buffer.append", "session.input_audio_buffer.append"})
_APPEND_KEYS = frozenset({"type", "audio", "event_id"})


class EventRecord(NamedTuple):
    """One event on the wire.

    Attributes:
        t: ``time.monotonic()`` when it was received or sent.
        direction: ``"client"`` (client to server) or ``"server"``.
        event: The event as a dict. A client frame that was not a JSON object is kept as
            ``{"_raw": text}``; a binary frame as ``{"_binary": length}``.
    """

    t: float
    direction: str
    event: dict[str, Any]


def without_audio(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with each base64 audio payload replaced by its length.

    The payloads are the ``delta`` of ``response.output_audio.delta`` and every string
    under an ``"audio"`` key (``input_audio_buffer.append``, ``input_audio`` content of an
    item); each becomes ``"<audio N bytes>"`` with N the decoded length. ``event`` is not
    changed: parts that hold audio are copied, and an event without audio is returned
    as it is.
    """
    kind = event.get("type")
    if kind in _AUDIO_DELTAS and isinstance(event.get("delta"), str):
        return {**event, "delta": _placeholder(event["delta"])}
    if kind in _APPENDS and event.keys() <= _APPEND_KEYS and isinstance(event.get("audio"), str):
        # The common append ({type, audio} and perhaps event_id): no walk needed.
        return {**event, "audio": _placeholder(event["audio"])}
    for key, value in event.items():
        if key == "audio" or isinstance(value, (dict, list)):
            break
    else:
        return event  # flat and without audio, as most events are (transcript deltas)
    stripped: dict[str, Any] = _strip(event, None)
    return stripped


def _placeholder(b64: str) -> str:
    return f"<audio {audio_byte_length(b64)} bytes>"


def _strip(value: Any, key: str | None) -> Any:
    # Copy on write: an unchanged value comes back as the same object.
    if isinstance(value, str):
        return _placeholder(value) if key == "audio" else value
    if isinstance(value, dict):
        copy: dict[str, Any] | None = None
        for k, v in value.items():
            new = _strip(v, k)
            if new is not v:
                copy = dict(value) if copy is None else copy
                copy[k] = new
        return value if copy is None else copy
    if isinstance(value, list):
        items = [_strip(v, None) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    return value


def _select(records: deque[EventRecord], direction: str, type_: str | None) -> list[dict[str, Any]]:
    return [
        r.event
        for r in records
        if r.direction == direction and (type_ is None or r.event.get("type") == type_)
    ]


@dataclass
class ConnectionRecord:
    """Everything that happened on one WebSocket connection.

    Attributes:
        path: The request path with its query, as the client sent it.
        headers: The request headers (lower-case names).
        events: The client and server events, in order, timestamped: the latest
            ``max_events`` of them, audio payloads as ``"<audio N bytes>"`` unless
            ``record_audio``.
        handshake_error: The error code (or ``"missing_auth"``) when the handshake was
            refused after the upgrade; None for a session that started.
        close_code: The close code the server sent, or None (open, client-closed or dropped).
        dropped: True when the emulator aborted the socket on purpose (the drop fault).
        record_audio: Keep audio payloads whole (base64) instead of their length.
        max_events: How many events :attr:`events` keeps (None: all of them).
        discarded: How many of the oldest events were let go to stay within ``max_events``.
    """

    path: str
    headers: dict[str, str]
    events: deque[EventRecord] = field(default_factory=deque)
    handshake_error: str | None = None
    close_code: int | None = None
    dropped: bool = False
    record_audio: bool = False
    max_events: int | None = MAX_RECORDED_EVENTS
    discarded: int = 0
    listener: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_events is not None and self.max_events < 1:
            raise ValueError(f"max_events must be at least 1 or None, not {self.max_events}")
        self.events = deque(self.events, maxlen=self.max_events)

    def add(self, direction: str, event: dict[str, Any]) -> None:
        """Record an event now (and wake anyone waiting in ``Emulator.wait_for``).

        ``event`` itself is not changed (it may still be on its way to the socket).
        """
        if len(self.events) == self.max_events:
            self.discarded += 1  # the deque lets the oldest go
        recorded = event if self.record_audio else without_audio(event)
        self.events.append(EventRecord(time.monotonic(), direction, recorded))
        if self.listener is not None:
            self.listener()

    def client_events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Client events of this connection, optionally only those of ``type``."""
        return _select(self.events, "client", type)

    def server_events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Server events of this connection, optionally only those of ``type``."""
        return _select(self.events, "server", type)

    def errors(self) -> list[dict[str, Any]]:
        """The ``error`` objects (the inner ``error`` field) this connection was sent."""
        return [e["error"] for e in self.server_events("error")]


@dataclass(frozen=True)
class UserInput:
    """The user input a response answers.

    Attributes:
        text: The user's text (empty for audio).
        audio: True when it came from committed audio.
        idle: True when the idle timeout committed it (``idle_timeout_ms``).
    """

    text: str
    audio: bool
    idle: bool = False


@dataclass
class ScenarioProgress:
    """Where the script stands.

    It belongs to the Emulator, not to a connection, so a client that reconnects (after
    an expiry or a drop) continues the script where it left off.

    Attributes:
        scenario: The script.
        cursor: Index of the first turn not yet used.
        continuation: Reply segments still owed after a tool call.
        last_output: The text of the latest ``function_call_output`` item.
    """

    scenario: Scenario
    cursor: int = 0
    continuation: list[tuple[Step, ...]] = field(default_factory=list)
    last_output: str = ""

    def peek_audio_turn(self) -> Turn | None:
        """The turn the next speech segment will match, without consuming it."""
        for turn in self.scenario.turns[self.cursor :]:
            if turn.audio:
                return turn
        return None

    def take_audio_turn(self) -> Turn | None:
        """The turn the next speech segment matches, used up (a transcription session
        transcribes segments without responding to them)."""
        for index in range(self.cursor, len(self.scenario.turns)):
            if self.scenario.turns[index].audio:
                self.cursor = index + 1
                return self.scenario.turns[index]
        return None

    def next_reply(self, user: UserInput | None, *, calls_running: bool = False) -> tuple[Step, ...]:
        """The steps of the next response.

        With no new user input, the continuation of the current turn (the steps after a
        tool call) runs, or else the next unused ``greeting`` turn. With input, the first unused turn at or after the cursor that
        matches it runs (earlier unused turns are skipped); no match gives the fallback.

        New input drops the continuation, unless ``calls_running`` (a call still waits
        for its output: the user spoke while a tool runs): it is then kept for the
        response that follows the output, before the new turn's own.
        """
        if user is None and self.continuation:
            return self.continuation.pop(0)
        if user is None:
            for index in range(self.cursor, len(self.scenario.turns)):
                turn = self.scenario.turns[index]
                if turn.greeting:
                    return self._use(index)
            return (self._fallback("(no new user input)"),)
        owed = self.continuation if calls_running else []
        self.continuation = []
        steps = self._match(user)
        self.continuation = owed + self.continuation
        return steps

    def _match(self, user: UserInput) -> tuple[Step, ...]:
        """The first unused turn that matches ``user``'s input, used up; else the fallback."""
        for index in range(self.cursor, len(self.scenario.turns)):
            turn = self.scenario.turns[index]
            if user.idle:
                matched = turn.idle
            elif user.audio:
                matched = turn.audio
            else:
                matched = not turn.out_of_band and turn.matches_text(user.text)
            if matched:
                return self._use(index)
        shown = "(idle timeout)" if user.idle else "(speech)" if user.audio else repr(user.text)
        return (self._fallback(shown),)

    def out_of_band_reply(self, text: str) -> tuple[Step, ...]:
        """The steps of an out-of-band response whose instructions and input read
        ``text``: the first ``out_of_band`` turn that matches (anywhere in the script:
        such turns are never used up), else the fallback. The script does not move."""
        for turn in self.scenario.turns:
            if turn.out_of_band and turn.matches_text(text):
                return turn.segments[0]
        return (self._fallback(repr(text)),)

    def _use(self, index: int) -> tuple[Step, ...]:
        turn = self.scenario.turns[index]
        self.cursor = index + 1
        self.continuation = list(turn.segments[1:])
        return turn.segments[0]

    def _fallback(self, shown: str) -> Step:
        return Step("say", text=self.scenario.fallback.replace("{input}", shown))
