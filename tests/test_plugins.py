from __future__ import annotations

import inspect
from typing import Any

import pytest
from realtalk import hookspecs
from realtalk.plugins import load_plugins

GOOD = """
    import realtalk

    def hello(name: str) -> str:
        return f"hello {{name}}"

    @realtalk.hookimpl
    def register_tools(register):
        register("{tool}", description="Say hello", handler=hello,
                 parameters={{"type": "object", "properties": {{"name": {{"type": "string"}}}}}})
"""


def good(tool: str) -> str:
    return GOOD.format(tool=tool)


def test_hook_register_tools(make_plugin: Any) -> None:
    make_plugin("realtalk-hooka", good("hook_a_hello"), version="1.2.3")
    plugins = load_plugins(allow=["realtalk-hooka"])
    assert plugins.problems == []
    tool = plugins.registry.get("hook_a_hello")
    assert tool is not None
    assert (tool.plugin, tool.plugin_version) == ("realtalk-hooka", "1.2.3")
    [info] = plugins.plugins
    assert info.hooks == ["register_tools"] and info.tools == ["hook_a_hello"]


def test_tools_from_yaml_file_in_the_package(make_plugin: Any) -> None:
    source = """
        from importlib.resources import files
        import realtalk

        def shout(text: str) -> str:
            return text.upper()

        @realtalk.hookimpl
        def register_tools(register):
            register.from_yaml(files(__name__).joinpath("tools.yaml"))
    """
    tools = """
        tools:
          - name: yaml_shout
            description: Shout
            handler: realtalk_yamlp:shout
            timeout_s: 2
            requires_approval: true
            parameters: {type: object, properties: {text: {type: string}}, required: [text]}
    """
    make_plugin("realtalk-yamlp", source, files={"tools.yaml": tools})
    plugins = load_plugins(allow=["realtalk-yamlp"])
    assert plugins.problems == []
    tool = plugins.registry.get("yaml_shout")
    assert tool is not None and tool.timeout_s == 2 and tool.requires_approval
    assert tool.handler is not None and tool.handler("hi") == "HI"


