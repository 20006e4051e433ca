"""Secrets by reference: ``${NAME}`` in a YAML value is read from the environment.

HTTP tools, MCP servers and hosted MCP tools take API keys and tokens this way, so that
no file holds one. The rules, shared by all three:

- ``${NAME}`` is replaced by the environment variable ``NAME``; ``${NAME:-default}``
  falls back to ``default`` when ``NAME`` is unset or empty. ``$${`` is a literal ``${``.
- :func:`env_names` lists the names a value uses (``realtalk check`` warns about unset
  ones; running refuses them, naming the variable and where it is used).
- Every value read from the environment is a secret: :func:`expand` returns the values
  it used, and :func:`redact` replaces them in any text (a tool output, an error, a log
  line) with ``[redacted]`` before that text reaches the model, the console, ``--json``
  or a recording.

Plain functions of strings and a mapping: no I/O besides reading ``os.environ`` when no
mapping is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["REDACTED", "Expanded", "MissingEnv", "env_names", "expand", "names_without_default", "redact",
           "reference_problem", "unset_names"]

REDACTED = "[redacted]"
# ${NAME} or ${NAME:-default}; $${ escapes a literal ${.
_REF = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_BROKEN = re.compile(r"(?<!\$)\$\{(?![A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})")
# Shorter values are not redacted: replacing "1" or "ab" everywhere would garble text
# without hiding anything worth hiding.
_MIN_SECRET = 4


class MissingEnv(ValueError):
    """A value refers to an environment variable that is not set (and has no default)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"environment variable {name} is not set")
        self.name = name


@dataclass(frozen=True)
class Expanded:
    """A value with its references replaced, and the secrets that went into it."""

    value: str
    secrets: tuple[str, ...]


def reference_problem(text: str) -> str | None:
    """What is wrong with the ``${...}`` references in ``text`` (one line), or None."""
    broken = _BROKEN.search(text)
    if broken is not None:
        return (f"malformed reference at {text[broken.start():broken.start() + 20]!r}:"
                " write ${NAME} or ${NAME:-default} (NAME: letters, digits, _)")
    return None


def env_names(text: str) -> list[str]:
    """The environment variables ``text`` refers to, in order, without repeats."""
    names = [m["name"] for m in _REF.finditer(text) if m["name"]]
    return list(dict.fromkeys(names))


def names_without_default(text: str) -> list[str]:
    """The variables ``text`` needs set: those referred to without a ``:-default``."""
    names = [m["name"] for m in _REF.finditer(text) if m["name"] and m["default"] is None]
    return list(dict.fromkeys(names))


def unset_names(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The variables ``text`` needs (no ``:-default``) that are unset or empty in
    ``environ`` (default ``os.environ``): what :func:`expand` would refuse."""
    env = os.environ if environ is None else environ
    return [name for name in names_without_default(text) if not env.get(name)]


def expand(text: str, environ: Mapping[str, str] | None = None) -> Expanded:
    """``text`` with every ``${NAME}`` replaced from ``environ`` (default ``os.environ``).

    Raises:
        MissingEnv: A variable without a default is unset or empty.
    """
    env = os.environ if environ is None else environ
    secrets: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match["name"]
        if name is None:  # $${
            return "${"
        found = env.get(name, "")
        if found:
            secrets.append(found)
            return found
        if match["default"] is not None:
            return match["default"]
        raise MissingEnv(name)

    return Expanded(_REF.sub(value, text), tuple(dict.fromkeys(secrets)))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and its URL-encoded form) replaced by ``[redacted]``."""
    from urllib.parse import quote, quote_plus

    # Longest first, so that a secret containing another is replaced whole.
    for secret in sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True):
        for form in dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))):
            if form in text:
                text = text.replace(form, REDACTED)
    return text
