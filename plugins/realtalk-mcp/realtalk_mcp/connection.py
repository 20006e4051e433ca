"""One MCP server for one session: started, called, restarted once, stopped.

The SDK's client is a stack of anyio context managers, which must be entered and exited
by the same task. So each :class:`ServerConnection` runs one long-lived *owner* task that
holds the :class:`mcp.client.Client` open and serves calls arriving through a bounded
queue, each in a task of the owner's task group. Tool handlers (the session's tasks)
only put a request in the queue and await its future: cancelling that await (a timeout,
a barge-in) cancels the request's scope, and so the request to the server.

The rules:

- Starting (process or HTTP session, handshake, ``tools/list``) is bounded by
  ``startup_timeout_s``; closing is bounded by :data:`CLOSE_TIMEOUT_S`.
- A server that dies (its process exits, its HTTP connection fails hard) fails the call in
  flight with an error naming it. The next call starts it again, once; a second crash is
  reported (``warn``, once) and every later call fails at once saying the server is down.
- A stdio server gets the variables the SDK passes by default (``PATH``, ``HOME``...)
  plus its ``env``, not the whole environment; its stderr goes to a temporary file whose
  last line explains a failed start.
- Every text that leaves (errors, warnings, outputs) is redacted of the secrets its
  ``env`` and ``headers`` brought.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO, cast

import anyio
import httpx2
from mcp import types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from realtalk.envrefs import redact
from realtalk.toolsources import McpServerSpec

__all__ = ["CLOSE_TIMEOUT_S", "ServerConnection", "ServerDown"]

CLOSE_TIMEOUT_S = 3.0
MAX_QUEUED = 32  # calls waiting for the owner task; more fail at once (a bound, not a tuning)
MAX_PAGES = 20  # tools/list pages read at start
_CONNECTION_CLOSED = -32000  # mcp_types.CONNECTION_CLOSED


class ServerDown(Exception):
    """The server crashed (or could not be restarted): calls fail with this message."""


class _ConnectionLost(Exception):
    """The owner task ended (the connection failed) while this call was in flight."""


@dataclass
class _Request:
    name: str
    arguments: dict[str, Any]
    future: asyncio.Future[types.CallToolResult]
    scope: anyio.CancelScope | None = field(default=None)


class ServerConnection:
    """One server of one session (see the module docstring)."""

    def __init__(self, spec: McpServerSpec, env: dict[str, str], headers: dict[str, str],
                 secrets: Sequence[str], warn: Callable[[str], None]) -> None:
        self.spec = spec
        self._env = env
        self._headers = headers
        self.secrets = tuple(secrets)
        self._warn = warn
        self._queue: asyncio.Queue[_Request] = asyncio.Queue(maxsize=MAX_QUEUED)
        self._owner: asyncio.Task[None] | None = None
        self._errlog: TextIO | None = None
        self.crashes = 0
        self.down: str | None = None  # why calls fail at once
        self._restarting: asyncio.Lock = asyncio.Lock()
        self._closed = False

    # -- starting and stopping -------------------------------------------------------

    async def start(self) -> list[types.Tool]:
        """Start the server and list its tools, within ``startup_timeout_s``.

        Raises:
            ServerDown: It did not start in time, or failed to (one line, redacted).
        """
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[types.Tool]] = loop.create_future()
        self._queue = asyncio.Queue(maxsize=MAX_QUEUED)
        self._owner = asyncio.create_task(self._own(ready), name=f"realtalk-mcp-{self.spec.name}")
        waited: set[asyncio.Future[Any]] = {ready, self._owner}
        done, _ = await asyncio.wait(waited, timeout=self.spec.startup_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and not ready.cancelled() and ready.exception() is None:
            return ready.result()
        await self._stop_owner()
        error = ready.exception() if ready.done() and not ready.cancelled() else None
        if not done:
            raise ServerDown(self.clean(f"did not start within {self.spec.startup_timeout_s:g} s"
                                         f" (startup_timeout_s){self._stderr_tail()}"))
        raise ServerDown(self.clean(f"{_describe(error)}{self._stderr_tail()}"))

    async def aclose(self) -> None:
        """Stop the server, within :data:`CLOSE_TIMEOUT_S` (idempotent)."""
        self._closed = True
        self.down = self.down or "the session is closing"
        await self._stop_owner()
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None

    async def _stop_owner(self) -> None:
        owner, self._owner = self._owner, None
        if owner is None:
            return
        owner.cancel()
        done, _ = await asyncio.wait({owner}, timeout=CLOSE_TIMEOUT_S)
        if done and not owner.cancelled() and owner.exception() is not None:
            owner.exception()  # retrieved: its failure was reported through the futures

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        """The SDK transport; what it needs closed (the HTTP client) goes on ``stack``."""
        if self.spec.command is not None:
            if self._errlog is None:
                # Open while the server runs; closed by aclose.
                self._errlog = cast("TextIO", tempfile.TemporaryFile(  # noqa: SIM115
                    mode="w+", encoding="utf-8", errors="replace"))
            params = StdioServerParameters(command=self.spec.command, args=list(self.spec.args),
                                           env=self._env or None, cwd=self.spec.cwd)
            return stdio_client(params, errlog=self._errlog)
        assert self.spec.url is not None
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=self._headers, timeout=httpx2.Timeout(30.0, read=300.0)))
        return streamable_http_client(self.spec.url, http_client=http)

    async def _own(self, ready: asyncio.Future[list[types.Tool]]) -> None:
        """The owner task: holds the client open and serves queued calls until cancelled."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                info = types.Implementation(name="realtalk", version="1")
                client = await stack.enter_async_context(Client(await self._transport(stack), client_info=info))
                ready.set_result(await _list_tools(client))
                async with anyio.create_task_group() as group:
                    while True:
                        request = await self._queue.get()
                        group.start_soon(_serve, client, request)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ServerDown("stopped while starting"))
            self._fail_queued(ServerDown(f"{self.spec.describe()} stopped"))
            raise

    def _fail_queued(self, error: Exception) -> None:
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if not request.future.done():
                request.future.set_exception(error)

    # -- calls -------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call ``name`` on the server; a dead server is restarted once.

        Raises:
            ServerDown: The server crashed during this call, or is down for good.
            MCPError, RuntimeError: The server refused the call, or its result does not
                match the tool's declared output schema.
        """
        if self.down is not None:
            raise ServerDown(self.down)
        await self._ensure_running()
        request = _Request(name, arguments, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(request)
        except asyncio.QueueFull:
            raise ServerDown(f"{self.spec.describe()} has {MAX_QUEUED} calls waiting already") from None
        try:
            return await request.future
        except asyncio.CancelledError:
            request.future.cancel()
            if request.scope is not None:
                request.scope.cancel()  # the request to the server ends too
            raise
        except _ConnectionLost:
            raise await self._crashed() from None
        except MCPError as exc:
            if exc.error.code == _CONNECTION_CLOSED:
                raise await self._crashed() from None
            raise
        except (RuntimeError, ValueError, ServerDown):
            raise
        except Exception:  # noqa: BLE001 - anything else broke the connection itself
            raise await self._crashed() from None

    async def _ensure_running(self) -> None:
        """Restart a server that crashed once (bounded by its startup timeout)."""
        async with self._restarting:
            if self._owner is not None and not self._owner.done():
                return
            if self._owner is not None:  # it ended between calls
                self.crashes += 1
                await self._stop_owner()
                if self.crashes >= 2:
                    self._give_up(f"{self.spec.describe()} crashed twice; its tools are unavailable for the rest"
                                  " of the session")
            if self.down is not None:
                raise ServerDown(self.down)
            try:
                await self.start()
            except ServerDown as exc:
                self._give_up(f"{self.spec.describe()} could not be restarted: {exc}")
                raise ServerDown(self.down or str(exc)) from None

    async def _crashed(self) -> ServerDown:
        """Note a crash: stop what is left of the connection; on the second, give up."""
        if self._closed:
            return ServerDown(f"{self.spec.describe()} stopped: the session is closing")
        if self._owner is not None:  # the first call to notice counts the crash
            self.crashes += 1
            await self._stop_owner()
        if self.crashes >= 2:
            self._give_up(f"{self.spec.describe()} crashed twice; its tools are unavailable for the rest"
                          " of the session")
            return ServerDown(self.down or "")
        return ServerDown(self.clean(f"{self.spec.describe()} stopped during the call; it is restarted"
                                      " at the next call"))

    def _give_up(self, message: str) -> None:
        if self.down is None:
            self.down = self.clean(message)
            self._warn(self.down)

    # -- text ------------------------------------------------------------------------

    def clean(self, text: str) -> str:
        """``text`` on one line, its secrets redacted."""
        return redact(" ".join(text.split()), self.secrets)

    def _stderr_tail(self) -> str:
        """`` (stderr: LAST LINE)`` of a stdio server, or ``""``."""
        log = self._errlog
        if log is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            log.seek(0)
            lines = [line.strip() for line in log.read()[-4000:].splitlines() if line.strip()]
            log.seek(0, 2)
            if lines:
                return f" (stderr: {lines[-1][:300]})"
        return ""


async def _serve(client: Client, request: _Request) -> None:
    """One call, in the owner's task group: its result or error goes to the caller's future."""
    if request.future.done():
        return
    try:
        with anyio.CancelScope() as scope:
            request.scope = scope
            try:
                result = await client.call_tool(request.name, request.arguments)
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who decides
                if not request.future.done():
                    request.future.set_exception(exc)
                return
            if not request.future.done():
                request.future.set_result(result)
    finally:
        if not request.future.done():  # the connection's task group was torn down under it
            request.future.set_exception(_ConnectionLost())


async def _list_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _describe(error: BaseException | None) -> str:
    """One line for a failed start."""
    if error is None:
        return "stopped while starting"
    if isinstance(error, FileNotFoundError):
        return f"command not found: {error.filename or error}"
    grouped = getattr(error, "exceptions", None)  # an ExceptionGroup from the SDK's task groups
    if isinstance(grouped, (list, tuple)) and grouped:
        return _describe(grouped[0])
    if isinstance(error, httpx2.HTTPError):
        return f"{type(error).__name__}: {error}"
    text = str(error) or type(error).__name__
    return text if isinstance(error, (MCPError, ServerDown)) else f"{type(error).__name__}: {text}"
