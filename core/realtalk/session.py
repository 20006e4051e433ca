"""One conversation with a Realtime server: the shared runtime.

A :class:`Session` connects, configures the active agent, and then runs one reader task
that feeds every server event to the sans-I/O core (:mod:`realtalk.protocol`): the
:class:`~realtalk.protocol.conversation.Conversation` mirror and the
:class:`~realtalk.protocol.arbiter.ResponseArbiter`, the only owner of
``response.create``. Function calls run as their own tasks, so parallel calls run
concurrently and a slow tool never stalls the reader. Handoffs, barge-in and reconnects
are handled here; everything a user might watch is published as :class:`SessionEvent`.

Typical use::

    async with Session(graph, "concierge", plugins.registry, profile) as session:
        turn = await session.ask("What time is it in Tokyo?")
        print(turn.text)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from .agents import AgentGraph, AgentSpec, greeting_response
from .audio.bridge import AudioBridge
from .connection import (
    Backoff,
    ConnectionClosed,
    ConnectionProfile,
    FrameTooLarge,
    RealtimeConnection,
    connect,
)
from .exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    ProtocolError,
    RealtalkError,
    ServerRejected,
    SessionError,
)
from .protocol.arbiter import ALREADY_ACTIVE, ResponseArbiter
from .protocol.conversation import Conversation
from .protocol.events import EventIds, error_summary, normalize_server_event, to_wire
from .protocol.session_config import build_session_update
from .protocol.validate import check_server_event
from .results import ApprovalRequest, Approver, Listener, SessionEvent, ToolCallRecord, TurnResult
from .tools import (
    Tool,
    ToolContext,
    ToolOutcome,
    ToolRegistry,
    error_output,
    run_tool,
    validate_arguments,
)

if TYPE_CHECKING:
    from .audio.playback import OutputSink
    from .recorder import Recorder

__all__ = ["ApprovalRequest", "Session", "SessionEvent", "ToolCallRecord", "TurnResult"]  # results re-exported

log = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 2.0
"""How long closing waits for the server's close frame before dropping the socket."""
HEALTHY_S = 30.0
"""A connection that stayed up this long ends a run of failed reconnects."""
MIN_LIFETIME_S = 1.0
"""A session said to live shorter than this (or to have expired already: the clocks
disagree) is not rotated ahead of expiry; it is reconnected when it ends."""

# The tools a response may call: those of the agent the server was configured with when
# the response was created.
Scope = tuple[AgentSpec, dict[str, Tool]]