def test_allow_list_from_environment(make_plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_plugin("realtalk-allow-a", good("allow_a"))
    make_plugin("realtalk-allow-b", good("allow_b"))
    monkeypatch.setenv("REALTALK_PLUGINS", "realtalk-allow-b")
    assert load_plugins().registry.names() == ["allow_b"]
    monkeypatch.setenv("REALTALK_PLUGINS", "")
    plugins = load_plugins()
    assert plugins.plugins == [] and len(plugins.registry) == 0


def test_block_list(make_plugin: Any) -> None:
    make_plugin("realtalk-block-a", good("block_a"))
    make_plugin("realtalk-block-b", good("block_b"))
    plugins = load_plugins(allow=["realtalk-block-a", "realtalk-block-b"], block=["realtalk-block-a"])
    assert plugins.registry.names() == ["block_b"]


def test_import_failure_is_reported_and_others_keep_working(make_plugin: Any) -> None:
    make_plugin("realtalk-broken", "import no_such_dependency_xyz\n", version="0.3.0")
    make_plugin("realtalk-fine", good("fine_hello"))
    plugins = load_plugins(allow=["realtalk-broken", "realtalk-fine"])
    assert plugins.registry.names() == ["fine_hello"]
    [problem] = plugins.problems
    assert str(problem).startswith("plugin realtalk-broken 0.3.0: import of 'realtalk_broken' failed")
    assert "no_such_dependency_xyz" in str(problem)


def test_exception_in_register_hook_is_reported(make_plugin: Any) -> None:
    source = """
        import realtalk

        @realtalk.hookimpl
        def register_tools(register):
            raise RuntimeError("config file missing")
    """
    make_plugin("realtalk-raises", source, version="2.0.0")
    make_plugin("realtalk-fine2", good("fine2_hello"))
    plugins = load_plugins(allow=["realtalk-raises", "realtalk-fine2"])
    assert plugins.registry.names() == ["fine2_hello"]
    assert [str(p) for p in plugins.problems] == [
        "plugin realtalk-raises 2.0.0: register_tools failed: RuntimeError: config file missing"
    ]


def test_misspelled_hook_fails_check_pending(make_plugin: Any) -> None:
    source = """
        import realtalk

        @realtalk.hookimpl
        def register_tool(register):
            pass
    """
    make_plugin("realtalk-typo", source)
    plugins = load_plugins(allow=["realtalk-typo"])
    [problem] = plugins.problems
    assert "realtalk-typo 1.0.0: cannot register" in str(problem)
    assert "register_tool" in str(problem)


def test_duplicate_tool_names_across_plugins_name_both(make_plugin: Any) -> None:
    make_plugin("realtalk-dup-a", good("same_name"), version="1.0.0")
    make_plugin("realtalk-dup-b", good("same_name"), version="2.0.0")
    plugins = load_plugins(allow=["realtalk-dup-a", "realtalk-dup-b"])
    [problem] = plugins.problems
    assert "realtalk-dup-a 1.0.0" in str(problem) and "realtalk-dup-b 2.0.0" in str(problem)
    assert plugins.registry.get("same_name").plugin == "realtalk-dup-a"  # type: ignore[union-attr]


def test_bad_tool_is_skipped_but_the_plugin_other_tools_count(make_plugin: Any) -> None:
    source = """
        import realtalk

        @realtalk.hookimpl
        def register_tools(register):
            register("bad name", description="x", handler=print)
            register("good_name", description="x", handler=print)
    """
    make_plugin("realtalk-partial", source)
    plugins = load_plugins(allow=["realtalk-partial"])
    assert plugins.registry.names() == ["good_name"]
    assert "invalid tool name 'bad name'" in str(plugins.problems[0])


def test_in_process_plugins() -> None:
    class Inline:
        __name__ = "inline"

        @hookspecs.hookimpl
        def register_tools(self, register: Any) -> None:
            register("inline_tool", description="x", handler=print)

    plugins = load_plugins(allow=[], extra=[Inline()])
    assert plugins.registry.names() == ["inline_tool"]


def test_each_runtime_has_its_own_manager(make_plugin: Any) -> None:
    make_plugin("realtalk-twice", good("twice_hello"))
    first = load_plugins(allow=["realtalk-twice"])
    second = load_plugins(allow=["realtalk-twice"])
    assert first.manager is not second.manager
    assert second.problems == []  # no "already registered" from a shared manager


def test_every_hook_is_documented_and_tested() -> None:
    """Meta-test: each hookspec has docs with its exact signature and a test_hook_<name>."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "plugins" / "hooks.md").read_text()
    tests = "".join(p.read_text() for p in (root / "tests").rglob("test_*.py"))
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(fn, "realtalk_spec")]
    assert specs == ["observe_session", "register_agents", "register_commands", "register_tool_sources",
                     "register_tools"]
    for name in specs:
        signature = f"def {name}{inspect.signature(getattr(hookspecs, name))}"
        assert signature.replace("'", "") in docs, f"docs/plugins/hooks.md lacks `{signature}`"
        assert f"def test_hook_{name}(" in tests


# --- the entry points kept on disk (realtalk.cache): what changes is seen ----------------


def _settle(*paths: Any) -> None:
    """Date paths an hour back: a folder changed just now is never trusted to the cache."""
    import os
    import time

    past = time.time() - 3600
    for path in paths:
        os.utime(path, (past, past))
        past += 1  # each later call gives a different time, as a real change would


def test_kept_entry_points_see_installs_and_edits(make_plugin: Any, tmp_path: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    cache = tmp_path / "cache"
    monkeypatch.setenv("REALTALK_CACHE_DIR", str(cache))
    make_plugin("realtalk-kept-a", good("kept_a"))
    site = make_plugin.site
    entry_points = site / "realtalk_kept_a-1.0.0.dist-info" / "entry_points.txt"
    _settle(site, entry_points)
    assert "kept_a" in load_plugins(allow=["realtalk-kept-a", "realtalk-kept-b"]).registry
    kept = json.loads((cache / "entry-points.json").read_text())
    assert ["realtalk-kept-a", "1.0.0", "realtalk_kept_a", "realtalk_kept_a"] in kept["sets"][-1]["entry_points"]
    assert "kept_a" in load_plugins(allow=["realtalk-kept-a"]).registry  # from the cache

    make_plugin("realtalk-kept-b", good("kept_b"))  # pip install: the folder changes
    found = load_plugins(allow=["realtalk-kept-a", "realtalk-kept-b"])
    assert "kept_a" in found.registry and "kept_b" in found.registry

    _settle(site, site / "realtalk_kept_b-1.0.0.dist-info" / "entry_points.txt")
    load_plugins()  # kept again, settled
    entry_points.write_text("[realtalk]\nrenamed = realtalk_kept_a\n")  # edited in place
    _settle(site, entry_points)
    [info] = [p for p in load_plugins(allow=["realtalk-kept-a"]).plugins]
    assert info.entry_point == "renamed"


def test_a_broken_entry_point_cache_is_ignored(make_plugin: Any, tmp_path: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / "entry-points.json").write_text('{"format": 1, "sets": [{"folders": 3}, 7, "x"]')
    monkeypatch.setenv("REALTALK_CACHE_DIR", str(cache))
    make_plugin("realtalk-broken-cache", good("broken_cache_tool"))
    assert "broken_cache_tool" in load_plugins(allow=["realtalk-broken-cache"]).registry


def test_registrar_defaults_are_the_tools_defaults() -> None:
    # realtalk.plugins keeps copies so that importing it does not import realtalk.tools (yaml).
    from realtalk import plugins, tools

    assert (plugins.DEFAULT_TIMEOUT_S, plugins.DEFAULT_MAX_OUTPUT_CHARS) == (
        tools.DEFAULT_TIMEOUT_S, tools.DEFAULT_MAX_OUTPUT_CHARS)


def test_loading_commands_imports_neither_tools_nor_yaml() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom realtalk.plugins import load_commands\nload_commands(block=['realtalk-clock'])\n"
            "print(sorted(m for m in ('realtalk.tools', 'yaml', 'jsonschema') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"
