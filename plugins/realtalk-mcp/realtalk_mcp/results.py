"""What an MCP server says, as realtalk tool outputs and tools (plain functions, no I/O).

- :func:`output_text`: a ``CallToolResult`` as the text the model gets. Structured
  content (``structuredContent``) as JSON; otherwise the text blocks joined by newlines,
  images, audio and resources summarised (``[image/png, 1234 bytes]``), never inlined.
  ``isError: true`` raises :class:`McpToolError` with the server's text, so the model
  gets an error output.
- :func:`build_tools`: the server's listing as :class:`realtalk.Tool` objects: only
  ``allowed_tools``, named ``prefix + name``, with the server's per-tool settings; a tool
  whose definition realtalk would refuse (an invalid schema: a server that lies) is left
  out with a warning naming the server and the tool.

Every text that leaves here went through :func:`realtalk.envrefs.redact`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from mcp import types
from realtalk.envrefs import redact
from realtalk.exceptions import ToolDefinitionError
from realtalk.tools import MAX_DESCRIPTION, Tool, ToolFailed, error_output, make_tool
from realtalk.toolsources import McpServerSpec

__all__ = ["McpToolError", "build_tools", "output_text"]

Call = Callable[[str, dict[str, Any]], Awaitable[str]]


class McpToolError(ToolFailed):
    """The server answered the call with an error (``isError``, a protocol error, a crash):
    the call fails with ``{"error": MESSAGE}`` as the model's output."""

    def __init__(self, message: str) -> None:
        super().__init__(error_output(message))
        self.message = message


def output_text(result: types.CallToolResult, secrets: Sequence[str]) -> str:
    """The text of a successful result; an error result raises.

    Raises:
        McpToolError: ``isError`` was set; the message is the server's text.
    """
    if result.is_error:
        raise McpToolError(redact(_blocks(result.content) or "the server reported an error", secrets))
    if result.structured_content is not None:
        return redact(json.dumps(result.structured_content, ensure_ascii=False), secrets)
    return redact(_blocks(result.content), secrets)


def _blocks(content: Sequence[Any]) -> str:
    return "\n".join(_block(block) for block in content)


def _block(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, (types.ImageContent, types.AudioContent)):
        return f"[{block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return resource.text
        return f"[resource {resource.uri}, {resource.mime_type or 'binary'}, {_decoded_size(resource.blob)} bytes]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link {block.uri}{', ' + block.mime_type if block.mime_type else ''}]"
    return f"[{getattr(block, 'type', type(block).__name__)} content]"


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data)


def build_tools(spec: McpServerSpec, listed: Sequence[types.Tool], call: Call,
                secrets: Sequence[str]) -> tuple[list[Tool], list[str]]:
    """The server's tools as realtalk tools, and a warning per tool left out.

    Args:
        spec: The server as declared.
        listed: Its ``tools/list`` answer (every page).
        call: ``await call(server_tool_name, arguments)`` runs one call, returning its text.
        secrets: Values to redact from descriptions and warnings.
    """
    tools: list[Tool] = []
    warnings: list[str] = []
    by_name = {t.name: t for t in listed}
    wanted = spec.allowed_tools if spec.allowed_tools is not None else tuple(by_name)
    for name in wanted:
        tool = by_name.get(name)
        if tool is None:
            warnings.append(f"{spec.describe()}: allowed_tools names {name!r}, which the server does not"
                            f" have (it has: {', '.join(sorted(by_name)) or 'no tools'})")
            continue
        try:
            tools.append(_tool(spec, tool, call, secrets))
        except ToolDefinitionError as exc:
            why = exc.message.removeprefix(f"tool {spec.prefix + name!r}: ")
            warnings.append(redact(f"{spec.describe()}: tool {name!r} left out: {why}", secrets))
    return tools, warnings


def _tool(spec: McpServerSpec, listed: types.Tool, call: Call, secrets: Sequence[str]) -> Tool:
    options = spec.options(listed.name)
    timeout = None if options.no_timeout else options.timeout_s if options.timeout_s is not None else spec.timeout_s
    description = redact(listed.description or listed.title or f"The {listed.name} tool of {spec.describe()}.",
                         secrets)
    if len(description) > MAX_DESCRIPTION:
        description = description[:MAX_DESCRIPTION - 1] + "…"
    server_name = listed.name

    async def handler(**arguments: Any) -> str:
        return await call(server_name, arguments)

    handler.__qualname__ = f"{spec.name}.{server_name}"
    tool = make_tool(
        spec.prefix + listed.name, description, dict(listed.input_schema), handler,
        plugin=spec.plugin, timeout_s=timeout,
        requires_approval=bool(options.requires_approval),
        cancellable=options.cancellable if options.cancellable is not None else True,
        still_working=options.still_working,
    )
    return replace(tool, handler_path=f"{spec.describe()}: {server_name}")
