"""``realtalk install PKG...`` and ``realtalk uninstall PKG...``: pip, in realtalk's own
environment.

Both run ``sys.executable -m pip``, the pip of the Python realtalk runs in, so a user who
installed realtalk with pipx (or in any virtual environment) adds plugins where realtalk
finds them. pip's output goes straight to the terminal, and its exit code is the
command's. Ctrl-C and SIGTERM are forwarded to pip; should pip still run
:data:`STOP_GRACE_S` seconds later, it is killed, and the command exits 130 or 143 like
every other command.

After an install, what pip installed (its ``--report``) is looked up in a fresh
interpreter (``realtalk plugins --json``: a new ``.pth`` of an editable install is only
read at start-up): each new plugin is listed with its tools, and a warning names a
requested distribution that registered nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from ..exceptions import RealtalkError
from . import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE

__all__ = ["STOP_GRACE_S", "add_install_arguments", "add_uninstall_arguments", "install_command",
           "run_pip", "uninstall_command"]

STOP_GRACE_S = 10.0
"""How long pip may take to stop after a forwarded Ctrl-C or SIGTERM before it is killed."""
_LIST_TIMEOUT_S = 120.0  # listing the plugins after an install (imports every plugin)
_PIP_WITH_REPORT = (22, 2)  # pip install --report


def add_install_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``realtalk install``'s arguments (those passed through to pip) to ``parser``."""
    parser.add_argument("packages", nargs="*", metavar="PKG",
                        help="what pip installs: a name, a path, a wheel, a git+https:// URL")
    parser.add_argument("-e", "--editable", action="append", default=[], metavar="PATH",
                        help="install the project at PATH in editable mode (repeatable)")
    parser.add_argument("-U", "--upgrade", action="store_true", help="upgrade to the newest version")
    parser.add_argument("--force-reinstall", action="store_true", help="reinstall even if up to date")
    parser.add_argument("--no-cache-dir", action="store_true", help="do not use pip's cache")
    parser.add_argument("--pre", action="store_true", help="also consider pre-releases")


def add_uninstall_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``realtalk uninstall``'s arguments to ``parser``."""
    parser.add_argument("packages", nargs="+", metavar="PKG", help="distribution names")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def install_command(args: argparse.Namespace) -> int:
    """``realtalk install``: pip install, then list what the new distributions registered."""
    if not args.packages and not args.editable:
        print("realtalk: error: install needs a PKG or -e PATH (see realtalk install --help)",
              file=sys.stderr)
        return EXIT_USAGE
    pip_version = _pip_version()
    options = [flag for flag, given in (("--upgrade", args.upgrade), ("--force-reinstall", args.force_reinstall),
                                        ("--no-cache-dir", args.no_cache_dir), ("--pre", args.pre)) if given]
    for path in args.editable:
        options += ["--editable", path]
    with tempfile.TemporaryDirectory(prefix="realtalk-install-") as folder:
        report = Path(folder) / "report.json"
        if pip_version >= _PIP_WITH_REPORT:
            options += ["--report", str(report)]
        code = run_pip(["install", *options, *args.packages])
        installed = _read_report(report) if code == 0 else None
    if installed is not None:
        _show_installed(installed, block=args.no_plugin)
    elif code == 0:
        print(f"realtalk: warning: pip {'.'.join(map(str, pip_version))} cannot report what it"
              " installed (pip 22.2 or later can): see realtalk plugins", file=sys.stderr)
    return code


def uninstall_command(args: argparse.Namespace) -> int:
    """``realtalk uninstall``: pip uninstall (asking first, unless ``-y``)."""
    _pip_version()
    return run_pip(["uninstall", *(["--yes"] if args.yes else []), *args.packages])


# --- running pip -------------------------------------------------------------------------


def _pip_version() -> tuple[int, ...]:
    """The version of the pip that ``sys.executable -m pip`` runs.

    Raises:
        RealtalkError: this Python has no pip (as in environments made by uv, or pipx's
            without its shared pip).
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("pip")
    except PackageNotFoundError:
        raise RealtalkError(f"pip is not installed in the Python realtalk runs in ({sys.executable});"
                            f" add it with: {sys.executable} -m ensurepip") from None
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


class _Signalled(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: FrameType | None) -> None:
    raise _Signalled(signum)


def run_pip(arguments: list[str]) -> int:
    """Run ``sys.executable -m pip ARGUMENTS`` with this terminal; returns its exit code.

    Ctrl-C and SIGTERM are forwarded to pip; if pip has not stopped :data:`STOP_GRACE_S`
    seconds later (or at a second signal) it is killed. When this process was signalled,
    the code is 130 (Ctrl-C) or 143 (SIGTERM), whatever pip returned; a pip killed by a
    signal otherwise gives 128 + that signal, as a shell reports it.
    """
    command = [sys.executable, "-m", "pip", *arguments]
    environment = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    received: int | None = None
    previous = {signum: signal.signal(signum, _raise_signalled) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            process = subprocess.Popen(command, env=environment)
        except _Signalled as signalled:
            return _signal_exit(signalled.signum)
        while True:
            try:
                code = process.wait(timeout=None if received is None else STOP_GRACE_S)
                break
            except _Signalled as signalled:
                if received is None:
                    received = signalled.signum
                    _send(process, signalled.signum)
                else:  # a second signal: stop now
                    process.kill()
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received is not None:
        return _signal_exit(received)
    return 128 - code if code < 0 else code


def _send(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:  # already gone
        pass


def _signal_exit(signum: int) -> int:
    return EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED


# --- what the install brought ------------------------------------------------------------


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _read_report(report: Path) -> list[dict[str, Any]] | None:
    """``(name, version, requested)`` of each distribution pip's report says it installed."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    items = data.get("install") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return [{"name": str(item["metadata"]["name"]), "version": str(item["metadata"]["version"]),
             "requested": bool(item.get("requested"))}
            for item in items if isinstance(item, dict) and isinstance(item.get("metadata"), dict)]


def _show_installed(installed: list[dict[str, Any]], *, block: list[str]) -> None:
    """Print the tools of each newly installed plugin; warn about what registered nothing."""
    if not installed:
        return  # pip said everything was already installed
    command = [sys.executable, "-m", "realtalk.cli", *[f"--no-plugin={name}" for name in block],
               "plugins", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=_LIST_TIMEOUT_S, check=False)
    try:
        plugins = {_normal(p["distribution"]): p for p in json.loads(result.stdout)}
    except (ValueError, TypeError, KeyError):
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RealtalkError(f"installed, but listing the plugins failed: {detail[0]}") from None
    new = {_normal(item["name"]) for item in installed}
    for item in installed:
        plugin = plugins.get(_normal(item["name"]))
        origin = f"{item['name']} {item['version']}"
        if plugin is None:
            if item["requested"]:
                print(f"realtalk: warning: {origin} registered nothing: it has no entry point in"
                      " the 'realtalk' group, so it is not a realtalk plugin", file=sys.stderr)
        elif plugin["error"]:
            print(f"realtalk: warning: {origin} failed to load: {plugin['error']}", file=sys.stderr)
        elif plugin["tools"]:
            print(f"{origin}: tools {', '.join(plugin['tools'])}")
        else:
            hooks = ", ".join(plugin["hooks"]) or "none"
            print(f"realtalk: warning: {origin} registered no tools (hooks: {hooks})", file=sys.stderr)
    # Problems that name a new distribution (a tool name another plugin took, ...).
    for line in result.stderr.splitlines():
        if any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", _normal(line)) for name in new):
            print(line, file=sys.stderr)
