"""One conversation with a Realtime server: the driver of the client protocol.

Every rule of the conversation lives in :class:`~realtalk.protocol.client.ClientProtocol`
(sans-I/O: events in, actions out). A :class:`Session` only moves data: it reads the
socket and feeds each event to the protocol, carries out the actions it returns (send an
event, run a tool as a task of its own, play or stop audio, publish a
:class:`SessionEvent`, reconnect with a history), and waits for turns.

Typical use::

    async with Session(graph, "concierge", plugins.registry, profile) as session:
        turn = await session.ask("What time is it in Tokyo?")
        print(turn.text)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .agents import AgentGraph, AgentSpec
from .audio.bridge import AudioBridge
from .connection import (
    Backoff,
    ConnectionClosed,
    ConnectionProfile,
    FrameTooLarge,
    RealtimeConnection,
    connect,
)
from .envrefs import redact
from .exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    ProtocolError,
    RealtalkError,
    ServerRejected,
    SessionError,
)
from .hostedmcp import session_secrets
from .images import image_part
from .protocol import client as p
from .protocol import codec
from .protocol.conversation import Conversation
from .protocol.events import to_wire
from .protocol.outofband import out_of_band_body
from .protocol.vocab import PCM
from .results import (
    ApprovalRequest,
    Approver,
    Listener,
    OutOfBandResult,
    SessionEvent,
    ToolCallRecord,
    TurnResult,
    session_event,
)
from .toolcalls import ask_approval, execute_call
from .tools import Tool, ToolOutcome, ToolRegistry, build_validators_soon
from .toolsources import SourceSet, open_sources
from .waits import within

if TYPE_CHECKING:
    from .audio.bridge import AudioOutput
    from .recorder import Recorder

__all__ = ["ApprovalRequest", "Session", "SessionEvent", "ToolCallRecord", "TurnResult"]  # results re-exported

log = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 15.0
OUT_OF_BAND_TIMEOUT_S = 30.0
"""How long :meth:`Session.ask_out_of_band` waits by default."""
CLOSE_TIMEOUT_S = 2.0
"""How long closing waits for the server's close frame before dropping the socket."""
EVENT_BACKLOG = 256
"""Session events kept for :meth:`Session.events` until it yields them (oldest dropped).

Kept from the start, so that ``events()`` called after the session opened still sees
``connected`` and what followed. Bounded, because most applications never iterate it: a
kept event is ~330 bytes (a transcript delta), so a session nobody reads holds at most
~85 KB here (1,024 held ~340 KB, more than the rest of an active session)."""
_PCM_BYTES_PER_MS = PCM.bytes_per_ms  # (a property: computed once, not per append)
_REDACTED_KINDS = frozenset({"warning", "error", "tool.started", "tool.finished", "mcp.tools_listed",
                             "assistant.done", "turn.done"})
