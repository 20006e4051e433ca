"""The hooks beyond register_tools: agents, session observers and CLI commands, each from a
real installed distribution (tests/conftest.py's make_plugin), and hooks.md kept exact."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk.exceptions import ConfigError
from realtalk.plugins import load_plugins
from realtalk.runner import open_session

ROOT = Path(__file__).resolve().parent.parent
HOOKSPECS = ROOT / "core" / "realtalk" / "hookspecs.py"
HOOKS_MD = ROOT / "docs" / "plugins" / "hooks.md"


# --- hooks.md gives every hook's exact signature ----------------------------------------


def spec_signatures(source: str) -> dict[str, str]:
    """``{name: "def name(args) -> returns"}`` of the ``@hookspec`` functions in ``source``."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "hookspec" for d in node.decorator_list):
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            found[node.name] = f"def {node.name}({ast.unparse(node.args)}){returns}"
    return found


def documented_signatures(markdown: str) -> dict[str, str]:
    """``{name: signature}`` of each ``## name`` section whose first python block is a ``def``."""
    found = {}
    for section in re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]:
        title = section.splitlines()[0].strip()
        block = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
        if block and block[1].startswith("def "):
            found[title] = block[1].strip()
    return found


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    specs = spec_signatures(HOOKSPECS.read_text())
    assert set(specs) == {"register_tools", "register_agents", "observe_session", "register_commands",
                          "register_tool_sources"}
    assert documented_signatures(HOOKS_MD.read_text()) == specs


def test_the_signature_check_sees_a_difference() -> None:
    spec = "@hookspec\ndef observe_session(session: SessionInfo) -> Callable[[SessionEvent], None] | None:\n    pass\n"
    doc = "## observe_session\n\n```python\ndef observe_session(session: SessionInfo) -> None\n```\n"
    assert spec_signatures(spec) != documented_signatures(doc)
    assert documented_signatures(doc.replace("-> None", "-> Callable[[SessionEvent], None] | None")) == \
        spec_signatures(spec)


# --- register_agents ---------------------------------------------------------------------

DESK_PLUGIN = """
    from importlib.resources import files
    import realtalk

    @realtalk.hookimpl
    def register_agents(register):
        register(files(__name__).joinpath("desk.yaml"))
        register(realtalk.Agent(name="night", instructions="You run the night desk.", handoffs=["desk"]))
"""
DESK_FILES = {
    "desk.yaml": "name: desk\ninstructions: You run the front desk.\nhandoffs: [porter]\n",
    "porter.yaml": "name: porter\ninstructions: You carry bags.\n",
    "desk.scenario.yaml": "turns:\n  - user: hello\n    reply: Front desk, good evening.\n",
}


