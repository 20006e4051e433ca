"""An emulator with per_connection=True: each connection plays the script from its start; and
max_connections bounds the records an emulator serving for days keeps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from realtalk.emulator import Emulator
from realtalk.runner import open_session

MakeEmulator = Callable[..., Awaitable[Emulator]]

AGENTS = Path(__file__).resolve().parents[2] / "agents"
GREETING = "Good evening, welcome to Hotel Aurora. How can I help?"


async def greetings(emu: Emulator, callers: int) -> list[str]:
    said = []
    for _ in range(callers):
        async with open_session(AGENTS / "concierge.yaml", emulator=emu, text_only=True) as session:
            turn = await session.greet(timeout=30)
            said.append(turn.text if turn is not None else "")
    return said


@pytest.mark.parametrize("per_connection", [False, True])
async def test_each_connection_gets_the_whole_script_only_when_asked(
    per_connection: bool, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator(AGENTS / "concierge.scenario.yaml", per_connection=per_connection)
    said = await greetings(emu, 2)
    assert said[0] == GREETING
    # Shared: the second caller goes on where the first was (past the greeting).
    assert (said[1] == GREETING) is per_connection


async def test_max_connections_keeps_the_newest_records(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(AGENTS / "concierge.scenario.yaml", per_connection=True, max_connections=2)
    await greetings(emu, 3)
    assert len(emu.connections) == 2
    assert len(emu.server_events("session.created")) == 2
