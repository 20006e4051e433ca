"""The ``realtalk`` command: its parser and :func:`main`. Thin: every command is a call into
the module that carries it out, imported only when that command runs, so ``realtalk
--version`` loads no runtime:

- ``transcribe.py``: ``realtalk transcribe`` (speech to text, no agent);
- ``run.py``: ``realtalk run``, the mode and the run; ``interactive.py`` (chat prompt,
  voice loop, approval prompt) and ``console.py`` (what a person sees) serve it;
- ``check.py``: ``realtalk check``, ``plugins`` and ``tools``;
- ``devices.py``: ``realtalk devices``; ``emulator.py``: ``realtalk emulator``;
- ``serve.py``: ``realtalk serve`` (Starlette and uvicorn, imported only when it runs);
- ``options.py``: option values, checked while parsing; ``parser.py``: the argparse classes.

``realtalk --version`` alone is answered before argparse (or anything else) is imported.
Plugins' commands (the ``register_commands`` hook) are loaded only when the command line
names no built-in command (``realtalk``, ``realtalk --help``, a plugin's command), so the
built-in commands start no slower for them.

A name in ``--no-plugin`` or ``REALTALK_PLUGINS`` that is no installed plugin
distribution is a usage error naming it and listing the installed ones.

Errors a user can cause end as one line on stderr and a non-zero exit, never a traceback:
bad option values are refused while parsing (exit 2, before anything connects), log
records are one line each unless ``-v``, and a closed stdout (``| head``) ends quietly.

Exit codes: 0 success, 1 error, 2 usage, 130 Ctrl-C, 141 stdout closed, 143 SIGTERM.
"""

from __future__ import annotations

import os
import sys

from .. import __version__
from ..exceptions import RealtalkError

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

# Not typing.TYPE_CHECKING, and argparse, pathlib, logging and the option checks only where
# they are used: `realtalk --version` imports none of them. Type checkers take any constant
# of this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import logging
    from collections.abc import Callable, Collection, Mapping, Sequence
    from pathlib import Path
    from typing import Any

    from ..plugins import PluginCommand
    from .options import (
        non_negative_int,
        non_negative_number,
        port_number,
        positive_seconds,
        readable_wav,
        websocket_url,
        writable_file,
    )

_OPTIONS = ("non_negative_int", "non_negative_number", "port_number", "positive_seconds", "readable_wav",
            "websocket_url", "writable_file")


