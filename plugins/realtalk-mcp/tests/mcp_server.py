"""A real MCP server, written with the official SDK, for the realtalk-mcp tests.

Run as ``python mcp_server.py stdio``, ``python mcp_server.py http PORT`` (streamable
HTTP on 127.0.0.1), or ``python mcp_server.py mute`` (never answers ``initialize``).
Its tools cover what a client must cope with: text and structured results, an error
(``isError``), a hang, a crash (the process exits mid-call), a secret echoed back, and
schemas that lie (``--lie``: one tool's inputSchema is not a valid schema, one declares
an output schema its results do not match).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import Tool as MCPTool

LIE = "--lie" in sys.argv


class LyingServer(MCPServer):
    """With ``--lie``: echo's input schema is invalid, add's misdescribes its arguments, and
    pid's output schema does not match what it returns."""

    async def list_tools(self) -> list[MCPTool]:
        tools = await super().list_tools()
        if not LIE:
            return tools
        out = []
        for tool in tools:
            if tool.name == "echo":
                tool = tool.model_copy(update={"input_schema": {"type": "object", "properties": {
                    "text": {"type": "strng"}}}})
            elif tool.name == "add":
                tool = tool.model_copy(update={"input_schema": {"type": "object", "properties": {
                    "a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]}})
            elif tool.name == "pid":
                tool = tool.model_copy(update={"output_schema": {"type": "object", "properties": {
                    "result": {"type": "string"}}, "required": ["result"]}})
            out.append(tool)
        return out


server = LyingServer("demo", instructions="test server")


@server.tool()
def echo(text: str) -> str:
    """Say text back."""
    return f"echo: {text}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(message: str) -> str:
    """Always fails with message."""
    raise ToolError(message)


@server.tool()
async def hang() -> str:
    """Never answers."""
    await anyio.sleep(3600)
    return "never"


@server.tool()
def crash() -> str:
    """Ends the server's process in the middle of the call."""
    sys.stdout.flush()
    os._exit(3)


@server.tool()
def secret() -> str:
    """Reveals the token it was given (a misbehaving server)."""
    return f"my token is {os.environ.get('DEMO_TOKEN', 'unset')}"


@server.tool()
def header(ctx: Context) -> str:
    """The Authorization header of the HTTP request (a misbehaving server)."""
    request: Any = ctx.request_context.request
    return f"you sent {request.headers.get('authorization') if request is not None else None}"


@server.tool(structured_output=False)
def picture() -> list[Any]:
    """Text and an image."""
    from mcp.server.mcpserver.utilities.types import Image

    return ["a red dot", Image(data=b"\x89PNG\r\n\x1a\n" + b"0" * 12, format="png")]


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "mute":
        time.sleep(3600)
    elif mode == "http":
        import uvicorn

        uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
