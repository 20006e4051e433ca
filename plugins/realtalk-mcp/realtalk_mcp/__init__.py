"""realtalk-mcp: the tools of MCP servers, for realtalk agents (docs/mcp.md).

An agent (or a tools file) lists servers under ``mcp_servers:``; realtalk core reads that
list and, when a session starts, calls the opener this plugin registers for the kind
``"mcp"``: :func:`open_server` expands the ``${NAME}`` secrets of ``env`` and
``headers``, starts the server (:class:`~realtalk_mcp.connection.ServerConnection`),
lists its tools and turns them into realtalk tools (:func:`~realtalk_mcp.results.build_tools`)
whose handlers call the server.

Importing this module is light (no SDK, no ``realtalk.tools``): realtalk imports every
plugin to find its hooks, even for commands that start no session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import realtalk

if TYPE_CHECKING:
    from realtalk.toolsources import McpServerSpec, ToolSourceRegistrar

    from .source import McpSource

__all__ = ["open_server", "register_tool_sources"]


async def open_server(spec: McpServerSpec, warn: Callable[[str], None]) -> McpSource:
    """Start ``spec``'s server and list its tools (see :func:`realtalk_mcp.source.open_server`)."""
    from .source import open_server as open_now

    return await open_now(spec, warn)


@realtalk.hookimpl
def register_tool_sources(register: ToolSourceRegistrar) -> None:
    """Open MCP servers (the kind ``"mcp"``)."""
    register("mcp", open_server)
