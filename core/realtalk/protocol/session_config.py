"""From an agent and its tools to the exact ``session.update`` event.

GA is the wire protocol. The beta shape is kept as an opt-in profile for servers that
still speak it (OpenAI itself closed it in May 2026). Every setting the agent controls is
sent explicitly, so that after a handoff nothing of the previous agent lingers through
the server's partial merge: a reasoning model gets its effort (the spec's default when the
agent sets none), and ``prompt`` is sent as ``null`` when the agent has none.

The beta shape cannot carry every GA setting. Those that only tune the server (reasoning,
parallel tool calls, ``include``, the newer transcription options) are left out of a
beta update; those that change what the agent is (a prompt reference, a forced function)
are refused with a :class:`~realtalk.exceptions.ConfigError`.

Hosted MCP tools (``hosted_mcp:``) follow the function tools as GA ``mcp`` tools, with
their ``${NAME}`` references read from the environment (:mod:`realtalk.hostedmcp`); the
beta shape has no such tools, so an agent that has some is refused there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..hostedmcp import session_tools, written_tools
from ..models import BUILTIN_VOICES, DEFAULT_REASONING_EFFORT, takes_reasoning
from .vocab import Dialect, audio_format, json_copy

if TYPE_CHECKING:
    from ..agents import AgentSpec
    from ..tools import Tool

__all__ = ["Profile", "build_session_update", "format_object"]

Profile = Dialect
"""The wire dialect (an alias of :data:`realtalk.protocol.vocab.Dialect`)."""


def format_object(name: str) -> dict[str, Any]:
    """The GA audio format object for ``audio/pcm`` (24 kHz), ``audio/pcmu`` or ``audio/pcma``.

    Raises:
        ValueError: ``name`` is not an audio format.
    """
    return audio_format(name).ga_object()


def build_session_update(
    agent: AgentSpec,
    tools: Sequence[Tool],
    *,
    profile: Profile = "ga",
    include_voice: bool = True,
    event_id: str | None = None,
    read_secrets: bool = True,
) -> dict[str, Any]:
    """Build the ``session.update`` client event for ``agent`` with exactly ``tools``.

    Args:
        agent: The agent to configure.
        tools: The tools it may call (from ``AgentGraph.tools_for``), handoffs included.
        profile: ``ga`` (the default) or ``beta`` for servers that still speak it.
        include_voice: False once assistant audio exists, since the server refuses a
            voice change then (``cannot_update_voice``).
        event_id: The client event id, so an ``error`` can be traced to this update.
        read_secrets: Read hosted MCP tools' ``${NAME}`` references from the environment
            (False: keep them as written, to show the update without its secrets).

    Returns:
        The event, ready to send. The caller then waits for ``session.updated`` and checks
        that it carries these instructions and tools.

    Raises:
        ConfigError: With ``profile="beta"``, the agent uses a setting the beta protocol
            cannot carry (``prompt``, a ``tool_choice`` forcing a function, hosted MCP
            tools); or a hosted MCP tool needs an environment variable that is not set.
    """
    definitions = [tool.definition() for tool in tools]
    if profile != "beta":
        definitions += session_tools(agent)[0] if read_secrets else written_tools(agent)
    if profile == "beta":
        session = _beta_session(agent, definitions, include_voice)
    else:
        session = _ga_session(agent, definitions, include_voice)
    event: dict[str, Any] = {"type": "session.update", "session": session}
    if event_id is not None:
        event["event_id"] = event_id
    return event


def _ga_session(agent: AgentSpec, tools: list[dict[str, Any]], include_voice: bool) -> dict[str, Any]:
    audio_in: dict[str, Any] = {
        "format": format_object(agent.audio_format),
        "turn_detection": dict(agent.turn_detection) if agent.turn_detection else None,
        "transcription": dict(agent.input_transcription) if agent.input_transcription else None,
        "noise_reduction": {"type": agent.noise_reduction} if agent.noise_reduction else None,
    }
    audio_out: dict[str, Any] = {"format": format_object(agent.audio_format)}
    if include_voice:
        audio_out["voice"] = agent.voice if agent.voice in BUILTIN_VOICES else {"id": agent.voice}
    if agent.speed is not None:
        audio_out["speed"] = agent.speed
    session: dict[str, Any] = {
        "type": "realtime",
        "instructions": agent.instructions,
        "output_modalities": list(agent.output_modalities),
        "audio": {"input": audio_in, "output": audio_out},
        "tools": tools,
        "tool_choice": json_copy(agent.tool_choice),
        "truncation": agent.truncation,
        "prompt": json_copy(agent.prompt),
    }
    if agent.max_output_tokens is not None:
        session["max_output_tokens"] = agent.max_output_tokens
    if agent.reasoning_effort is not None or takes_reasoning(agent.model):
        session["reasoning"] = {"effort": agent.reasoning_effort or DEFAULT_REASONING_EFFORT}
    if agent.parallel_tool_calls is not None:
        session["parallel_tool_calls"] = agent.parallel_tool_calls
    if agent.tracing is not None:
        session["tracing"] = json_copy(agent.tracing)
    if agent.include:
        session["include"] = list(agent.include)
    return session


_BETA_TRANSCRIPTION = ("model", "language", "prompt")  # beta's input_audio_transcription keys


def _refuse_for_beta(agent: AgentSpec) -> None:
    """Refuse settings whose loss would change what the agent does.

    Raises:
        ConfigError: The agent has a prompt reference, forces a function, or has hosted
            MCP tools.
    """
    where = f" (agent {agent.name!r})"
    if agent.prompt is not None:
        raise ConfigError(f"the beta protocol cannot carry prompt{where}: drop --beta or the prompt key",
                          file=agent.file)
    if isinstance(agent.tool_choice, dict):
        raise ConfigError(f"the beta protocol cannot force a function with tool_choice{where}:"
                          " drop --beta or use auto, none or required", file=agent.file)
    if agent.hosted_mcp:
        raise ConfigError(f"the beta protocol cannot carry hosted_mcp{where}: drop --beta or the"
                          " hosted_mcp key", file=agent.file)


def _beta_session(agent: AgentSpec, tools: list[dict[str, Any]], include_voice: bool) -> dict[str, Any]:
    _refuse_for_beta(agent)
    fmt = audio_format(agent.audio_format).beta
    transcription = agent.input_transcription
    session: dict[str, Any] = {
        "modalities": ["text"] if agent.text_only else ["text", "audio"],
        "instructions": agent.instructions,
        "input_audio_format": fmt,
        "output_audio_format": fmt,
        "turn_detection": dict(agent.turn_detection) if agent.turn_detection else None,
        "input_audio_transcription": (
            {k: v for k, v in transcription.items() if k in _BETA_TRANSCRIPTION} if transcription else None
        ),
        "input_audio_noise_reduction": (
            {"type": agent.noise_reduction} if agent.noise_reduction else None
        ),
        "tools": tools,
        "tool_choice": agent.tool_choice,
    }
    if include_voice:
        session["voice"] = agent.voice
    if agent.speed is not None:
        session["speed"] = agent.speed
    if agent.max_output_tokens is not None:
        session["max_response_output_tokens"] = agent.max_output_tokens
    if agent.tracing is not None:
        session["tracing"] = json_copy(agent.tracing)
    return session
