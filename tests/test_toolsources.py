"""MCP servers in core: the ``mcp_servers:`` key (agents, tools files, ``Agent(...)``), the
``register_tool_sources`` hook, and the per-session lifecycle, with a plain-Python
opener standing in for the realtalk-mcp plugin (its own tests use real MCP servers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk.agents import Agent
from realtalk.exceptions import ConfigError
from realtalk.localtools import load_graph
from realtalk.plugins import load_plugins
from realtalk.runner import load_target, open_session
from realtalk.tools import Tool, make_tool
from realtalk.toolsources import (
    MCP_PLUGIN_MISSING,
    McpServerSpec,
    open_sources,
    probe_sources,
    source_tools,
)


class FakeSource:
    """What an opener returns: tools whose handler answers in-process, and aclose."""

    def __init__(self, spec: McpServerSpec, log: list[str]) -> None:
        self.spec = spec
        self.log = log

        async def handler(**arguments: Any) -> str:
            return f"{spec.name} got {arguments}"

        self.tools: Sequence[Tool] = [make_tool(spec.prefix + "lookup", "Look something up.",
                                                {"type": "object", "properties": {"q": {"type": "string"}}},
                                                handler, plugin=spec.plugin)]
        self.warnings: Sequence[str] = [f"{spec.describe()}: tool 'broken' left out: a lie"]

    async def aclose(self) -> None:
        self.log.append(f"closed {self.spec.name}")


class FakeMcp:
    """A plugin object providing the ``"mcp"`` kind; ``fail``/``hang`` name servers that
    cannot start or never answer."""

    def __init__(self, fail: Sequence[str] = (), hang: Sequence[str] = ()) -> None:
        self.__name__ = "fake-mcp"
        self.log: list[str] = []
        self.fail, self.hang = fail, hang
        self.opened = asyncio.Event()  # set when a server that starts has started

    async def open(self, spec: McpServerSpec, warn: Callable[[str], None]) -> FakeSource:
        if spec.name in self.hang:
            await asyncio.sleep(3600)
        if spec.name in self.fail:
            raise RuntimeError("the command exited at once")
        self.log.append(f"opened {spec.name}")
        self.opened.set()
        return FakeSource(spec, self.log)

    @realtalk.hookimpl
    def register_tool_sources(self, register: Any) -> None:
        register("mcp", self.open)


@pytest.fixture(autouse=True)
def _no_installed_mcp_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake opener stands in for realtalk-mcp: the installed plugin (which would
    provide ``"mcp"`` first) is not loaded; realtalk-clock stays."""
    monkeypatch.setenv("REALTALK_PLUGINS", "realtalk-clock")


