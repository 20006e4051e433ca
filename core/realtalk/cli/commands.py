"""``realtalk check``, ``plugins``, ``tools`` and ``devices``: what is configured and
installed, read without connecting anywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..exceptions import AudioDeviceError, ConfigError, PluginError
from ..protocol.vocab import Dialect

__all__ = ["check_command", "devices_command", "plugins_command", "tools_command"]


def _load_plugins(args: argparse.Namespace) -> Any:
    from ..plugins import load_plugins

    return load_plugins(block=args.no_plugin)


# --- check -------------------------------------------------------------------------------


def _is_scenario(path: Path) -> bool:
    return path.name.endswith((".scenario.yaml", ".scenario.yml"))


def check_command(args: argparse.Namespace) -> int:
    """``realtalk check``: print every problem (and warning), sorted by file and line, in
    one run; 1 when there is one, else 0."""
    from ..agents import AgentSpec
    from ..localtools import load_graph
    from ..scenariocheck import check_scenario

    agent_paths: list[Path | AgentSpec] = []
    scenario_files: list[Path] = []
    unresolved: list[ConfigError] = []
    for path in args.paths:
        if path.is_dir():
            agent_paths.append(path)
            scenario_files += sorted(p for p in path.iterdir() if _is_scenario(p))
        elif _is_scenario(path):
            scenario_files.append(path)
        elif path.exists():
            agent_paths.append(path)
        else:  # an agent a plugin registers, by name (as realtalk run NAME finds it)
            from ..runner import resolve_agent, scenario_for  # only here: it loads the runtime

            try:
                found = resolve_agent(str(path), args.no_plugin)
            except ConfigError as exc:
                unresolved.append(exc)
                continue
            if isinstance(found, AgentSpec):
                agent_paths.append(found)
            else:
                agent_paths.append(Path(found))
                scenario_files += filter(None, [scenario_for(Path(found))])

    tool_files = getattr(args, "tools", None) or []
    graph, plugins = load_graph(agent_paths, block=args.no_plugin, tool_files=tool_files)
    errors: list[ConfigError | PluginError] = [*plugins.problems, *unresolved, *graph.problems]
    warnings = [_as_warning(w) for w in graph.warnings]
    registry = plugins.registry
    if not errors and not args.no_mcp:
        registry, failed, started = _probe(graph, registry)
        errors += failed
        _show_server_tools(graph, registry)
        warnings += [f"warning: {w}" if not _LOCATED.match(w) else _LOCATED.sub(r"\1 warning: ", w, count=1)
                     for w in started]
    for file in scenario_files:
        errors += check_scenario(file, graph, registry, block=args.no_plugin, tool_files=tool_files)
    errors.sort(key=lambda p: (getattr(p, "file", None) or "", getattr(p, "line", None) or 0))

    for problem in errors:
        print(problem)
    for line in warnings:
        print(line)
    if errors:
        print(f"realtalk: {len(errors)} error(s)", file=sys.stderr)
        return 1
    if args.print_update and graph.roots:
        from ..protocol.session_config import build_session_update

        profile: Dialect = "beta" if args.beta else "ga"
        for agent in (graph.agents[name] for name in graph.roots):
            event = build_session_update(agent, graph.tools_for(agent, registry), profile=profile,
                                         read_secrets=False)
            print(json.dumps(event, indent=2, ensure_ascii=False))
    else:
        print(f"ok: {len(graph.agents)} agent(s), {len(scenario_files)} scenario(s) checked", file=sys.stderr)
    return 0


_LOCATED = re.compile(r"^([^\s:][^:]*:\d+:) ")


def _probe(graph: Any, registry: Any) -> tuple[Any, list[ConfigError], list[str]]:
    """Start the graph's MCP servers to list their tools, saying so on stderr (bounded)."""
    from ..toolsources import probe_sources

    return probe_sources(graph, registry, lambda line: print(f"realtalk: {line}", file=sys.stderr))


def _show_server_tools(graph: Any, registry: Any) -> None:
    """One stderr line per started MCP server: its tools (their origin), as the model gets them."""
    from ..toolsources import servers_of

    for spec in servers_of(graph):
        tools = registry.source_tools(spec)
        if tools:
            print(f"realtalk: {spec.describe()}: {len(tools)} tool(s): {', '.join(t.name for t in tools)}",
                  file=sys.stderr)


def _as_warning(problem: ConfigError) -> str:
    where = f"{problem.file}:{problem.line}: " if problem.file else ""
    return f"{where}warning: {problem.message}"


