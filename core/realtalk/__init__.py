"""realtalk: voice and text agents on the OpenAI Realtime API.

Agents are YAML files (:func:`load_agents`), tools come from plugins
(:func:`load_plugins`, implementing hooks with :data:`hookimpl`), and a :class:`Session`
runs a conversation (:func:`open_session`, :func:`run_agent`), publishing what happens
as :data:`SessionEvent` values (:class:`ToolFinished`, :class:`TurnDone`...).

Every type a public signature needs is exported here; ``tests/test_exported_members.py``
pins the list. The audio sinks and sources (:mod:`realtalk.audio`, e.g. the
``OutputSink`` of ``Session(output=...)``), the emulator (:mod:`realtalk.emulator`) and
the testing kit (:mod:`realtalk.testing`) have their own namespaces.
"""

from __future__ import annotations

import importlib as _importlib
import importlib.metadata as _metadata
import typing as _typing

from .agents import AgentGraph, AgentSpec, Handoff, ToolUse, load_agent, load_agents
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
from .plugins import PluginInfo, PluginSet, Registrar, load_plugins
from .results import (
    ApprovalRequest,
    Approver,
    AssistantDelta,
    AssistantDone,
    Connected,
    ErrorEvent,
    HandoffDone,
    Interrupted,
    Listener,
    Reconnected,
    SessionEvent,
    SessionWarning,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
    TurnDone,
    TurnResult,
    UserText,
    UserTranscript,
    session_event,
)
from .tools import ArgumentCheck, Tool, ToolContext, ToolRegistry, validate_arguments

if _typing.TYPE_CHECKING:
    from .profiles import ConnectionProfile
    from .recorder import Recorder
    from .runner import open_session, run_agent
    from .session import Session

# The runtime pulls in websockets, numpy and soxr: loaded on first use, so that
# `import realtalk`, `realtalk --version`, `realtalk check` and plugin imports stay light.
_LAZY = {
    "ConnectionProfile": "realtalk.profiles",
    "Recorder": "realtalk.recorder",
    "Session": "realtalk.session",
    "open_session": "realtalk.runner",
    "run_agent": "realtalk.runner",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'realtalk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


try:
    __version__ = _metadata.version("realtalk")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AgentGraph",
    "AgentSpec",
    "ApprovalRequest",
    "Approver",
    "ArgumentCheck",
    "AssistantDelta",
    "AssistantDone",
    "AudioDeviceError",
    "AuthenticationFailed",
    "ConfigError",
    "Connected",
    "ConnectionFailed",
    "ConnectionProfile",
    "ErrorEvent",
    "Handoff",
    "HandoffDone",
    "Interrupted",
    "Listener",
    "PluginError",
    "PluginInfo",
    "PluginSet",
    "ProtocolError",
    "RealtalkError",
    "Reconnected",
    "Recorder",
    "Registrar",
    "ScenarioError",
    "ServerRejected",
    "Session",
    "SessionError",
    "SessionEvent",
    "SessionWarning",
    "Tool",
    "ToolCallRecord",
    "ToolContext",
    "ToolDefinitionError",
    "ToolFinished",
    "ToolRegistry",
    "ToolStarted",
    "ToolUse",
    "TurnDone",
    "TurnResult",
    "UserText",
    "UserTranscript",
    "__version__",
    "hookimpl",
    "load_agent",
    "load_agents",
    "load_plugins",
    "open_session",
    "run_agent",
    "session_event",
    "validate_arguments",
]
