"""A loopback OpenAI Realtime (GA) server for tests and offline development.

``Emulator`` serves the GA WebSocket protocol on 127.0.0.1, answers from a scenario
(:func:`load_scenario`), emulates server VAD on appended audio, streams deterministic
audio, and can inject faults (expiry, 429 refusals, dropped sockets, latency). Every
event is recorded per connection for assertions. See ``docs/emulator.md``.
"""

from __future__ import annotations

from .scenario import Scenario, Step, Turn, check_scenario_file, load_scenario
from .server import Emulator
from .state import ConnectionRecord, EventRecord

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
