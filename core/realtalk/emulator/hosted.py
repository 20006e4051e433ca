"""Hosted MCP tools in the emulator: the rules, without I/O.

A session may carry ``{"type": "mcp", "server_label": ..., "server_url": ...}`` tools.
The live server connects to those MCP servers itself: it lists their tools when the
session is configured, and calls them when the model decides to. The emulator does the
same, for real, with the official ``mcp`` SDK (:mod:`.mcpclient`), but only for a
``server_url`` on the loopback interface: an emulator never reaches out to the internet
on a scenario's behalf, and connectors (``connector_id``) have no server to talk to.

This module holds what is decided without I/O: which servers a session names, which of
their tools ``allowed_tools`` keeps, whether ``require_approval`` asks before a call,
why a server cannot be reached, and the two values that cross to the I/O side and back:
:class:`McpRequest` (an action: list the tools, or call one) and :class:`McpResult`.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "McpRequest",
    "McpResult",
    "allowed",
    "mcp_servers",
    "needs_approval",
    "server_key",
    "unreachable",
]


@dataclass(frozen=True)
class McpRequest:
    """Ask the I/O side to talk to a hosted MCP server; the answer comes back through
    :meth:`~realtalk.emulator.protocol.ServerProtocol.receive_mcp_result` with ``token``.

    Attributes:
        token: Names the request in the answer.
        server: The session's ``mcp`` tool (``server_url``, ``headers``, ``authorization``).
        tool: The tool to call; None lists the server's tools.
        arguments: The call's arguments (a JSON object).
    """

    token: int
    server: dict[str, Any]
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class McpResult:
    """What a hosted MCP server answered.

    Attributes:
        tools: The listed tools, as the GA ``mcp_list_tools`` item holds them
            (``name``, ``description``, ``input_schema``, ``annotations``).
        output: The call's output text.
        error: The GA error object when it failed: ``{"type": "protocol_error", "code",
            "message"}``, ``{"type": "tool_execution_error", "message"}`` or
            ``{"type": "http_error", "code", "message"}``.
    """

    tools: list[dict[str, Any]] = field(default_factory=list)
    output: str | None = None
    error: dict[str, Any] | None = None


def mcp_servers(session: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The session's hosted MCP tools by ``server_label``."""
    return {
        str(tool.get("server_label")): tool
        for tool in session.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "mcp"
    }


def server_key(server: dict[str, Any]) -> str:
    """What identifies a server's configuration: an update that changes nothing of it
    does not list its tools again."""
    return json.dumps(server, sort_keys=True)


def unreachable(server: dict[str, Any]) -> str | None:
    """Why the emulator does not connect to ``server`` (None: it does)."""
    url = server.get("server_url")
    if not isinstance(url, str) or not url:
        return (
            f"connector {server.get('connector_id')!r} is not emulated: give the tool a "
            "loopback server_url instead"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"server_url {url!r} is not an http(s) URL"
    host = parts.hostname
    if host == "localhost":
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return f"server_url {url!r} is not on the loopback interface; the emulator only calls local servers"
    return None


def allowed(server: dict[str, Any], tool: dict[str, Any]) -> bool:
    """Whether ``allowed_tools`` (a list of names, or ``{tool_names, read_only}``) keeps
    ``tool`` (a listed tool)."""
    rule = server.get("allowed_tools")
    if rule is None:
        return True
    if isinstance(rule, list):
        return tool.get("name") in rule
    return _filter_matches(rule, tool, default=True)


def needs_approval(server: dict[str, Any], tool: dict[str, Any]) -> bool:
    """Whether a call of ``tool`` waits for an ``mcp_approval_response``.

    ``require_approval`` is ``"always"`` (the default, as on the live server),
    ``"never"``, or ``{always: FILTER, never: FILTER}``: a tool ``never`` matches runs
    at once, any other asks.
    """
    rule = server.get("require_approval", "always")
    if rule is None or rule == "always":
        return True
    if rule == "never":
        return False
    if not isinstance(rule, dict):
        return True
    if isinstance(rule.get("always"), dict) and _filter_matches(rule["always"], tool, default=False):
        return True
    never = rule.get("never")
    return not (isinstance(never, dict) and _filter_matches(never, tool, default=False))


def _filter_matches(rule: dict[str, Any], tool: dict[str, Any], *, default: bool) -> bool:
    # A GA tool filter: tool_names and read_only, both optional; an empty one matches
    # `default`.
    names = rule.get("tool_names")
    read_only = rule.get("read_only")
    if names is None and read_only is None:
        return default
    if names is not None and tool.get("name") not in names:
        return False
    if read_only is not None:
        hints = tool.get("annotations") or {}
        if bool(hints.get("readOnlyHint")) != bool(read_only):
            return False
    return True
