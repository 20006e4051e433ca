"""The emulator talking to a hosted MCP server, as the live Realtime server does.

One function, :func:`perform`, carries out an :class:`~.hosted.McpRequest`: it connects
to the server's ``server_url`` over streamable HTTP with the official ``mcp`` SDK
(imported here, on first use: the emulator runs without it, and then every hosted MCP
server fails to list with a log line naming ``pip install 'realtalk[mcp]'``), sends the tool's
``headers`` (and ``authorization`` as a bearer token), lists the tools or calls one,
and returns an :class:`~.hosted.McpResult`. Every request is bounded by
:data:`MCP_TIMEOUT_S`; whatever goes wrong becomes the result's GA ``error``, never an
exception.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..waits import within
from .hosted import McpRequest, McpResult, unreachable

__all__ = ["MCP_TIMEOUT_S", "perform"]

_log = logging.getLogger("realtalk.emulator")

MCP_TIMEOUT_S = 30.0
"""How long one listing or call of a hosted MCP server may take, connection included."""


async def perform(request: McpRequest, timeout: float = MCP_TIMEOUT_S) -> McpResult:
    """List the tools of ``request.server``, or call ``request.tool`` on it."""
    label = request.server.get("server_label")
    reason = unreachable(request.server)
    if reason is not None:
        return _failed(label, "protocol_error", reason, code=-32000)
    try:
        import httpx2
        from mcp.client import Client
        from mcp.client.streamable_http import streamable_http_client
    except ImportError:
        return _failed(
            label, "protocol_error",
            "the emulator needs the mcp package to call hosted MCP servers: pip install 'realtalk[mcp]'",
            code=-32000,
        )
    async def talk() -> McpResult:
        async with httpx2.AsyncClient(headers=_headers(request.server), timeout=timeout) as http:
            transport = streamable_http_client(str(request.server["server_url"]), http_client=http)
            async with Client(transport) as client:
                if request.tool is None:
                    listed = await client.list_tools()
                    return McpResult(tools=[_tool(t) for t in listed.tools])
                result = await client.call_tool(request.tool, request.arguments)
        text = _text(result.content)
        if result.is_error:
            return McpResult(error={"type": "tool_execution_error", "message": text or "the tool failed"})
        return McpResult(output=text)

    try:
        return await within(talk(), timeout)
    except asyncio.TimeoutError:
        return _failed(label, "http_error", f"no answer within {timeout:g} s", code=504)
    except Exception as exc:  # noqa: BLE001 - a server we cannot talk to is a failed request
        return _failed(label, "protocol_error", _describe(exc), code=-32000)


def _headers(server: dict[str, Any]) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in (server.get("headers") or {}).items()}
    token = server.get("authorization")
    if isinstance(token, str) and token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _tool(tool: Any) -> dict[str, Any]:
    annotations = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else None
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "annotations": annotations,
    }


def _text(content: Any) -> str:
    return "\n".join(str(getattr(part, "text", "")) for part in content if getattr(part, "type", "") == "text")


def _describe(exc: BaseException) -> str:
    # anyio task groups wrap the cause in ExceptionGroups: name the innermost one.
    inner = getattr(exc, "exceptions", None)
    while isinstance(inner, tuple) and inner and isinstance(inner[0], BaseException):
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _failed(label: Any, kind: str, message: str, *, code: int) -> McpResult:
    _log.warning("hosted MCP server %r: %s", label, message)
    error: dict[str, Any] = {"type": kind, "message": message}
    if kind != "tool_execution_error":
        error["code"] = code
    return McpResult(error=error)
