"""Hosted MCP approvals in ``realtalk serve``: asked on the page, as a tool's are.

A real MCP server (``hosted_mcp_server``), the built-in emulator calling it, and a fake
page answering the approval; the page never sees the MCP server's token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TOKEN = "tok-serve-5b7e19d2c4"

SCENARIO = """\
name: desk
turns:
  - user: /wipe/
    reply:
      - mcp_call: delete_all
        server_label: docs
      - say: "Done: {output}"
"""


async def test_a_hosted_mcp_approval_is_asked_on_the_page(
        serve_server: Any, open_page: Any, tmp_path: Path, hosted_mcp_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_TOKEN", TOKEN)
    (tmp_path / "desk.yaml").write_text(
        "name: desk\nmodel: gpt-realtime\ninstructions: Help.\nmodalities: [text]\nhosted_mcp:\n"
        f"  - server_label: docs\n    server_url: {hosted_mcp_server.url}\n"
        "    headers: {Authorization: 'Bearer ${DOCS_TOKEN}'}\n")
    (tmp_path / "desk.scenario.yaml").write_text(SCENARIO)
    base = await serve_server(tmp_path, emulator_fast=True)
    async with open_page(base) as page:
        await page.next("ready")
        await page.send({"type": "text", "text": "wipe it all"})
        asked = await page.next("approval")
        assert (asked["tool"], asked["agent"], asked["arguments"]) == ("docs.delete_all", "desk", {})
        await page.send({"type": "approve", "call_id": asked["call_id"], "allow": True})
        finished = await page.event("tool.finished")
        assert (finished["name"], finished["status"], finished["output"]) == ("docs.delete_all", "ok", "deleted")
        done = await page.event("turn.done")
        assert done["text"] == "Done: deleted"
        assert TOKEN not in json.dumps(page.messages)
    assert ("delete_all", {}) in hosted_mcp_server.calls
    assert any(h.get("authorization") == f"Bearer {TOKEN}" for h in hosted_mcp_server.headers)
