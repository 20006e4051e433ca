"""Hosted MCP tools: remote MCP servers the Realtime API connects to itself.

An agent's ``hosted_mcp:`` entries become GA ``{"type": "mcp", ...}`` tools in its
``session.update``; the server lists the tools of each and calls them when the model
decides to, and realtalk shows that progress and answers its approval requests. Rules:

- ``${NAME}`` references in ``server_url``, ``headers`` and ``authorization`` are read
  from the environment (:mod:`realtalk.envrefs`) when the session starts: an unset
  variable is a :class:`~realtalk.exceptions.ConfigError` before anything connects
  (``realtalk check`` only warns, as the variable may be set where the agent runs).
- What was read is secret: :func:`session_secrets` gives the session every value, and
  the session redacts them from recordings, logs and events.
- An MCP call shows as a tool call named ``SERVER_LABEL.TOOL`` (tool names cannot hold a
  ``.``, so the two never clash); an approval request asks the same approver as a
  ``requires_approval`` tool, under that name.

Plain functions of agents and strings: no I/O besides reading ``os.environ``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .envrefs import MissingEnv, expand, unset_names
from .exceptions import ConfigError

if TYPE_CHECKING:
    from .agents import AgentSpec

__all__ = ["call_name", "missing_env", "parse_arguments", "session_secrets", "session_tools", "written_tools"]

_EXPANDED = ("server_url", "authorization")  # besides every header value


def call_name(server_label: str, tool: str) -> str:
    """How an MCP call is named in events and turn results: ``SERVER_LABEL.TOOL``."""
    return f"{server_label}.{tool}"


def session_tools(agent: AgentSpec, environ: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The agent's hosted MCP tools as GA ``mcp`` tools, with references read from the
    environment, and the secret values that went into them.

    Raises:
        ConfigError: A variable without a default is not set, naming it and where.
    """
    tools: list[dict[str, Any]] = []
    secrets: list[str] = []
    for index, entry in enumerate(agent.hosted_mcp):
        tool: dict[str, Any] = {"type": "mcp", **json.loads(json.dumps(entry))}
        for key in _EXPANDED:
            if isinstance(tool.get(key), str):
                tool[key] = _expand(agent, f"$.hosted_mcp[{index}].{key}", tool[key], secrets, environ)
        headers = tool.get("headers")
        if isinstance(headers, dict):
            tool["headers"] = {
                name: _expand(agent, f"$.hosted_mcp[{index}].headers.{name}", str(value), secrets, environ)
                for name, value in headers.items()
            }
        tools.append(tool)
    return tools, tuple(dict.fromkeys(secrets))


def _expand(agent: AgentSpec, where: str, text: str, secrets: list[str],
            environ: Mapping[str, str] | None) -> str:
    try:
        expanded = expand(text, environ)
    except MissingEnv as exc:
        raise ConfigError(f"agent {agent.name!r}: {where}: {exc}; set it before running",
                          file=agent.file) from None
    secrets.extend(expanded.secrets)
    return expanded.value


def session_secrets(agents: Iterable[AgentSpec], environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every secret the agents' hosted MCP tools read from the environment; checks that
    every variable they need is set.

    Raises:
        ConfigError: A variable without a default is not set.
    """
    found: list[str] = []
    for agent in agents:
        found += session_tools(agent, environ)[1]
    return tuple(dict.fromkeys(found))


def missing_env(agent: AgentSpec, environ: Mapping[str, str] | None = None) -> list[tuple[list[object], str]]:
    """Where (JSON path parts) and what: each variable the agent's hosted MCP tools need
    that is not set (for ``realtalk check``, which warns)."""
    found: list[tuple[list[object], str]] = []
    for index, entry in enumerate(agent.hosted_mcp):
        texts: list[tuple[list[object], Any]] = [([key], entry.get(key)) for key in _EXPANDED]
        texts += [(["headers", name], value) for name, value in (entry.get("headers") or {}).items()]
        for parts, text in texts:
            for name in unset_names(text, environ) if isinstance(text, str) else []:
                found.append((["hosted_mcp", index, *parts],
                              f"environment variable {name} is not set (needed when the agent runs)"))
    return found


def written_tools(agent: AgentSpec) -> list[dict[str, Any]]:
    """The agent's hosted MCP tools as GA ``mcp`` tools, ``${NAME}`` references as written
    (what ``realtalk check --print-update`` shows: no secret is read)."""
    return [{"type": "mcp", **json.loads(json.dumps(entry))} for entry in agent.hosted_mcp]


def parse_arguments(arguments: str) -> dict[str, Any]:
    """An MCP call's arguments as a mapping, for the approver (``{"arguments": TEXT}``
    when the server sent something that is not a JSON object)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": arguments}