# --- plugins and tools -------------------------------------------------------------------


def plugins_command(args: argparse.Namespace) -> int:
    """``realtalk plugins``: the installed plugin distributions, their hooks, tools, agents
    and commands."""
    plugins = _load_plugins(args)
    plugins.agents()  # reads the agent files plugins registered: their names, their problems
    if args.json:
        print(json.dumps([p.as_dict() for p in plugins.plugins], indent=2))
    elif not plugins.plugins:
        print("no plugins installed (pip install a realtalk-* plugin)")
    else:
        for info in plugins.plugins:
            status = f"  FAILED: {info.error}" if info.error else ""
            print(f"{info.distribution} {info.version}{status}")
            print(f"  hooks: {', '.join(info.hooks) or '-'}")
            print(f"  tools: {', '.join(info.tools) or '-'}")
            if info.agents:
                print(f"  agents: {', '.join(info.agents)}")
            if info.commands:
                print(f"  commands: {', '.join(info.commands)}")
    for problem in plugins.problems:
        print(f"realtalk: warning: {problem}", file=sys.stderr)
    return 0


def _tool_dict(tool: Any) -> dict[str, Any]:
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "plugin": tool.plugin,
        "version": tool.plugin_version,
        "handler": tool.handler_path,
        "timeout_s": tool.timeout_s,
        "requires_approval": tool.requires_approval,
        "cancellable": tool.cancellable,
    }


def tools_command(args: argparse.Namespace) -> int:
    """``realtalk tools [NAME]``: installed tools with origin (and schema for one NAME)."""
    if args.agent:
        registry, servers = _agent_tools(args)
    else:
        registry, servers = _load_plugins(args).registry, []
    tools = [*registry, *servers]
    if args.name:
        tool = next((t for t in tools if t.name == args.name), None)
        if tool is None:
            raise ConfigError(registry.unknown(args.name))
        tools = [tool]
    if args.json:
        data = [_tool_dict(t) for t in tools]
        print(json.dumps(data[0] if args.name else data, indent=2, ensure_ascii=False))
        return 0
    if not tools:
        print("no tools installed (pip install a realtalk-* plugin)")
    for tool in tools:
        print(f"{tool.name}  ({tool.origin}, {tool.handler_path})")
        print(f"  {tool.description}")
        if args.name:
            print("  parameters: " + json.dumps(tool.parameters, indent=2).replace("\n", "\n  "))
    return 0


def _agent_tools(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The installed tools with those of the ``--agent`` files' tool files (HTTP tools,
    Python modules), and the tools of their MCP servers, started once to list them.

    Raises:
        ConfigError: The agents have problems, or a server did not start.
    """
    from ..localtools import load_graph
    from ..toolsources import source_tools

    graph, plugins = load_graph(args.agent, block=args.no_plugin)
    if graph.problems:
        raise graph.problems[0]
    registry, failed, warnings = _probe(graph, plugins.registry)
    if failed:
        raise failed[0]
    for line in warnings:
        print(f"realtalk: warning: {line}", file=sys.stderr)
    return plugins.registry, source_tools(graph, registry)


# --- devices -------------------------------------------------------------------------------


def devices_command(json_output: bool = False) -> int:
    """Print the audio devices, one per line (or as JSON); return the exit code.

    Exit code 0 when at least one device exists; 1 (with one line on stderr saying what
    to do) when PortAudio is missing or finds no device.

    Args:
        json_output: Print a JSON array of device objects instead of a table.
    """
    from ..audio.devices import list_devices

    try:
        devices = list_devices()
    except AudioDeviceError as exc:
        if json_output:
            print("[]")
        print(f"realtalk: {exc}", file=sys.stderr)
        return 1
    if json_output:
        print(json.dumps([d.to_dict() for d in devices], indent=2))
    else:
        for d in devices:
            flags = ("<" if d.is_default_input else " ") + (">" if d.is_default_output else " ")
            print(
                f"{flags} {d.index:3d}  {d.name}  ({d.hostapi}, "
                f"{d.max_input_channels} in, {d.max_output_channels} out, "
                f"{d.default_samplerate:g} Hz)"
            )
        if devices:
            print(
                "< default input, > default output; use --input-device/--output-device INDEX or NAME"
            )
    if not devices:
        print(
            "realtalk: no audio devices found: use --input/--output FILE.wav, or --text",
            file=sys.stderr,
        )
        return 1
    return 0
