"""Hosted MCP tools end to end: an agent's ``hosted_mcp:``, the emulator calling a real MCP
server itself, and realtalk showing the listing and the calls and answering approvals.

Over real loopback sockets: the MCP server (the ``mcp`` SDK, streamable HTTP, uvicorn),
the emulator, and realtalk's Session or its CLI in a subprocess. The MCP server's token
comes from an environment variable: it must reach the MCP server, and nothing else
(recordings, ``--json``, the console, errors).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk.agents import load_agents
from realtalk.emulator import Emulator
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from realtalk.exceptions import ConfigError
from realtalk.hostedmcp import missing_env, session_tools
from realtalk.protocol.session_config import build_session_update
from realtalk.runner import open_session

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-7f3a9c2e51"
WAIT_S = 60.0

SCENARIO = {
    "turns": [
        {"user": "pool", "reply": [
            {"mcp_call": "lookup", "server_label": "docs", "arguments": {"topic": "pool"}},
            {"say": "The {output}."}]},
        {"user": "broken", "reply": [
            {"mcp_call": "break_it", "server_label": "docs", "arguments": {"reason": "disk on fire"}},
            {"say": "Sorry: {output}"}]},
        {"user": "wipe", "reply": [
            {"mcp_call": "delete_all", "server_label": "docs"}, {"say": "Done: {output}"}]},
        {"user": "again", "reply": [
            {"mcp_call": "delete_all", "server_label": "docs"}, {"say": "Done: {output}"}]},
    ]
}


def agent_yaml(url: str, approval: str = "{never: {tool_names: [lookup, break_it]}}") -> str:
    return (
        "instructions: Help with hotel facilities.\n"
        "modalities: [text]\n"
        "hosted_mcp:\n"
        "  - server_label: docs\n"
        f"    server_url: {url}\n"
        "    headers:\n"
        "      Authorization: Bearer ${DOCS_TOKEN}\n"
        f"    require_approval: {approval}\n"
    )


def write_agent(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "front.yaml"
    path.write_text(agent_yaml(url))
    (tmp_path / "front.scenario.yaml").write_text(json.dumps(SCENARIO))
    return path


# -- the agent file and the session.update ----------------------------------------------------


def test_hosted_mcp_becomes_ga_mcp_tools_with_headers_expanded(tmp_path: Path) -> None:
    path = write_agent(tmp_path, "http://127.0.0.1:9/mcp")
    graph = load_agents([path])
    assert graph.problems == []
    agent = graph.get("front")
    tools, secrets = session_tools(agent, {"DOCS_TOKEN": TOKEN})
    assert tools == [{"type": "mcp", "server_label": "docs", "server_url": "http://127.0.0.1:9/mcp",
                      "headers": {"Authorization": f"Bearer {TOKEN}"},
                      "require_approval": {"never": {"tool_names": ["lookup", "break_it"]}}}]
    assert secrets == (TOKEN,)
    assert missing_env(agent, {}) == [(["hosted_mcp", 0, "headers", "Authorization"],
                                       "environment variable DOCS_TOKEN is not set (needed when the agent runs)")]
    with pytest.raises(ConfigError, match=r"agent 'front': \$\.hosted_mcp\[0\]\.headers\.Authorization: "
                                          "environment variable DOCS_TOKEN is not set"):
        session_tools(agent, {})
    with pytest.raises(ConfigError, match="the beta protocol cannot carry hosted_mcp"):
        build_session_update(agent, [], profile="beta")


@pytest.mark.parametrize(("entry", "line", "message"), [
    ("  - server_label: docs\n", 4, "$.hosted_mcp[0]: give exactly one of server_url"),
    ("  - server_label: docs\n    server_url: http://a/mcp\n    connector_id: connector_gmail\n", 4,
     "$.hosted_mcp[0]: give exactly one of server_url"),
    ("  - server_label: 9docs\n    server_url: http://a/mcp\n", 4, "$.hosted_mcp[0].server_label"),
    ("  - server_label: docs\n    server_url: ftp//nowhere\n", 5,
     "$.hosted_mcp[0].server_url: server_url 'ftp//nowhere' is not an http(s) URL"),
    ("  - server_label: docs\n    server_url: http://a/mcp\n    headers: {X-Key: '${BROKEN'}\n", 6,
     "$.hosted_mcp[0].headers.X-Key: malformed reference"),
    ("  - server_label: docs\n    server_url: http://a/mcp\n  - server_label: docs\n    connector_id: connector_gmail\n",
     6, "$.hosted_mcp[1].server_label: server_label 'docs' is used twice"),
    ("  - server_label: docs\n    server_url: http://a/mcp\n    require_approval: sometimes\n", 6,
     "$.hosted_mcp[0].require_approval"),
])
def test_each_wrong_hosted_mcp_entry_is_one_line(tmp_path: Path, entry: str, line: int, message: str) -> None:
    path = tmp_path / "front.yaml"
    path.write_text("instructions: Help.\nmodalities: [text]\nhosted_mcp:\n" + entry)
    graph = load_agents([path])
    lines = [str(p) for p in graph.problems]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}:{line}: ") and message in lines[0], lines[0]


def test_agent_in_python_takes_hosted_mcp() -> None:
    agent = realtalk.Agent(name="front", instructions="Help.", hosted_mcp=[{"server_label": "docs", "connector_id": "connector_gmail",
                                                          "authorization": "${GMAIL_TOKEN:-none}"}])
    assert agent.hosted_mcp == ({"server_label": "docs", "connector_id": "connector_gmail",
                                 "authorization": "${GMAIL_TOKEN:-none}"},)
    with pytest.raises(ConfigError, match="give exactly one of server_url"):
        realtalk.Agent(name="front", instructions="Help.", hosted_mcp=[{"server_label": "docs"}])


# -- the session against the emulator and a real MCP server -----------------------------------


async def test_session_shows_listing_calls_errors_and_asks_for_approval(
        tmp_path: Path, hosted_mcp_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_TOKEN", TOKEN)
    path = write_agent(tmp_path, hosted_mcp_server.url)
    events: list[realtalk.SessionEvent] = []
    asked: list[realtalk.ApprovalRequest] = []
    answers = [True, False]

    def approve(request: realtalk.ApprovalRequest) -> bool:
        asked.append(request)
        return answers.pop(0)

    record = tmp_path / "session.jsonl"
    async with Emulator(SCENARIO, fast=True) as emu:
        async with open_session(path, emulator=emu, approve=approve, record=record,
                                listeners=[events.append]) as session:
            listed = await _first(events, realtalk.McpToolsListed)
            pool = await session.ask("Is the pool open?")
            broken = await session.ask("broken")
            wipe = await session.ask("wipe")
            again = await session.ask("again")
        assert client_event_problems(emu.client_events()) == []
        assert server_event_problems(emu.server_events()) == []
    assert (listed.server_label, sorted(listed.tools), listed.error) == ("docs", ["break_it", "delete_all", "lookup"],
                                                                        None)
    assert any(h.get("authorization") == f"Bearer {TOKEN}" for h in hosted_mcp_server.headers)

    assert pool.text == "The pool: open 7 to 23."
    [call] = pool.tool_calls
    assert (call.name, json.loads(call.arguments), call.status, call.output) == (
        "docs.lookup", {"topic": "pool"}, "ok", "pool: open 7 to 23")

    [call] = broken.tool_calls
    assert (call.name, call.status) == ("docs.break_it", "error")
    assert "disk on fire" in (call.output or "")

    # Approved: asked once, under the call's name, then the server calls the tool; the
    # turn is one turn (the approval request's response is not its end).
    assert [(r.tool, r.arguments) for r in asked] == [("docs.delete_all", {}), ("docs.delete_all", {})]
    assert [c.name for c in wipe.tool_calls] == ["docs.delete_all", "docs.delete_all"]
    assert wipe.tool_calls[-1].output == "deleted" and wipe.text == "Done: deleted"
    assert [e["item"]["approve"] for e in emu.client_events("conversation.item.create")
            if e["item"]["type"] == "mcp_approval_response"] == [True, False]
    # Denied: refused, the tool never ran, and the model says so.
    assert [c.status for c in again.tool_calls] == ["refused"]
    assert hosted_mcp_server.calls.count(("delete_all", {})) == 1
    assert again.text == "I did not run delete_all: it was not approved."

    # The token went to the MCP server, and into no recording or session event.
    assert TOKEN not in record.read_text()
    assert "***" in record.read_text()  # the session.update's header, scrubbed
    assert all(TOKEN not in json.dumps(e.as_dict()) for e in events)


async def test_an_unreachable_server_is_shown_as_a_failed_listing(
        tmp_path: Path, unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_TOKEN", TOKEN)
    path = write_agent(tmp_path, f"http://127.0.0.1:{unused_tcp_port}/mcp")
    events: list[realtalk.SessionEvent] = []
    async with Emulator(SCENARIO, fast=True) as emu, open_session(path, emulator=emu, listeners=[events.append]):
        listed = await _first(events, realtalk.McpToolsListed)
    assert listed.server_label == "docs" and listed.tools == () and listed.error


async def test_switching_to_an_agent_no_handoff_reaches_reads_its_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_agent(tmp_path, "http://127.0.0.1:9/mcp")
    (tmp_path / "plain.yaml").write_text("instructions: Say hello.\nmodalities: [text]\n")
    record = tmp_path / "switch.jsonl"
    monkeypatch.delenv("DOCS_TOKEN", raising=False)
    async with Emulator(SCENARIO, fast=True) as emu, open_session(
            tmp_path, agent="plain", emulator=emu, record=record) as session:  # 'front' is not reached
        with pytest.raises(ConfigError, match="environment variable DOCS_TOKEN is not set"):
            await session.switch_agent("front")
        assert session.agent.name == "plain"
        monkeypatch.setenv("DOCS_TOKEN", TOKEN)
        await session.switch_agent("front", timeout=20)
        assert session.agent.name == "front"
    assert TOKEN not in record.read_text()  # the session.update that carried it is masked


async def test_an_unset_variable_is_an_error_before_connecting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCS_TOKEN", raising=False)
    path = write_agent(tmp_path, "http://127.0.0.1:9/mcp")
    async with Emulator(SCENARIO, fast=True) as emu:
        with pytest.raises(ConfigError, match="environment variable DOCS_TOKEN is not set"):
            async with open_session(path, emulator=emu):
                pass
        assert list(emu.connections) == []  # nothing connected


# -- the CLI ------------------------------------------------------------------------------------


async def _realtalk(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    full.update(env)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "realtalk.cli", *args, env=full, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_json_and_console_show_mcp_progress_without_the_secret(
        tmp_path: Path, hosted_mcp_server: Any) -> None:
    path = write_agent(tmp_path, hosted_mcp_server.url)
    record = tmp_path / "cli.jsonl"
    env = {"DOCS_TOKEN": TOKEN, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    code, out, err = await _realtalk("run", str(path), "--emulator", "--json", "--approve", "all",
                                     "--record", str(record), "--text", "wipe", env=env)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["type"] for e in events]
    assert "mcp.tools_listed" in kinds
    started = [e for e in events if e["type"] == "tool.started"]
    finished = [e for e in events if e["type"] == "tool.finished"]
    assert [e["name"] for e in started] == ["docs.delete_all"]
    assert [(e["name"], e["status"], e["output"]) for e in finished] == [("docs.delete_all", "ok", "deleted")]
    assert TOKEN not in out + err + record.read_text()

    code, out, err = await _realtalk("run", str(path), "--emulator", "--approve", "none", "--text", "wipe", env=env)
    assert code == 0, err
    assert "· MCP server docs: 3 tool(s)" in out
    assert "✗ docs.delete_all refused" in out
    assert "I did not run delete_all: it was not approved." in out
    assert TOKEN not in out + err

    code, out, err = await _realtalk("run", str(path), "--emulator", "--text", "wipe",
                                     env={"DOCS_TOKEN": "", "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert code != 0
    assert "environment variable DOCS_TOKEN is not set" in err
    assert len([line for line in err.splitlines() if "DOCS_TOKEN" in line]) == 1


def test_check_warns_about_an_unset_variable_and_prints_no_secret(tmp_path: Path) -> None:
    import subprocess

    path = write_agent(tmp_path, "http://127.0.0.1:9/mcp")
    env = {k: v for k, v in os.environ.items() if k != "DOCS_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", "check", str(path)], capture_output=True,
                            text=True, env=env, timeout=WAIT_S, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        (f"{path}:7: warning: $.hosted_mcp[0].headers.Authorization: environment variable DOCS_TOKEN is not set"
        " (needed when the agent runs)")]
    env["DOCS_TOKEN"] = TOKEN
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", "check", "--print", str(path)],
                            capture_output=True, text=True, env=env, timeout=WAIT_S, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    tools = json.loads(result.stdout)["session"]["tools"]
    assert tools[-1]["headers"] == {"Authorization": "Bearer ${DOCS_TOKEN}"}
    assert TOKEN not in result.stdout + result.stderr


def test_check_finds_an_mcp_call_to_a_server_the_agent_does_not_have(tmp_path: Path) -> None:
    from realtalk.scenariocheck import check_scenario
    from realtalk.tools import ToolRegistry

    path = write_agent(tmp_path, "http://127.0.0.1:9/mcp")
    scenario = tmp_path / "front.scenario.yaml"
    scenario.write_text("turns:\n  - user: hi\n    reply:\n      - mcp_call: lookup\n        server_label: doc\n")
    graph = load_agents([path])
    [problem] = check_scenario(scenario, graph, ToolRegistry())
    assert str(problem).startswith(f"{scenario}:5: ")
    assert "mcp_call names server_label 'doc', which no agent that can be active here (front) has in" \
           " hosted_mcp (did you mean 'docs'?); its labels: docs" in str(problem)
    scenario.write_text(json.dumps(SCENARIO))
    assert check_scenario(scenario, graph, ToolRegistry()) == []


def test_a_reconnect_drops_approvals_of_the_old_session() -> None:
    from realtalk.protocol.client import AskApproval, ClientProtocol
    from realtalk.tools import ToolRegistry

    graph = load_agents([realtalk.Agent(name="front", instructions="Help.", modalities=["text"])])
    protocol = ClientProtocol(graph, graph.get("front"), ToolRegistry())
    protocol.live = True
    item = {"id": "mcpr_1", "type": "mcp_approval_request", "server_label": "docs", "name": "delete_all",
            "arguments": "{}"}
    actions = protocol.receive({"type": "response.output_item.done", "event_id": "e1", "response_id": "r",
                                "output_index": 0, "item": item})
    [ask] = [a for a in actions if isinstance(a, AskApproval)]
    assert (ask.request.tool, ask.approval_request_id) == ("docs.delete_all", "mcpr_1")
    assert protocol.busy  # a turn waiting for an approval is not over
    protocol.connection_opened()
    protocol.live = True
    assert protocol.mcp_approval("mcpr_1", True) == []  # the old session's request: nothing sent


async def test_a_secret_in_a_server_message_is_redacted_in_events_and_logs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from realtalk.profiles import ConnectionProfile
    from realtalk.protocol.client import Emit
    from realtalk.session import Session
    from realtalk.tools import ToolRegistry

    monkeypatch.setenv("DOCS_TOKEN", TOKEN)
    graph = load_agents([write_agent(tmp_path, "http://127.0.0.1:9/mcp")])
    session = Session(graph, "front", ToolRegistry(), ConnectionProfile(kind="url", ws_url="ws://127.0.0.1:9/"))
    seen: list[realtalk.SessionEvent] = []
    session.on(seen.append)
    await session._run([Emit("error", {"message": f"server error: bad header Bearer {TOKEN}", "code": None,
                                       "fatal": False}, log=True),
                        Emit("tool.finished", {"call_id": "i", "name": "docs.lookup", "status": "ok",
                                               "output": f"echo {TOKEN}", "duration_s": 0.0, "agent": "front",
                                               "note": None})])
    assert [e.as_dict().get("message") or e.as_dict().get("output") for e in seen] == [
        "server error: bad header Bearer [redacted]", "echo [redacted]"]
    assert TOKEN not in caplog.text and "[redacted]" in caplog.text


async def _first(events: list[Any], kind: type) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        found = [e for e in events if isinstance(e, kind)]
        if found:
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, f"no {kind.__name__} event"
        await asyncio.sleep(0.01)
