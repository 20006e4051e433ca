"""HostedMcpCalls with plain dicts: what the client keeps of the server's hosted MCP calls."""

from __future__ import annotations

from realtalk.protocol.mcpcalls import HostedMcpCalls

CALL = {"id": "mcp_1", "type": "mcp_call", "server_label": "docs", "name": "lookup", "arguments": ""}
ASK = {"id": "mcpr_1", "type": "mcp_approval_request", "server_label": "docs", "name": "book",
       "arguments": '{"day": "mon"}'}


def test_a_call_streams_its_arguments_and_ends_with_the_items_output() -> None:
    calls = HostedMcpCalls()
    record = calls.record(CALL, "front")
    assert record.name == "docs.lookup" and record.agent == "front"
    calls.arguments({"type": "response.mcp_call_arguments.delta", "item_id": "mcp_1", "delta": '{"q":'})
    calls.arguments({"type": "response.mcp_call_arguments.delta", "item_id": "mcp_1", "delta": ' "spa"}'})
    assert calls.started({"item_id": "mcp_1"}) is record and record.arguments == '{"q": "spa"}'
    calls.ended({"type": "response.mcp_call.completed", "item_id": "mcp_1"})
    done = calls.call_done({**CALL, "output": "open 9-18"}, "front")
    assert (done.status, done.output) == ("ok", "open 9-18")
    assert calls.started({"item_id": "mcp_1"}) is None  # forgotten once done


def test_a_failed_call_reports_the_items_error() -> None:
    calls = HostedMcpCalls()
    done = calls.call_done({**CALL, "error": {"type": "tool_execution_error", "message": "boom"}}, "front")
    assert (done.status, done.output) == ("error", "tool_execution_error: boom")


def test_an_approval_waits_once_and_is_answered_once() -> None:
    calls = HostedMcpCalls()
    record = calls.approval_requested(ASK, "front")
    assert record is not None and record.name == "docs.book" and calls.waiting
    assert calls.approval_requested(ASK, "front") is None  # the server repeated it
    assert calls.answer("mcpr_1", False) == (True, record)
    assert (record.status, record.output) == ("refused", "not approved") and not calls.waiting
    assert calls.answer("mcpr_1", True) == (False, None)  # a second answer is dropped


def test_a_reconnect_drops_the_waiting_requests() -> None:
    calls = HostedMcpCalls()
    calls.approval_requested(ASK, "front")
    calls.clear()
    assert not calls.waiting and calls.answer("mcpr_1", True) == (False, None)


def test_a_failed_listing_is_not_reported_again_by_its_item() -> None:
    calls = HostedMcpCalls()
    item = {"id": "mcpl_1", "type": "mcp_list_tools", "server_label": "docs",
            "tools": [{"name": "lookup"}, {"name": "book"}]}
    assert calls.list_done(item) == ("docs", ("lookup", "book"))
    calls.list_failed("mcpl_2")
    assert calls.list_done({**item, "id": "mcpl_2", "tools": []}) is None
