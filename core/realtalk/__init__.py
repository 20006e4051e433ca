"""realtalk: voice and text agents on the OpenAI Realtime API.

Agents are YAML files (:func:`load_agents`), tools come from plugins
(:func:`load_plugins`, implementing hooks with :data:`hookimpl`).
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
    RealtalkError,
    ScenarioError,
    ServerRejected,
    SessionError,
    ToolDefinitionError,
)
from .hookspecs import hookimpl
from .plugins import PluginSet, Registrar, load_plugins
from .tools import Tool, ToolContext, ToolRegistry, validate_arguments

try:
    __version__ = version("realtalk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AgentGraph",
    "AgentSpec",
    "AudioDeviceError",
    "AuthenticationFailed",
    "ConfigError",
    "ConnectionFailed",
    "PluginError",
    "PluginSet",
    "RealtalkError",
    "Registrar",
    "ScenarioError",
    "ServerRejected",
    "SessionError",
    "Tool",
    "ToolContext",
    "ToolDefinitionError",
    "ToolRegistry",
    "__version__",
    "hookimpl",
    "load_agent",
    "load_agents",
    "load_plugins",
    "validate_arguments",
]
