"""Agent settings checked against the model and against each other.

The packaged JSON Schema checks each key of an agent file alone; the checks here need
two keys at once (``reasoning`` and ``model``, ``tool_choice`` and ``tools``) or several
agents (``tracing`` across a handoff). Each looks only at values of the right kind, so a
file with schema errors is checked too and ``realtalk check`` reports everything in one run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .envrefs import reference_problem
from .exceptions import ConfigError
from .models import DEFAULT_MODEL, REASONING_MODELS, takes_reasoning, transcription_option_problem
from .tools import StillWorking
from .yamlfile import did_you_mean

if TYPE_CHECKING:
    from .agents import AgentSpec

__all__ = ["hosted_mcp_problems", "setting_problems", "tracing_problems"]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

Problem = tuple[list[object], str]
"""Where in the document (JSON path parts) and what is wrong."""


def setting_problems(data: dict[str, Any]) -> list[Problem]:
    """Problems of settings the chosen model does not take or that contradict each other."""
    model = data.get("model", DEFAULT_MODEL)
    if not isinstance(model, str):
        model = ""
    found: list[Problem] = []
    for key in ("reasoning", "parallel_tool_calls"):
        if key in data and takes_reasoning(model) is False:
            models = ", ".join(sorted(REASONING_MODELS))
            found.append(([key], f"{key} needs a reasoning model ({models}); {model} does not take it"))
    found += _tool_choice_problems(data)
    found += _still_working_problems(data)
    found += hosted_mcp_problems(data)
    transcription = data.get("input_audio_transcription")
    if "include" in data and data["include"] and transcription is None:
        message = ("include item.input_audio_transcription.logprobs needs input_audio_transcription"
                   " (it adds logprobs to its transcripts)")
        found.append((["include"], message))
    if isinstance(transcription, dict) and isinstance(transcription.get("model"), str):
        for option in transcription:
            problem = transcription_option_problem(transcription["model"], str(option))
            if problem is not None:
                found.append((["input_audio_transcription", option], problem))
    return found


def _tool_choice_problems(data: dict[str, Any]) -> list[Problem]:
    """``tool_choice`` forcing a function must name one of the agent's tools, and ``required``
    needs at least one tool."""
    choice = data.get("tool_choice")
    names = _tool_names(data)
    if choice == "required" and not names:
        return [(["tool_choice"], "tool_choice is 'required', but the agent has no tools or handoffs")]
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(choice.get("name"), str) \
            or not TOOL_NAME.match(choice["name"]):
        return []  # the schema reports it
    name = choice["name"]
    if name in names:
        return []
    hint = did_you_mean(name, names)
    listed = ", ".join(names) if names else "none"
    message = f"tool_choice names {name!r}, which is not one of the agent's tools{hint}; its tools: {listed}"
    return [(["tool_choice", "name"], message)]


def _still_working_problems(data: dict[str, Any]) -> list[Problem]:
    """A tool entry's ``still_working`` override, checked as a tool's own option is."""
    found: list[Problem] = []
    tools = data.get("tools")
    for index, entry in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(entry, dict) or "still_working" not in entry:
            continue
        value = entry["still_working"]
        if not isinstance(value, dict):
            continue  # the schema reports it
        try:
            StillWorking.parse(value)
        except ValueError as exc:
            found.append((["tools", index, "still_working"], str(exc)))
    return found


def hosted_mcp_problems(data: dict[str, Any]) -> list[Problem]:
    """``hosted_mcp`` entries: exactly one of ``server_url`` and ``connector_id``, a
    well-formed http(s) URL, well-formed ``${NAME}`` references, labels used once."""
    found: list[Problem] = []
    entries = data.get("hosted_mcp")
    seen: set[str] = set()
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue  # the schema reports it
        where: list[object] = ["hosted_mcp", index]
        label = entry.get("server_label")
        if isinstance(label, str):
            if label in seen:
                found.append(([*where, "server_label"], f"server_label {label!r} is used twice"))
            seen.add(label)
        if ("server_url" in entry) == ("connector_id" in entry):
            found.append((where, ("give exactly one of server_url (a remote MCP server) and connector_id"
                                 " (a built-in connector)")))
        url = entry.get("server_url")
        if isinstance(url, str) and reference_problem(url) is None and "${" not in url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                found.append(([*where, "server_url"], f"server_url {url!r} is not an http(s) URL"))
        texts: list[tuple[list[object], Any]] = [([*where, "server_url"], url),
                                                  ([*where, "authorization"], entry.get("authorization"))]
        headers = entry.get("headers")
        for name, value in headers.items() if isinstance(headers, dict) else ():
            texts.append(([*where, "headers", name], value))
        for parts_, text in texts:
            problem = reference_problem(text) if isinstance(text, str) else None
            if problem is not None:
                found.append((parts_, problem))
    return found


def _tool_names(data: dict[str, Any]) -> list[str]:
    """The names of the tools an agent file lists, then of its handoff tools, as far as they
    are well-formed."""
    names: list[str] = []
    tools = data.get("tools")
    for entry in tools if isinstance(tools, list) else []:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str):
            names.append(name)
    handoffs = data.get("handoffs")
    for entry in handoffs if isinstance(handoffs, list) else []:
        agent = entry.get("agent") if isinstance(entry, dict) else entry
        if isinstance(agent, str):
            names.append(f"transfer_to_{agent}")
    return names


def tracing_problems(agents: Iterable[AgentSpec]) -> list[ConfigError]:
    """A handoff between two agents that both trace must not change how: the API refuses a
    change of ``tracing`` once a session traces. One problem per such handoff."""
    by_name = {agent.name: agent for agent in agents}
    found = []
    for agent in by_name.values():
        for handoff in agent.handoffs:
            target = by_name.get(handoff.agent)
            if target is None or None in (agent.tracing, target.tracing) or target.tracing == agent.tracing:
                continue
            found.append(ConfigError(
                f"handoff to {target.name!r} changes tracing ({json.dumps(agent.tracing)} ->"
                f" {json.dumps(target.tracing)}), which the API cannot change once a session traces;"
                " give both agents the same tracing", file=agent.file, line=handoff.line))
    return found
