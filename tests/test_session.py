"""The runtime against the emulator, over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk.emulator import Emulator
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from realtalk.exceptions import AuthenticationFailed, ServerRejected, SessionError
from realtalk.runner import open_session
from realtalk.session import ApprovalRequest, Session

RELEASE = threading.Event()


def slow_tool(seconds: float) -> str:
    RELEASE.wait(seconds)
    return "slow done"


class Tools:
    """In-process plugin with tools for the scenarios below."""

    __name__ = "test-tools"

    @realtalk.hookimpl
    def register_tools(self, register: realtalk.Registrar) -> None:
        register("weather", description="Weather in a city", handler=lambda city: {"city": city, "temp_c": 21},
                 parameters={"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"], "additionalProperties": False})
        register("stock", description="Stock level", handler=lambda item: {"item": item, "count": 3},
                 parameters={"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]})
        register("boom", description="Always fails", handler=self.boom)
        register("slow", description="Takes long", handler=slow_tool, timeout_s=0.2,
                 parameters={"type": "object", "properties": {"seconds": {"type": "number"}}})
        register("transfer_money", description="Moves money", handler=lambda amount: f"sent {amount}",
                 parameters={"type": "object", "properties": {"amount": {"type": "integer"}}},
                 requires_approval=True)

    @staticmethod
    def boom() -> None:
        raise RuntimeError("database is down")


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    (tmp_path / "front.yaml").write_text(textwrap.dedent("""
        description: Front desk
        instructions: You are the front desk.
        tools: [weather, stock, boom, slow, transfer_money]
        handoffs: [{agent: billing, description: Billing questions}]
    """))
    (tmp_path / "billing.yaml").write_text(textwrap.dedent("""
        description: Billing desk
        instructions: You are the billing desk.
        voice: marin
        tools: [stock]
        handoffs: [front]
    """))
    return tmp_path / "front.yaml"


@pytest.fixture
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    marker = request.node.get_closest_marker("emulator")
    options = dict(marker.kwargs) if marker else {}
    async with Emulator(**options) as server:
        yield server
    # The arbiter's promise, checked on every test's full record.
    codes = [e.get("code") for e in server.errors()]
    assert "conversation_already_has_active_response" not in codes
    # Everything the runtime sent is a valid GA client event (the official openai types),
    # and everything it was sent is a valid GA server event.
    assert client_event_problems(server.client_events()) == []
    assert server_event_problems(server.server_events()) == []


def say(*steps: Any) -> dict[str, Any]:
    return {"reply": list(steps)}


def call(name: str, arguments: Any = None) -> dict[str, Any]:
    return {"call": name, "arguments": arguments if arguments is not None else {}}


async def session_for(emu: Emulator, path: Path, scenario: list[dict[str, Any]], **options: Any) -> Any:
    emu.use({"turns": scenario})
    options.setdefault("text_only", True)
    return open_session(path, emulator=emu, extra_plugins=[Tools()], **options)


def responses_created(emu: Emulator) -> int:
    return len(emu.client_events("response.create"))


async def test_tool_round_trip(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "weather", **say(call("weather", {"city": "Lisbon"}), {"say": "Result: {output}"})}]
    async with await session_for(emu, agents, scenario) as session:
        turn = await session.ask("What's the weather?")
    [record] = turn.tool_calls
    assert (record.name, record.status) == ("weather", "ok")
    assert json.loads(record.output) == {"city": "Lisbon", "temp_c": 21}
    assert turn.text == 'Result: {"city": "Lisbon", "temp_c": 21}'
    # One response.create for the user's text, exactly one after the output.
    assert responses_created(emu) == 2
    outputs = emu.client_events("conversation.item.create")[1]
    assert outputs["item"]["type"] == "function_call_output"
    assert turn.first_delta_ms is not None and turn.done_ms is not None and turn.usage


async def test_two_parallel_calls_one_response_create(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "both", **say(call("weather", {"city": "Oslo"}), call("stock", {"item": "towels"}),
                                       {"say": "Done: {output}"})}]
    async with await session_for(emu, agents, scenario) as session:
        turn = await session.ask("both please")
    assert sorted(r.name for r in turn.tool_calls) == ["stock", "weather"]
    assert all(r.status == "ok" for r in turn.tool_calls)
    assert responses_created(emu) == 2
    client = [e["type"] for e in emu.client_events()]
    # Both outputs come before the single follow-up response.create.
    last_create = len(client) - 1 - client[::-1].index("response.create")
    outputs = [i for i, e in enumerate(emu.client_events())
               if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"]
    assert len(outputs) == 2 and max(outputs) < last_create


async def test_invalid_json_then_corrected_call(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "weather", **say(
        call("weather", '{"city": "Lisbon"'),  # truncated JSON from the model
        call("weather", {"city": "Lisbon"}),
        {"say": "Now: {output}"})}]
    async with await session_for(emu, agents, scenario) as session:
        turn = await session.ask("weather?")
    first, second = turn.tool_calls
    assert first.status == "invalid_arguments"
    error = json.loads(first.output or "")
    assert "not valid JSON" in error["problems"][0]["message"]
    assert error["expected_schema"]["required"] == ["city"]
    assert second.status == "ok"
    assert "temp_c" in turn.text
    # What the model received for the first call is that error.
    sent = [e["item"]["output"] for e in emu.client_events("conversation.item.create")
            if e["item"]["type"] == "function_call_output"]
    assert sent[0] == first.output


async def test_schema_violation_names_the_path(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "x", **say(call("weather", {"town": "Lisbon"}), {"say": "{output}"})}]
    async with await session_for(emu, agents, scenario) as session:
        turn = await session.ask("x")
    problems = json.loads(turn.tool_calls[0].output or "")["problems"]
    assert {p["path"] for p in problems} == {"$"}
    assert any("'city' is a required property" in p["message"] for p in problems)


async def test_tool_timeout(emu: Emulator, agents: Path) -> None:
    RELEASE.clear()
    scenario = [{"user": "slow", **say(call("slow", {"seconds": 5}), {"say": "{output}"})}]
    try:
        async with await session_for(emu, agents, scenario) as session:
            turn = await session.ask("slow")
    finally:
        RELEASE.set()
    assert turn.tool_calls[0].status == "timeout"
    assert "slow timed out after 0.2 s" in turn.text


async def test_tool_exception(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "boom", **say(call("boom"), {"say": "{output}"})}]
    async with await session_for(emu, agents, scenario) as session:
        turn = await session.ask("boom")
    assert turn.tool_calls[0].status == "error"
    assert json.loads(turn.text) == {"error": "boom failed: RuntimeError: database is down"}


async def test_call_to_tool_the_agent_does_not_list(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "x", **say(call("get_time"), call("delete_everything"), {"say": "{output}"})}]
    async with await session_for(emu, agents, scenario) as session:
        turn = await session.ask("x")
    assert [r.status for r in turn.tool_calls] == ["unknown_tool", "unknown_tool"]
    assert "unknown tool 'delete_everything': agent front can call: boom, slow, stock," in turn.text


async def test_handoff_sends_session_update_before_output(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "bill", **say({"handoff": "billing"}, {"say": "Billing here."}),},
                {"user": "stock", **say(call("stock", {"item": "soap"}), {"say": "{output}"})}]
    async with await session_for(emu, agents, scenario) as session:
        turn = await session.ask("my bill")
        assert session.agent.name == "billing"
        second = await session.ask("stock?")
    assert turn.handoffs == [("front", "billing")] and turn.text == "Billing here."
    types = [(e["type"], e.get("item", {}).get("type")) for e in emu.client_events()]
    update_at = max(i for i, t in enumerate(types) if t[0] == "session.update")
    output_at = types.index(("conversation.item.create", "function_call_output"))
    assert update_at < output_at < max(i for i, t in enumerate(types) if t[0] == "response.create")
    update = emu.client_events("session.update")[-1]["session"]
    assert update["instructions"] == "You are the billing desk."
    assert [t["name"] for t in update["tools"]] == ["stock", "transfer_to_front"]
    assert second.tool_calls[0].agent == "billing" and second.tool_calls[0].status == "ok"


async def test_switch_agent_from_the_api(emu: Emulator, agents: Path) -> None:
    async with await session_for(emu, agents, []) as session:
        await session.switch_agent("billing")
        assert session.agent.name == "billing"
        with pytest.raises(realtalk.ConfigError, match="unknown agent 'nobody'"):
            await session.switch_agent("nobody")
    assert emu.server_events("session.updated")[-1]["session"]["instructions"] == "You are the billing desk."


@pytest.mark.emulator(expire_after=1.5)
async def test_expiry_mid_conversation_reconnects_with_history(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "first", **say(call("weather", {"city": "Rome"}), {"say": "Rome is warm."})},
                {"user": "second", **say({"say": "Still here."})}]
    reconnected = asyncio.Event()
    listener = lambda e: reconnected.set() if e.type == "reconnected" else None
    async with await session_for(emu, agents, scenario, listeners=[listener],
                                 rotate_margin_s=0) as session:
        await session.ask("first question")
        # Wait for the server to expire the session, then keep talking.
        await asyncio.wait_for(reconnected.wait(), 10)
        turn = await session.ask("second question")
    assert turn.text == "Still here."
    assert len(emu.connections) == 2
    assert any(e["code"] == "session_expired" for e in emu.connections[0].errors())
    seeded = [e["item"] for e in emu.connections[1].client_events("conversation.item.create")]
    kinds = [(i["type"], i.get("role")) for i in seeded]
    assert kinds[:5] == [("message", "user"), ("function_call", None), ("function_call_output", None),
                         ("message", "assistant"), ("message", "user")]
    assert seeded[0]["content"][0]["text"] == "first question"
    assert seeded[3]["content"] == [{"type": "output_text", "text": "Rome is warm."}]


@pytest.mark.emulator(refuse_connections=2)
async def test_429_twice_then_success(emu: Emulator, agents: Path) -> None:
    async with await session_for(emu, agents, [], backoff_s=0.01) as session:
        assert session.agent.name == "front"
    assert emu.refused == 2 and len(emu.connections) == 1


@pytest.mark.emulator(api_key="right-key")
async def test_bad_api_key_is_fatal_and_not_retried(emu: Emulator, agents: Path) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        async with await session_for(emu, agents, [], api_key="wrong-key-123456"):
            pass
    assert "Incorrect API key" in str(info.value)
    assert "wrong-key-123456" not in str(info.value)
    assert len(emu.connections) == 1


async def test_beta_profile_against_a_ga_only_server(emu: Emulator, agents: Path) -> None:
    with pytest.raises(ServerRejected, match="beta"):
        async with await session_for(emu, agents, [], beta=True):
            pass
    assert len(emu.connections) == 1


@pytest.mark.parametrize("answer", [True, False])
async def test_approval_granted_and_refused(emu: Emulator, agents: Path, answer: bool) -> None:
    asked: list[ApprovalRequest] = []

    async def approve(request: ApprovalRequest) -> bool:
        asked.append(request)
        return answer

    scenario = [{"user": "pay", **say(call("transfer_money", {"amount": 50}), {"say": "{output}"})}]
    async with await session_for(emu, agents, scenario, approve=approve) as session:
        turn = await session.ask("pay")
    assert asked == [ApprovalRequest("transfer_money", {"amount": 50}, "front", turn.tool_calls[0].call_id)]
    if answer:
        assert turn.tool_calls[0].status == "ok" and turn.text == "sent 50"
    else:
        assert turn.tool_calls[0].status == "refused"
        assert "was not approved by the user" in turn.text


async def test_without_an_approver_calls_are_refused(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "pay", **say(call("transfer_money", {"amount": 5}), {"say": "{output}"})}]
    async with await session_for(emu, agents, scenario) as session:
        turn = await session.ask("pay")
    assert turn.tool_calls[0].status == "refused"


@pytest.mark.emulator(drop_after_events=12)
async def test_dropped_socket_reconnects_and_finishes_the_turn(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "hello", **say({"say": "A fairly long answer that will be cut off by the drop."})},
                {"user": "again", **say({"say": "Back."})}]
    async with await session_for(emu, agents, scenario, backoff_s=0.01) as session:
        await session.ask("hello", timeout=15)
        assert session.reconnects >= 1
    assert len(emu.connections) >= 2
    seeded = emu.connections[1].client_events("conversation.item.create")
    assert seeded[0]["item"]["content"][0]["text"] == "hello"


async def test_unapplied_session_update_is_an_error(agents: Path) -> None:
    """A server that answers session.updated without our instructions is caught."""
    from websockets.asyncio.server import serve

    async def lazy(ws: Any) -> None:
        session = {"type": "realtime", "instructions": "", "tools": []}
        await ws.send(json.dumps({"type": "session.created", "event_id": "e1", "session": session}))
        async for _ in ws:
            await ws.send(json.dumps({"type": "session.updated", "event_id": "e2", "session": session}))

    async with serve(lazy, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(SessionError, match="did not apply our session.update"):
            async with open_session(agents, url=f"ws://127.0.0.1:{port}/v1/realtime", text_only=True,
                                    extra_plugins=[Tools()]):
                pass


@pytest.mark.emulator(expire_after=2.0)
async def test_rotates_before_expiry_at_an_idle_boundary(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "one", **say({"say": "One."})}, {"user": "two", **say({"say": "Two."})}]
    rotated = asyncio.Event()
    listener = lambda e: rotated.set() if e.type == "reconnected" else None
    async with await session_for(emu, agents, scenario, listeners=[listener]) as session:
        await session.ask("one")
        # The rotation is due at half the session's life (1 s), while idle.
        await asyncio.wait_for(rotated.wait(), 5)
        turn = await session.ask("two")
    assert turn.text == "Two."
    # Rotated proactively: no session ever expired on us, and the new one holds the history.
    assert not any(e.get("code") == "session_expired" for e in emu.errors())
    assert len(emu.connections) >= 2
    seeded = [e["item"] for e in emu.connections[1].client_events("conversation.item.create")]
    assert seeded[0]["content"][0]["text"] == "one"
    assert seeded[1] == {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "One."}]}


def test_session_is_public() -> None:
    assert Session.__module__ == "realtalk.session"


async def test_events_iterate_until_the_session_closes(emu: Emulator, agents: Path) -> None:
    scenario = [{"user": "weather", **say(call("weather", {"city": "Lisbon"}), {"say": "Sunny."})}]
    async with await session_for(emu, agents, scenario) as session:

        async def collect() -> list[str]:
            return [event.type async for event in session.events()]

        collector = asyncio.create_task(collect())
        await session.ask("weather?")
    types = await asyncio.wait_for(collector, 5)
    assert types[0] == "connected"
    assert types.index("tool.started") < types.index("tool.finished") < types.index("turn.done")


async def test_greeting_at_start_and_on_handoff(emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "host.yaml").write_text("instructions: Host.\ngreeting: Welcome to the show!\nhandoffs: [guest]\n")
    (tmp_path / "guest.yaml").write_text("instructions: Guest.\ngreeting: Hi, guest speaking.\n")
    scenario = [{"greeting": True, "reply": "Welcome to the show!"},
                {"user": "guest", **say({"handoff": "guest"}, {"say": "Hi, guest speaking."})}]
    async with await session_for(emu, tmp_path / "host.yaml", scenario) as session:
        hello = await session.greet()
        turn = await session.ask("let me talk to the guest")
    assert hello is not None and hello.text == "Welcome to the show!"
    assert turn.handoffs == [("host", "guest")] and turn.text == "Hi, guest speaking."
    creates = emu.client_events("response.create")
    assert creates[0]["response"]["instructions"].endswith("Start by greeting the user with: Welcome to the show!")
    # The follow-up after the handoff's output carries the new agent's greeting.
    assert creates[-1]["response"]["instructions"].startswith("Guest.")
    types = [(e["type"], e.get("item", {}).get("type")) for e in emu.client_events()]
    assert types.index(("conversation.item.create", "function_call_output")) < len(types) - 1
    assert types[-1] == ("response.create", None)


async def test_no_greeting_means_no_response(emu: Emulator, agents: Path) -> None:
    async with await session_for(emu, agents, []) as session:
        assert await session.greet() is None
    assert emu.client_events("response.create") == []