def __getattr__(name: str) -> object:
    # The option checks are re-exported here, loaded on first use (they import argparse).
    if name in _OPTIONS:
        from . import options

        return getattr(options, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), as a shell reports a process it interrupted."""
EXIT_BROKEN_PIPE = 141
"""Whoever read stdout stopped (``| head``): 128 + SIGPIPE, what ``yes | head`` reports."""
EXIT_TERMINATED = 143
"""SIGTERM (128 + 15), after closing sessions and files cleanly."""


def _add_logging_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top parser and on every command, so that `realtalk -v run` and `realtalk run
    # -v` both work; a command's copy only sets the value when given (SUPPRESS).
    import argparse

    from .options import writable_file

    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks on stderr",
                        **({"default": False} if top else default))
    parser.add_argument("--log-file", type=writable_file(), metavar="PATH",
                        help="append full log records, with tracebacks, to PATH", **default)


def _parser(*, commands: Collection[str] | None = None,
            plugin_commands: Mapping[str, PluginCommand] | None = None) -> argparse.ArgumentParser:
    """The parser, with every command's options, or only those of ``commands``.

    ``plugin_commands`` are added after the built-in ones; a plugin's ``configure`` runs
    only when its command is chosen, and one that raises is a one-line error naming it.

    :func:`main` passes the words of the command line: a command is chosen only by a word
    equal to its name, so the others need no options (``--help`` lists every command
    either way). ``realtalk --version`` then builds no command's options, and imports no
    ``cli/emulator.py`` (asyncio).
    """
    from pathlib import Path

    from .parser import Parser, VersionAction

    parser = Parser(
        prog="realtalk",
        description="Voice and text agents on the OpenAI Realtime API.",
    )
    parser.add_argument("--version", action=VersionAction, help="show program's version number and exit")
    parser.add_argument(
        "--no-plugin", action="append", default=[], metavar="NAME",
        help="do not load the plugin distribution NAME (repeatable)",
    )
    _add_logging_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser("check", help="validate agents, scenarios, tools and handoffs")
    plugins = sub.add_parser("plugins", help="list installed plugins and their tools")
    tools = sub.add_parser("tools", help="list installed tools with schema and origin")
    run = sub.add_parser("run", help="run an agent: voice, text, or WAV files")
    transcribe = sub.add_parser("transcribe", help="speech to text from the microphone or a WAV file (no agent)")
    devices = sub.add_parser("devices", help="list audio input and output devices")
    emulator = sub.add_parser("emulator", help="serve a local Realtime API emulator")
    serve = sub.add_parser("serve", help="serve agents to browsers and phones (the serve extra)")
    new = sub.add_parser("new", help="start a plugin distribution or an agent from a template")
    install = sub.add_parser("install", help="pip install plugins into the environment realtalk runs in")
    uninstall = sub.add_parser("uninstall", help="pip uninstall from the environment realtalk runs in")
    for command in (plugin_commands or {}).values():
        sub.add_parser(command.name, help=f"{command.help} [{command.info.origin.strip()}]")
    wanted = set(sub.choices) if commands is None else set(sub.choices) & set(commands)

    if "check" in wanted:
        check.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                           help="agent or scenario files, or directories of them")
        check.add_argument("--print", action="store_true", dest="print_update",
                           help="print the session.update event of each agent as JSON")
        check.add_argument("--beta", action="store_true",
                           help="with --print: the beta-profile shape instead of GA")
        from .options import tool_file

        check.add_argument("--tools", action="append", type=tool_file, default=[], metavar="PATH",
                           help="a tool file (tools YAML or Python module) every agent may use (repeatable)")
        check.add_argument("--no-mcp", action="store_true",
                           help="do not start the agents' MCP servers to check their tools")
    if "plugins" in wanted:
        plugins.add_argument("--json", action="store_true", help="print JSON")
    if "tools" in wanted:
        tools.add_argument("name", nargs="?", help="show one tool")
        tools.add_argument("--json", action="store_true", help="print JSON")
        tools.add_argument("--agent", action="append", type=Path, default=[], metavar="PATH",
                           help="also list this agent's tools: its tool files' and its MCP servers' (starting"
                                " them to ask); repeatable")
    if "run" in wanted:
        _add_run_arguments(run)
    if "transcribe" in wanted:
        from .transcribe import add_arguments as add_transcribe_arguments

        add_transcribe_arguments(transcribe)
    if "devices" in wanted:
        devices.add_argument("--json", action="store_true", help="print JSON")
    if "emulator" in wanted:
        from .emulator import add_arguments

        add_arguments(emulator)
    if "serve" in wanted:
        from .serve import add_arguments as add_serve_arguments

        add_serve_arguments(serve)
    if "new" in wanted:
        from . import new as new_module

        new_module.add_arguments(new)
    if "install" in wanted or "uninstall" in wanted:
        from .install import add_install_arguments, add_uninstall_arguments

        add_install_arguments(install)
        add_uninstall_arguments(uninstall)
    for name in sorted(wanted & set(plugin_commands or {})):
        _configure_plugin_command((plugin_commands or {})[name], sub.choices[name])
    for name in wanted:
        _add_logging_options(sub.choices[name], top=False)
    return parser


def _configure_plugin_command(command: PluginCommand, parser: argparse.ArgumentParser) -> None:
    if command.configure is None:
        return
    try:
        command.configure(parser)
    except Exception as exc:  # a plugin's bug: one line naming it
        import logging

        logging.getLogger(__name__).debug("configure of %s failed", command.name, exc_info=True)
        raise _PluginCommandFailed(command, "configure", exc) from None


class _PluginCommandFailed(Exception):
    """A plugin's command raised: ``plugin realtalk-x 1.0: command 'x' failed (run): ...``."""

    def __init__(self, command: PluginCommand, step: str, exc: BaseException) -> None:
        super().__init__(f"plugin {command.info.origin.strip()}: command {command.name!r} failed ({step}):"
                         f" {type(exc).__name__}: {exc}")


