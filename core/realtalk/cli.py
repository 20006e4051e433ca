"""The ``realtalk`` command. Thin: every command is a call into the modules it names.

Errors a user can cause end as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .exceptions import ConfigError, RealtalkError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtalk",
        description="Voice and text agents on the OpenAI Realtime API.",
    )
    parser.add_argument("--version", action="version", version=f"realtalk {__version__}")
    parser.add_argument(
        "--no-plugin", action="append", default=[], metavar="NAME",
        help="do not load the plugin distribution NAME (repeatable)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="validate agents, scenarios, tools and handoffs")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                       help="agent or scenario files, or directories of them")
    check.add_argument("--print", action="store_true", dest="print_update",
                       help="print the session.update event of each agent as JSON")
    check.add_argument("--beta", action="store_true",
                       help="with --print: the beta-profile shape instead of GA")

    plugins = sub.add_parser("plugins", help="list installed plugins and their tools")
    plugins.add_argument("--json", action="store_true", help="print JSON")

    tools = sub.add_parser("tools", help="list installed tools with schema and origin")
    tools.add_argument("name", nargs="?", help="show one tool")
    tools.add_argument("--json", action="store_true", help="print JSON")

    emulator = sub.add_parser("emulator", help="serve a local Realtime API emulator")
    from .emulator import cli as emulator_cli

    emulator_cli.add_arguments(emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used as the console script)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        handler = _COMMANDS[args.command]
        return handler(args)
    except RealtalkError as exc:
        print(f"realtalk: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _load_plugins(args: argparse.Namespace) -> Any:
    from .plugins import load_plugins

    return load_plugins(block=args.no_plugin)


# --- check -------------------------------------------------------------------------------


def _is_scenario(path: Path) -> bool:
    return path.name.endswith((".scenario.yaml", ".scenario.yml"))


def _cmd_check(args: argparse.Namespace) -> int:
    from .agents import load_agents
    from .protocol.session_config import build_session_update

    plugins = _load_plugins(args)
    agent_paths: list[Path] = []
    scenario_files: list[Path] = []
    for path in args.paths:
        if path.is_dir():
            agent_paths.append(path)
            scenario_files += sorted(p for p in path.iterdir() if _is_scenario(p))
        elif _is_scenario(path):
            scenario_files.append(path)
        else:
            agent_paths.append(path)

    errors: list[str] = [str(p) for p in plugins.problems]
    graph = load_agents(agent_paths, plugins.registry) if agent_paths else None
    warnings: list[str] = []
    if graph is not None:
        errors += [str(p) for p in graph.problems]
        warnings += [_as_warning(w) for w in graph.warnings]
    if scenario_files:
        from .emulator.scenario import check_scenario_file

        for file in scenario_files:
            errors += [str(p) for p in check_scenario_file(file)]

    for line in errors:
        print(line)
    for line in warnings:
        print(line)
    if errors:
        print(f"realtalk: {len(errors)} error(s)", file=sys.stderr)
        return 1
    if args.print_update and graph is not None:
        profile = "beta" if args.beta else "ga"
        for agent in (graph.agents[name] for name in graph.roots):
            event = build_session_update(agent, graph.tools_for(agent, plugins.registry), profile=profile)
            print(json.dumps(event, indent=2, ensure_ascii=False))
    else:
        count = len(graph.agents) if graph else 0
        print(f"ok: {count} agent(s), {len(scenario_files)} scenario(s) checked", file=sys.stderr)
    return 0


def _as_warning(problem: ConfigError) -> str:
    where = f"{problem.file}:{problem.line}: " if problem.file else ""
    return f"{where}warning: {problem.message}"


# --- plugins and tools -------------------------------------------------------------------


def _cmd_plugins(args: argparse.Namespace) -> int:
    plugins = _load_plugins(args)
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


def _cmd_tools(args: argparse.Namespace) -> int:
    registry = _load_plugins(args).registry
    tools = list(registry)
    if args.name:
        tool = registry.get(args.name)
        if tool is None:
            raise ConfigError(
                f"unknown tool {args.name!r}{registry.suggest(args.name)}; available:"
                f" {registry.describe_available()}"
            )
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


def _cmd_emulator(args: argparse.Namespace) -> int:
    from .emulator import cli as emulator_cli

    return emulator_cli.run(args)


_COMMANDS = {
    "check": _cmd_check,
    "plugins": _cmd_plugins,
    "tools": _cmd_tools,
    "emulator": _cmd_emulator,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
