"""The ``realtalk`` command. Thin: every command is a call into the modules it names.

Errors a user can cause end as one line on stderr and a non-zero exit, never a traceback:
bad option values are refused while parsing (exit 2, before anything connects), log
records are one line each unless ``-v``, and a closed stdout (``| head``) ends quietly.

Exit codes: 0 success, 1 error, 2 usage, 130 Ctrl-C, 141 stdout closed, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

from . import __version__
from .exceptions import ConfigError, RealtalkError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "main",
    "non_negative_int",
    "non_negative_number",
    "port_number",
    "positive_seconds",
    "readable_wav",
    "stdout_closed",
    "websocket_url",
    "writable_file",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), as a shell reports a process it interrupted."""
EXIT_BROKEN_PIPE = 141
"""Whoever read stdout stopped (``| head``): 128 + SIGPIPE, what ``yes | head`` reports."""
EXIT_TERMINATED = 143
"""SIGTERM (128 + 15), after closing sessions and files cleanly."""

_log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``realtalk: error: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"realtalk: error: {message} (see {self.prog} --help)\n")


# --- option values: checked while parsing, so nothing connects with a bad one ------------


def positive_seconds(text: str) -> float:
    """A finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return value


def non_negative_number(text: str) -> float:
    """A finite number, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of 0 or more, not {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of 0 or more, not {text!r}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}")
    return value


def websocket_url(text: str) -> str:
    """A ``ws://``, ``wss://`` (or ``http(s)://``) URL with a host and a valid port."""
    from .connection import redact_url

    # redact_url leaves a URL it cannot parse as it is: hide its userinfo here.
    shown = re.sub(r"//[^/]*@", "//***@", redact_url(text))
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        reason = str(exc)
        raise argparse.ArgumentTypeError(f"invalid URL {shown!r}: {reason[:1].lower()}{reason[1:]}") from None
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"not a WebSocket URL: {shown!r}; expected ws://host:port/path or wss://...")
    return text


def writable_file(*, make_parents: bool = False) -> Callable[[str], Path]:
    """A file path that can be created or replaced (``make_parents``: missing folders too)."""

    def check(text: str) -> Path:
        path = Path(text)
        if path.is_dir() or not path.name:
            raise argparse.ArgumentTypeError(f"{text} is a directory; give a file name in it")
        folder = path.parent
        if make_parents:
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
        if not folder.exists():
            raise argparse.ArgumentTypeError(f"cannot write {text}: folder {folder} does not exist")
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"cannot write {text}: {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied")
        return path

    return check


def readable_wav(text: str) -> Path:
    """A WAV file realtalk can read (exists, readable, a supported encoding)."""
    from .audio.wav import read_wav

    try:
        read_wav(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def _add_logging_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top parser and on every command, so that `realtalk -v run` and `realtalk run
    # -v` both work; a command's copy only sets the value when given (SUPPRESS).
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks on stderr",
                        **({"default": False} if top else default))
    parser.add_argument("--log-file", type=writable_file(), metavar="PATH",
                        help="append full log records, with tracebacks, to PATH", **default)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="realtalk",
        description="Voice and text agents on the OpenAI Realtime API.",
    )
    parser.add_argument("--version", action="version", version=f"realtalk {__version__}")
    parser.add_argument(
        "--no-plugin", action="append", default=[], metavar="NAME",
        help="do not load the plugin distribution NAME (repeatable)",
    )
    _add_logging_options(parser, top=True)
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

    _add_run_parser(sub)

    devices = sub.add_parser("devices", help="list audio input and output devices")
    devices.add_argument("--json", action="store_true", help="print JSON")

    emulator = sub.add_parser("emulator", help="serve a local Realtime API emulator")
    from .emulator import cli as emulator_cli

    emulator_cli.add_arguments(emulator)
    for command in sub.choices.values():
        _add_logging_options(command, top=False)
    return parser