def _plugin_commands(argv: Sequence[str]) -> dict[str, PluginCommand]:
    """The commands plugins add, when ``argv`` names no built-in command (else none, and
    no plugin is loaded). A plugin command that cannot be added is one line on stderr."""
    words: list[str] = []
    blocked: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in ("--no-plugin", "--log-file"):
            value = next(args, "")
            if arg == "--no-plugin":
                blocked.append(value)
        elif arg.startswith("--no-plugin="):
            blocked.append(arg.partition("=")[2])
        elif arg == "--":
            words.append(next(args, ""))
            break
        elif not arg.startswith("-"):
            words.append(arg)
            break
    if words and words[0] in _COMMANDS:
        return {}
    from ..plugins import load_commands

    commands, problems = load_commands(block=blocked)
    for problem in problems:
        print(f"realtalk: error: {problem}", file=sys.stderr)
    return commands


def _unknown_plugin_names(no_plugin: Sequence[str]) -> str | None:
    """The usage error for names in ``--no-plugin`` or ``REALTALK_PLUGINS`` that are no
    installed plugin distribution, or None (discovery is read only when names are given)."""
    allowed = os.environ.get("REALTALK_PLUGINS")
    if not no_plugin and not (allowed or "").strip():
        return None
    from ..plugins import installed_distributions, unknown_names

    installed = installed_distributions()
    lines = unknown_names(no_plugin, installed, given_as="--no-plugin")
    lines += unknown_names((allowed or "").split(","), installed, given_as="REALTALK_PLUGINS")
    return lines[0] if lines else None


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    from pathlib import Path

    from .options import positive_seconds, readable_wav, websocket_url, writable_file

    run.add_argument("agent_path", type=Path, metavar="AGENT",
                     help="agent file, or a directory of agents with --agent NAME")
    run.add_argument("--agent", metavar="NAME", help="the agent to start with")
    mode = run.add_argument_group("what to do")
    mode.add_argument("--text", action="append", metavar="TEXT",
                      help="say TEXT, print the reply; repeat for several turns, then exit")
    mode.add_argument("--chat", action="store_true", help="an interactive text prompt")
    mode.add_argument("--image", action="append", type=Path, metavar="FILE",
                      help="with --text or --chat: put this PNG or JPEG image into the conversation"
                           " first; repeat for several")
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
    where.add_argument("--scenario", type=Path, metavar="FILE",
                       help="with --emulator: the scenario to play (default: AGENT.scenario.yaml beside the agent)")
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
                       help="requires_approval tools and hosted MCP calls: ask on the terminal (default"
                            " when interactive), approve all, or refuse all (default otherwise)")
    other.add_argument("--record", type=writable_file(make_parents=True), metavar="FILE.jsonl",
                       help="write every event, timestamped (missing folders are created)")
    other.add_argument("--record-audio", action="store_true", help="keep audio payloads in --record")
    from .options import tool_file

    other.add_argument("--tools", action="append", type=tool_file, default=[], metavar="PATH",
                       help="a tool file (tools YAML or Python module) every agent may use (repeatable)")
    other.add_argument("--timeout", type=positive_seconds, default=120.0, metavar="S",
                       help="seconds per turn (120)")
    from .options import price_file

    other.add_argument("--prices", type=price_file, metavar="FILE",
                       help="a price file (YAML or JSON) for the cost estimates (default: REALTALK_PRICES,"
                            " else the built-in table; docs/usage.md)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used as the console script)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # what the parser would print, without importing argparse
        sys.stdout.write(f"realtalk {__version__}\n")
        return 0
    plugin_commands = _plugin_commands(argv)
    try:
        parser = _parser(commands=argv, plugin_commands=plugin_commands)
    except _PluginCommandFailed as exc:
        print(f"realtalk: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    unknown = _unknown_plugin_names(args.no_plugin)
    if unknown is not None:
        print(f"realtalk: error: {unknown}", file=sys.stderr)
        return EXIT_USAGE
    stop_logging = _start_logging(verbose=args.verbose, log_file=args.log_file)
    try:
        try:
            if args.command in _COMMANDS:
                code = _COMMANDS[args.command](args)
            else:
                code = _run_plugin_command(plugin_commands[args.command], args)
            sys.stdout.flush()  # here, not at exit, where a closed pipe would be a traceback
            return code
        except BrokenPipeError:
            return stdout_closed()
        except _PluginCommandFailed as exc:
            print(f"realtalk: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except (RealtalkError, TimeoutError, OSError) as exc:
            import logging

            # The traceback is for -v and --log-file; the console gets one line.
            logging.getLogger(__name__).debug("%s failed", args.command, exc_info=True)
            message = str(exc) if isinstance(exc, RealtalkError) else _os_message(exc)
            print(f"realtalk: error: {message}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    finally:
        stop_logging()


def _run_plugin_command(command: PluginCommand, args: argparse.Namespace) -> int:
    """Run a plugin's command: realtalk's own errors are one line as for any command;
    anything else it raises is one line naming the plugin (traceback with ``-v``)."""
    try:
        code = command.run(args)
    except (RealtalkError, OSError, BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a plugin's bug: one line naming it
        import logging

        logging.getLogger(__name__).debug("command %s failed", command.name, exc_info=True)
        raise _PluginCommandFailed(command, "run", exc) from None
    return 0 if code is None else int(code)


def _os_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def stdout_closed() -> int:
    """Stop writing to a stdout nobody reads any more; returns :data:`EXIT_BROKEN_PIPE`.

    Points stdout at ``/dev/null`` so that Python's final flush does not complain.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


# --- logging -----------------------------------------------------------------------------


def _one_line(record: logging.LogRecord) -> str:
    """``realtalk: warning: message (ValueError: detail)``: one line, no traceback."""
    message = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        message += f" ({type(exc).__name__}: {exc})" if str(exc) else f" ({type(exc).__name__})"
    return " ".join(f"realtalk: {record.levelname.lower()}: {message}".split("\n"))


def _start_logging(*, verbose: bool, log_file: Path | None) -> Callable[[], None]:
    """Log to stderr (one line per record, or everything with ``verbose``) and to a file;
    returns what undoes it."""
    import logging  # here, not at the top: `realtalk --version` does not log

    class OneLine(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return _one_line(record)

    root = logging.getLogger()
    ours = logging.getLogger("realtalk")
    console = logging.StreamHandler(sys.stderr)
    if verbose:
        console.setLevel(logging.DEBUG)
        console.setFormatter(logging.Formatter("realtalk: %(levelname)s: %(name)s: %(message)s"))
    else:
        console.setLevel(logging.WARNING)
        console.setFormatter(OneLine())
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

    def stop() -> None:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        ours.setLevel(saved)

    return stop


# --- commands: each imports its module when it runs -------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    from .commands import check_command

    return check_command(args)


def _cmd_plugins(args: argparse.Namespace) -> int:
    from .commands import plugins_command

    return plugins_command(args)


def _cmd_tools(args: argparse.Namespace) -> int:
    from .commands import tools_command

    return tools_command(args)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from . import emulator

    return emulator.run(args)


def _cmd_devices(args: argparse.Namespace) -> int:
    from .commands import devices_command

    return devices_command(args.json)


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from .run import run_command

    return asyncio.run(run_command(args))


def _cmd_transcribe(args: argparse.Namespace) -> int:
    import asyncio

    from .transcribe import transcribe_command

    return asyncio.run(transcribe_command(args))


def _cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve_command

    return serve_command(args)


def _cmd_new(args: argparse.Namespace) -> int:
    from .new import new_command

    return new_command(args)


def _cmd_install(args: argparse.Namespace) -> int:
    from .install import install_command

    return install_command(args)


def _cmd_uninstall(args: argparse.Namespace) -> int:
    from .install import uninstall_command

    return uninstall_command(args)


_COMMANDS = {
    "run": _cmd_run,
    "transcribe": _cmd_transcribe,
    "devices": _cmd_devices,
    "check": _cmd_check,
    "plugins": _cmd_plugins,
    "tools": _cmd_tools,
    "emulator": _cmd_emulator,
    "serve": _cmd_serve,
    "new": _cmd_new,
    "install": _cmd_install,
    "uninstall": _cmd_uninstall,
}
