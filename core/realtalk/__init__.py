"""realtalk: voice and text agents on the OpenAI Realtime API.

Agents are YAML files (:func:`load_agents`), tools come from plugins
(:func:`load_plugins`, implementing hooks with :data:`hookimpl`), and a :class:`Session`
runs a conversation (:func:`open_session`, :func:`run_agent`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .agents import AgentGraph, AgentSpec, load_agent, load_agents
from .exceptions import (
    AudioDeviceError,
    AuthenticationFailed,
    ConfigError,
    ConnectionFailed,
    PluginError,
    ProtocolError,
    RealtalkError,
    ScenarioError,
    ServerRejected,
    SessionError,
    ToolDefinitionError,
)
from .hookspecs import hookimpl
from .plugins import PluginSet, Registrar, load_plugins
from .tools import Tool, ToolContext, ToolRegistry, validate_arguments

# The runtime pulls in websockets, numpy and soxr: loaded on first use, so that
# `realtalk check` and plugin imports stay light.
_LAZY = {
    "Session": "realtalk.session",
    "SessionEvent": "realtalk.results",
    "TurnResult": "realtalk.results",
    "ToolCallRecord": "realtalk.results",
    "ApprovalRequest": "realtalk.results",
    "open_session": "realtalk.runner",
    "run_agent": "realtalk.runner",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'realtalk' has no attribute {name!r}")


try:
    __version__ = version("realtalk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AgentGraph",
    "AgentSpec",
    "ApprovalRequest",
    "AudioDeviceError",
    "AuthenticationFailed",
    "ConfigError",
    "ConnectionFailed",
    "PluginError",
    "PluginSet",
    "ProtocolError",
    "RealtalkError",
    "Registrar",
    "ScenarioError",
    "ServerRejected",
    "Session",
    "SessionError",
    "SessionEvent",
    "Tool",
    "ToolCallRecord",
    "ToolContext",
    "ToolDefinitionError",
    "ToolRegistry",
    "TurnResult",
    "__version__",
    "hookimpl",
    "load_agent",
    "load_agents",
    "load_plugins",
    "open_session",
    "run_agent",
    "validate_arguments",
]