SERVER = """\
mcp_servers:
  - name: files
    command: files-server
    args: [--root, /tmp]
    env: {TOKEN: "${FILES_TOKEN}"}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- the YAML ---------------------------------------------------------------------------


def test_mcp_servers_of_an_agent_file(tmp_path: Path) -> None:
    agent = write(tmp_path / "a.yaml", "instructions: x\n" + SERVER + "    prefix: files_\n"
                  "    allowed_tools: [read]\n    tools:\n      read: {requires_approval: true, timeout_s: 5}\n"
                  "  - name: web\n    url: https://mcp.example.com/mcp\n    headers: {Authorization: Bearer x}\n")
    graph, _ = load_graph([agent], extra=[FakeMcp()])
    assert graph.problems == []
    files, web = graph.get("a").mcp_servers
    assert (files.command, files.args, files.env, files.transport) == \
        ("files-server", ("--root", "/tmp"), (("TOKEN", "${FILES_TOKEN}"),), "stdio")
    assert (files.file, files.line, files.prefix, files.allowed_tools) == (agent, 3, "files_", ("read",))
    assert files.options("read").requires_approval is True and files.options("read").timeout_s == 5
    assert (web.url, web.transport, web.headers) == ("https://mcp.example.com/mcp", "http",
                                                       (("Authorization", "Bearer x"),))


@pytest.mark.parametrize(("entry", "message"), [
    ("  - name: a\n", "3: $.mcp_servers[0]: an MCP server needs either command (stdio) or url"),
    ("  - name: a\n    command: x\n    url: http://h/mcp\n", "3: $.mcp_servers[0]: an MCP server needs either"),
    ("  - name: a\n    url: http://h/mcp\n    env: {A: b}\n", "5: $.mcp_servers[0].env: env does not apply to an"),
    ("  - name: a\n    command: x\n    env: {A: '${oops'}\n", "5: $.mcp_servers[0].env.A: malformed reference"),
    ("  - name: a\n    command: x\n  - name: a\n    command: y\n",
     "5: $.mcp_servers[1].name: two MCP servers are named 'a'"),
    ("  - name: a\n    command: x\n    allowed_tools: [r]\n    tools: {w: {cancellable: false}}\n",
     "6: $.mcp_servers[0].tools.w: tool 'w' is not in allowed_tools"),
    ("  - name: a\n    command: x\n    tools: {w: {still_working: {after_s: -1, say: hm}}}\n",
     "5: $.mcp_servers[0].tools.w.still_working: still_working.after_s must be a positive number"),
    ("  - name: a\n    command: x\n    headers: {A: b}\n", "5: $.mcp_servers[0].headers: headers does not apply"),
    ("  - name: a\n    comand: x\n", "4: $.mcp_servers[0].comand: unknown key 'comand' (did you mean 'command'?)"),
    ("  - name: a\n    url: ftp://h\n", "4: $.mcp_servers[0].url: url 'ftp://h' is not an http:// or https:// URL"),
    ("  - name: a b\n    command: x\n", "3: $.mcp_servers[0].name:"),
])
def test_every_mistake_is_one_located_line(tmp_path: Path, entry: str, message: str) -> None:
    agent = write(tmp_path / "a.yaml", "instructions: x\nmcp_servers:\n" + entry)
    graph, _ = load_graph([agent], extra=[FakeMcp()])
    assert any(str(p).startswith(f"{agent}:{message}") for p in graph.problems), graph.problems
    assert len(graph.problems) <= 2 and all("\n" not in str(p) for p in graph.problems)


def test_a_tools_file_gives_its_servers_to_the_agents_that_load_it(tmp_path: Path) -> None:
    write(tmp_path / "servers.yaml", SERVER)
    write(tmp_path / "desk.yaml", "instructions: x\ntool_files: [servers.yaml]\nhandoffs: [plain]\n")
    write(tmp_path / "plain.yaml", "instructions: y\n")
    graph, _ = load_graph([tmp_path], extra=[FakeMcp()])
    assert graph.problems == []
    assert [s.name for s in graph.get("desk").mcp_servers] == ["files"]
    assert graph.get("desk").mcp_servers[0].line == 2
    assert graph.get("plain").mcp_servers == ()
    shared, _ = load_graph([tmp_path / "plain.yaml"], extra=[FakeMcp()], tool_files=[tmp_path / "servers.yaml"])
    assert [s.name for s in shared.get("plain").mcp_servers] == ["files"]


def test_a_broken_server_in_a_tools_file_is_located(tmp_path: Path) -> None:
    servers = write(tmp_path / "servers.yaml", "mcp_servers:\n  - name: files\n    url: http://h/mcp\n"
                                              "    args: [x]\n")
    agent = write(tmp_path / "desk.yaml", "instructions: x\ntool_files: [servers.yaml]\n")
    graph, _ = load_graph([agent], extra=[FakeMcp()])
    assert [str(p) for p in graph.problems] == [
        f"{servers}:4: $.mcp_servers[0].args: args does not apply to an HTTP server (url)"]


def test_agent_in_python_takes_mcp_servers() -> None:
    agent = Agent(name="desk", instructions="x", mcp_servers=[
        {"name": "files", "command": "files-server", "startup_timeout_s": 3},
        McpServerSpec(name="web", url="http://127.0.0.1:9/mcp", prefix="web_")])
    assert [(s.name, s.transport, s.file) for s in agent.mcp_servers] == [("files", "stdio", None),
                                                                          ("web", "http", None)]
    assert agent.mcp_servers[0].startup_timeout_s == 3 and agent.mcp_servers[1].prefix == "web_"
    with pytest.raises(ConfigError, match=r"agent 'x': \$\.mcp_servers\[0\]: an MCP server needs either"):
        Agent(name="x", instructions="x", mcp_servers=[{"name": "a"}])


def test_without_the_plugin_agents_with_servers_are_refused(tmp_path: Path) -> None:
    agent = write(tmp_path / "a.yaml", "instructions: x\n" + SERVER)
    with pytest.raises(ConfigError) as info:
        load_target(agent, block=["realtalk-mcp"])
    assert str(info.value) == f"{agent}:3: {MCP_PLUGIN_MISSING}"


def test_hook_register_tool_sources() -> None:
    first, second = FakeMcp(), FakeMcp()
    second.__name__ = "other-mcp"
    plugins = load_plugins(allow=[], extra=[first, second])
    assert plugins.registry.sources["mcp"] == first.open
    [problem] = plugins.problems
    assert str(problem).startswith("plugin other-mcp")
    assert str(problem).endswith("register_tool_sources failed: ValueError: tool source 'mcp' is provided by"
                                 " another plugin already")


# -- the lifecycle ----------------------------------------------------------------------

SCENARIO = {"turns": [{"user": "/look/", "reply": [{"call": "files_lookup", "arguments": {"q": "x"}},
                                                   {"say": "{output}"}]}]}


async def test_a_session_opens_its_servers_and_closes_them(tmp_path: Path) -> None:
    write(tmp_path / "desk.yaml", "instructions: x\nmodalities: [text]\nhandoffs: [plain]\n" + SERVER
          + "    prefix: files_\n")
    write(tmp_path / "plain.yaml", "instructions: y\nmodalities: [text]\n")
    fake = FakeMcp()
    events: list[Any] = []
    async with open_session(tmp_path, agent="desk", emulator=True, scenario=SCENARIO, text_only=True,
                            extra_plugins=[fake], listeners=[events.append]) as session:
        assert fake.log == ["opened files"]
        turn = await session.ask("look it up", timeout=20)
        assert turn.text == "files got {'q': 'x'}"
        desk, plain = session.graph.get("desk"), session.graph.get("plain")
        assert [t.name for t in session.graph.tools_for(desk, session.registry)] == \
            ["transfer_to_plain", "files_lookup"]
        assert session.graph.tools_for(plain, session.registry) == []  # scoped to the agent listing it
        shared = load_plugins(allow=[], extra=[fake]).registry
        assert "files_lookup" not in shared and shared.source_tools(desk.mcp_servers[0]) == []
    assert fake.log == ["opened files", "closed files"]
    warnings = [e.message for e in events if e.type == "warning"]
    assert warnings == [(f"{tmp_path / 'desk.yaml'}:5: mcp server 'files' (files-server --root /tmp):"
                         " tool 'broken' left out: a lie")]


async def test_a_session_starts_only_the_servers_its_agents_can_reach(tmp_path: Path) -> None:
    # A folder of agents (as realtalk serve loads one): a caller talking to 'plain' starts
    # no server; one talking to 'desk' starts desk's, and its handoff target's, not 'lab''s.
    write(tmp_path / "desk.yaml", "instructions: x\nmodalities: [text]\nhandoffs: [helper]\n"
          "mcp_servers:\n  - {name: files, command: a, prefix: f_}\n")
    write(tmp_path / "helper.yaml", "instructions: x\nmodalities: [text]\n"
          "mcp_servers:\n  - {name: notes, command: b, prefix: n_}\n")
    write(tmp_path / "lab.yaml", "instructions: x\nmodalities: [text]\n"
          "mcp_servers:\n  - {name: lab, command: c, prefix: l_}\n")
    write(tmp_path / "plain.yaml", "instructions: y\nmodalities: [text]\n")
    fake = FakeMcp()
    async with open_session(tmp_path, agent="plain", emulator=True, scenario={"turns": []},
                            text_only=True, extra_plugins=[fake]):
        assert fake.log == []
    async with open_session(tmp_path, agent="desk", emulator=True, scenario={"turns": []},
                            text_only=True, extra_plugins=[fake]) as session:
        assert sorted(fake.log) == ["opened files", "opened notes"]
        await session.switch_agent("lab", timeout=20)  # not reachable by handoffs: started now
        assert fake.log[-1] == "opened lab"
        lab = session.graph.get("lab")
        assert [t.name for t in session.graph.tools_for(lab, session.registry)] == ["l_lookup"]
        with pytest.raises(ConfigError, match="unknown agent 'nobody'"):
            await session.switch_agent("nobody")
    assert sorted(fake.log[-3:]) == ["closed files", "closed lab", "closed notes"]


async def test_a_name_collision_suggests_a_prefix(tmp_path: Path) -> None:
    agent = write(tmp_path / "a.yaml", "instructions: x\nmodalities: [text]\nmcp_servers:\n"
                  "  - {name: one, command: a}\n  - {name: two, command: b}\n")
    fake = FakeMcp()
    with pytest.raises(ConfigError) as info:
        async with open_session(agent, emulator=True, scenario={"turns": []}, extra_plugins=[fake]):
            pass
    assert str(info.value) == (f"{agent}:5: tool 'lookup' of mcp server 'two' (b) has the name of a tool from"
                               " mcp:one; set prefix: on the server (e.g. prefix: two_)")
    assert sorted(fake.log) == ["closed one", "closed two", "opened one", "opened two"]


async def test_a_server_that_fails_or_hangs_stops_the_others(tmp_path: Path) -> None:
    agent = write(tmp_path / "a.yaml", "instructions: x\nmodalities: [text]\nmcp_servers:\n"
                  "  - {name: ok, command: a, prefix: a_}\n  - {name: bad, command: b}\n"
                  "  - {name: slow, command: c, startup_timeout_s: 0.2, prefix: c_}\n")
    fake = FakeMcp(fail=["bad"])
    with pytest.raises(ConfigError, match=r":5: mcp server 'bad' \(b\) could not start: the command exited at once"):
        async with open_session(agent, emulator=True, scenario={"turns": []}, extra_plugins=[fake]):
            pass
    assert fake.log.count("closed ok") == 1
    hanging = FakeMcp(hang=["slow"])
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r":6: mcp server 'slow' \(c\) did not start within 0.2 s"):
        async with open_session(agent, emulator=True, scenario={"turns": []}, extra_plugins=[hanging]):
            pass
    assert time.monotonic() - started < 5 and "closed ok" in hanging.log


async def test_cancelling_the_start_closes_the_servers_started(tmp_path: Path) -> None:
    agent = write(tmp_path / "a.yaml", "instructions: x\nmcp_servers:\n  - {name: ok, command: a, prefix: a_}\n"
                  "  - {name: slow, command: b, startup_timeout_s: 60}\n")
    fake = FakeMcp(hang=["slow"])
    graph, plugins = load_graph([agent], extra=[fake])
    starting = asyncio.ensure_future(open_sources(graph, plugins.registry, lambda message: None))
    await asyncio.wait_for(fake.opened.wait(), 5)  # Ctrl-C arrives while 'slow' is starting
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert fake.log == ["opened ok", "closed ok"]


def test_probing_for_check_starts_and_stops_or_names_what_is_unset(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    agent = write(tmp_path / "a.yaml", "instructions: x\n" + SERVER)
    fake = FakeMcp()
    graph, plugins = load_graph([agent], extra=[fake])
    notes: list[str] = []
    monkeypatch.delenv("FILES_TOKEN", raising=False)
    registry, problems, warnings = probe_sources(graph, plugins.registry, notes.append)
    assert (registry, problems, notes, fake.log) == (plugins.registry, [], [], [])
    unset = f"{agent}:3: mcp server 'files' (files-server --root /tmp): env.TOKEN uses ${{FILES_TOKEN}}, which is not set"
    assert warnings == [unset, "MCP servers not started to check their tools: set the variables above"]
    monkeypatch.setenv("FILES_TOKEN", "tok-123456")
    registry, problems, warnings = probe_sources(graph, plugins.registry, notes.append)
    assert notes == ["starting MCP server 'files' to list its tools (at most 10 s)"] and problems == []
    assert [t.name for t in source_tools(graph, registry)] == ["lookup"] and len(warnings) == 1
    assert fake.log == ["opened files", "closed files"]
