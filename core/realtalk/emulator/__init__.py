"""A loopback OpenAI Realtime (GA) server for tests and offline development.

``Emulator`` serves the GA WebSocket protocol on 127.0.0.1, answers from a scenario
(:func:`load_scenario`), emulates server VAD on appended audio, streams deterministic
audio, and can inject faults (expiry, 429 refusals, dropped sockets, latency). Events
are recorded per connection for assertions (audio payloads as their length, unless
``record_audio=True``; the latest 100,000 per connection). See ``docs/emulator.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .scenario import Scenario, Step, Turn, check_scenario_file, load_scenario

if TYPE_CHECKING:
    from .server import Emulator
    from .state import ConnectionRecord, EventRecord


def __getattr__(name: str) -> object:
    # The server pulls in websockets and numpy; `realtalk check` only needs scenarios.
    if name == "Emulator":
        from .server import Emulator

        return Emulator
    if name in ("ConnectionRecord", "EventRecord"):
        from . import state

        return getattr(state, name)
    raise AttributeError(f"module 'realtalk.emulator' has no attribute {name!r}")


__all__ = [
    "ConnectionRecord",
    "Emulator",
    "EventRecord",
    "Scenario",
    "Step",
    "Turn",
    "check_scenario_file",
    "load_scenario",
]
