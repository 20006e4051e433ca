"""Hosted MCP as the client follows it: the server's calls, its approval requests, its listings.

With hosted MCP tools (an agent's ``hosted_mcp:``) the Realtime API itself lists the
servers' tools and calls them; the client watches and answers. :class:`HostedMcpCalls`
keeps what one connection said about that, from plain event dicts:

- each ``mcp_call`` or ``mcp_approval_request`` item as a
  :class:`~realtalk.results.ToolCallRecord` named ``SERVER_LABEL.TOOL`` (made once, from
  the item), its arguments as they stream, and its status and output when it is done;
- the approval requests the approver has not answered yet: while one waits, the user's
  turn is not over;
- the listings that failed, so that their item's ``conversation.item.done`` (which
  follows ``mcp_list_tools.failed``) is not reported a second time.

:class:`~realtalk.protocol.client.ClientProtocol` turns what these methods return into
turn results, session events and the ``mcp_approval_response`` it sends. No I/O.
"""

from __future__ import annotations

from typing import Any

from ..hostedmcp import call_name
from ..results import ToolCallRecord

__all__ = ["HostedMcpCalls"]


class HostedMcpCalls:
    """The hosted MCP calls, approval requests and failed listings of one connection."""

    def __init__(self) -> None:
        self._records: dict[str, ToolCallRecord] = {}  # by item id
        self._waiting: set[str] = set()  # approval requests not answered yet
        self._lists_failed: set[str] = set()

    @property
    def waiting(self) -> bool:
        """An approval request waits for the approver."""
        return bool(self._waiting)

    def clear(self) -> None:
        """Forget everything: the connection is gone, its requests died with it."""
        self._records.clear()
        self._waiting.clear()
        self._lists_failed.clear()

    def record(self, item: dict[str, Any], agent: str) -> ToolCallRecord:
        """The record of an ``mcp_call`` or ``mcp_approval_request`` item, made once."""
        item_id = str(item.get("id") or "")
        record = self._records.get(item_id)
        if record is None:
            name = call_name(str(item.get("server_label") or "?"), str(item.get("name") or "?"))
            record = self._records[item_id] = ToolCallRecord(item_id, name, str(item.get("arguments") or ""), agent)
        return record

    def arguments(self, event: dict[str, Any]) -> None:
        """``response.mcp_call_arguments.delta`` / ``.done``: the call's arguments so far."""
        record = self._records.get(str(event.get("item_id")))
        if record is None:
            return
        if event.get("type") == "response.mcp_call_arguments.done":
            record.arguments = str(event.get("arguments") or "")
        else:
            record.arguments += str(event.get("delta") or "")

    def started(self, event: dict[str, Any]) -> ToolCallRecord | None:
        """``response.mcp_call.in_progress``: the call's record, if its item was seen."""
        return self._records.get(str(event.get("item_id")))

    def ended(self, event: dict[str, Any]) -> None:
        """``response.mcp_call.completed`` / ``.failed``: its status (the item has the output)."""
        record = self._records.get(str(event.get("item_id")))
        if record is not None:
            record.status = "ok" if event.get("type") == "response.mcp_call.completed" else "error"

    def call_done(self, item: dict[str, Any], agent: str) -> ToolCallRecord:
        """An ``mcp_call`` item is done: its record with the final status and output
        (the item's ``error``, else its ``output``), forgotten here."""
        record = self.record(item, agent)
        self._records.pop(record.call_id, None)
        error = item.get("error")
        if isinstance(error, dict):
            record.status = "error"
            record.output = f"{error.get('type') or 'error'}: {error.get('message') or 'no message'}"
        else:
            record.status = record.status or "ok"
            record.output = str(item.get("output") or "")
        return record

    def approval_requested(self, item: dict[str, Any], agent: str) -> ToolCallRecord | None:
        """An ``mcp_approval_request`` item is done: its record, now waiting for an answer;
        None when it has no id or the server repeated it."""
        item_id = item.get("id")
        if not isinstance(item_id, str) or item_id in self._waiting:
            return None
        self._waiting.add(item_id)
        return self.record(item, agent)

    def answer(self, approval_request_id: str, approved: bool) -> tuple[bool, ToolCallRecord | None]:
        """The approver answered: whether the request is still waiting (an answer after a
        reconnect, or a second one, is dropped) and its record, marked approved or refused."""
        if approval_request_id not in self._waiting:
            return False, None
        self._waiting.discard(approval_request_id)
        record = self._records.pop(approval_request_id, None)
        if record is not None:
            record.status, record.output = ("approved", "approved") if approved else ("refused", "not approved")
        return True, record

    def list_failed(self, item_id: str) -> None:
        """``mcp_list_tools.failed`` for the listing item ``item_id``."""
        self._lists_failed.add(item_id)

    def list_done(self, item: dict[str, Any]) -> tuple[str, tuple[str, ...]] | None:
        """A listing item is done: its server label and tool names; None when the listing
        failed (already reported)."""
        if item.get("id") in self._lists_failed:
            self._lists_failed.discard(item.get("id"))
            return None
        names = tuple(str(t.get("name")) for t in item.get("tools") or [] if isinstance(t, dict))
        return str(item.get("server_label") or "?"), names
