"""Option values of the ``realtalk`` command, checked while parsing.

Each is an argparse ``type=``: it returns the value or raises ``ArgumentTypeError`` with
what was wrong, so a bad value is one usage line (exit 2) and nothing connects with it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..pricing import Price

__all__ = [
    "env_prices",
    "non_negative_int",
    "non_negative_number",
    "port_number",
    "positive_seconds",
    "price_file",
    "readable_wav",
    "tool_file",
    "websocket_url",
    "writable_file",
]


_N = TypeVar("_N", int, float)


def _number(text: str, parse: Callable[[str], _N], ok: Callable[[_N], bool], what: str) -> _N:
    """``parse(text)`` if it parses and ``ok`` accepts it; otherwise "must be ``what``"."""
    try:
        value: _N | None = parse(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds above zero."""
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a number of seconds above 0")


def non_negative_number(text: str) -> float:
    """A finite number, 0 or more."""
    return _number(text, float, lambda v: math.isfinite(v) and v >= 0, "a number of 0 or more")


def non_negative_int(text: str) -> int:
    """A whole number, 0 or more."""
    return _number(text, int, lambda v: v >= 0, "a whole number of 0 or more")


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    return _number(text, int, lambda v: 0 <= v <= 65535, "a port number from 0 to 65535")


def websocket_url(text: str) -> str:
    """A ``ws://``, ``wss://`` (or ``http(s)://``) URL with a host and a valid port."""
    from ..connection import redact_url

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
    from ..audio.wav import read_wav

    try:
        read_wav(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def tool_file(text: str) -> Path:
    """A tool file that exists: a tools YAML (``.yaml``, ``.yml``) or a Python module (``.py``)."""
    path = Path(text)
    if path.suffix not in (".yaml", ".yml", ".py"):
        raise argparse.ArgumentTypeError(
            f"{text} is not a tool file: give a tools YAML (.yaml, .yml) or a Python module (.py)")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such tool file: {text}")
    return path


def price_file(text: str) -> dict[str, Price | None]:
    """A price file (YAML or JSON, docs/usage.md): the built-in price table updated by it."""
    from ..pricing import load_prices

    try:
        return load_prices(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def env_prices(environ: Mapping[str, str] = os.environ) -> dict[str, Price | None] | None:
    """The price table of the file ``REALTALK_PRICES`` names, or None when it names none.

    Raises:
        ConfigError: The file is invalid (``REALTALK_PRICES: FILE:LINE: $.KEY: ...``).
    """
    path = environ.get("REALTALK_PRICES", "").strip()
    if not path:
        return None
    from ..pricing import load_prices

    try:
        return load_prices(path)
    except ConfigError as exc:
        raise ConfigError(f"REALTALK_PRICES: {exc}") from None
