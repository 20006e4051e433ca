"""Hosted MCP in the emulator: it lists a real MCP server's tools and calls them itself.

The MCP server is real (the ``mcp`` SDK over streamable HTTP, on a loopback port); the
client is the official ``openai`` SDK, so every server event is parsed by its GA types,
and ``make_emulator`` checks them all against the conformance oracle again.
"""

from __future__ import annotations

import json
from typing import Any

from openai import AsyncOpenAI

SECRET = "s3cr3t-token-4711"

SCENARIO = {
    "turns": [
        {
            "user": "pool",
            "reply": [
                {"mcp_call": "lookup", "server_label": "docs", "arguments": {"topic": "pool"}},
                {"say": "The {output}."},
            ],
        },
        {
            "user": "broken",
            "reply": [
                {"mcp_call": "break_it", "server_label": "docs", "arguments": {"reason": "disk on fire"}},
                {"say": "That failed: {output}"},
            ],
        },
        {
            "user": "wipe",
            "reply": [
                {"mcp_call": "delete_all", "server_label": "docs"},
                {"say": "Done: {output}"},
            ],
        },
        {
            "user": "again",
            "reply": [
                {"mcp_call": "delete_all", "server_label": "docs"},
                {"say": "Done: {output}"},
            ],
        },
    ]
}


def _tool(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "docs",
        "server_url": url,
        "headers": {"X-Api-Key": SECRET},
        "require_approval": {"never": {"tool_names": ["lookup", "break_it"]}},
        **extra,
    }


async def _until(conn: Any, type_: str) -> list[Any]:
    events = []
    async for event in conn:
        events.append(event)
        if event.type == type_:
            return events
    raise AssertionError(f"connection ended before {type_}")


async def _say(conn: Any, text: str) -> list[Any]:
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await conn.response.create()
    return await _until(conn, "response.done")


async def test_hosted_mcp_end_to_end_with_the_official_sdk(make_emulator: Any, hosted_mcp_server: Any) -> None:
    emu = await make_emulator(SCENARIO)
    client = AsyncOpenAI(api_key="k", base_url=emu.base_url, websocket_base_url=emu.websocket_base_url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={
            "type": "realtime", "output_modalities": ["text"],
            "tools": [_tool(hosted_mcp_server.url, allowed_tools=["lookup", "break_it", "delete_all"])]})
        events = await _until(conn, "mcp_list_tools.completed")
        kinds = [e.type for e in events]
        assert kinds[-4:] == ["session.updated", "conversation.item.added",
                              "mcp_list_tools.in_progress", "mcp_list_tools.completed"]
        done = await _until(conn, "conversation.item.done")
        listed = done[-1].item
        assert listed.type == "mcp_list_tools" and listed.server_label == "docs"
        assert sorted(t.name for t in listed.tools) == ["break_it", "delete_all", "lookup"]
        # The secret header reached the MCP server.
        assert any(h.get("x-api-key") == SECRET for h in hosted_mcp_server.headers)

        # A call that needs no approval, in the live order, with the real output.
        events = await _say(conn, "Is the pool open?")
        call = [e for e in events if e.type.startswith("response.mcp_call")]
        deltas = [e.delta for e in call if e.type == "response.mcp_call_arguments.delta"]
        assert json.loads("".join(deltas)) == {"topic": "pool"}
        assert [e.type for e in call][-3:] == ["response.mcp_call_arguments.done",
                                               "response.mcp_call.in_progress",
                                               "response.mcp_call.completed"]
        item = next(e.item for e in events if e.type == "response.output_item.done")
        assert item.type == "mcp_call" and item.output == "pool: open 7 to 23" and item.error is None
        assert json.loads(item.arguments) == {"topic": "pool"}
        texts = [e.text for e in events if e.type == "response.output_text.done"]
        assert texts == ["The pool: open 7 to 23."]
        assert hosted_mcp_server.calls[-1] == ("lookup", {"topic": "pool"})

        # A tool that fails: response.mcp_call.failed, and the item's error.
        events = await _say(conn, "broken")
        assert "response.mcp_call.failed" in [e.type for e in events]
        item = next(e.item for e in events if e.type == "response.output_item.done")
        assert item.error is not None and item.error.type == "tool_execution_error"
        assert "disk on fire" in item.error.message

        # A tool that needs approval: the response ends with the request.
        events = await _say(conn, "wipe")
        request = next(e.item for e in events if e.type == "response.output_item.done")
        assert request.type == "mcp_approval_request" and request.name == "delete_all"
        assert events[-1].response.status == "completed"
        assert ("delete_all", {}) not in hosted_mcp_server.calls
        await conn.conversation.item.create(item={
            "type": "mcp_approval_response", "approval_request_id": request.id, "approve": True})
        await conn.response.create()
        events = await _until(conn, "response.done")
        item = next(e.item for e in events if e.type == "response.output_item.done")
        assert item.type == "mcp_call" and item.approval_request_id == request.id
        assert item.output == "deleted"
        assert hosted_mcp_server.calls[-1] == ("delete_all", {})

        # Denied: the call is not made, and the model says so.
        calls = len(hosted_mcp_server.calls)
        events = await _say(conn, "again")
        request = next(e.item for e in events if e.type == "response.output_item.done")
        await conn.conversation.item.create(item={
            "type": "mcp_approval_response", "approval_request_id": request.id, "approve": False})
        await conn.response.create()
        events = await _until(conn, "response.done")
        texts = [e.text for e in events if e.type == "response.output_text.done"]
        assert texts == ["I did not run delete_all: it was not approved."]
        assert len(hosted_mcp_server.calls) == calls
    # The secret went to the MCP server only: no server event carries it but the
    # session's own echo of the tool.
    leaked = [e for e in emu.server_events() if SECRET in json.dumps(e)
              and e["type"] not in ("session.updated",)]
    assert leaked == []


