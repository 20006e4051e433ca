"""realtalk-mcp against real MCP servers written with the SDK (tests/mcp_server.py), over
stdio and streamable HTTP: listing, calls through a realtalk session on the emulator,
errors, hangs, crashes, lying schemas, secrets, shutdown, and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import realtalk_mcp
from realtalk.exceptions import ConfigError
from realtalk.results import SessionEvent
from realtalk.runner import open_session
from realtalk.toolcalls import run_tool
from realtalk.tools import Tool, ToolContext, validate_arguments
from realtalk.toolsources import McpServerSpec

SERVER = Path(__file__).resolve().parent / "mcp_server.py"
TOKEN = "tok-0123456789-secret"
CTX = ToolContext(call_id="call_1", tool="t", agent="a")


def stdio(*args: str, **options: Any) -> McpServerSpec:
    return McpServerSpec(name="demo", command=sys.executable, args=(str(SERVER), "stdio", *args), **options)


async def call(tools: dict[str, Tool], name: str, arguments: dict[str, Any]) -> tuple[str, str]:
    outcome = await run_tool(tools[name], arguments, CTX)
    return outcome.status, outcome.output


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_stdio_listing_keeps_allowed_tools_with_the_prefix() -> None:
    spec = stdio(allowed_tools=("add", "echo", "nope"), prefix="demo_")
    source = await realtalk_mcp.open_server(spec, lambda message: None)
    try:
        assert [t.name for t in source.tools] == ["demo_add", "demo_echo"]
        [missing] = source.warnings
        assert "allowed_tools names 'nope', which the server does not have" in missing
        add = source.tools[0]
        assert add.plugin == "mcp:demo" and add.parameters["required"] == ["a", "b"]
        assert add.handler_path.startswith("mcp server 'demo' (")
        assert await call({t.name: t for t in source.tools}, "demo_add", {"a": 2, "b": 3}) == ("ok", '{"result": 5}')
    finally:
        await source.aclose()


async def test_errors_timeouts_images_and_secrets_become_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TOKEN", TOKEN)
    spec = stdio(env=(("DEMO_TOKEN", "${DEMO_TOKEN}"),), timeout_s=1.0)
    source = await realtalk_mcp.open_server(spec, lambda message: None)
    tools = {t.name: t for t in source.tools}
    try:
        status, output = await call(tools, "fail", {"message": "the disk is full"})
        assert status == "error" and "the disk is full" in json.loads(output)["error"]
        started = time.monotonic()
        status, output = await call(tools, "hang", {})
        assert status == "timeout" and time.monotonic() - started < 5
        assert await call(tools, "echo", {"text": "still here"}) == ("ok", '{"result": "echo: still here"}')
        assert await call(tools, "secret", {}) == ("ok", '{"result": "my token is [redacted]"}')
        assert await call(tools, "picture", {}) == ("ok", "a red dot\n[image/png, 20 bytes]")
    finally:
        await source.aclose()


async def test_a_crash_is_restarted_once_then_reported() -> None:
    warnings: list[str] = []
    source = await realtalk_mcp.open_server(stdio(), warnings.append)
    tools = {t.name: t for t in source.tools}
    try:
        first_pid = int(json.loads((await call(tools, "pid", {}))[1])["result"])
        status, output = await call(tools, "crash", {})
        assert status == "error" and "stopped during the call; it is restarted at the next call" in output
        status, output = await call(tools, "pid", {})
        assert status == "ok" and int(json.loads(output)["result"]) != first_pid
        status, output = await call(tools, "crash", {})
        assert status == "error" and "crashed twice" in output
        assert len(warnings) == 1 and "crashed twice; its tools are unavailable" in warnings[0]
        started = time.monotonic()
        status, output = await call(tools, "echo", {"text": "x"})
        assert status == "error" and "crashed twice" in output and time.monotonic() - started < 1
        assert len(warnings) == 1
    finally:
        await source.aclose()


async def test_a_server_that_lies_about_its_schemas() -> None:
    source = await realtalk_mcp.open_server(stdio("--lie"), lambda message: None)
    tools = {t.name: t for t in source.tools}
    try:
        assert "echo" not in tools
        [left_out] = source.warnings
        assert left_out.startswith("mcp server 'demo' (")
        assert "tool 'echo' left out: parameters is not a valid JSON Schema at $.properties.text.type" in left_out
        # Arguments are checked against the schema it declared, before any call.
        check = validate_arguments(tools["add"], '{"a": 1, "b": 2}')
        assert not check.ok and "add" in (check.error or "")
        # A result that breaks its declared output schema is an error output.
        status, output = await call(tools, "pid", {})
        assert status == "error" and "Invalid structured content returned by tool pid" in output
    finally:
        await source.aclose()


async def test_startup_timeout_and_a_missing_command_are_one_line_errors() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError) as mute:
        await realtalk_mcp.open_server(McpServerSpec(name="mute", command=sys.executable,
                                                     args=(str(SERVER), "mute"), startup_timeout_s=1.0),
                                       lambda message: None)
    assert time.monotonic() - started < 6
    assert "did not start within 1 s (startup_timeout_s)" in str(mute.value) and "\n" not in str(mute.value)
    with pytest.raises(ConfigError) as missing:
        await realtalk_mcp.open_server(McpServerSpec(name="gone", command="no-such-mcp-server-xyz"),
                                       lambda message: None)
    assert str(missing.value).startswith("mcp server 'gone' (no-such-mcp-server-xyz) could not start: ")
    assert "\n" not in str(missing.value)


async def test_an_unset_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_UNSET_TOKEN", raising=False)
    spec = stdio(env=(("DEMO_TOKEN", "${DEMO_UNSET_TOKEN}"),))
    with pytest.raises(ConfigError, match="env.DEMO_TOKEN: environment variable DEMO_UNSET_TOKEN is not set"):
        await realtalk_mcp.open_server(spec, lambda message: None)


async def test_http_server_with_a_secret_header(http_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TOKEN", TOKEN)
    spec = McpServerSpec(name="web", url=http_server.url, headers=(("Authorization", "Bearer ${DEMO_TOKEN}"),),
                         prefix="web_", allowed_tools=("header", "add", "fail"))
    source = await realtalk_mcp.open_server(spec, lambda message: None)
    tools = {t.name: t for t in source.tools}
    try:
        assert sorted(tools) == ["web_add", "web_fail", "web_header"]
        assert await call(tools, "web_add", {"a": 1, "b": 1}) == ("ok", '{"result": 2}')
        assert await call(tools, "web_header", {}) == ("ok", '{"result": "you sent Bearer [redacted]"}')
        status, output = await call(tools, "web_fail", {"message": "no"})
        assert status == "error" and "no" in output
    finally:
        await source.aclose()


async def test_an_http_server_that_goes_away_fails_calls_at_once(http_server: Any) -> None:
    warnings: list[str] = []
    source = await realtalk_mcp.open_server(McpServerSpec(name="web", url=http_server.url, timeout_s=20),
                                            warnings.append)
    tools = {t.name: t for t in source.tools}
    try:
        assert await call(tools, "add", {"a": 1, "b": 1}) == ("ok", '{"result": 2}')
        http_server.process.kill()
        http_server.process.wait(timeout=5)
        started = time.monotonic()
        status, output = await call(tools, "add", {"a": 1, "b": 1})
        assert status == "error" and "stopped during the call" in output
        status, output = await call(tools, "add", {"a": 1, "b": 1})
        assert status == "error" and "could not be restarted" in output
        assert time.monotonic() - started < 10  # never the 20 s timeout: the failure is seen at once
        assert len(warnings) == 1 and "could not be restarted" in warnings[0]
    finally:
        await source.aclose()


# -- through a session, against the emulator ------------------------------------------

AGENT = """\
name: desk
instructions: Help.
modalities: [text]
mcp_servers:
  - name: demo
    command: {python}
    args: [{server}, stdio]
    prefix: demo_
    allowed_tools: [add, hang, fail, pid]
    env: {{DEMO_TOKEN: "${{DEMO_TOKEN}}"}}
    tools:
      hang: {{timeout_s: 1}}
