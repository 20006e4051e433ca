"""The browser protocol (``realtalk.v1``), without any I/O: page messages in, actions out.

:class:`BrowserCaller` checks every message a page sends and turns it into an action for
the server's connection handler (send this text, append this audio, commit, report what
was played, answer an approval, switch agents, say goodbye), or into an ``error`` reply
naming what was wrong; the 21st bad message closes the connection (1008). It also builds
the messages the page gets: ``ready``, ``event`` for each session event, ``usage`` after
each turn, ``approval``, ``clear`` and ``closing``.

The protocol is documented in docs/serve.md ("The browser protocol").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol import codec
from ..results import ApprovalRequest, SessionEvent

__all__ = [
    "MAX_AUDIO_FRAME",
    "MAX_BAD_MESSAGES",
    "MAX_MESSAGE",
    "PROTOCOL",
    "Action",
    "Answer",
    "AppendAudio",
    "BrowserCaller",
    "Bye",
    "Close",
    "Commit",
    "Played",
    "Reply",
    "SendText",
    "Switch",
]

PROTOCOL = "realtalk.v1"
"""The WebSocket subprotocol the server selects."""
MAX_AUDIO_FRAME = 64 * 1024
"""Largest binary (audio) frame a page may send, in bytes."""
MAX_MESSAGE = 16 * 1024
"""Largest JSON message a page may send, in bytes (UTF-8)."""
MAX_BAD_MESSAGES = 20
"""Bad messages a session tolerates; the next one closes it (1008)."""
MAX_PENDING_APPROVALS = 32


@dataclass(frozen=True)
class SendText:
    """A typed user message."""

    text: str


@dataclass(frozen=True)
class AppendAudio:
    """Microphone audio, PCM16 LE mono 24 kHz."""

    data: bytes


@dataclass(frozen=True)
class Commit:
    """Push-to-talk released: commit the buffer and ask for a response."""


@dataclass(frozen=True)
class Played:
    """The page played ``samples`` samples since ``epoch`` began (cumulative)."""

    epoch: int
    samples: int


@dataclass(frozen=True)
class Answer:
    """The user's answer to an approval."""

    call_id: str
    allow: bool


@dataclass(frozen=True)
class Switch:
    """Make another agent of the graph active."""

    agent: str


@dataclass(frozen=True)
class Bye:
    """The page ends the session."""


@dataclass(frozen=True)
class Reply:
    """Send this JSON message to the page."""

    message: dict[str, Any]


@dataclass(frozen=True)
class Close:
    """Close the connection with this WebSocket code and reason (after the replies before it)."""

    code: int
    reason: str


Action = SendText | AppendAudio | Commit | Played | Answer | Switch | Bye | Reply | Close

_TYPES = ("text", "ptt", "played", "approve", "switch", "bye")


class _Bad(Exception):
    """A page message that breaks the protocol (one line, sent back as ``error``)."""


