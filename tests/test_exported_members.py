"""The public API is pinned: ``realtalk.__all__`` is exactly the package's public namespace.

Adding or removing a name is a visible change to ``EXPORTED`` below. Every type that an
exported signature needs is exported too.
"""

from __future__ import annotations
import __future__

import collections.abc
import dataclasses
import inspect
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest
import realtalk
from realtalk.yamlfile import YamlDocument

EXPORTED = [
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

# Reached through its own namespace, by choice (see the package docstring).
NOT_EXPORTED = {
    "realtalk.audio.playback.OutputSink",  # Session(output=...): realtalk.audio
    "realtalk.audio.bridge.AudioOutput",  # Session(output=...): realtalk.audio
    "realtalk.audio.capture.AudioSource",  # transcribe(source=...): realtalk.audio
}


def public_members(module: types.ModuleType) -> set[str]:
    """Names a user sees on ``module``: no private names, submodules or __future__ flags."""
    names = set()
    for name in dir(module):
        if name.startswith("_") and name != "__version__":
            continue
        value = getattr(module, name)
        if isinstance(value, (types.ModuleType, __future__._Feature)):
            continue
        names.add(name)
    return names


def test_all_is_pinned() -> None:
    assert realtalk.__all__ == EXPORTED


def test_every_exported_name_resolves() -> None:
    for name in realtalk.__all__:
        assert getattr(realtalk, name) is not None, name


def test_every_public_member_is_exported() -> None:
    assert public_members(realtalk) == set(realtalk.__all__)


def test_the_member_check_can_fail() -> None:
    module = types.ModuleType("fake")
    module.__dict__.update(exported=1, forgotten=2, _private=3, sub=types.ModuleType("fake.sub"),
                           annotations=__future__.annotations)
    assert public_members(module) == {"exported", "forgotten"}


def test_import_stays_light() -> None:
    code = ("import sys, realtalk; heavy = [m for m in ('realtalk.session', 'websockets', 'numpy',"
            " 'soxr', 'sounddevice') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "[]", result.stderr


# --- every type a public signature needs ------------------------------------------------


def realtalk_types(hint: Any) -> Iterator[type]:
    """The realtalk classes named in a resolved annotation, however nested."""
    if isinstance(hint, type) and hint.__module__.split(".")[0] == "realtalk":
        yield hint
    for arg in typing.get_args(hint):
        if isinstance(arg, list):  # Callable[[A, B], R]
            for item in arg:
                yield from realtalk_types(item)
        else:
            yield from realtalk_types(arg)


def hints(obj: Any) -> dict[str, Any]:
    # String annotations inside aliases (Approver) resolve in the caller's globals, and
    # modules import some annotation types only for type checkers.
    from realtalk.audio import AudioOutput, OutputSink

    namespace = {**vars(typing), **vars(collections.abc), **vars(sys.modules[obj.__module__]),
                 "OutputSink": OutputSink, "AudioOutput": AudioOutput}
    namespace.update((name, getattr(realtalk, name)) for name in realtalk.__all__)
    return typing.get_type_hints(obj, namespace)


def signature_types(value: Any) -> Iterator[tuple[str, type]]:
    """``(where, type)`` for each realtalk type in the public signatures of ``value``."""
    if inspect.isfunction(value):
        for hint in hints(value).values():
            yield from ((value.__qualname__, t) for t in realtalk_types(hint))
        return
    if not inspect.isclass(value) or issubclass(value, BaseException):
        return
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            if not field.name.startswith("_"):
                hint = hints(value)[field.name]
                yield from ((f"{value.__qualname__}.{field.name}", t) for t in realtalk_types(hint))
    for name, member in vars(value).items():
        if isinstance(member, property):
            member = member.fget
        if inspect.isfunction(member) and (not name.startswith("_") or name in ("__init__", "__call__")):
            yield from signature_types(member)


def unexported_signature_types(values: list[Any]) -> set[str]:
    exported = {id(getattr(realtalk, name)) for name in realtalk.__all__}
    missing = set()
    for value in values:
        for where, found in signature_types(value):
            qualified = f"{found.__module__}.{found.__qualname__}"
            if id(found) not in exported and qualified not in NOT_EXPORTED:
                missing.add(f"{qualified} (in {where})")
    return missing


def test_public_signatures_need_only_exported_types() -> None:
    values = [getattr(realtalk, name) for name in realtalk.__all__]
    assert unexported_signature_types(values) == set()


def test_the_signature_check_can_fail() -> None:
    def parse(text: str) -> YamlDocument:
        raise NotImplementedError

    assert unexported_signature_types([parse]) == {
        "realtalk.yamlfile.YamlDocument (in test_the_signature_check_can_fail.<locals>.parse)"}


@pytest.mark.parametrize("name", ["Session", "open_session", "run_agent", "ConnectionProfile", "Recorder"])
def test_lazy_names_are_the_real_ones(name: str) -> None:
    value = getattr(realtalk, name)
    assert value.__module__.startswith("realtalk.") and value.__name__ == name
