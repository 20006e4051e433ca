"""What :class:`~realtalk.protocol.client.ClientProtocol` asks its driver to do.

Plain frozen dataclasses, carried out in order by :class:`~realtalk.session.Session` (or a
test's driver): send an event, publish a session event, run or cancel a tool, play or stop
audio, switch the audio format, reconnect, ask for an approval of a hosted MCP call. Also importable from
:mod:`realtalk.protocol.client`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..results import ApprovalRequest, ToolCallRecord
from ..tools import Tool

__all__ = [
    "Action",
    "AskApproval",
    "AudioDone",
    "CancelCalls",
    "Emit",
    "Interrupt",
    "Play",
    "Reconnect",
    "RunTool",
    "Send",
    "SetAudioFormat",
]


@dataclass(frozen=True)
class Send:
    """Send this client event now, on the connection that was live when it was returned."""

    event: dict[str, Any]


@dataclass(frozen=True)
class Emit:
    """Publish a session event (``kind`` and its fields); ``log`` also logs it as a warning."""

    kind: str
    data: dict[str, Any]
    log: bool = False


@dataclass(frozen=True)
class RunTool:
    """Run one call: :meth:`~realtalk.protocol.client.ClientProtocol.tool_done` when it ends (or ``handoff`` for a
    handoff tool), :meth:`~realtalk.protocol.client.ClientProtocol.tool_cancelled` if it is cancelled, and always
    :meth:`~realtalk.protocol.client.ClientProtocol.call_ended` last."""

    record: ToolCallRecord
    tool: Tool | None
    available: tuple[str, ...]


@dataclass(frozen=True)
class AskApproval:
    """Ask the session's approver about a hosted MCP call the server wants to make;
    report the answer with :meth:`~realtalk.protocol.client.ClientProtocol.mcp_approval`
    (no answer within the approval timeout is a no)."""

    request: ApprovalRequest
    approval_request_id: str


@dataclass(frozen=True)
class CancelCalls:
    """Cancel these running calls (barge-in); each reports through ``tool_cancelled``."""

    call_ids: tuple[str, ...]


@dataclass(frozen=True)
class Play:
    """Play one base64 audio delta of an assistant item."""

    item_id: str
    delta: str


@dataclass(frozen=True)
class AudioDone:
    """The item's audio is complete: let the sink play out its tail."""

    item_id: str


@dataclass(frozen=True)
class Interrupt:
    """Barge-in: stop playback now, then report what was heard with ``interrupted``."""


@dataclass(frozen=True)
class SetAudioFormat:
    """The wire audio format changes (a handoff to an agent with another format)."""

    audio_format: str


@dataclass(frozen=True)
class Reconnect:
    """Replace the connection with a new session seeded with ``history`` (voice policy).

    The usual lifecycle follows; :meth:`~realtalk.protocol.client.ClientProtocol.go_live` then asks for what the
    handoff owes (the greeting), after the call's output that the history carries.
    """

    reason: str
    history: list[dict[str, Any]]


Action = (Send | Emit | RunTool | CancelCalls | Play | AudioDone | Interrupt | SetAudioFormat | Reconnect
          | AskApproval)
