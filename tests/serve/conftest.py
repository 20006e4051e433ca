"""Fixtures of the serve tests: a real server in-process, and a fake page.

``serve_server(agents_dir, **config) -> base URL`` starts ``create_app`` under uvicorn on
127.0.0.1, on a port of its own (bound to port 0), with a built-in emulator unless
``emulator=False`` is given; ``**config`` are :class:`~realtalk.serve.ServeConfig` fields
(``agent="concierge"``, ``max_sessions=1``, ``tokens=("t",)``...), plus ``clock=`` for the
hub's token clock. Every server is drained and stopped when the test ends.
``serve_server.hub(url)`` is the server's :class:`~realtalk.serve.hub.SessionHub`.

``open_page(base_url, agent=None, token=None, origin=None, headers=None)`` connects to
``/ws`` as the browser console would (subprotocols ``realtalk.v1`` and
``realtalk.token.TOKEN``) and yields a :class:`Page`: ``await page.next("ready")``,
``await page.event("turn.done")``, ``page.audio`` (binary frames received),
``await page.send({...})``, ``await page.closed()`` (the close code and reason).

``speech_pcm``: "What time is it in Tokyo?" spoken by espeak-ng, as PCM16 24 kHz.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra (pip install 'realtalk[serve]')")

from realtalk.cli.serve import bind, uvicorn_server
from realtalk.serve.app import create_app
from realtalk.serve.config import ServeConfig
from realtalk.serve.hub import SessionHub
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"
WAIT_S = 15.0
"""Longest any single wait of these tests takes (they fail then, never hang)."""


class ServeServer:
    """Starts servers in the test's event loop; stops them all at the end."""

    def __init__(self) -> None:
        self.hubs: dict[str, SessionHub] = {}
        self._running: list[tuple[SessionHub, Any, asyncio.Task[None]]] = []

    async def __call__(self, agents_dir: str | Path = AGENTS, *, clock: Callable[[], float] | None = None,
                       **config: Any) -> str:
        config.setdefault("emulator", True)
        settings = ServeConfig(agents=Path(agents_dir), host="127.0.0.1", port=0, **config)
        hub = SessionHub(settings, **({"clock": clock} if clock is not None else {}))
        app = create_app(settings, hub)
        sock = bind("127.0.0.1", 0)
        server = uvicorn_server(app, settings)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._running.append((hub, server, task))
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while not server.started:  # uvicorn says so with a flag only
            assert not task.done(), f"the server did not start: {task.exception() if not task.cancelled() else ''}"
            assert asyncio.get_running_loop().time() < deadline, "the server did not start in time"
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.hubs[url] = hub
        return url

    def hub(self, url: str) -> SessionHub:
        return self.hubs[url]

    async def close(self) -> None:
        for hub, server, task in self._running:
            with contextlib.suppress(Exception):
                await hub.drain(0)
            server.should_exit = True
        for _, _, task in self._running:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, WAIT_S)


@pytest.fixture
async def serve_server() -> AsyncIterator[ServeServer]:
    """``await serve_server(agents_dir, **config)`` -> the base URL of a running server."""
    servers = ServeServer()
    try:
        yield servers
    finally:
        await servers.close()


class Page:
    """A fake browser page on ``/ws``: JSON messages and binary audio frames as they come."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.audio: list[bytes] = []
        self.on_audio: Callable[[bytes], Any] | None = None

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(json.dumps(message) if isinstance(message, dict) else message)

    async def recv(self, timeout: float = WAIT_S) -> dict[str, Any]:
        """The next JSON message (audio frames on the way are kept in ``audio``)."""
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(frame, bytes):
                self.audio.append(frame)
                if self.on_audio is not None:
                    result = self.on_audio(frame)
                    if asyncio.iscoroutine(result):
                        await result
                continue
            message: dict[str, Any] = json.loads(frame)
            self.messages.append(message)
            return message

    async def next(self, kind: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """The next message of type ``kind`` (others are skipped, and kept in ``messages``)."""
        while True:
            message = await self.recv(timeout)
            if message["type"] == kind:
                return message

    async def event(self, kind: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """The next session event of type ``kind`` (the ``event`` object)."""
        while True:
            message = await self.next("event", timeout)
            if message["event"]["type"] == kind:
                event: dict[str, Any] = message["event"]
                return event

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Session events received so far."""
        found = [m["event"] for m in self.messages if m["type"] == "event"]
        return [e for e in found if kind is None or e["type"] == kind]

    async def closed(self, timeout: float = WAIT_S) -> tuple[int | None, str]:
        """Read until the server closes; its close code and reason."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.recv(timeout)
        return self.ws.close_code, self.ws.close_reason or ""


def ws_url(base: str, agent: str | None = None) -> str:
    url = base.replace("http://", "ws://") + "/ws"
    return url + (f"?agent={agent}" if agent else "")


@pytest.fixture
def open_page() -> Callable[..., contextlib.AbstractAsyncContextManager[Page]]:
    """``async with open_page(base, agent=None, token=None, origin=None, headers=None) as page``."""

    @contextlib.asynccontextmanager
    async def opened(base: str, *, agent: str | None = None, token: str | None = None,
                     origin: str | None = None, headers: dict[str, str] | None = None) -> AsyncIterator[Page]:
        protocols = ["realtalk.v1", *([f"realtalk.token.{token}"] if token else [])]
        async with connect(ws_url(base, agent), subprotocols=protocols,  # type: ignore[arg-type]
                           origin=origin, additional_headers=headers or {}, open_timeout=WAIT_S,
                           max_size=2**22) as ws:
            yield Page(ws)

    return opened


@pytest.fixture
def speech_pcm(tmp_path: Path, require: Callable[[bool, str], None]) -> bytes:
    """'What time is it in Tokyo?' spoken by espeak-ng, as PCM16 LE mono 24 kHz."""
    from realtalk.audio.resample import resample
    from realtalk.audio.wav import read_wav

    exe = shutil.which("espeak-ng")
    require(exe is not None, "espeak-ng (apt-get install espeak-ng)")
    assert exe is not None
    out = tmp_path / "speech.wav"
    subprocess.run([exe, "-w", str(out), "What time is it in Tokyo?"], check=True)
    wav = read_wav(out)
    return resample(wav.samples, wav.rate, 24000).tobytes()
