"""What a session reports: events as they happen, and the results of turns and calls.

Plain data, shared by :mod:`realtalk.session` (which produces it), the console, the
testing kit and applications.

A :data:`SessionEvent` is one of a few small frozen dataclasses, one per kind of event.
Each has a class-level ``type`` (the kind as a string, e.g. ``"tool.finished"``) and
:meth:`~Connected.as_dict` (``{"type": ..., field: value, ...}``, what ``--json``
prints). Match on the class::

    def show(event: SessionEvent) -> None:
        if isinstance(event, ToolFinished):
            print(event.name, event.status, event.output)

:func:`session_event` builds an event from its kind and fields, refusing unknown ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeAlias, get_args

__all__ = [
    "ApprovalRequest",
    "Approver",
    "AssistantDelta",
    "AssistantDone",
    "Connected",
    "ErrorEvent",
    "HandoffDone",
    "InputTimeout",
    "Interrupted",
    "Listener",
    "McpToolsListed",
    "OutOfBandResult",
    "Reconnected",
    "SessionEvent",
    "SessionWarning",
    "ToolCallRecord",
    "ToolFinished",
    "ToolStarted",
    "ToolStillWorking",
    "TurnDone",
    "TurnResult",
    "UserText",
    "UserTranscript",
    "session_event",
]


# --- session events ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    """What every session event has: its kind and a JSON-ready form."""

    type: ClassVar[str]

    def as_dict(self) -> dict[str, Any]:
        """``{"type": ..., field: value, ...}`` in field order: one ``--json`` line, one record.

        The values are the event's own (not copied): do not change them.
        """
        return {"type": self.type, **{f.name: getattr(self, f.name) for f in fields(self)}}


@dataclass(frozen=True)
class Connected(_Event):
    """The session is connected and configured.

    Attributes:
        agent: The active agent.
        url: The endpoint, with any credentials shown as ``***``.
    """

    type: ClassVar[str] = "connected"
    agent: str
    url: str


@dataclass(frozen=True)
class Reconnected(_Event):
    """A new connection took over; the conversation was restored on it.

    Attributes:
        reason: Why the old one ended (``connection closed (1006 ...)``, ``session expiring``).
        items: Conversation items re-sent to the new session.
        attempt: Reconnects so far in this session.
    """

    type: ClassVar[str] = "reconnected"
    reason: str
    items: int
    attempt: int


@dataclass(frozen=True)
class UserText(_Event):
    """A user turn given as text (recorded by the testing kit before each turn).

    Attributes:
        text: What the user wrote.
    """

    type: ClassVar[str] = "user.text"
    text: str


@dataclass(frozen=True)
class UserTranscript(_Event):
    """The server's transcript of what the user said.

    Attributes:
        text: The transcript.
    """

    type: ClassVar[str] = "user.transcript"
    text: str


@dataclass(frozen=True)
class AssistantDelta(_Event):
    """A piece of the assistant's reply (text, or the transcript of its audio).

    Attributes:
        agent: The agent speaking.
        delta: The new text.
    """

    type: ClassVar[str] = "assistant.delta"
    agent: str
    delta: str


@dataclass(frozen=True)
class AssistantDone(_Event):
    """One reply of the assistant is complete.

    Attributes:
        agent: The agent that spoke.
        text: The whole reply (empty when it only called tools).
    """

    type: ClassVar[str] = "assistant.done"
    agent: str
    text: str


@dataclass(frozen=True)
class ToolStarted(_Event):
    """The model called a tool; it runs now.

    Attributes:
        call_id: The model's ``call_id``.
        name: The tool's name.
        arguments: The raw ``arguments`` string, as the model sent it.
        agent: The agent that made the call.
    """

    type: ClassVar[str] = "tool.started"
    call_id: str
    name: str
    arguments: str
    agent: str


@dataclass(frozen=True)
class ToolFinished(_Event):
    """A tool call ended; its output goes to the model.

    Attributes:
        call_id: The model's ``call_id``.
        name: The tool's name.
        status: ``ok``, ``invalid_arguments``, ``error``, ``timeout``, ``cancelled``,
            ``refused`` or ``unknown_tool``.
        output: The ``function_call_output`` sent to the model.
        duration_s: Wall time of the call.
        agent: The agent that made the call.
        note: A warning for the person running the session (a handler that blocked the
            loop, an output cut to fit), or None.
    """

    type: ClassVar[str] = "tool.finished"
    call_id: str
    name: str
    status: str
    output: str
    duration_s: float
    agent: str
    note: str | None = None


@dataclass(frozen=True)
class HandoffDone(_Event):
    """Another agent took over the conversation.

    Attributes:
        source: The agent that handed off.
        target: The agent now active.
        call_id: The ``transfer_to_<agent>`` call that did it; None for
            :meth:`~realtalk.session.Session.switch_agent`.
    """

    type: ClassVar[str] = "handoff"
    source: str
    target: str
    call_id: str | None = None


@dataclass(frozen=True)
class TurnDone(_Event):
    """A turn is over: every response done, every tool run (see :class:`TurnResult`).

    Attributes:
        agent: The agent active at the end of the turn.
        text: What the assistant said, all responses joined.
        interrupted: The user spoke before the turn was over.
        first_delta_ms: From the end of the user's turn to the first output delta.
        done_ms: From the end of the user's turn to the session being idle.
        usage: Token usage of each response.
        status: ``completed``, ``failed``, ``incomplete`` or ``cancelled``.
        status_reason: Why, when the status is not ``completed``.
    """

    type: ClassVar[str] = "turn.done"
    agent: str
    text: str
    interrupted: bool = False
    first_delta_ms: float | None = None
    done_ms: float | None = None
    usage: tuple[dict[str, Any], ...] = ()
    status: str = "completed"
    status_reason: str | None = None

    def __post_init__(self) -> None:
        # A snapshot: the turn's own list keeps growing if the turn is reused.
        object.__setattr__(self, "usage", tuple(self.usage))


@dataclass(frozen=True)
class Interrupted(_Event):
    """The user barged in: playback stopped and the reply was cut to what was heard.

    Attributes:
        item_id: The assistant item that was playing.
        played_ms: Audio of it the user heard.
        dropped_ms: Audio received but never played.
        action: The event sent to the server (``conversation.item.truncate``...), or
            ``none``.
        latency_ms: From the server's ``speech_started`` to playback stopped.
    """

    type: ClassVar[str] = "interrupted"
    item_id: str
    played_ms: int
    dropped_ms: int
    action: str
    latency_ms: float


@dataclass(frozen=True)
class InputTimeout(_Event):
    """The user stayed silent for the agent's ``idle_timeout_ms``: the server committed
    the (silent) input and answers it as a turn of its own.

    Attributes:
        item_id: The user item the server made of the idle input.
        audio_start_ms: Where the idle input starts in the session's input audio.
        audio_end_ms: Where it ends.
    """

    type: ClassVar[str] = "input.timeout"
    item_id: str
    audio_start_ms: int
    audio_end_ms: int


@dataclass(frozen=True)
class ToolStillWorking(_Event):
    """A tool runs longer than its ``still_working.after_s``: the user is told so.

    Attributes:
        call_id: The model's ``call_id``.
        name: The tool's name.
        after_s: How long it had run.
        say: The fixed line spoken, or None for a model-generated one.
    """

    type: ClassVar[str] = "tool.still_working"
    call_id: str
    name: str
    after_s: float
    say: str | None = None


@dataclass(frozen=True)
class McpToolsListed(_Event):
    """The server listed the tools of a hosted MCP server (``hosted_mcp:``), or could not.

    Attributes:
        server_label: The server's ``server_label``.
        tools: The names of its tools the model may call (``allowed_tools`` applied).
        error: Why the listing failed, or None.
    """

    type: ClassVar[str] = "mcp.tools_listed"
    server_label: str
    tools: tuple[str, ...] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tools", tuple(self.tools))


@dataclass(frozen=True)
class SessionWarning(_Event):
    """Something the person running the session should know; the session carries on.

    Attributes:
        message: One line.
    """

    type: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True)
class ErrorEvent(_Event):
    """The server reported an error, or the session failed.

    Attributes:
        message: One line.
        code: The server's error code, when it gave one.
        fatal: The session is over (every further call raises the failure).
    """

    type: ClassVar[str] = "error"
    message: str
    code: str | None = None
    fatal: bool = False


SessionEvent: TypeAlias = (
    Connected | Reconnected | UserText | UserTranscript | AssistantDelta | AssistantDone
    | ToolStarted | ToolFinished | ToolStillWorking | HandoffDone | TurnDone | Interrupted
    | InputTimeout | McpToolsListed | SessionWarning | ErrorEvent
)
"""Something that happened in a session, for consoles, logs and applications."""

_KINDS: dict[str, type[_Event]] = {cls.type: cls for cls in get_args(SessionEvent)}
# Each kind's field names, in order, looked up once (an event per transcript delta).
_NAMES: dict[str, tuple[str, ...]] = {kind: tuple(f.name for f in fields(cls)) for kind, cls in _KINDS.items()}
_NAME_SETS: dict[str, frozenset[str]] = {kind: frozenset(names) for kind, names in _NAMES.items()}


def session_event(kind: str, **data: Any) -> SessionEvent:
    """Build the event of ``kind`` (``"tool.finished"``...) from its fields.

    Raises:
        ValueError: ``kind`` is not a kind of session event.
        TypeError: A field is unknown or missing.
    """
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown session event kind {kind!r}; known: {', '.join(sorted(_KINDS))}")
    unknown = data.keys() - _NAME_SETS[kind]
    if unknown:
        raise TypeError(f"session event {kind!r} has no field {min(unknown)!r}; its fields: {', '.join(_NAMES[kind])}")
    try:
        event = cls(**data)
    except TypeError as exc:  # a required field is missing
        raise TypeError(f"session event {kind!r}: {exc}; its fields: {', '.join(_NAMES[kind])}") from None
    return event  # type: ignore[return-value]  # every class of _KINDS is in the union


# --- turns and calls ---------------------------------------------------------------------


@dataclass(frozen=True)
class OutOfBandResult:
    """What an out-of-band response (``conversation: "none"``) produced.

    Attributes:
        text: Its text, or the transcript of its audio (messages joined by newlines).
        status: ``completed``, ``cancelled``, ``incomplete`` or ``failed``.
        response_id: The server's response id (None if it never started).
        metadata: The response's metadata as the server echoed it.
        error: Why it did not complete, when it did not.
    """

    text: str
    status: str
    response_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


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