def cli(*args: str, site: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``realtalk ARGS`` in a subprocess that sees the plugins of ``site``."""
    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_PLUGINS")}
    full["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    full["REALTALK_CACHE_DIR"] = str(cwd / ".cache")
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "realtalk.cli", *args], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=60, check=False)


def test_hook_register_agents(make_plugin: Any) -> None:
    make_plugin("realtalk-desk", DESK_PLUGIN, version="1.4.0", files=DESK_FILES)
    plugins = load_plugins(allow=["realtalk-desk"])
    agents = plugins.agents()
    assert sorted(agents) == ["desk", "night"] and plugins.problems == []
    assert agents["desk"].info.origin == "realtalk-desk 1.4.0"
    assert agents["desk"].spec.file is not None and agents["desk"].spec.file.name == "desk.yaml"
    [info] = plugins.plugins
    assert info.hooks == ["register_agents"] and info.agents == ["desk", "night"]
    # An Agent's handoff by name reaches the plugin's other agents.
    night = plugins.agent("night").spec
    assert night.handoffs[0].target is not None and night.handoffs[0].target.name == "desk"


async def test_a_plugin_agent_runs_by_name_with_its_scenario(make_plugin: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_plugin("realtalk-desk", DESK_PLUGIN, files=DESK_FILES)
    monkeypatch.setenv("REALTALK_PLUGINS", "realtalk-desk")
    monkeypatch.chdir(tmp_path)
    async with open_session("desk", emulator=True, text_only=True) as session:
        assert sorted(session.graph.agents) == ["desk", "porter"]  # the handoff target beside it
        turn = await session.ask("hello", 20)
    assert turn.text == "Front desk, good evening."


def test_realtalk_run_and_plugins_show_plugin_agents(make_plugin: Any, tmp_path: Path) -> None:
    make_plugin("realtalk-desk", DESK_PLUGIN, version="1.4.0", files=DESK_FILES)
    site = make_plugin.site
    result = cli("run", "desk", "--emulator", "--text", "hello", site=site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "desk: Front desk, good evening." in result.stdout
    listing = cli("plugins", site=site, cwd=tmp_path, env={"REALTALK_PLUGINS": "realtalk-desk"})
    assert "realtalk-desk 1.4.0\n  hooks: register_agents\n  tools: -\n  agents: desk, night\n" in listing.stdout

    wrong = cli("run", "dsk", "--emulator", "--text", "hello", site=site, cwd=tmp_path,
                env={"REALTALK_PLUGINS": "realtalk-desk"})
    assert wrong.returncode == 1
    assert wrong.stderr == ("realtalk: error: dsk: no such file or directory, and no plugin registers an agent"
                            " 'dsk' (did you mean 'desk'?); plugin agents: desk (realtalk-desk 1.4.0),"
                            " night (realtalk-desk 1.4.0)\n")


def test_a_local_path_wins_over_a_plugin_agent(make_plugin: Any, tmp_path: Path) -> None:
    make_plugin("realtalk-desk", DESK_PLUGIN, files=DESK_FILES)
    (tmp_path / "desk").write_text("name: local\ninstructions: The local one.\n")
    result = cli("run", "desk", "--emulator", "--text", "hello", site=make_plugin.site, cwd=tmp_path,
                 env={"REALTALK_PLUGINS": "realtalk-desk"})
    assert result.returncode == 0, result.stderr
    assert "as local" in result.stdout


def test_two_plugins_with_one_agent_name_run_neither(make_plugin: Any) -> None:
    make_plugin("realtalk-desk-a", DESK_PLUGIN, files=DESK_FILES)
    make_plugin("realtalk-desk-b", DESK_PLUGIN, version="2.0.0", files=DESK_FILES)
    plugins = load_plugins(allow=["realtalk-desk-a", "realtalk-desk-b"])
    assert "desk" not in plugins.agents()
    assert "agent 'desk' is registered by realtalk-desk-a 1.0.0 and realtalk-desk-b 2.0.0" in str(plugins.problems[0])
    with pytest.raises(realtalk.ConfigError, match=r"^agent 'desk' is registered by realtalk-desk-a 1\.0\.0 and"
                                                   r" realtalk-desk-b 2\.0\.0: block one with --no-plugin NAME"):
        plugins.agent("desk")


# --- observe_session ---------------------------------------------------------------------

OBSERVER = """
    import realtalk

    SEEN = []
    SESSIONS = []

    def lookup(city: str) -> str:
        return f"sunny in {city}"

    @realtalk.hookimpl
    def register_tools(register):
        register("lookup", description="Weather", handler=lookup,
                 parameters={"type": "object", "properties": {"city": {"type": "string"}}})

    @realtalk.hookimpl
    def observe_session(session):
        SESSIONS.append(session)
        return SEEN.append
"""
BROKEN_OBSERVER = """
    import realtalk

    CALLS = []

    @realtalk.hookimpl
    def observe_session(session):
        def listen(event):
            CALLS.append(event.type)
            raise KeyError("x")
        return listen
"""


def observed_agent(tmp_path: Path) -> Path:
    agent = tmp_path / "front.yaml"
    agent.write_text("instructions: Front.\ntools: [lookup]\n")
    (tmp_path / "front.scenario.yaml").write_text(
        "turns:\n  - user: weather\n    reply:\n      - call: lookup\n        arguments: {city: Oslo}\n"
        "      - say: '{output}'\n")
    return agent


async def test_hook_observe_session(make_plugin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_plugin("realtalk-observer", OBSERVER, version="3.1.0")
    monkeypatch.setenv("REALTALK_PLUGINS", "realtalk-observer")
    import realtalk_observer

    async with open_session(observed_agent(tmp_path), emulator=True, text_only=True) as session:
        await session.ask("weather", 20)
    [info] = realtalk_observer.SESSIONS
    assert (info.agent, info.agents, info.model) == ("front", ("front",), "gpt-realtime-2.1")
    assert info.url.startswith("ws://127.0.0.1:")
    kinds = [e.type for e in realtalk_observer.SEEN]
    assert kinds[:2] == ["connected", "user.text"] and kinds[-1] == "turn.done"
    assert kinds.index("tool.started") < kinds.index("tool.finished") < kinds.index("assistant.done")
    finished = [e for e in realtalk_observer.SEEN if isinstance(e, realtalk.ToolFinished)]
    assert [(e.name, e.status, e.output) for e in finished] == [("lookup", "ok", "sunny in Oslo")]
    done = next(e for e in realtalk_observer.SEEN if isinstance(e, realtalk.TurnDone))
    assert done.usage and "output_tokens" in done.usage[0]


async def test_an_observer_that_raises_is_reported_once_and_detached(
        make_plugin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_plugin("realtalk-observer2", OBSERVER)  # (not realtalk-observer: a module is imported once)
    make_plugin("realtalk-broken-observer", BROKEN_OBSERVER, version="0.2.0")
    monkeypatch.setenv("REALTALK_PLUGINS", "realtalk-observer2,realtalk-broken-observer")
    import realtalk_broken_observer
    import realtalk_observer2 as realtalk_observer

    async with open_session(observed_agent(tmp_path), emulator=True, text_only=True) as session:
        turn = await session.ask("weather", 20)
    assert turn.text == "sunny in Oslo"  # the session carried on
    assert realtalk_broken_observer.CALLS == ["connected"]
    warnings = [e.message for e in realtalk_observer.SEEN if isinstance(e, realtalk.SessionWarning)]
    assert warnings == [("plugin realtalk-broken-observer 0.2.0: session observer failed on connected:"
                         " KeyError: 'x'; it gets no more events of this session")]


def test_no_observer_means_no_listener(make_plugin: Any) -> None:
    from realtalk.plugins import SessionInfo

    make_plugin("realtalk-no-observer", "import realtalk\n")
    plugins = load_plugins(allow=["realtalk-no-observer"])
    assert plugins.observers(SessionInfo("a", ("a",), "ws://x", "m"), print) == []


# --- register_commands -------------------------------------------------------------------

COMMANDS = """
    import pathlib
    import realtalk

    pathlib.Path("imported.txt").write_text("yes")  # shows when the plugin was imported

    def configure(parser):
        parser.add_argument("city")

    def forecast(args):
        print(f"sunny in {args.city}")
        return 3

    def broken(args):
        raise ValueError("no forecast today")

    @realtalk.hookimpl
    def register_commands(register):
        register("forecast", help="print the forecast for a city", configure=configure, run=forecast)
        register("broken", help="always fails", run=broken)
        register("run", help="steal the run command", run=forecast)
"""


def test_hook_register_commands(make_plugin: Any, tmp_path: Path) -> None:
    make_plugin("realtalk-forecast", COMMANDS, version="0.9.0")
    site = make_plugin.site
    clash = ("realtalk: error: plugin realtalk-forecast 0.9.0: command 'run' clashes with the built-in"
             " command 'realtalk run'; not added\n")

    result = cli("forecast", "Lisbon", site=site, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (3, "sunny in Lisbon\n", clash)

    helped = cli("--help", site=site, cwd=tmp_path)
    assert helped.returncode == 0 and helped.stderr == clash
    assert re.search(r"^    forecast +print the forecast for a city \[realtalk-forecast 0\.9\.0\]$",
                     helped.stdout, flags=re.MULTILINE)

    failed = cli("broken", site=site, cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == ("realtalk: error: plugin realtalk-forecast 0.9.0: command 'broken'"
                                              " failed (run): ValueError: no forecast today")

    listed = cli("plugins", "--json", site=site, cwd=tmp_path, env={"REALTALK_PLUGINS": "realtalk-forecast"})
    assert '"commands": [\n      "forecast",\n      "broken"\n    ]' in listed.stdout


def test_built_in_commands_and_version_do_not_load_plugins(make_plugin: Any, tmp_path: Path) -> None:
    make_plugin("realtalk-forecast", COMMANDS)
    for args in (["--version"], ["run", "--help"], ["check", "--help"]):
        result = cli(*args, site=make_plugin.site, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert not (tmp_path / "imported.txt").exists(), args
    cli("--help", site=make_plugin.site, cwd=tmp_path)
    assert (tmp_path / "imported.txt").exists()  # the check above can fail


def test_builtin_command_names_are_the_parsers() -> None:
    import argparse

    from realtalk.cli import _COMMANDS, _parser
    from realtalk.plugins import BUILTIN_COMMANDS

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(_COMMANDS) == BUILTIN_COMMANDS


# --- a misspelled hook, unknown plugin names ------------------------------------------------


def test_a_misspelled_hook_gets_a_suggestion(make_plugin: Any) -> None:
    make_plugin("realtalk-hook-typo", "import realtalk\n\n@realtalk.hookimpl\ndef observe_sesion(session):\n    pass\n")
    [problem] = load_plugins(allow=["realtalk-hook-typo"]).problems
    assert str(problem) == (
        "plugin realtalk-hook-typo 1.0.0: cannot register: unknown hook 'observe_sesion' (did you mean"
        " 'observe_session'?); the hooks are: observe_session, register_agents, register_commands,"
            " register_tool_sources, register_tools")


def test_unknown_plugin_names_are_named_with_the_installed_ones(make_plugin: Any, tmp_path: Path) -> None:
    make_plugin("realtalk-forecast", "import realtalk\n")
    site = make_plugin.site
    result = cli("tools", site=site, cwd=tmp_path, env={"REALTALK_PLUGINS": "nope"})
    assert result.returncode == 2
    assert re.fullmatch(r"realtalk: error: REALTALK_PLUGINS: no installed plugin distribution 'nope';"
                        r" installed: (.+, )?realtalk-forecast(, .+)?\n", result.stderr)
    blocked = cli("--no-plugin", "realtalk-forcast", "tools", site=site, cwd=tmp_path)
    assert blocked.returncode == 2
    assert blocked.stderr.startswith("realtalk: error: --no-plugin: no installed plugin distribution"
                                     " 'realtalk-forcast' (did you mean 'realtalk-forecast'?); installed: ")
    plugins = load_plugins(allow=["realtalk-forecast", "nope"], block=["realtalk-forcast"])
    assert [p.message for p in plugins.problems][:1] == [
        "allowed: no installed plugin distribution 'nope'; installed: "
        + ", ".join(sorted({i.distribution for i in load_plugins().plugins}))]


# --- the examples of hooks.md work ----------------------------------------------------------


def hooks_example(hook: str) -> str:
    section = HOOKS_MD.read_text().split(f"\n## {hook}\n", 1)[1].split("\n## ", 1)[0]
    [example] = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL) if not b.startswith("def ")]
    return example


def test_the_examples_of_hooks_md_work(make_plugin: Any) -> None:
    from realtalk.plugins import SessionInfo

    package = make_plugin("realtalk-doc-agents", hooks_example("register_agents"))
    (package / "agents").mkdir()
    (package / "agents" / "desk.yaml").write_text("name: desk\ninstructions: You run the desk.\n")
    make_plugin("realtalk-doc-observer", hooks_example("observe_session"))
    make_plugin("realtalk-doc-commands", hooks_example("register_commands"))
    plugins = load_plugins(allow=["realtalk-doc-agents", "realtalk-doc-observer", "realtalk-doc-commands"])
    assert sorted(plugins.agents()) == ["desk", "night-desk"] and plugins.problems == []
    [observer] = plugins.observers(SessionInfo("desk", ("desk",), "ws://x", "m"), pytest.fail)
    observer(realtalk.ToolFinished("c1", "lookup", "ok", "{}", 0.002, "desk"))  # does not raise
    assert list(plugins.commands) == ["forecast"]


def test_realtalk_check_finds_plugin_agents_by_name(make_plugin: Any, tmp_path: Path) -> None:
    files = {**DESK_FILES, "desk.scenario.yaml": "turns:\n  - user: hello\n    reply:\n      - handoff: porter\n"
                                                 "  - user: bags\n    reply:\n      - call: carry_bags\n"}
    make_plugin("realtalk-desk", DESK_PLUGIN, version="1.4.0", files=files)
    env = {"REALTALK_PLUGINS": "realtalk-desk"}
    result = cli("check", "desk", site=make_plugin.site, cwd=tmp_path, env=env)
    # The plugin's agent file and the scenario beside it were both checked.
    assert result.returncode == 1
    assert "desk.scenario.yaml" in result.stdout and "carry_bags" in result.stdout, result.stdout
    wrong = cli("check", "dsk", site=make_plugin.site, cwd=tmp_path, env=env)
    assert wrong.returncode == 1
    assert wrong.stdout.startswith("dsk: no such file or directory, and no plugin registers an agent 'dsk'"
                                   " (did you mean 'desk'?)")


def test_the_testing_kit_runs_a_plugin_agent_by_name(make_plugin: Any, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from realtalk.testing import converse

    make_plugin("realtalk-desk", DESK_PLUGIN, files=DESK_FILES)
    monkeypatch.setenv("REALTALK_PLUGINS", "realtalk-desk")
    monkeypatch.chdir(tmp_path)
    result = converse(agent="desk", texts=["hello"])  # its scenario is the one beside its file
    assert result.turns[0].text == "Front desk, good evening."
    with pytest.raises(ConfigError, match="no plugin registers an agent 'dsk'"):
        converse(agent="dsk", texts=["hello"])