def _add_run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run an agent: voice, text, or WAV files")
    run.add_argument("agent_path", type=Path, metavar="AGENT",
                     help="agent file, or a directory of agents with --agent NAME")
    run.add_argument("--agent", metavar="NAME", help="the agent to start with")
    mode = run.add_argument_group("what to do")
    mode.add_argument("--text", action="append", metavar="TEXT",
                      help="say TEXT, print the reply; repeat for several turns, then exit")
    mode.add_argument("--chat", action="store_true", help="an interactive text prompt")
    mode.add_argument("--json", action="store_true", help="print events as JSON lines")
    where = run.add_argument_group("where to connect (default: OpenAI, OPENAI_API_KEY)")
    target = where.add_mutually_exclusive_group()
    target.add_argument("--emulator", action="store_true",
                        help="start a built-in emulator (uses AGENT.scenario.yaml beside the agent)")
    target.add_argument("--url", type=websocket_url,
                        help="any server speaking the GA Realtime protocol (ws:// or wss://)")
    target.add_argument("--azure", action="store_true",
                        help="Azure OpenAI (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY)")
    where.add_argument("--model", help="model, or Azure deployment name (default: the agent's model)")
    where.add_argument("--beta", action="store_true", help="speak the legacy beta protocol (old servers only)")
    audio = run.add_argument_group("audio")
    audio.add_argument("--input", type=readable_wav, metavar="FILE.wav",
                       help="speak this WAV file instead of the mic")
    audio.add_argument("--output", type=writable_file(), metavar="FILE.wav",
                       help="save the assistant's audio here")
    audio.add_argument("--input-device", metavar="DEV", help="microphone (index or name; see realtalk devices)")
    audio.add_argument("--output-device", metavar="DEV", help="speaker (index or name)")
    audio.add_argument("--fast", action="store_true", help="send --input without real-time pacing")
    audio.add_argument("--echo", choices=["headphones", "half-duplex"],
                       help="headphones: full duplex; half-duplex: mute the mic while the assistant speaks")
    other = run.add_argument_group("other")
    other.add_argument("--approve", choices=["ask", "all", "none"],
                       help="requires_approval tools: ask on the terminal (default when interactive),"
                            " approve all, or refuse all (default otherwise)")
    other.add_argument("--record", type=writable_file(make_parents=True), metavar="FILE.jsonl",
                       help="write every event, timestamped (missing folders are created)")
    other.add_argument("--record-audio", action="store_true", help="keep audio payloads in --record")
    other.add_argument("--timeout", type=positive_seconds, default=120.0, metavar="S",
                       help="seconds per turn (120)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used as the console script)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    with _logging(verbose=args.verbose, log_file=args.log_file):
        try:
            code = _COMMANDS[args.command](args)
            sys.stdout.flush()  # here, not at exit, where a closed pipe would be a traceback
            return code
        except BrokenPipeError:
            return stdout_closed()
        except (RealtalkError, TimeoutError, OSError) as exc:
            # The traceback is for -v and --log-file; the console gets one line.
            _log.debug("%s failed", args.command, exc_info=True)
            message = str(exc) if isinstance(exc, RealtalkError) else _os_message(exc)
            print(f"realtalk: error: {message}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED


def _os_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def stdout_closed() -> int:
    """Stop writing to a stdout nobody reads any more; returns :data:`EXIT_BROKEN_PIPE`.

    Points stdout at ``/dev/null`` so that Python's final flush does not complain.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


# --- logging -----------------------------------------------------------------------------


class _OneLine(logging.Formatter):
    """``realtalk: warning: message (ValueError: detail)``: one line, no traceback."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message += f" ({type(exc).__name__}: {exc})" if str(exc) else f" ({type(exc).__name__})"
        return " ".join(f"realtalk: {record.levelname.lower()}: {message}".split("\n"))


@contextlib.contextmanager
def _logging(*, verbose: bool, log_file: Path | None) -> Iterator[None]:
    """Log to stderr (one line per record, or everything with ``verbose``) and to a file."""
    root = logging.getLogger()
    ours = logging.getLogger("realtalk")
    console = logging.StreamHandler(sys.stderr)
    if verbose:
        console.setLevel(logging.DEBUG)
        console.setFormatter(logging.Formatter("realtalk: %(levelname)s: %(name)s: %(message)s"))
    else:
        console.setLevel(logging.WARNING)
        console.setFormatter(_OneLine())
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        file = logging.FileHandler(log_file, encoding="utf-8")
        file.setLevel(logging.DEBUG)
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file)
    saved = ours.level
    if verbose or log_file is not None:
        ours.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        ours.setLevel(saved)


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
        profile: Literal["ga", "beta"] = "beta" if args.beta else "ga"
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


def _cmd_emulator(args: argparse.Namespace) -> int:
    from .emulator import cli as emulator_cli

    return emulator_cli.run(args)


def _cmd_devices(args: argparse.Namespace) -> int:
    from .audio import devices_command

    return devices_command(args.json)


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from .run_command import run_command

    return asyncio.run(run_command(args))


_COMMANDS = {
    "run": _cmd_run,
    "devices": _cmd_devices,
    "check": _cmd_check,
    "plugins": _cmd_plugins,
    "tools": _cmd_tools,
    "emulator": _cmd_emulator,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
