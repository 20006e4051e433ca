"""A small MCP server, written with the official SDK: notes kept in memory.

Run by the agent beside it (notes.yaml) over stdio: ``python notes_server.py``.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes")
NOTES: list[str] = []


@server.tool()
def add_note(text: str) -> str:
    """Keep a note for the guest; returns what was noted."""
    NOTES.append(text)
    return f"note {len(NOTES)}: {text}"


@server.tool()
def list_notes() -> list[str]:
    """Every note kept so far, oldest first."""
    return list(NOTES)


@server.tool()
def clear_notes() -> str:
    """Forget every note."""
    NOTES.clear()
    return "cleared"


if __name__ == "__main__":
    server.run("stdio")