class Session:
    """One conversation, possibly over several connections (reconnects keep it whole).

    Args:
        graph: The agents that may take part (handoffs move between them).
        agent: Name of the agent to start with.
        registry: Installed tools.
        profile: Where and how to connect.
        text_only: Answer in text even if the agents speak (text chat, scripts).
        approve: Asked before each call of a ``requires_approval`` tool; without it such
            calls are refused (the model is told).
        recorder: Writes every event sent and received.
        output: Where assistant audio goes (speaker or WAV), with its playback tracker.
        max_reconnects: Reconnects in a row, with no response completed and no
            connection up for 30 s in between, before the session gives up with a
            :class:`~realtalk.exceptions.ConnectionFailed`. Each reconnect after the first
            of such a run waits longer (``backoff_s`` doubling, full jitter).
        rotate_margin_s: Reconnect proactively this long before ``expires_at``, at an
            idle turn boundary.
        backoff_s: First reconnect delay; doubles per attempt, with full jitter.
    """

    def __init__(
        self,
        graph: AgentGraph,
        agent: str,
        registry: ToolRegistry,
        profile: ConnectionProfile,
        *,
        text_only: bool = False,
        approve: Approver | None = None,
        recorder: Recorder | None = None,
        output: OutputSink | None = None,
        max_reconnects: int = 5,
        rotate_margin_s: float = 120.0,
        backoff_s: float = 0.5,
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.profile = profile
        self.text_only = text_only
        self.agent = self._prepare(graph.get(agent))
        self.reconnects = 0
        self._approve = approve
        self._recorder = recorder
        self._max_reconnects = max_reconnects
        self._rotate_margin_s = rotate_margin_s
        self._backoff_s = backoff_s
        self._audio = AudioBridge(output, self.agent.audio_format)
        self._uncommitted_ms = 0.0  # input audio sent since the last commit

        # The connection, and the session on it (replaced on every reconnect).
        self._dialect: Literal["ga", "beta"] = profile.dialect
        self._conn: RealtimeConnection | None = None
        self._connected = asyncio.Event()  # clear while a connection is being replaced
        self._reconnecting = False  # a turn is not over while its session is being replaced
        self._closing = False
        self._reader: asyncio.Task[None] | None = None
        self._rotator: asyncio.Task[None] | None = None
        self._expires_at: float | None = None
        self._created_at: float | None = None
        self._expected_update: dict[str, Any] | None = None  # what session.updated must show
        self._pending_scope: Scope | None = None  # the agent of the update not yet confirmed
        self._live_since = 0.0  # when the current connection went live (monotonic)
        self._streak = 0  # reconnects in a row without progress (see max_reconnects)
        self._reconnect_backoff = Backoff(initial=backoff_s)
        self._clock_warned = False
        self._carried = False  # the replaced arbiter still owed a response
        self._oversized = 0  # frames over the size limit so far (see _read_loop)
        self._updated = asyncio.Event()
        self._received_at = 0.0  # when the event being handled arrived (perf_counter)

        # The sans-I/O core: what the conversation holds, and who may ask for a response.
        self._ids = EventIds()
        self._conversation = Conversation()
        self._arbiter = ResponseArbiter(ids=self._ids)

        # The active agent's tools and voice, and the calls running now. A call is checked
        # against the scope of the response that made it, never the agent active now.
        self._tools: dict[str, Tool] = {}
        self._live: Scope = (self.agent, {})  # what the server confirmed it is configured as
        self._response_scope: dict[str, Scope] = {}  # response id -> scope, until its done
        self._voice: str | None = None
        self._audio_heard = False  # assistant audio exists: the voice is locked
        self._calls: dict[str, tuple[asyncio.Task[None], bool]] = {}  # running: task, cancellable
        self._seen_calls: set[str] = set()  # every call_id ever started, to ignore repeats
        self._pending_handoffs = 0

        # Turns: the one in progress, and finished ones not yet collected by wait_turn().
        self._idle = asyncio.Event()
        self._turn: TurnResult | None = None
        self._turn_started: float | None = None
        self._turn_responses = 0
        self._finished: collections.deque[TurnResult] = collections.deque()
        self._turn_done = asyncio.Event()  # set whenever a turn is appended to _finished
        self._speaking = False  # the server heard speech start and not yet stop
        self._activity = asyncio.Event()  # speech or a response began
        self._failure: BaseException | None = None
        self._failed = asyncio.Event()

        # Publishing.
        self._listeners: list[Listener] = []
        self._queue: asyncio.Queue[SessionEvent | None] = asyncio.Queue()  # None: closed

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Session:  # noqa: PYI034 - typing.Self needs Python 3.11
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and configure the starting agent.

        Raises:
            AuthenticationFailed, ServerRejected: The server refused us; do not retry.
            ConnectionFailed: The server could not be reached after retries.
            SessionError: The server did not apply our configuration.
        """
        try:
            await self._setup(await self._connect(), history=[])
        except ConnectionClosed as exc:  # dropped before it was configured: like any drop
            await self._replace_session(f"the connection dropped during setup ({exc})", [], dropped=True)
            self._reconnecting = False
        self._emit("connected", agent=self.agent.name, url=self.profile.display_url)

    async def close(self) -> None:
        """Cancel running tools, close the socket, and stop the reader (bounded, idempotent).

        The socket is closed first, while the reader still drains it: a server that is
        still streaming gets its close frame answered at once, not after a timeout.
        """
        if self._closing:
            return
        self._closing = True
        self._arbiter.withdraw()
        self._failed.set()  # wake whoever waits for a live connection
        for task, _ in list(self._calls.values()):
            task.cancel()
        if self._rotator is not None:
            self._rotator.cancel()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=CLOSE_TIMEOUT_S)
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            done, _ = await asyncio.wait({reader}, timeout=CLOSE_TIMEOUT_S)
            if not done:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        if self._recorder is not None:
            self._recorder.close()
        self._queue.put_nowait(None)

    # -- what applications call ---------------------------------------------------------

    def on(self, listener: Listener) -> None:
        """Call ``listener`` with every :class:`SessionEvent`, as it happens."""
        self._listeners.append(listener)

    async def events(self) -> AsyncIterator[SessionEvent]:
        """Iterate over :class:`SessionEvent` until the session closes."""
        while (event := await self._queue.get()) is not None:
            yield event

    async def send_text(self, text: str) -> None:
        """Add a user text message and ask for a response (through the arbiter).

        The message carries an id of ours, so that if the socket dies before the server
        confirms it, the reconnect sends it again.
        """
        self._begin_turn()
        await self._send({"type": "conversation.item.create", "item": {
            "id": f"item_rt{secrets.token_hex(8)}", "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}})
        await self._request("user text")
        self._update_idle()

    async def greet(self, timeout: float | None = 120.0) -> TurnResult | None:
        """Let the active agent speak first, if it has a ``greeting``; wait for it.

        Returns:
            The greeting turn, or None when the agent has no greeting.
        """
        body = greeting_response(self.agent)
        if body is None:
            return None
        self._finished.clear()
        self._begin_turn()
        await self._request("greeting", body)
        self._update_idle()
        return await self.wait_turn(timeout)

    async def ask(self, text: str, timeout: float | None = 120.0) -> TurnResult:
        """Send ``text`` and wait until the turn is over (tools, handoffs, replies).

        Returns:
            The turn's text, tool calls, handoffs, usage and latency.
        """
        self._finished.clear()  # earlier turns nobody collected are not this text's answer
        deadline = None if timeout is None else time.monotonic() + timeout
        # Not asyncio.wait_for: before Python 3.12 it can swallow a cancellation that
        # arrives just as the send finishes, and Ctrl-C must always work.
        sending = asyncio.create_task(self.send_text(text))
        try:
            done, _ = await asyncio.wait({sending}, timeout=timeout)
        finally:
            if not sending.done():
                sending.cancel()
        if not done:
            raise TimeoutError(f"could not send the text within {timeout} s (reconnecting?)")
        sending.result()
        return await self._wait_turn(deadline, timeout)

    async def wait_turn(self, timeout: float | None = 120.0) -> TurnResult:
        """The oldest finished turn not collected yet, or wait for the current one to end.

        A turn ends when nothing is active, owed or in flight and no tool is running.

        Raises:
            TimeoutError: The turn did not finish in ``timeout`` seconds.
            SessionError, ConnectionFailed: The session failed meanwhile, or was closed.
        """
        return await self._wait_turn(None if timeout is None else time.monotonic() + timeout, timeout)

    async def _wait_turn(self, deadline: float | None, timeout: float | None) -> TurnResult:
        while not self._finished:
            if self._failure is not None:
                raise self._failure
            if self._closing:
                raise SessionError("the session is closed")
            self._turn_done.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"the turn did not finish within {timeout} s")
            done = asyncio.create_task(self._turn_done.wait())
            failed = asyncio.create_task(self._failed.wait())
            try:
                await asyncio.wait({done, failed}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                done.cancel()
                failed.cancel()
        return self._finished.popleft()

    async def next_turn(self, timeout: float | None = 120.0, settle_s: float = 1.5) -> TurnResult | None:
        """The next finished turn, or None if nothing starts within ``settle_s``.

        For audio input: after the last chunk, the server may still be deciding whether
        the user spoke; this waits briefly for speech or a response to begin.
        """
        pending = bool(self._finished) or self._turn is not None or self._speaking or self._busy()
        if not pending:
            self._activity.clear()
            try:
                await asyncio.wait_for(self._activity.wait(), settle_s)
            except asyncio.TimeoutError:
                return None
        return await self.wait_turn(timeout)

    async def append_audio(self, pcm24k: bytes) -> None:
        """Send input audio (PCM16 mono 24 kHz; converted to G.711 when the agent uses it)."""
        await self._send({"type": "input_audio_buffer.append", "audio": self._audio.encode_input(pcm24k)})
        self._uncommitted_ms += len(pcm24k) / 48.0

    async def commit_audio(self) -> bool:
        """End a push-to-talk turn: commit the buffer and ask for a response.

        Returns:
            False (and a ``warning`` event) when less than 100 ms of audio was sent since
            the last commit: the server would refuse it, so nothing is sent.
        """
        if self._uncommitted_ms < 100:
            self._emit("warning", message="nothing recorded: hold the turn open longer before sending")
            return False
        self._uncommitted_ms = 0.0
        self._begin_turn()
        await self._send({"type": "input_audio_buffer.commit"})
        await self._request("push-to-talk")
        self._update_idle()
        return True

    async def switch_agent(self, name: str) -> None:
        """Make ``name`` the active agent now (the same path a handoff takes, no call).

        Raises:
            ConfigError: No such agent in the graph.
        """
        await self._switch(self._prepare(self.graph.get(name)), call_id=None)

    # -- setup and reconnects -----------------------------------------------------------

    def _prepare(self, agent: AgentSpec) -> AgentSpec:
        return replace(agent, output_modalities=("text",)) if self.text_only else agent

    def _agent_update(self, agent: AgentSpec, *, include_voice: bool) -> dict[str, Any]:
        tools = self.graph.tools_for(agent, self.registry)
        self._tools = {t.name: t for t in tools}
        self._audio.set_format(agent.audio_format)
        event = build_session_update(agent, tools, profile=self._dialect, include_voice=include_voice)
        if include_voice:
            self._voice = agent.voice
        self._expected_update = {"instructions": agent.instructions, "tools": sorted(self._tools)}
        self._pending_scope = (agent, dict(self._tools))
        self._updated.clear()
        return event

    async def _connect(self, retries: int = 4) -> RealtimeConnection:
        return await connect(self.profile, retries=retries, backoff=Backoff(initial=self._backoff_s))

    async def _setup(self, conn: RealtimeConnection, history: list[dict[str, Any]]) -> None:
        """Take a fresh connection to a configured, seeded, running session."""
        self._conn = conn
        self._conversation = Conversation()
        # What the old connection's arbiter still owed (queued or unanswered requests)
        # is asked for again once the new session is live (see _recover).
        old = self._arbiter
        self._carried = self._carried or bool(old.wants_response or old.in_flight)
        self._arbiter = ResponseArbiter(ids=self._ids)
        self._response_scope.clear()
        self._audio_heard = False
        first = await self._recv(SETUP_TIMEOUT_S, "session.created")
        if first.get("type") != "session.created":
            raise ProtocolError(f"expected session.created as the first event, got {first.get('type')!r}")
        await self._handle(first)
        await self._transmit(self._agent_update(self.agent, include_voice=True))
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while not self._updated.is_set():
            await self._handle(await self._recv(deadline - time.monotonic(), "session.updated"))
        for event in history:
            await self._transmit(event, seeding=True)
        # Go live only once the server holds the whole history, so a second reconnect
        # right after this one cannot lose what was not confirmed yet.
        while len(self._conversation.order) < len(history):
            await self._handle(await self._recv(deadline - time.monotonic(), "conversation.item.done"))
        # Calls still running answer a response of the old connection: the follow-up
        # waits for all of their outputs, as it would have there.
        answered = {e["item"].get("call_id") for e in history if e["item"].get("type") == "function_call_output"}
        self._arbiter.expect_outputs([c for c in self._calls if c not in answered])
        self._connected.set()
        self._live_since = time.monotonic()
        self._reader = asyncio.create_task(self._read_loop(), name="realtalk-reader")
        if self._rotate_margin_s > 0:
            self._rotator = asyncio.create_task(self._rotate_when_due(conn), name="realtalk-rotator")

    async def _recv(self, timeout: float, waiting_for: str) -> dict[str, Any]:
        assert self._conn is not None
        try:
            event = await asyncio.wait_for(self._conn.recv(), timeout=max(timeout, 0.001))
        except asyncio.TimeoutError:
            raise SessionError(
                f"the server sent no {waiting_for} within {SETUP_TIMEOUT_S:g} s; is it a Realtime"
                " API server speaking the GA protocol?") from None
        self._record("server", event)
        return event

    async def _read_loop(self) -> None:
        """Read and handle server events until the connection ends, then recover."""
        try:
            while True:
                assert self._conn is not None
                try:
                    event = await self._conn.recv()
                    self._received_at = time.perf_counter()
                    self._record("server", event)
                    await self._handle(event)
                except ConnectionClosed as closed:  # reading, or sending what an event asked for
                    if isinstance(closed, FrameTooLarge):
                        self._oversized += 1
                        if self._oversized > 1:  # it came again after a reconnect: give up
                            raise ConnectionFailed(f"{closed}; it happened twice, ending the session") from None
                        self._emit("warning", message=f"{closed}; reconnecting once")
                    if not self._closing:
                        await self._recover(f"connection closed ({closed})")
                    return  # a new reader runs on the new connection
                # Let tool tasks run between events: a burst of buffered events must not
                # delay an output (say, of a tool cancelled by barge-in) behind it.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever ends the reader ends the session, visibly
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """Record a failure that ends the session; whoever waits on it gets it.

        Only :class:`~realtalk.exceptions.RealtalkError` reaches applications: anything
        else (a bug, or a server event we could not cope with) becomes a SessionError
        with one line, and its traceback goes to the debug log.
        """
        if self._closing:
            return
        if not isinstance(exc, RealtalkError):
            log.debug("session failed", exc_info=exc)
            exc = SessionError(f"the session failed: {type(exc).__name__}: {exc}")
        if self._failure is None:
            self._failure = exc
            self._emit("error", message=str(exc), fatal=True)
        self._failed.set()

    async def _recover(self, reason: str) -> None:
        """The socket dropped (or the session expired): reconnect and carry on."""
        history = self._conversation.history_items()
        # Owed: the conversation ends on the user or a tool output (a reply cut off by the
        # drop is not in the history), or a request was queued or not yet started. A reply
        # the server finished before the drop is not asked for twice.
        log.warning("reconnecting: %s", reason)
        await self._replace_session(reason, history, dropped=True)
        owed = _needs_reply(history) or self._carried
        # Calls still running send their outputs on the new connection; a turn that was
        # cut off before the assistant answered gets its response now.
        if owed and not self._calls:
            for event in self._arbiter.request_response("resume after reconnect"):
                await self._transmit(event)
        self._reconnecting = False
        self._update_idle()

    async def _replace_session(self, reason: str, history: list[dict[str, Any]], *, dropped: bool) -> None:
        """Close the current connection and go live on a new one seeded with ``history``.

        ``dropped`` says the old connection failed (rather than being rotated or replaced
        for a voice): such reconnects count against ``max_reconnects`` and back off. A
        new connection that drops while the history is restored is retried the same way.
        The caller must have stopped the old reader unless it is the old reader, and
        must clear ``_reconnecting`` once it has sent what the new session needs next.

        Raises:
            ConnectionFailed: The budget of reconnects in a row is spent, or the server
                cannot be reached.
            AuthenticationFailed, ServerRejected: The server refused us.
        """
        self._reconnecting = True
        self._connected.clear()
        self._carried = False
        self._audio.stop()
        rotator, self._rotator = self._rotator, None
        if rotator is not None and rotator is not asyncio.current_task():
            rotator.cancel()  # the new connection gets a rotator of its own
        while True:
            if dropped:
                await self._back_off(reason)
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close(timeout=CLOSE_TIMEOUT_S)
            try:
                conn = await self._connect()
            except (AuthenticationFailed, ServerRejected):
                raise
            except ConnectionFailed as exc:
                raise ConnectionFailed(f"could not open a new session ({reason}): {exc}") from None
            try:
                await self._setup(conn, history)
            except ConnectionClosed as exc:
                reason, dropped = f"the connection dropped while the conversation was restored ({exc})", True
                continue
            break
        self.reconnects += 1
        self._emit("reconnected", reason=reason, items=len(history), attempt=self.reconnects)

    async def _back_off(self, reason: str) -> None:
        """Count one failed connection; wait longer the more fail in a row, or give up."""
        if self._live_since and time.monotonic() - self._live_since >= HEALTHY_S:
            self._streak = 0  # it served a good while: a fresh run of reconnects
        self._streak += 1
        if self._streak > self._max_reconnects:
            raise ConnectionFailed(
                f"gave up after {self._max_reconnects} reconnects in a row with no response"
                f" completed in between (last: {reason})")
        if self._streak > 1:
            await asyncio.sleep(self._reconnect_backoff.delay(self._streak - 2))

    async def _rotate_when_due(self, conn: RealtimeConnection) -> None:
        """Replace ``conn``'s session shortly before it expires, at an idle turn boundary."""
        try:
            due = self._rotation_due()
            if due is None:
                return
            await asyncio.sleep(max(0.0, due - time.time()))
            await self._idle.wait()
            if self._conn is not conn or self._closing:
                return
            if self._reader is not None:
                self._reader.cancel()
            await self._replace_session("rotated before expiry", self._conversation.history_items(),
                                        dropped=False)
            self._reconnecting = False
            self._update_idle()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed rotation ends the session, visibly
            self._fail(exc)

    def _rotation_due(self) -> float | None:
        """When to rotate (wall clock), or None: no expiry known, or one we cannot trust."""
        if self._expires_at is None or self._created_at is None:
            return None
        lifetime = self._expires_at - self._created_at
        if lifetime < MIN_LIFETIME_S:
            if not self._clock_warned:
                self._clock_warned = True
                self._emit("warning", message=(
                    f"the server says this session expires in {lifetime:.0f} s (expires_at"
                    f" {self._expires_at:.0f}); are the clocks apart? not rotating ahead of"
                    " expiry, the session reconnects when it ends"))
            return None
        # Never rotate a session younger than half its life: short-lived sessions (as in
        # tests, or servers with small limits) would otherwise rotate at every turn.
        margin = min(self._rotate_margin_s, lifetime / 2)
        return float(self._expires_at) - margin

    # -- sending ------------------------------------------------------------------------

    async def _send(self, event: dict[str, Any]) -> None:
        """Send one client event once connected; survives a reconnect in between.

        Tool tasks and the public API send through here. If the socket drops under us,
        wait for the reader to reconnect and send on the new connection, so no output
        or user message is lost.
        """
        while True:
            await self._wait_live()
            try:
                await self._transmit(event)
                return
            except ConnectionClosed:
                if self._closing:
                    raise
                self._connected.clear()

    async def _request(self, reason: str, body: dict[str, Any] | None = None) -> None:
        """Ask the arbiter for a response and send what it allows now.

        A ``response.create`` is never carried over to another connection: if the
        connection is replaced before it is sent, or dies under it, the reconnect decides
        what the new session owes (see ``_recover``), so it is never sent twice.
        """
        arbiter = self._arbiter
        for event in arbiter.request_response(reason, body):
            await self._wait_live()
            if self._arbiter is not arbiter:
                return
            try:
                await self._transmit(event)
            except ConnectionClosed:
                if self._closing:
                    raise
                return

    async def _wait_live(self) -> None:
        """Wait for a live connection; raise if the session failed or closed meanwhile."""
        while not self._connected.is_set():
            if self._failure is not None:
                raise self._failure
            if self._closing:
                raise SessionError("the session is closed")
            live = asyncio.create_task(self._connected.wait())
            failed = asyncio.create_task(self._failed.wait())
            try:
                await asyncio.wait({live, failed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                live.cancel()
                failed.cancel()

    async def _transmit(self, event: dict[str, Any], *, seeding: bool = False) -> None:
        """Send one client event now; every event the runtime sends ends here.

        ``seeding`` marks history replayed into a new session: its outputs answer calls
        the old session already followed up, so the arbiter must not see them as new.
        """
        assert self._conn is not None
        event = self._ids.stamp(event)
        await self._conn.send(to_wire(event, self._dialect))
        self._record("client", event)
        self._conversation.on_client_event(event)
        if seeding:
            return
        for follow in self._arbiter.on_client_event(event):
            await self._transmit(follow)

    def _record(self, direction: str, event: dict[str, Any]) -> None:
        if self._recorder is not None:
            self._recorder.record(direction, event)

    # -- server events ------------------------------------------------------------------

    async def _handle(self, raw: dict[str, Any]) -> None:
        """Check one server event's field types, then feed it to the core and act on it.

        A malformed event is a warning (and skipped when it means nothing without the
        bad field), never a traceback; see ``protocol.validate``.
        """
        checked, problems = check_server_event(raw)
        for problem in problems:
            log.warning("%s", problem)
            self._emit("warning", message=problem)
        if checked is None:
            return
        for event in normalize_server_event(checked):
            self._conversation.on_server_event(event)
            for out in self._arbiter.on_server_event(event):
                await self._transmit(out)
            try:
                await self._dispatch(event)
            except (RealtalkError, ConnectionClosed, asyncio.CancelledError):
                raise
            except Exception as exc:
                where = f"{event.get('type')} {event.get('event_id') or ''}".strip()
                message = f"could not act on server event {where}: {type(exc).__name__}: {exc}"
                log.warning("%s", message)
                log.debug("traceback", exc_info=exc)
                self._emit("warning", message=message)
        self._update_idle()

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.created":
            expires = event.get("session", {}).get("expires_at")
            self._expires_at = float(expires) if isinstance(expires, (int, float)) and expires > 0 else None
            self._created_at = time.time()
        elif kind == "session.updated":
            self._verify_update(event.get("session", {}))
        elif kind == "response.output_audio.delta":
            self._audio_heard = True
            self._first_delta()
            self._audio.on_delta(event.get("item_id", ""), event.get("delta", ""))
        elif kind == "response.output_audio.done":
            self._audio.on_done(event.get("item_id", ""))
        elif kind in ("response.output_text.delta", "response.output_audio_transcript.delta"):
            self._first_delta()
            self._emit("assistant.delta", agent=self.agent.name, delta=event.get("delta", ""))
        elif kind in ("response.output_text.done", "response.output_audio_transcript.done"):
            text = event.get("text") if kind.endswith("text.done") else event.get("transcript")
            if self._turn is not None and text:
                self._turn.text = (self._turn.text + "\n" + text).strip()
            self._emit("assistant.done", agent=self.agent.name, text=text or "")
        elif kind == "conversation.item.input_audio_transcription.completed":
            self._emit("user.transcript", text=event.get("transcript", ""))
        elif kind == "conversation.item.input_audio_transcription.failed":
            error = event.get("error")
            said = (error.get("message") or error.get("code")) if isinstance(error, dict) else None
            self._emit("warning", message=(
                f"the user's speech could not be transcribed ({said or 'no reason given'}); the turn is kept, but a"
                " reconnect could not tell the new session what was said"))
        elif kind == "response.function_call_arguments.done":
            self._start_call(event)
        elif kind == "response.created":
            self._activity.set()
            self._turn_responses += 1
            if self._turn is None:  # a response the server started by itself
                self._turn = TurnResult()
            rid = event.get("response", {}).get("id")
            if isinstance(rid, str):
                self._response_scope[rid] = self._live
        elif kind == "response.done":
            self._on_response_done(event.get("response", {}))
        elif kind == "input_audio_buffer.speech_started":
            self._speaking = True
            self._activity.set()
            await self._barge_in()
            self._finish_turn(interrupted=True)  # the user moved on: what follows is a new turn
        elif kind in ("input_audio_buffer.committed", "input_audio_buffer.cleared"):
            self._uncommitted_ms = 0.0
        elif kind == "input_audio_buffer.speech_stopped":
            self._speaking = False
            self._begin_turn()
        elif kind == "error":
            self._on_error(event)

    def _on_response_done(self, response: dict[str, Any]) -> None:
        if isinstance(response.get("id"), str):
            self._response_scope.pop(response["id"], None)
        if response.get("usage") and self._turn is not None:
            self._turn.usage.append(response["usage"])
        status = response.get("status") or "completed"
        if status == "completed":
            self._streak = 0  # progress: a run of failed reconnects is over
            return
        reason = _status_reason(response)
        if self._turn is not None:
            self._turn.note_status(str(status), reason)
        if status in ("failed", "incomplete"):
            self._emit("warning", message=f"the response ended {status}: {reason or 'no reason given'}")

    def _verify_update(self, session: dict[str, Any]) -> None:
        expected = self._expected_update
        if expected is None:
            return
        got_tools = sorted(t.get("name", "") for t in session.get("tools") or [])
        if session.get("instructions") != expected["instructions"] or got_tools != expected["tools"]:
            raise SessionError(
                "the server did not apply our session.update: it reports tools"
                f" {got_tools} and {'other' if session.get('instructions') != expected['instructions'] else 'the same'}"
                f" instructions, expected tools {expected['tools']}")
        self._expected_update = None
        if self._pending_scope is not None:
            self._live, self._pending_scope = self._pending_scope, None
        self._updated.set()

    def _on_error(self, event: dict[str, Any]) -> None:
        error = event.get("error", {})
        cause = self._ids.caused_by(event)
        code = error.get("code")
        message = f"server error {code or error.get('type')}: {error.get('message')}"
        if cause is not None:
            message += f" (in reply to our {cause.get('type')} {cause.get('event_id')})"
            if cause.get("type") == "session.update" and self._expected_update is not None:
                raise SessionError(f"the server refused our session.update: {error.get('message')}")
        log.warning("%s", message)
        self._emit("error", message=message, code=code, fatal=False)
        if cause is not None and cause.get("type") == "response.create" and code != ALREADY_ACTIVE:
            # Refused for good (the arbiter gave the request up): the turn ends with it.
            turn = self._turn if self._turn is not None else TurnResult()
            self._turn = turn
            turn.note_status("failed", error_summary(event))
            if not self._busy():
                self._finish_turn(force=True)

    # -- turns --------------------------------------------------------------------------

    def _begin_turn(self) -> None:
        """The user's input just ended (text sent, audio committed, speech stopped)."""
        if self._turn is None:
            self._turn = TurnResult()
        self._turn_started = time.perf_counter()

    def _first_delta(self) -> None:
        if self._turn is not None and self._turn.first_delta_ms is None and self._turn_started:
            self._turn.first_delta_ms = (time.perf_counter() - self._turn_started) * 1000

    def _busy(self) -> bool:
        return bool(
            self._arbiter.active_response_id or self._arbiter.in_flight or self._arbiter.wants_response
            or self._calls or self._pending_handoffs or self._reconnecting
        )

    def _update_idle(self) -> None:
        """Recompute idleness; a turn that saw a response ends when the session is idle."""
        if self._busy():
            self._idle.clear()
            return
        self._idle.set()
        self._finish_turn()

    def _finish_turn(self, *, interrupted: bool = False, force: bool = False) -> None:
        """End the current turn if it saw a response (or ``force``), and hand it to ``wait_turn``."""
        turn = self._turn
        if turn is None or (self._turn_responses == 0 and not force):
            return
        if self._turn_started is not None:
            turn.done_ms = (time.perf_counter() - self._turn_started) * 1000
        turn.interrupted = interrupted
        self._turn, self._turn_started, self._turn_responses = None, None, 0
        self._finished.append(turn)
        self._turn_done.set()
        self._emit("turn.done", agent=self.agent.name, text=turn.text, interrupted=interrupted,
                   first_delta_ms=turn.first_delta_ms, done_ms=turn.done_ms, usage=turn.usage,
                   status=turn.status, status_reason=turn.status_reason)

    # -- tools --------------------------------------------------------------------------

    def _start_call(self, event: dict[str, Any]) -> None:
        call_id = event.get("call_id", "")
        if call_id in self._seen_calls:
            return  # a duplicate done event must not run the tool twice
        self._seen_calls.add(call_id)
        # The agent that produced the response decides what may run, not whoever is
        # active by now: a handoff in the same response must not unlock the target's tools.
        agent, tools = self._response_scope.get(event.get("response_id") or "", self._live)
        record = ToolCallRecord(call_id, event.get("name", ""), event.get("arguments", ""), agent.name)
        if self._turn is not None:
            self._turn.tool_calls.append(record)
        tool = tools.get(record.name)
        if tool is not None and tool.handoff_to is not None:
            self._pending_handoffs += 1
        task = asyncio.create_task(self._run_call(record, tool, sorted(tools)),
                                   name=f"realtalk-call-{record.name}")
        cancellable = tool is not None and tool.cancellable and tool.handoff_to is None
        self._calls[call_id] = (task, cancellable)

    async def _run_call(self, record: ToolCallRecord, tool: Tool | None, available: list[str]) -> None:
        self._emit("tool.started", call_id=record.call_id, name=record.name,
                   arguments=record.arguments, agent=record.agent)
        started = time.perf_counter()
        try:
            if tool is not None and tool.handoff_to is not None:
                try:
                    await self._switch(self._prepare(self.graph.get(tool.handoff_to)), call_id=record.call_id)
                finally:
                    self._pending_handoffs -= 1
                record.status, record.output = "ok", f"transferred to {tool.handoff_to}"
                return
            outcome = await self._outcome(record, tool, available)
            record.output, record.status = outcome.output, outcome.status
            record.duration_s = time.perf_counter() - started
            self._emit("tool.finished", call_id=record.call_id, name=record.name, status=outcome.status,
                       output=outcome.output, duration_s=record.duration_s, agent=record.agent,
                       note=outcome.note)
            if outcome.note:
                log.warning("%s", outcome.note)
                self._emit("warning", message=outcome.note)
            await self._send_output(record.call_id, outcome.output)
        except asyncio.CancelledError:
            if not self._closing:
                record.status, record.output = "cancelled", error_output("cancelled: the user interrupted")
                await self._send_output(record.call_id, record.output)
        except Exception as exc:  # noqa: BLE001 - a failed handoff or send ends the session, visibly
            self._fail(exc)
        finally:
            self._calls.pop(record.call_id, None)
            self._update_idle()

    async def _outcome(self, record: ToolCallRecord, tool: Tool | None, available: list[str]) -> ToolOutcome:
        if tool is None:
            known = ", ".join(available) or "none"
            return ToolOutcome(error_output(
                f"unknown tool {record.name!r}: agent {record.agent} can call: {known}"), "unknown_tool")
        check = validate_arguments(tool, record.arguments)
        if check.error is not None or check.arguments is None:
            return ToolOutcome(check.error or "", "invalid_arguments")
        if tool.requires_approval and not await self._ask_approval(tool, check.arguments, record):
            return ToolOutcome(error_output(
                f"{tool.name} was not approved by the user; do not retry unless they ask"), "refused")
        return await run_tool(tool, check.arguments, ToolContext(record.call_id, tool.name, record.agent))

    async def _ask_approval(self, tool: Tool, arguments: dict[str, Any], record: ToolCallRecord) -> bool:
        if self._approve is None:
            return False
        answer = self._approve(ApprovalRequest(tool.name, arguments, record.agent, record.call_id))
        if inspect.isawaitable(answer):
            answer = await answer
        return bool(answer)

    async def _send_output(self, call_id: str, output: str) -> None:
        await self._send({"type": "conversation.item.create",
                          "item": {"type": "function_call_output", "call_id": call_id, "output": output}})

    # -- handoffs -----------------------------------------------------------------------

    async def _switch(self, target: AgentSpec, call_id: str | None) -> None:
        previous = self.agent
        voice_change = not target.text_only and self._voice is not None and target.voice != self._voice
        self.agent = target
        if voice_change and self._audio_heard and target.voice_policy == "reconnect":
            history = self._conversation.history_items()
            if call_id is not None:
                history.append({"type": "conversation.item.create", "item": {
                    "type": "function_call_output", "call_id": call_id,
                    "output": json.dumps({"transferred_to": target.name})}})
            if self._reader is not None:
                self._reader.cancel()
            await self._replace_session(f"new voice for {target.name}", history, dropped=False)
            if call_id is not None:
                for event in self._arbiter.request_response(f"handoff to {target.name}",
                                                             greeting_response(target)):
                    await self._transmit(event)
            self._reconnecting = False
        else:
            if voice_change and self._audio_heard:
                self._emit("warning", message=(
                    f"{target.name} speaks with voice {target.voice}, but the API locks the voice once"
                    f" audio exists; keeping {self._voice} (set voice_policy: reconnect to switch)"))
            await self._send(self._agent_update(target, include_voice=not self._audio_heard))
            greeting = greeting_response(target)
            if call_id is not None and greeting is not None:
                # Held by the arbiter until the output is sent: the follow-up greets.
                await self._request(f"{target.name} greets", greeting)
            if call_id is not None:
                await self._send_output(call_id, json.dumps({"transferred_to": target.name}))
        if self._turn is not None:
            self._turn.handoffs.append((previous.name, target.name))
        self._emit("handoff", source=previous.name, target=target.name, call_id=call_id)

    # -- barge-in -----------------------------------------------------------------------

    async def _barge_in(self) -> None:
        """The user started speaking: silence playback, truncate to what was heard."""
        for task, cancellable in list(self._calls.values()):
            if cancellable:
                task.cancel()
        started = self._received_at
        cut = self._audio.interrupt()
        if cut is None:
            return
        events = self._conversation.interrupt(cut.item_id, cut.played_ms)
        for event in events:
            await self._transmit(event)
        self._emit("interrupted", item_id=cut.item_id, played_ms=cut.played_ms, dropped_ms=cut.dropped_ms,
                   action=events[0]["type"] if events else "none",
                   latency_ms=(time.perf_counter() - started) * 1000)

    # -- publishing ---------------------------------------------------------------------

    def _emit(self, kind: str, **data: Any) -> None:
        event = SessionEvent(kind, data)
        self._queue.put_nowait(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as exc:  # a broken listener must not break the session
                log.warning("session listener %r failed on %s: %s: %s", listener, kind, type(exc).__name__, exc)
                log.debug("listener traceback", exc_info=exc)


def _status_reason(response: dict[str, Any]) -> str | None:
    """``server_error: The server had an error`` / ``max_output_tokens`` from ``status_details``."""
    details = response.get("status_details")
    if not isinstance(details, dict):
        return None
    error = details.get("error")
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or "error"
        message = error.get("message")
        return f"{code}: {message}" if message else str(code)
    reason = details.get("reason")
    return str(reason) if reason else None


def _needs_reply(history: list[dict[str, Any]]) -> bool:
    """True when the seeded conversation ends where the assistant still owes an answer."""
    if not history:
        return False
    last = history[-1]["item"]
    return bool(last.get("type") == "function_call_output" or last.get("role") == "user")
