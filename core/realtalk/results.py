"""What a session reports: events as they happen, and the results of turns and calls.

Plain data, shared by :mod:`realtalk.session` (which produces it), the console, the
testing kit and applications.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApprovalRequest", "Approver", "Listener", "SessionEvent", "ToolCallRecord", "TurnResult"]


@dataclass(frozen=True)
class SessionEvent:
    """Something that happened, for consoles, logs and applications.

    ``type`` is one of: ``connected``, ``reconnected``, ``user.transcript``,
    ``assistant.delta``, ``assistant.done``, ``tool.started``, ``tool.finished``,
    ``handoff``, ``turn.done``, ``interrupted``, ``warning``, ``error``.
    """

    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolCallRecord:
    """One function call and what came of it."""

    call_id: str
    name: str
    arguments: str
    agent: str
    output: str | None = None
    status: str | None = None
    duration_s: float = 0.0


@dataclass
class TurnResult:
    """Everything one turn produced, from the user's input until the session was idle.

    Attributes:
        text: What the assistant said (text or audio transcript), all responses joined.
        tool_calls: The calls made during the turn, in order.
        handoffs: ``(from, to)`` agent pairs.
        usage: Token usage of each response.
        first_delta_ms: From the end of the user's turn to the first output delta.
        done_ms: From the end of the user's turn to the session being idle.
        interrupted: The user spoke again before the turn was over (barge-in).
        status: How the turn's responses ended: ``completed``; ``failed`` (the server
            reported an error, or refused our ``response.create``); ``incomplete`` (cut
            short, e.g. ``max_output_tokens``); ``cancelled`` (barge-in or cancel). The
            worst of the turn's responses counts.
        status_reason: Why, when the status is not ``completed``
            (``"server_error: The server had an error"``, ``"max_output_tokens"``).
    """

    text: str = ""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    handoffs: list[tuple[str, str]] = field(default_factory=list)
    usage: list[dict[str, Any]] = field(default_factory=list)
    first_delta_ms: float | None = None
    done_ms: float | None = None
    interrupted: bool = False
    status: str = "completed"
    status_reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every response of the turn completed."""
        return self.status == "completed"

    def note_status(self, status: str, reason: str | None) -> None:
        """Record a response's end; keeps the worst (failed > incomplete > cancelled)."""
        if _SEVERITY.get(status, 0) > _SEVERITY.get(self.status, 0):
            self.status, self.status_reason = status, reason


_SEVERITY = {"completed": 0, "cancelled": 1, "incomplete": 2, "failed": 3}


@dataclass(frozen=True)
class ApprovalRequest:
    """A call to a ``requires_approval`` tool, waiting for a yes or no."""

    tool: str
    arguments: dict[str, Any]
    agent: str
    call_id: str


Approver = Callable[[ApprovalRequest], "bool | Awaitable[bool]"]
Listener = Callable[[SessionEvent], None]