async def test_unreachable_server_and_connector_fail_to_list(make_emulator: Any, unused_tcp_port: int) -> None:
    emu = await make_emulator()
    client = AsyncOpenAI(api_key="k", base_url=emu.base_url, websocket_base_url=emu.websocket_base_url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "tools": [
            {"type": "mcp", "server_label": "gone", "server_url": f"http://127.0.0.1:{unused_tcp_port}/mcp",
             "require_approval": "never"},
            {"type": "mcp", "server_label": "cal", "connector_id": "connector_googlecalendar",
             "authorization": "tok"},
            {"type": "mcp", "server_label": "far", "server_url": "https://mcp.example.com/mcp"},
        ]})
        failed = []
        while len(failed) < 3:
            event = await conn.recv()
            if event.type == "mcp_list_tools.failed":
                failed.append(event.item_id)
    items = [e["item"] for e in emu.server_events("conversation.item.done")]
    assert sorted(i["server_label"] for i in items if i["id"] in failed) == ["cal", "far", "gone"]
    assert all(i["tools"] == [] for i in items)


async def test_a_malformed_mcp_tool_is_refused_field_by_field(make_emulator: Any) -> None:
    emu = await make_emulator()
    client = AsyncOpenAI(api_key="k", base_url=emu.base_url, websocket_base_url=emu.websocket_base_url)
    cases = [
        ({"type": "mcp", "server_url": "http://127.0.0.1:1/mcp"}, "missing_required_parameter",
         "session.tools[0].server_label"),
        ({"type": "mcp", "server_label": "x", "require_approval": "sometimes"}, "invalid_value",
         "session.tools[0].require_approval"),
        ({"type": "mcp", "server_label": "x", "headers": {"X-Key": 5}}, "invalid_type",
         "session.tools[0].headers.X-Key"),
        ({"type": "mcp", "server_label": "x", "bogus": 1}, "unknown_parameter", "session.tools[0].bogus"),
    ]
    async with client.realtime.connect(model="gpt-realtime") as conn:
        for tool, code, param in cases:
            await conn.session.update(session={"type": "realtime", "tools": [tool]})  # type: ignore[list-item]
            event = await conn.recv()
            while event.type != "error":
                event = await conn.recv()
            assert (event.error.code, event.error.param) == (code, param)
    assert emu.server_events("mcp_list_tools.in_progress") == []


async def test_without_the_mcp_package_listing_fails_with_one_clear_line(
        make_emulator: Any, hosted_mcp_server: Any, monkeypatch: Any, caplog: Any) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mcp.client", None)  # import mcp.client now fails
    emu = await make_emulator()
    client = AsyncOpenAI(api_key="k", base_url=emu.base_url, websocket_base_url=emu.websocket_base_url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "tools": [_tool(hosted_mcp_server.url)]})
        event = await conn.recv()
        while event.type not in ("mcp_list_tools.failed", "mcp_list_tools.completed"):
            event = await conn.recv()
        assert event.type == "mcp_list_tools.failed"
    lines = [r.getMessage() for r in caplog.records if "pip install 'realtalk[mcp]'" in r.getMessage()]
    assert len(lines) == 1 and "'docs'" in lines[0]
    assert hosted_mcp_server.headers == []  # nothing reached the server
