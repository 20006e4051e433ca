"""Fixtures for the emulator tests.

Every test gets its emulators from ``make_emulator``; at teardown every server event any
of them sent is validated against the official ``openai`` GA server event types (the
conformance oracle), so the whole suite asserts wire conformance. ``test_meta`` checks
that no test builds an Emulator any other way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from realtalk.emulator import Emulator
from realtalk.emulator.conformance import server_event_problems
from realtalk.emulator.coverage import emulator_sends
from websockets.asyncio.client import ClientConnection, connect

RATE = 24000


def conformance_problems(events: list[dict[str, Any]]) -> list[str]:
    """Validate server events against the openai GA types; return one line per failure."""
    return server_event_problems(events)


@pytest.fixture
def conformance() -> Callable[[list[dict[str, Any]]], list[str]]:
    """The validator itself, for events recorded outside ``make_emulator``."""
    return conformance_problems


@pytest.fixture
async def make_emulator() -> AsyncIterator[Callable[..., Awaitable[Emulator]]]:
    """Start emulators (``await make_emulator(scenario, **options)``); validate all they sent."""
    started: list[Emulator] = []

    async def factory(*args: Any, **kwargs: Any) -> Emulator:
        kwargs.setdefault("fast", True)
        emulator = Emulator(*args, **kwargs)
        await emulator.start()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in started:
        await emulator.stop()
    sent = [e for emu in started for e in emu.server_events()]
    problems = conformance_problems(sent)
    assert not problems, "events not valid per the openai GA types:\n" + "\n".join(problems)
    unlisted = {e["type"] for e in sent} - emulator_sends()
    assert not unlisted, f"sent but not among the types the emulator builds: {sorted(unlisted)}"


def make_pcm(*parts: tuple[str, int, float]) -> bytes:
    """PCM16 24 kHz: ("silence"|"tone", milliseconds, amplitude) parts, concatenated."""
    chunks = []
    for kind, ms, amplitude in parts:
        n = RATE * ms // 1000
        if kind == "silence":
            chunks.append(np.zeros(n))
        else:
            t = np.arange(n) / RATE
            chunks.append(amplitude * np.sin(2 * np.pi * 440 * t))
    return (np.concatenate(chunks) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="session")
def speech() -> bytes:
    """Half a second of silence, 800 ms of a loud tone, 700 ms of silence: one segment."""
    return make_pcm(("silence", 500, 0), ("tone", 800, 0.3), ("silence", 700, 0))


@pytest.fixture(scope="session")
def pcm() -> Callable[..., bytes]:
    """``pcm(("silence"|"tone", ms, amplitude), ...)``: PCM16 24 kHz audio."""
    return make_pcm


@pytest.fixture
def append_audio() -> Callable[[Any, bytes], Awaitable[None]]:
    """``await append_audio(client, pcm)``: send it as 100 ms input_audio_buffer.append events."""

    async def send(client: Any, data: bytes) -> None:
        step = RATE * 2 // 10
        for start in range(0, len(data), step):
            chunk = base64.b64encode(data[start : start + step]).decode()
            await client.send({"type": "input_audio_buffer.append", "audio": chunk})

    return send


@pytest.fixture
async def emu(make_emulator: Callable[..., Awaitable[Emulator]]) -> Emulator:
    """An emulator with an empty scenario, fast audio."""
    return await make_emulator()


class Client:
    """A thin JSON client over a real loopback WebSocket, for tests."""

    def __init__(self, ws: ClientConnection, user_message: Callable[[str], dict[str, Any]]) -> None:
        self.ws = ws
        self.user_message = user_message
        self.received: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        import asyncio

        event: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.received.append(event)
        return event

    async def until(self, type_: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Receive events up to and including the first of ``type_``; return them all."""
        got = []
        while True:
            event = await self.recv(timeout)
            got.append(event)
            if event["type"] == type_:
                return got

    async def user_text(self, text: str) -> None:
        """Send a user text message item (no response.create)."""
        await self.send(self.user_message(text))

    async def turn(self, text: str) -> list[dict[str, Any]]:
        """Send a user text item and response.create; return events through rate_limits."""
        await self.user_text(text)
        await self.send({"type": "response.create"})
        return await self.until("rate_limits.updated")


@pytest.fixture
def open_client(user_message: Callable[[str], dict[str, Any]]) -> Callable[..., Any]:
    """``async with open_client(emu) as client:`` past session.created."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def opener(
        emu: Emulator, query: str = "?model=gpt-realtime", **kwargs: Any
    ) -> AsyncIterator[Client]:
        # An unbounded queue: a test that stops reading mid-stream must still see the
        # server's close frame (websockets pauses reading above max_queue frames).
        kwargs.setdefault("max_queue", None)
        async with connect(emu.url + query, **kwargs) as ws:
            client = Client(ws, user_message)
            first = await client.recv()
            assert first["type"] == "session.created"
            yield client

    return opener


# -- TLS ---------------------------------------------------------------------------------

TLS_RECIPE = (
    "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1"
    " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
)
"""The self-signed recipe docs/emulator.md gives, run by the ``tls_files`` fixture."""


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 and its key: ``(cert, key)``,
    made with the ``openssl`` command (a missing one fails under CI=true, else skips)."""
    import shlex
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        missing_dependency("the openssl command (to make a test certificate)")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        shlex.split(TLS_RECIPE), cwd=folder, check=True, capture_output=True, timeout=60
    )
    return folder / "cert.pem", folder / "key.pem"


def missing_dependency(what: str) -> NoReturn:
    import os

    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"missing test dependency under CI=true: {what}")
    pytest.skip(f"missing test dependency: {what}")
