"""Shared test fixtures.

Tests that need something outside Python (PortAudio, espeak-ng) ask for it through the
``require`` fixture: under ``CI=true`` a missing dependency fails the test, elsewhere it
skips, so CI can never go green by skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(what: str) -> NoReturn:
    """A missing test dependency: fail under CI, skip elsewhere."""
    if _in_ci():
        pytest.fail(f"missing test dependency under CI=true: {what}")
    pytest.skip(f"missing test dependency: {what}")


@pytest.fixture
def require() -> Callable[[bool, str], None]:
    """Return ``require(ok, what)``: fail under CI, skip elsewhere, when ``ok`` is false."""

    def check(ok: bool, what: str) -> None:
        if not ok:
            _missing(what)

    return check


def _user_message(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


@pytest.fixture(scope="session")
def user_message() -> Callable[[str], dict[str, Any]]:
    """Return ``user_message(text)``: the client event that adds a user text message (no
    ``response.create``), as the emulator's tests send it over the wire."""
    return _user_message


class VenvKit:
    """Setting up a fresh virtual environment, shared by ``test_packaging`` and
    ``cli/test_install`` (each keeps its own venv: what they install differs)."""

    @staticmethod
    def environment() -> dict[str, str]:
        """This environment, minus what would let the fresh venv see the source tree."""
        drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "REALTALK_PLUGINS"}
        return {key: value for key, value in os.environ.items() if key not in drop}

    @staticmethod
    def create(root: Path, *, pip: bool, timeout: float) -> None:
        """``python -m venv root``, with its own pip or ``--without-pip``."""
        options = [] if pip else ["--without-pip"]
        subprocess.run([sys.executable, "-m", "venv", *options, str(root)], check=True,
                       timeout=timeout)

    @staticmethod
    def index_step(what: str, command: Sequence[str], *, timeout: float,
                   **run: Any) -> None:
        """A step that needs the package index: its failure fails under CI, skips elsewhere.
        ``run``: more arguments of ``subprocess.run`` (``cwd``, ``env``)."""
        result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                                check=False, **run)
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            _missing(f"cannot {what} from the configured package index: {detail}")


@pytest.fixture(scope="session")
def venvkit() -> VenvKit:
    """The set-up of a fresh virtual environment (see ``VenvKit``)."""
    return VenvKit()


class PluginFactory:
    """Writes real installed distributions (dist-info + entry point) into a site dir.

    Tests use it to exercise the same discovery path ``pip install`` gives a
    third-party plugin: ``importlib.metadata`` entry points in the ``realtalk`` group.
    """

    def __init__(self, site: Path) -> None:
        self.site = site

    def __call__(
        self,
        dist: str,
        source: str,
        *,
        version: str = "1.0.0",
        files: dict[str, str] | None = None,
        entry_point: str | None = None,
    ) -> Path:
        module = dist.replace("-", "_")
        package = self.site / module
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(textwrap.dedent(source))
        for name, text in (files or {}).items():
            (package / name).write_text(textwrap.dedent(text))
        info = self.site / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            f"[realtalk]\n{entry_point or module} = {module}\n"
        )
        return package


@pytest.fixture
def make_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PluginFactory:
    """A factory of installed plugin distributions, on sys.path for this test only."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return PluginFactory(site)


@pytest.fixture
def http_server() -> Iterator[Callable[[], Any]]:
    """Return ``start()``: a real HTTP server on loopback (``tests/http_server.py``, routes
    listed there), started now and stopped at the end of the test."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("realtalk_tests_http_server", Path(__file__).with_name("http_server.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    servers: list[Any] = []

    def start() -> Any:
        server = module.LoopbackServer()
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# -- a real hosted MCP server (hosted MCP tests: tests/emulator/test_hosted_mcp.py,
# tests/test_hosted_mcp.py) ---------------------------------------------------------------

MCP_WAIT_S = 15.0
"""Longest the MCP server fixture waits for its server to start or stop."""


class HostedMcpServer:
    """A real MCP server (the ``mcp`` SDK's ``MCPServer``) over streamable HTTP, served by
    uvicorn on a loopback port of its own. Its tools: ``lookup(topic)`` answers
    ``"<topic>: open 7 to 23"``, ``break_it(reason)`` fails with ``reason``, and
    ``delete_all()`` (destructive). ``headers`` holds the headers of every HTTP request it
    got (lower-case names), so a test can check that a secret header arrived."""

    def __init__(self) -> None:
        self.url = ""
        self.headers: list[dict[str, str]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        import uvicorn
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError

        mcp = MCPServer("docs")

        @mcp.tool()
        def lookup(topic: str) -> str:
            """Opening hours of a hotel facility."""
            self.calls.append(("lookup", {"topic": topic}))
            return f"{topic}: open 7 to 23"

        @mcp.tool()
        def break_it(reason: str) -> str:
            """Always fails."""
            self.calls.append(("break_it", {"reason": reason}))
            raise ToolError(reason)

        @mcp.tool()
        def delete_all() -> str:
            """Deletes everything."""
            self.calls.append(("delete_all", {}))
            return "deleted"

        inner = mcp.streamable_http_app()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.headers.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
            await inner(scope, receive, send)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_config=None, lifespan="on")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + MCP_WAIT_S
        while not self._server.started:  # uvicorn says so with a flag only
            assert not self._task.done(), "the MCP server did not start"
            assert asyncio.get_running_loop().time() < deadline, "the MCP server did not start in time"
            await asyncio.sleep(0.01)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        return self.url

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, MCP_WAIT_S)


@pytest.fixture
async def hosted_mcp_server(require: Callable[[bool, str], None]) -> AsyncIterator[HostedMcpServer]:
    """A started :class:`HostedMcpServer` (its ``url`` ends in ``/mcp``)."""
    require(importlib.util.find_spec("mcp") is not None, "the mcp package (pip install 'realtalk[mcp]')")
    require(importlib.util.find_spec("uvicorn") is not None, "uvicorn")
    server = HostedMcpServer()
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
