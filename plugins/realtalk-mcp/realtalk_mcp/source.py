"""Opening one MCP server for a session: secrets expanded, server started, tools built.

:func:`open_server` is the opener realtalk core calls (through the plugin's
``register_tool_sources`` hook) for each server a session's agents list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from realtalk.envrefs import MissingEnv, expand
from realtalk.exceptions import ConfigError
from realtalk.tools import Tool
from realtalk.toolsources import McpServerSpec

from .connection import ServerConnection, ServerDown
from .results import McpToolError, build_tools, output_text

__all__ = ["McpSource", "open_server"]


class McpSource:
    """One started server: its tools, what was left out, and ``aclose``."""

    def __init__(self, connection: ServerConnection, tools: list[Tool], warnings: list[str]) -> None:
        self.connection = connection
        self.tools = tools
        self.warnings = warnings

    async def aclose(self) -> None:
        """Stop the server (bounded)."""
        await self.connection.aclose()


async def open_server(spec: McpServerSpec, warn: Callable[[str], None]) -> McpSource:
    """Start ``spec``'s server and list its tools (bounded by ``startup_timeout_s``).

    Raises:
        ConfigError: A ``${NAME}`` it uses is not set, or the server did not start
            (one line naming the server and where it is declared; secrets redacted).
    """
    env, secrets = _expanded(spec, spec.env, "env")
    headers, header_secrets = _expanded(spec, spec.headers, "headers")
    secrets += header_secrets
    connection = ServerConnection(spec, env, headers, secrets, warn)
    try:
        listed = await connection.start()
    except ServerDown as exc:
        await connection.aclose()
        raise ConfigError(f"{spec.describe()} could not start: {exc}", file=spec.file, line=spec.line) from None

    async def call(name: str, arguments: dict[str, Any]) -> str:
        try:
            result = await connection.call(name, arguments)
        except ServerDown as exc:
            raise McpToolError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a protocol error or a result that breaks its schema
            raise McpToolError(connection.clean(f"{spec.describe()}: {exc}")) from None
        return output_text(result, connection.secrets)

    tools, warnings = build_tools(spec, listed, call, secrets)
    return McpSource(connection, tools, warnings)


def _expanded(spec: McpServerSpec, pairs: Sequence[tuple[str, str]], key: str) -> tuple[dict[str, str], list[str]]:
    values: dict[str, str] = {}
    secrets: list[str] = []
    for name, text in pairs:
        try:
            expanded = expand(text)
        except MissingEnv as exc:
            raise ConfigError(f"{spec.describe()}: {key}.{name}: {exc}", file=spec.file, line=spec.line) from None
        values[name] = expanded.value
        secrets += expanded.secrets
    return values, secrets