"""Session events whose text could carry a hosted MCP secret (a server echoing a header
in an error, a tool's output): redacted before listeners see them. Deltas are not."""


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
        output: AudioOutput | None = None,
        max_reconnects: int = 5,
        rotate_margin_s: float = 120.0,
        backoff_s: float = 0.5,
    ) -> None:
        self.graph = graph
        self.profile = profile
        self.text_only = text_only
        self.reconnects = 0
        self.protocol = p.ClientProtocol(
            graph, graph.get(agent), registry, dialect=profile.dialect, text_only=text_only,
            max_reconnects=max_reconnects, rotate_margin_s=rotate_margin_s)
        self.protocol.agent = self.protocol.prepare(self.protocol.agent)
        self._approve = approve
        # What hosted MCP tools read from the environment: checked now (an unset
        # variable is a ConfigError before anything connects) and never recorded.
        self._secrets: tuple[str, ...] = ()
        self._recorder = recorder
        self._read_secrets(agent)
        self._backoff = Backoff(initial=backoff_s)
        self._audio = AudioBridge(output, self.agent.audio_format)
        self._conn: RealtimeConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._rotator: asyncio.Task[None] | None = None
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._sources: SourceSet | None = None  # the MCP servers this session started
        self._received_at = 0.0  # when the event being handled arrived (perf_counter)
        self._closing = False
        self._failure: BaseException | None = None
        # Wake-ups for whoever waits: a live connection, a finished turn, a failure.
        self._connected = asyncio.Event()
        self._changed = asyncio.Event()  # set after every batch of actions
        self._idle = asyncio.Event()
        self._listeners: list[Listener] = []
        # What events() has not yielded yet: bounded, so a session nobody iterates does
        # not grow; the oldest are dropped first. While no listener is registered, an event
        # waits here as its kind and fields, and is built only if events() yields it.
        self._backlog: collections.deque[SessionEvent | tuple[str, dict[str, Any]]] = (
            collections.deque(maxlen=EVENT_BACKLOG))

    def _read_secrets(self, start: str) -> None:
        """Read the hosted MCP secrets of ``start`` and the agents it can reach (an unset
        variable is a ConfigError), to be redacted from recordings, events and logs."""
        new = [v for v in session_secrets(self.graph.reachable(start)) if v not in self._secrets]
        if new:
            self._secrets += tuple(new)
            if self._recorder is not None:
                self._recorder.add_secrets(new)

    @property
    def registry(self) -> ToolRegistry:
        """The tools of this session: the installed ones, and its MCP servers' once started."""
        return self.protocol.registry

    @property
    def agent(self) -> AgentSpec:
        """The active agent."""
        return self.protocol.agent

    @property
    def failure(self) -> BaseException | None:
        """What ended the session on its own (a failed reconnect, a refusal), else None."""
        return self._failure

    def warn(self, message: str) -> None:
        """Publish a ``warning`` event: what the session's opener (a plugin's observer that
        failed, a phone call's DTMF) wants its listeners to show."""
        self._emit("warning", message=message)

    @property
    def _conversation(self) -> Conversation:
        return self.protocol.conversation

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Session:  # noqa: PYI034 - typing.Self needs Python 3.11
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the agents' MCP servers (listing their tools), then connect and
        configure the starting agent. Whatever fails here closes what was started.

        Raises:
            ConfigError: An MCP server could not start, or its plugin is not installed.
            AuthenticationFailed, ServerRejected: The server refused us; do not retry.
            ConnectionFailed: The server could not be reached after retries.
            SessionError: The server did not apply our configuration.
        """
        try:
            await self._open_sources(self.agent.name)
            build_validators_soon(t for agent in self.graph.reachable(self.agent.name)
                                  for t in self.graph.tools_for(agent, self.registry))
            try:
                await self._setup(await self._connect(), history=[])
            except ConnectionClosed as exc:  # dropped before it was configured: like any drop
                await self._replace(f"the connection dropped during setup ({exc})", [], dropped=True)
        except BaseException:
            await self._close_sources()
            raise
        self._emit("connected", agent=self.agent.name, url=self.profile.display_url)

    async def _open_sources(self, start: str) -> None:
        """Start the MCP servers that ``start`` and the agents it can hand off to list, and
        that this session has not started yet; their tools join this session's registry
        (an overlay: the shared one is not changed)."""
        started = self._sources.specs if self._sources is not None else []
        opened = await open_sources(self.graph, self.registry, self.warn, start=start, skip=started)
        if opened is None:
            return
        if self._sources is None:
            self._sources = opened
        else:
            self._sources.join(opened)
        self.protocol.registry = self._sources.registry
        for warning in opened.warnings:
            self.warn(warning)

    async def _close_sources(self) -> None:
        sources, self._sources = self._sources, None
        if sources is not None:
            await sources.aclose()

    async def close(self) -> None:
        """Cancel running tools, close the socket, and stop the reader (bounded, idempotent).

        The socket is closed first, while the reader still drains it: a server that is
        still streaming gets its close frame answered at once, not after a timeout.
        """
        if self._closing:
            return
        self._closing = True
        self.protocol.arbiter.withdraw()
        self._changed.set()  # wake whoever waits
        for task in list(self._calls.values()):
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
        await self._close_sources()
        if self._recorder is not None:
            self._recorder.close()
        self._changed.set()  # events() ends

    # -- what applications call ---------------------------------------------------------

    def on(self, listener: Listener) -> None:
        """Call ``listener`` with every :class:`SessionEvent`, as it happens."""
        self._listeners.append(listener)

    async def events(self) -> AsyncIterator[SessionEvent]:
        """Iterate over :class:`SessionEvent` until the session closes."""
        while True:
            while self._backlog:
                event = self._backlog.popleft()
                if isinstance(event, tuple):  # kept unbuilt (see _publish)
                    kind, data = event
                    event = session_event(kind, **data)
                yield event
            if self._closing:
                return
            self._changed.clear()
            await self._changed.wait()

    async def send_text(self, text: str) -> None:
        """Add a user text message and ask for a response (through the arbiter).

        The message carries an id of ours, so that if the socket dies before the server
        confirms it, the reconnect sends it again. Listeners get it first, as a
        ``user.text`` event.
        """
        self._check_open()
        self._emit("user.text", text=text)
        await self._run(self.protocol.user_text(text))

    async def send_image(self, path: str | Path, *, detail: str = "auto", text: str | None = None,
                         respond: bool = False) -> None:
        """Add an image (PNG or JPEG file) to the conversation as a user message.

        Args:
            path: The image file.
            detail: ``auto``, ``low`` or ``high``.
            text: Words to send with it in the same message (a question about it).
            respond: Ask for a response at once (otherwise the next turn sees it).

        Raises:
            ConfigError: The file is missing, not PNG/JPEG, or too large (one line).
        """
        self._check_open()
        content = [image_part(path, detail)]
        if text:
            content.append({"type": "input_text", "text": text})
        self._emit("user.text", text=f"[image {Path(path).name}]" + (f" {text}" if text else ""))
        await self._run(self.protocol.user_message(content, respond=respond))

    async def ask_image(self, path: str | Path, text: str, *, detail: str = "auto",
                        timeout: float | None = 120.0) -> TurnResult:
        """Send an image with a question and wait until the turn is over (as :meth:`ask`)."""
        self.protocol.finished.clear()
        deadline = None if timeout is None else time.monotonic() + timeout
        await self.send_image(path, detail=detail, text=text, respond=True)
        return await self._wait_turn(deadline, timeout)

    async def cancel_response(self) -> None:
        """Stop the assistant now: cancel the running response (``response.cancel``), stop
        playback and truncate what was not heard, as a barge-in does.

        Safe at any time: with nothing running it does nothing. After the response ended
        (its audio still playing) only the playback is cut and the item truncated.
        """
        self._check_open()
        await self._run(self.protocol.cancel_response())

    async def clear_input_audio(self) -> None:
        """Drop the input audio sent since the last commit (``input_audio_buffer.clear``)."""
        self._check_open()
        await self._run(self.protocol.clear_input_audio())

    async def ask_out_of_band(
        self,
        instructions: str | None = None,
        *,
        input: list[dict[str, Any] | str] | None = None,
        metadata: dict[str, str] | None = None,
        output_modalities: tuple[str, ...] | list[str] = ("text",),
        timeout: float = OUT_OF_BAND_TIMEOUT_S,
    ) -> OutOfBandResult:
        """Ask the model a side question whose answer never enters the conversation.

        Sent at once as ``response.create`` with ``conversation: "none"``, even while the
        agent is answering the user; at most 4 run at a time.

        Args:
            instructions: What the model should do (classify, summarise...).
            input: The items it sees instead of the conversation: item dicts, or strings
                (each a user text message). None: it sees the conversation so far.
            metadata: Up to 15 string values, echoed in the result.
            output_modalities: ``("text",)`` or ``("audio",)`` (audio is not played).
            timeout: Seconds to wait; then the response is cancelled.

        Raises:
            TimeoutError: No answer within ``timeout``.
            SessionError: The server refused it, the session is not connected, or 4
                out-of-band responses are running already.
            ConfigError: ``input`` holds something else than items and strings, or
                ``metadata`` is not at most 15 string values.
        """
        self._check_open()
        body = out_of_band_body(instructions, input, metadata, output_modalities)
        owner, actions = self.protocol.out_of_band(body)
        await self._run(actions)
        done = await self._until(lambda: owner in self.protocol.oob_finished,
                                 time.monotonic() + timeout)
        if not done:
            await self._run(self.protocol.out_of_band_timeout(owner))
            raise TimeoutError(f"the out-of-band response did not finish within {timeout:g} s")
        result = self.protocol.oob_finished.pop(owner)
        if result.status == "failed":
            raise SessionError(f"the out-of-band response failed: {result.error or 'no reason given'}")
        return result

    async def greet(self, timeout: float | None = 120.0) -> TurnResult | None:
        """Let the active agent speak first, if it has a ``greeting``; wait for it.

        Returns:
            The greeting turn, or None when the agent has no greeting.
        """
        actions = self.protocol.greet()
        if actions is None:
            return None
        await self._run(actions)
        return await self.wait_turn(timeout)

    async def ask(self, text: str, timeout: float | None = 120.0) -> TurnResult:
        """Send ``text`` and wait until the turn is over (tools, handoffs, replies).

        Returns:
            The turn's text, tool calls, handoffs, usage and latency.
        """
        self.protocol.finished.clear()  # earlier turns nobody collected are not this text's answer
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            await within(self.send_text(text), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"could not send the text within {timeout} s (reconnecting?)") from None
        return await self._wait_turn(deadline, timeout)

    async def wait_turn(self, timeout: float | None = 120.0) -> TurnResult:
        """The oldest finished turn not collected yet, or wait for the current one to end.

        A turn ends when nothing is active, owed or in flight and no tool is running.

        Raises:
            TimeoutError: The turn did not finish in ``timeout`` seconds.
            SessionError, ConnectionFailed: The session failed meanwhile, or was closed.
        """
        return await self._wait_turn(None if timeout is None else time.monotonic() + timeout, timeout)

    async def next_turn(self, timeout: float | None = 120.0, settle_s: float = 1.5) -> TurnResult | None:
        """The next finished turn, or None if nothing starts within ``settle_s``.

        For audio input: after the last chunk, the server may still be deciding whether
        the user spoke; this waits briefly for speech or a response to begin.
        """
        if not self.protocol.pending:
            seen = self.protocol.activity
            if not await self._until(lambda: self.protocol.activity != seen, time.monotonic() + settle_s):
                return None
        return await self.wait_turn(timeout)

    async def append_audio(self, pcm24k: bytes) -> None:
        """Send input audio (PCM16 mono 24 kHz; converted to G.711 when the agent uses it)."""
        if not self._connected.is_set():  # (checked first: 10 appends a second need no waiter)
            await self._until(lambda: self._connected.is_set(), None)
        await self._run(self.protocol.audio_appended(self._audio.encode_input(pcm24k), len(pcm24k) / _PCM_BYTES_PER_MS))

    async def append_wire_audio(self, data: bytes) -> None:
        """Send input audio already in the session's wire format, unchanged (the G.711
        bytes of a phone call when the agent's ``audio_format`` is ``audio/pcmu``)."""
        if not self._connected.is_set():
            await self._until(lambda: self._connected.is_set(), None)
        await self._run(self.protocol.audio_appended(codec.b64encode(data), self._audio.wire_input_ms(data)))

    async def commit_audio(self) -> bool:
        """End a push-to-talk turn: commit the buffer and ask for a response.

        Returns:
            False (and a ``warning`` event) when less than 100 ms of audio was sent since
            the last commit: the server would refuse it, so nothing is sent.
        """
        actions = self.protocol.commit_audio()
        if actions is None:
            self._emit("warning", message="nothing recorded: hold the turn open longer before sending")
            return False
        await self._run(actions)
        return True

    async def switch_agent(self, name: str, timeout: float | None = 120.0) -> TurnResult | None:
        """Make ``name`` the active agent now (the same path a handoff takes, no call), and
        let it greet as after a handoff, if it has a ``greeting``; wait for that.

        Returns:
            The greeting turn, or None when the agent has no greeting.

        Raises:
            ConfigError: No such agent in the graph.
        """
        self.graph.get(name)  # an unknown name is refused before any server starts
        self._read_secrets(name)  # its hosted MCP secrets, and
        await self._open_sources(name)  # its servers, if no handoff could reach it before
        await self._run(self.protocol.handoff(name, None))
        return await self.greet(timeout)

    # -- waiting ------------------------------------------------------------------------

    async def _wait_turn(self, deadline: float | None, timeout: float | None) -> TurnResult:
        if not await self._until(lambda: bool(self.protocol.finished), deadline):
            raise TimeoutError(f"the turn did not finish within {timeout} s")
        return self.protocol.finished.popleft()

    async def _until(self, condition: Any, deadline: float | None) -> bool:
        """Wait until ``condition()`` holds (True) or the deadline passes (False).

        Raises:
            RealtalkError: The session failed or was closed meanwhile.
        """
        while not condition():
            self._check_open()
            self._changed.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            # within, not asyncio.wait_for: a Ctrl-C landing as a server event sets
            # _changed must stop the wait (Python < 3.12's wait_for would return instead).
            with contextlib.suppress(asyncio.TimeoutError):
                await within(self._changed.wait(), left)
        return True

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closing:
            raise SessionError("the session is closed")

    # -- carrying out actions -----------------------------------------------------------

    async def _run(self, actions: list[p.Action]) -> None:
        """Carry out the protocol's actions in order, on the connection live right now.

        A send that fails (the socket died under it) is left to the reconnect: the
        protocol already counts the event as sent, so the history re-seeds it.
        """
        conn = self._conn
        closed: ConnectionClosed | None = None
        try:
            for action in actions:
                try:
                    await self._do(action, conn)
                except ConnectionClosed as exc:  # the rest still runs: tools, events, audio
                    closed, conn = closed or exc, None
        finally:
            self._idle.set() if self.protocol.idle else self._idle.clear()
            self._changed.set()
        if closed is not None and asyncio.current_task() is self._reader:
            raise closed  # the reader recovers

    async def _do(self, action: p.Action, conn: RealtimeConnection | None) -> None:
        if isinstance(action, p.Send):
            if conn is None:
                return
            await conn.send(to_wire(action.event, self.profile.dialect))
            self._record("client", action.event)
        elif isinstance(action, p.Emit):
            if action.log:
                log.warning("%s", redact(str(action.data.get("message")), self._secrets))
            self._publish(action.kind, action.data)
        elif isinstance(action, p.Play):
            self._audio.on_delta(action.item_id, action.delta)
        elif isinstance(action, p.AudioDone):
            self._audio.on_done(action.item_id)
        elif isinstance(action, p.RunTool):
            task = asyncio.create_task(self._call(action), name=f"realtalk-call-{action.record.name}")
            self._calls[action.record.call_id] = task
        elif isinstance(action, p.AskApproval):
            task = asyncio.create_task(self._ask(action), name=f"realtalk-approval-{action.request.tool}")
            self._calls[action.approval_request_id] = task
        elif isinstance(action, p.CancelCalls):
            for call_id in action.call_ids:
                if call_id in self._calls:
                    self._calls[call_id].cancel()
        elif isinstance(action, p.Interrupt):
            cut = self._audio.interrupt()
            latency = (time.perf_counter() - self._received_at) * 1000
            heard = self._heard(cut.item_id) if cut else None
            await self._run(self.protocol.interrupted(
                cut.item_id if cut else None, cut.played_ms if cut else 0, cut.dropped_ms if cut else 0,
                latency, heard))
        elif isinstance(action, p.SetAudioFormat):
            self._audio.set_format(action.audio_format)
        elif isinstance(action, p.Reconnect):
            if self._reader is not None and self._reader is not asyncio.current_task():
                self._reader.cancel()
            await self._replace(action.reason, action.history, dropped=False)

    def _heard(self, item_id: str) -> dict[str, int]:
        """Milliseconds played of each assistant message of ``item_id``'s response.

        Audio arrives faster than it plays: the item fed last may not be the one heard.
        """
        output = self._audio.output
        if output is None:
            return {}
        tracker = output.tracker
        return {iid: min(tracker.played_ms(iid), tracker.received_ms(iid))
                for iid in self._conversation.response_audio_items(item_id)}

    # -- setup and reconnects -----------------------------------------------------------

    async def _connect(self, retries: int = 4) -> RealtimeConnection:
        return await connect(self.profile, retries=retries, backoff=self._backoff, on_retry=self._retrying)

    def _retrying(self, attempt: int, attempts: int, delay_s: float, reason: str) -> None:
        """A ``warning`` event before each retry of a connection: why, how long, which attempt."""
        self._emit("warning", message=f"could not connect: {reason}; retrying in {delay_s:.1f} s"
                                      f" (attempt {attempt} of {attempts})")

    async def _setup(self, conn: RealtimeConnection, history: list[dict[str, Any]]) -> None:
        """Take a fresh connection to a configured, seeded, running session."""
        self._conn = conn
        self.protocol.connection_opened()
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        first = await self._recv(deadline, "session.created")
        if first.get("type") != "session.created":
            raise ProtocolError(f"expected session.created as the first event, got {first.get('type')!r}")
        await self._run(self.protocol.receive(first))
        await self._run(self.protocol.configure())
        while not self.protocol.configured:
            await self._run(self.protocol.receive(await self._recv(deadline, "session.updated")))
        await self._run(self.protocol.seed(history))
        # Go live only once the server holds the whole history, so a second reconnect
        # right after this one cannot lose what was not confirmed yet.
        while not self.protocol.seeded:
            await self._run(self.protocol.receive(await self._recv(deadline, "conversation.item.done")))
        self._connected.set()
        self._reader = asyncio.create_task(self._read_loop(), name="realtalk-reader")
        due, warnings = self.protocol.rotation_due()
        await self._run([*warnings, *self.protocol.go_live(time.monotonic())])
        if due is not None:
            self._rotator = asyncio.create_task(self._rotate_at(due, conn), name="realtalk-rotator")

    async def _recv(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        assert self._conn is not None
        try:
            event = await within(self._conn.recv(), max(deadline - time.monotonic(), 0.001))
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
                    if self._recorder is not None:
                        self._recorder.record("server", event)
                    actions = self.protocol.receive(event)
                    if event.get("type") in p.DELTA_TYPES:
                        for action in actions:  # Play or Emit: no sends, no state to settle
                            if type(action) is p.Play:
                                self._audio.on_delta(action.item_id, action.delta)
                            elif type(action) is p.Emit and not action.log:
                                self._publish(action.kind, action.data)
                            else:
                                await self._do(action, None)
                    else:
                        await self._run(actions)
                except ConnectionClosed as closed:  # reading, or sending what an event asked for
                    if isinstance(closed, FrameTooLarge):
                        await self._run(self.protocol.oversized_frame(str(closed)))
                    if not self._closing:
                        log.warning("reconnecting: connection closed (%s)", closed)
                        history = self.protocol.connection_lost()
                        await self._replace(f"connection closed ({closed})", history, dropped=True)
                    return  # a new reader runs on the new connection
                if self._calls:
                    # Let tool tasks run between events: a burst of buffered events must not
                    # delay an output (say, of a tool cancelled by barge-in) behind it.
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever ends the reader ends the session, visibly
            self._fail(exc)

    async def _replace(self, reason: str, history: list[dict[str, Any]], *, dropped: bool) -> None:
        """Close the current connection and go live on a new one seeded with ``history``.

        ``dropped`` says the old connection failed (rather than being rotated or replaced
        for a voice): such reconnects count against the budget and back off. A new
        connection that drops while the history is restored is retried the same way.

        Raises:
            ConnectionFailed: The budget of reconnects in a row is spent, or the server
                cannot be reached.
            AuthenticationFailed, ServerRejected: The server refused us.
        """
        self._connected.clear()
        self._audio.stop()
        rotator, self._rotator = self._rotator, None
        if rotator is not None and rotator is not asyncio.current_task():
            rotator.cancel()  # the new connection gets a rotator of its own
        while True:
            if dropped:
                streak = self.protocol.note_failure(time.monotonic(), reason)
                if streak > 1:
                    await asyncio.sleep(self._backoff.delay(streak - 2))
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

    async def _rotate_at(self, due: float, conn: RealtimeConnection) -> None:
        """Replace ``conn``'s session shortly before it expires, at an idle turn boundary."""
        try:
            await asyncio.sleep(max(0.0, due - time.time()))
            await self._idle.wait()
            if self._conn is not conn or self._closing:
                return
            if self._reader is not None:
                self._reader.cancel()
            await self._replace("rotated before expiry", self.protocol.replace_for_rotation(), dropped=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed rotation ends the session, visibly
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
        self._changed.set()

    # -- tools --------------------------------------------------------------------------

    async def _call(self, run: p.RunTool) -> None:
        """Run one call as its own task and report to the protocol however it ends."""
        record, tool = run.record, run.tool
        try:
            if tool is not None and tool.handoff_to is not None:
                await self._run(self.protocol.handoff(tool.handoff_to, record.call_id))
                record.status, record.output = "ok", f"transferred to {tool.handoff_to}"
                return
            outcome = await self._execute(record, tool, run.available)
            # The handler's own time: an approval it waited for is not counted.
            await self._run(self.protocol.tool_done(record, outcome, outcome.duration_s))
        except asyncio.CancelledError:
            if not self._closing:
                await self._run(self.protocol.tool_cancelled(record))
        except Exception as exc:  # noqa: BLE001 - a failed handoff or send ends the session, visibly
            self._fail(exc)
        finally:
            self._calls.pop(record.call_id, None)
            await self._run(self.protocol.call_ended(record.call_id))

    async def _ask(self, ask: p.AskApproval) -> None:
        """Ask the approver about a hosted MCP call (bounded) and answer the server."""
        try:
            answer = await ask_approval(self._approve, ask.request)
            if answer is None:
                self._emit("warning", message=f"{ask.request.tool} was not approved: nobody answered in time")
            await self._run(self.protocol.mcp_approval(ask.approval_request_id, bool(answer)))
        except asyncio.CancelledError:
            if not self._closing:
                await self._run(self.protocol.mcp_approval(ask.approval_request_id, False))
        except Exception as exc:  # noqa: BLE001 - a failed send ends the session, visibly
            self._fail(exc)
        finally:
            self._calls.pop(ask.approval_request_id, None)

    async def _execute(self, record: ToolCallRecord, tool: Tool | None, available: tuple[str, ...]) -> ToolOutcome:
        """Run the handler; past the tool's ``still_working.after_s``, tell the user."""
        still = tool.still_working if tool is not None else None
        if still is None:
            return await execute_call(record, tool, available, self._approve)
        work = asyncio.ensure_future(execute_call(record, tool, available, self._approve))
        try:
            done, _ = await asyncio.wait({work}, timeout=still.after_s)
            if not done:
                await self._run(self.protocol.still_working(record, still))
            return await work
        finally:
            if not work.done():  # this call was cancelled (barge-in, close): so is the handler
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work

    # -- publishing ---------------------------------------------------------------------

    def _record(self, direction: str, event: dict[str, Any]) -> None:
        if self._recorder is not None:
            self._recorder.record(direction, event)

    def _redact(self, data: dict[str, Any]) -> dict[str, Any]:
        """A session event's text fields without the hosted MCP secrets."""
        return {k: redact(v, self._secrets) if isinstance(v, str) else v for k, v in data.items()}

    def _emit(self, kind: str, **data: Any) -> None:
        self._publish(kind, data)

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        """Queue a session event for events() and call the listeners with it.

        ``data`` is kept as it is (not copied): its values must not change afterwards
        (the protocol's fields are strings, numbers and tuples).
        """
        self._changed.set()
        if self._secrets and kind in _REDACTED_KINDS:
            data = self._redact(data)
        if not self._listeners:  # thousands of deltas per response: build it only if read
            self._backlog.append((kind, data))
            return
        event = session_event(kind, **data)
        self._backlog.append(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as exc:  # a broken listener must not break the session
                log.warning("session listener %r failed on %s: %s: %s", listener, kind, type(exc).__name__, exc)
                log.debug("listener traceback", exc_info=exc)
