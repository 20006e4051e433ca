"""realtalk: voice and text agents on the OpenAI Realtime API.

Agents are YAML files (:func:`load_agents`), tools come from plugins
(:func:`load_plugins`, implementing hooks with :data:`hookimpl`), and a :class:`Session`
runs a conversation (:func:`open_session`, :func:`run_agent`), publishing what happens
as :data:`SessionEvent` values (:class:`ToolFinished`, :class:`TurnDone`...).
:func:`transcribe` turns speech into text with no agent (:class:`Transcript` values).

Every type a public signature needs is exported here; ``tests/test_exported_members.py``
pins the list. The audio sinks and sources (:mod:`realtalk.audio`, e.g. the
``OutputSink`` of ``Session(output=...)``), the emulator (:mod:`realtalk.emulator`) and
the testing kit (:mod:`realtalk.testing`) have their own namespaces.
"""

from __future__ import annotations

import importlib as _importlib

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

# Not typing.TYPE_CHECKING: importing typing costs as much as the rest of `import
# realtalk`. Type checkers take any constant of this name as true; it is deleted below,
# so that it is not a public name of the package.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .agents import Agent, AgentGraph, AgentSpec, Handoff, ToolUse, load_agent, load_agents
    from .hookspecs import hookimpl
    from .plugins import (
        AgentRegistrar,
        CommandRegistrar,
        PluginAgent,
        PluginCommand,
        PluginInfo,
        PluginSet,
        Registrar,
        SessionInfo,
        load_plugins,
    )
    from .profiles import ConnectionProfile
    from .protocol.transcription import (
        SpeakerSegment,
        Transcript,
        TranscriptDelta,
        TranscriptionOptions,
    )
    from .recorder import Recorder
    from .results import (
        ApprovalRequest,
        Approver,
        AssistantDelta,
        AssistantDone,
        Connected,
        ErrorEvent,
        HandoffDone,
        InputTimeout,
        Interrupted,
        Listener,
        McpToolsListed,
        OutOfBandResult,
        Reconnected,
        SessionEvent,
        SessionWarning,
        ToolCallRecord,
        ToolFinished,
        ToolStarted,
        ToolStillWorking,
        TurnDone,
        TurnResult,
        UserText,
        UserTranscript,
        session_event,
    )
    from .runner import open_session, run_agent
    from .session import Session
    from .tools import (
        ArgumentCheck,
        StillWorking,
        Tool,
        ToolContext,
        ToolFailed,
        ToolRegistry,
        validate_arguments,
    )
    from .toolsources import McpServerSpec, McpToolOptions, OpenSource, ToolSourceRegistrar
    from .transcription import transcribe
    from .typedtools import tool
del TYPE_CHECKING

__version__ = "0.1.0"
"""The distribution's version: a constant, so that ``realtalk --version`` reads no metadata
(``tests/test_init.py`` keeps it equal to ``pyproject.toml``'s)."""

# Only the exceptions are imported with the package. Everything else loads on first use:
# the runtime pulls in websockets, numpy and soxr, agents and tools pull in jsonschema and
# yaml, hookimpl pulls in pluggy; `import realtalk`, `realtalk --version` and plugin
# imports stay light.
_LAZY = {
    **dict.fromkeys(["Agent", "AgentGraph", "AgentSpec", "Handoff", "ToolUse", "load_agent", "load_agents"],
                    "realtalk.agents"),
    "hookimpl": "realtalk.hookspecs",
    **dict.fromkeys(["AgentRegistrar", "CommandRegistrar", "PluginAgent", "PluginCommand", "PluginInfo", "PluginSet",
                     "Registrar", "SessionInfo", "load_plugins"], "realtalk.plugins"),
    "ConnectionProfile": "realtalk.profiles",
    "Recorder": "realtalk.recorder",
    **dict.fromkeys([
        "ApprovalRequest", "Approver", "AssistantDelta", "AssistantDone", "Connected", "ErrorEvent",
        "HandoffDone", "InputTimeout", "Interrupted", "Listener", "McpToolsListed", "OutOfBandResult",
        "Reconnected",
        "SessionEvent", "SessionWarning", "ToolCallRecord", "ToolFinished", "ToolStarted",
        "ToolStillWorking", "TurnDone", "TurnResult", "UserText",
        "UserTranscript", "session_event",
    ], "realtalk.results"),
    "open_session": "realtalk.runner",
    "run_agent": "realtalk.runner",
    "Session": "realtalk.session",
    **dict.fromkeys(["ArgumentCheck", "StillWorking", "Tool", "ToolContext", "ToolFailed", "ToolRegistry",
                     "validate_arguments"], "realtalk.tools"),
    **dict.fromkeys(["McpServerSpec", "McpToolOptions", "OpenSource", "ToolSourceRegistrar"], "realtalk.toolsources"),
    "tool": "realtalk.typedtools",
    **dict.fromkeys(["SpeakerSegment", "Transcript", "TranscriptDelta", "TranscriptionOptions"],
                    "realtalk.protocol.transcription"),
    "transcribe": "realtalk.transcription",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once loaded, an ordinary attribute
        return value
    raise AttributeError(f"module 'realtalk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Agent",
    "AgentGraph",
    "AgentRegistrar",
    "AgentSpec",
    "ApprovalRequest",
    "Approver",
    "ArgumentCheck",
    "AssistantDelta",
    "AssistantDone",
    "AudioDeviceError",
    "AuthenticationFailed",
    "CommandRegistrar",
    "ConfigError",
    "Connected",
    "ConnectionFailed",
    "ConnectionProfile",
    "ErrorEvent",
    "Handoff",
    "HandoffDone",
    "InputTimeout",
    "Interrupted",
    "Listener",
    "McpServerSpec",
    "McpToolOptions",
    "McpToolsListed",
    "OpenSource",
    "OutOfBandResult",
    "PluginAgent",
    "PluginCommand",
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
    "SessionInfo",
    "SessionWarning",
    "SpeakerSegment",
    "StillWorking",
    "Tool",
    "ToolCallRecord",
    "ToolContext",
    "ToolDefinitionError",
    "ToolFailed",
    "ToolFinished",
    "ToolRegistry",
    "ToolSourceRegistrar",
    "ToolStarted",
    "ToolStillWorking",
    "ToolUse",
    "Transcript",
    "TranscriptDelta",
    "TranscriptionOptions",
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
    "tool",
    "transcribe",
    "validate_arguments",
]