handoffs: [plain]
"""
PLAIN = "name: plain\ninstructions: No tools.\nmodalities: [text]\n"
SCENARIO = {
    "name": "desk",
    "turns": [
        {"user": "/add/", "reply": [{"call": "demo_add", "arguments": {"a": 2, "b": 3}},
                                    {"say": "It is {output.result}."}]},
        {"user": "/hang/", "reply": [{"call": "demo_hang", "arguments": {}}, {"say": "Gave up."}]},
        {"user": "/fail/", "reply": [{"call": "demo_fail", "arguments": {"message": "out of paper"}},
                                     {"say": "It failed."}]},
        {"user": "/pid/", "reply": [{"call": "demo_pid", "arguments": {}}, {"say": "pid {output.result}"}]},
    ],
}


def write_agents(folder: Path) -> Path:
    agent = folder / "desk.yaml"
    agent.write_text(AGENT.format(python=json.dumps(sys.executable), server=json.dumps(str(SERVER))))
    (folder / "plain.yaml").write_text(PLAIN)
    return agent


async def test_a_session_calls_the_server_and_shuts_it_down(tmp_path: Path, extra: list[object],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TOKEN", TOKEN)
    agent = write_agents(tmp_path)
    events: list[SessionEvent] = []
    async with open_session(agent, emulator=True, scenario=SCENARIO, text_only=True, extra_plugins=extra,
                            listeners=[events.append]) as session:
        tools = session.graph.tools_for(session.graph.get("desk"), session.registry)
        assert [t.name for t in tools] == ["transfer_to_plain", "demo_add", "demo_hang", "demo_fail", "demo_pid"]
        # Scoping: the agent that does not list the server never gets its tools.
        assert [t.name for t in session.graph.tools_for(session.graph.get("plain"), session.registry)] == []
        added = await session.ask("add them", timeout=30)
        assert added.text == "It is 5." and added.tool_calls[0].status == "ok"
        hung = await session.ask("hang", timeout=30)
        assert hung.tool_calls[0].status == "timeout" and hung.text == "Gave up."
        failed = await session.ask("fail", timeout=30)
        assert failed.tool_calls[0].status == "error" and "out of paper" in (failed.tool_calls[0].output or "")
        pid_turn = await session.ask("pid", timeout=30)
        pid = int((pid_turn.text or "").split()[-1])
        assert alive(pid)
    # The shared registry was not changed; the server is gone with the session.
    assert not any(t.plugin == "mcp:demo" for t in session.graph.tools_for(session.graph.get("desk"),
                                                                         session.registry.__class__()))
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the process is being reaped
    assert not alive(pid)
    assert TOKEN not in repr(events)


async def test_a_server_that_cannot_start_refuses_the_session(tmp_path: Path, extra: list[object]) -> None:
    agent = tmp_path / "a.yaml"
    agent.write_text("instructions: x\nmodalities: [text]\nmcp_servers:\n  - name: gone\n"
                     "    command: no-such-mcp-server-xyz\n")
    with pytest.raises(ConfigError) as info:
        async with open_session(agent, emulator=True, scenario={"turns": []}, extra_plugins=extra):
            pass
    assert str(info.value).startswith(f"{agent}:4: mcp server 'gone' (no-such-mcp-server-xyz) could not start")


# -- realtalk tools / check -----------------------------------------------------------


def realtalk(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realtalk.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=90, check=False)


def test_realtalk_tools_and_check_start_the_servers(tmp_path: Path, cli_env: dict[str, str]) -> None:
    agent = write_agents(tmp_path)
    cli_env["DEMO_TOKEN"] = TOKEN
    listed = realtalk("tools", "--agent", str(agent), env=cli_env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "starting MCP server 'demo' to list its tools" in listed.stderr
    assert "demo_add" in listed.stdout and "mcp:demo" in listed.stdout
    checked = realtalk("check", str(agent), env=cli_env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shown = [line for line in checked.stderr.splitlines() if "tool(s): " in line]
    assert len(shown) == 1 and shown[0].startswith("realtalk: mcp server 'demo' (") and "demo_add" in shown[0]
    skipped = realtalk("check", "--no-mcp", str(agent), env=cli_env, cwd=tmp_path)
    assert skipped.returncode == 0 and "starting MCP server" not in skipped.stderr
    (tmp_path / "desk.yaml").write_text(agent.read_text().replace(json.dumps(sys.executable),
                                                                  "no-such-mcp-server-xyz"))
    broken = realtalk("check", str(agent), env=cli_env, cwd=tmp_path)
    assert broken.returncode != 0
    assert f"{agent}:5: mcp server 'demo' (no-such-mcp-server-xyz" in broken.stdout + broken.stderr
    assert TOKEN not in listed.stdout + listed.stderr + checked.stdout + broken.stdout + broken.stderr


def test_check_follows_a_scenario_through_the_servers_tools(tmp_path: Path, cli_env: dict[str, str]) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    for name in ("notes.yaml", "notes.scenario.yaml", "notes_server.py"):
        (tmp_path / name).write_text((examples / name).read_text())
    cli_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), cli_env.get("PATH", "")])
    good = realtalk("check", str(tmp_path), env=cli_env, cwd=tmp_path)
    assert good.returncode == 0 and "ok: 1 agent(s), 1 scenario(s) checked" in good.stderr, good.stdout
    scenario = tmp_path / "notes.scenario.yaml"
    scenario.write_text(scenario.read_text().replace("{text: late", "{txt: late"))
    bad = realtalk("check", str(tmp_path), env=cli_env, cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stdout == (f"{scenario}:7: $.turns[0].reply[0].arguments: arguments do not match add_note's"
                          " schema: 'text' is a required property\n")


async def test_a_secret_the_server_prints_while_failing_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TOKEN", TOKEN)
    spec = McpServerSpec(name="leaky", command=sys.executable, env=(("DEMO_TOKEN", "${DEMO_TOKEN}"),), args=(
        "-c", "import os, sys; print('bad token', os.environ['DEMO_TOKEN'], file=sys.stderr); sys.exit(2)"))
    with pytest.raises(ConfigError) as info:
        await realtalk_mcp.open_server(spec, lambda message: None)
    assert "(stderr: bad token [redacted])" in str(info.value) and TOKEN not in str(info.value)


def test_per_tool_settings_reach_the_tools() -> None:
    from mcp import types
    from realtalk.toolsources import McpToolOptions
    from realtalk_mcp.results import build_tools

    spec = McpServerSpec(name="s", command="x", timeout_s=7, tools=(
        ("slow", McpToolOptions(requires_approval=True, timeout_s=60, cancellable=False)),
        ("free", McpToolOptions(no_timeout=True))))
    listed = [types.Tool(name=n, description=f"{n} tool", input_schema={"type": "object"})
              for n in ("slow", "free", "plain")]

    async def call(name: str, arguments: dict[str, Any]) -> str:
        return name

    tools, warnings = build_tools(spec, listed, call, ())
    assert warnings == []
    assert [(t.name, t.timeout_s, t.requires_approval, t.cancellable) for t in tools] == [
        ("slow", 60, True, False), ("free", None, False, True), ("plain", 7, False, True)]


def test_importing_the_plugin_is_light(cli_env: dict[str, str], tmp_path: Path) -> None:
    code = ("import sys, realtalk_mcp\n"
            "print(sorted(m for m in ('mcp', 'realtalk.tools', 'yaml') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env,
                            cwd=tmp_path, timeout=60, check=True)
    assert result.stdout == "[]\n"