class BrowserCaller:
    """One page's side of the protocol.

    Args:
        agents: The agents the page may switch to.
        usage: Given each ``turn.done``, returns the ``usage`` message to send (or None
            to send none); realtalk.pricing provides it.

    Attributes:
        bad: Bad messages so far.
        pending: Call ids of approvals the page was asked and has not answered.
    """

    def __init__(self, agents: Sequence[str], *,
                 usage: Callable[[SessionEvent], dict[str, Any] | None] | None = None) -> None:
        self.agents = list(agents)
        self.usage = usage
        self.bad = 0
        self.pending: list[str] = []
        self.ptt_down = False

    # -- page -> server -----------------------------------------------------------------

    def receive_bytes(self, data: bytes) -> list[Action]:
        """A binary frame: microphone audio."""
        if len(data) > MAX_AUDIO_FRAME:
            return self._error(f"audio frame of {len(data)} bytes is over the {MAX_AUDIO_FRAME}-byte limit")
        if len(data) % 2:
            return self._error(f"audio frame of {len(data)} bytes is not whole PCM16 samples (2 bytes each)")
        if not data:
            return []
        return [AppendAudio(data)]

    def receive_text(self, text: str) -> list[Action]:
        """A text frame: one JSON message."""
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_MESSAGE:
            return self._error(f"message of {size} bytes is over the {MAX_MESSAGE}-byte limit")
        try:
            message = codec.loads(text)
        except ValueError as exc:
            return self._error(f"message is not JSON ({str(exc).splitlines()[0]})")
        if not isinstance(message, dict):
            return self._error(f"message must be a JSON object, not {type(message).__name__}")
        kind = message.get("type")
        if not isinstance(kind, str):
            return self._error("message has no \"type\" (a string)")
        if kind not in _TYPES:
            return self._error(f"unknown message type {_short(kind)}; expected one of {', '.join(_TYPES)}")
        try:
            return getattr(self, f"_on_{kind}")(message)  # type: ignore[no-any-return]
        except _Bad as exc:
            return self._error(str(exc))

    def _on_text(self, message: dict[str, Any]) -> list[Action]:
        text = _field(message, "text", str)
        if not text.strip():
            raise _Bad('field "text" of the text message is empty')
        return [SendText(text)]

    def _on_ptt(self, message: dict[str, Any]) -> list[Action]:
        down = _field(message, "down", bool)
        was, self.ptt_down = self.ptt_down, down
        return [Commit()] if was and not down else []

    def _on_played(self, message: dict[str, Any]) -> list[Action]:
        epoch = _count(message, "epoch")
        samples = _count(message, "samples")
        return [Played(epoch, samples)]

    def _on_approve(self, message: dict[str, Any]) -> list[Action]:
        call_id = _field(message, "call_id", str)
        allow = _field(message, "allow", bool)
        if call_id not in self.pending:
            raise _Bad(f'field "call_id": no approval is waiting for {_short(call_id)}')
        self.pending.remove(call_id)
        return [Answer(call_id, allow)]

    def _on_switch(self, message: dict[str, Any]) -> list[Action]:
        agent = _field(message, "agent", str)
        if agent not in self.agents:
            raise _Bad(f'field "agent": unknown agent {_short(agent)}; agents: {", ".join(self.agents)}')
        return [Switch(agent)]

    def _on_bye(self, message: dict[str, Any]) -> list[Action]:
        return [Bye()]

    def _error(self, message: str) -> list[Action]:
        self.bad += 1
        actions: list[Action] = [Reply({"type": "error", "message": message})]
        if self.bad > MAX_BAD_MESSAGES:
            actions.append(Close(1008, f"too many bad messages ({self.bad})"))
        return actions

    # -- server -> page -----------------------------------------------------------------

    def ready(self, session_id: str, agent: str, max_session_s: float) -> dict[str, Any]:
        """The first message: the session is live."""
        return {"type": "ready", "session_id": session_id, "agent": agent, "agents": self.agents,
                "audio": {"rate": 24000, "format": "pcm16"}, "max_session_s": max_session_s}

    def event(self, event: SessionEvent) -> list[dict[str, Any]]:
        """The messages for one session event: ``event``, and ``usage`` after ``turn.done``."""
        out = [{"type": "event", "event": event.as_dict()}]
        if event.type == "turn.done" and self.usage is not None:
            usage = self.usage(event)
            if usage is not None:
                out.append(usage)
        return out

    def approval(self, request: ApprovalRequest) -> dict[str, Any]:
        """Ask the page about a call; its ``approve`` answer is accepted once."""
        self.pending.append(request.call_id)
        del self.pending[:-MAX_PENDING_APPROVALS]
        return {"type": "approval", "call_id": request.call_id, "agent": request.agent,
                "tool": request.tool, "arguments": request.arguments}

    def approval_ended(self, call_id: str) -> None:
        """The approval timed out or the call went away: an answer now is an error."""
        if call_id in self.pending:
            self.pending.remove(call_id)

    @staticmethod
    def clear(epoch: int) -> dict[str, Any]:
        """Barge-in: drop queued audio; count epoch ``epoch`` from 0."""
        return {"type": "clear", "epoch": epoch}

    @staticmethod
    def closing(code: str, reason: str) -> dict[str, Any]:
        """The session ends: ``max_session``, ``draining``, ``server_error`` or ``bye``."""
        return {"type": "closing", "code": code, "reason": reason}


def _field(message: dict[str, Any], name: str, kind: type[Any]) -> Any:
    value = message.get(name)
    if kind is bool:
        ok, what = isinstance(value, bool), "true or false"
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
        what = {str: "a string", int: "a whole number"}.get(kind, kind.__name__)
    if not ok:
        got = "missing" if name not in message else f"not {_short(json.dumps(value))}"
        raise _Bad(f'field "{name}" of the {message["type"]} message must be {what} ({got})')
    return value


def _count(message: dict[str, Any], name: str) -> int:
    value = _field(message, name, int)
    if value < 0:
        raise _Bad(f'field "{name}" of the {message["type"]} message must be 0 or more (not {value})')
    return int(value)


def _short(text: str) -> str:
    """``text`` quoted for a one-line message: printable, at most 60 characters."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return repr(clean[:60] + ("..." if len(clean) > 60 else ""))
