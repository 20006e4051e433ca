"""The argparse classes of the ``realtalk`` command: one-line usage errors, help as wide as
the terminal, and ``--version`` without a help formatter.

Imported when a command line is parsed, not with :mod:`realtalk.cli`: ``realtalk
--version`` alone is answered by :func:`realtalk.cli.main` before argparse is loaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__

__all__ = ["Formatter", "Parser", "VersionAction", "terminal_columns"]

EXIT_USAGE = 2  # as realtalk.cli.EXIT_USAGE (not imported from there: it imports this module)


def terminal_columns() -> int:
    """The terminal's width: ``shutil.get_terminal_size()``, without importing shutil (and
    zlib, bz2, lzma with it)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class Formatter(argparse.HelpFormatter):
    """argparse's help formatter, as wide as the terminal.

    argparse builds one for every ``add_argument``, and its own imports shutil to size it.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``realtalk: error: ...``, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)  # also for every command's parser
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"realtalk: error: {message} (see {self.prog} --help)\n")


class VersionAction(argparse.Action):
    """``--version``: print ``realtalk X.Y.Z`` and exit 0.

    argparse's own version action formats the line with a HelpFormatter, which imports
    shutil (and with it zlib, bz2, lzma) for the terminal width of a one-word line.
    """

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> NoReturn:
        sys.stdout.write(f"realtalk {__version__}\n")  # stdout, as argparse's own action
        parser.exit()
