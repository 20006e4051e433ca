"""The client side of a Realtime conversation, as rules with no I/O: events in, actions out.

:class:`ClientProtocol` lives as long as the logical session: across reconnects and
handoffs. It owns every rule that makes the runtime correct:

* the conversation mirror (:class:`~realtalk.protocol.conversation.Conversation`) and the
  response arbiter (:class:`~realtalk.protocol.arbiter.ResponseArbiter`, the one owner of
  ``response.create``), one of each per connection;
* turn accounting: when a turn starts and ends, its text, calls, handoffs, usage, latency
  and status;
* which tools a call may run (those of the agent whose response made it), and that a
  call runs once however often the server repeats it;
* handoff order (``session.update``, then the call's output, then the response) and the
  voice policy (keep with a warning, or reconnect with the history);
* what a new connection is seeded with and what it still owes (a reply, the outputs of
  calls still running), including client messages the old one never confirmed;
* hosted MCP (tools the server calls itself): its listings and calls reported as
  session events, and its approval requests asked of the approver, answered with an
  ``mcp_approval_response`` and a response; a turn waiting for an approval is not over;
* ``session.updated`` verification, the 100 ms commit rule, the reconnect budget, when to
  rotate ahead of expiry, and what a malformed or failed event means.

Every method returns a list of :class:`Action` for the caller to carry out in order:
:class:`Send` (a stamped client event, already recorded here), :class:`Emit` (a session
event for listeners), :class:`RunTool`, :class:`CancelCalls`, :class:`Play`,
:class:`AudioDone`, :class:`Interrupt`, :class:`SetAudioFormat`, :class:`Reconnect`.
:class:`~realtalk.session.Session` drives it over a socket; the tests drive it with dicts.

Connection lifecycle, as the driver calls it: :meth:`connection_opened`, feed the first
events to :meth:`receive`, :meth:`configure`, feed events until :attr:`configured`,
:meth:`seed` the history, feed events until :attr:`seeded`, :meth:`go_live`. When the
socket drops, :meth:`connection_lost` returns the history to seed the next one.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..agents import AgentGraph, AgentSpec, greeting_response
from ..exceptions import ConnectionFailed, RealtalkError, SessionError
from ..hostedmcp import parse_arguments
from ..results import ApprovalRequest, OutOfBandResult, ToolCallRecord, TurnResult
from ..tools import StillWorking, Tool, ToolOutcome, ToolRegistry, error_output
from .actions import (
    Action,
    AskApproval,
    AudioDone,
    CancelCalls,
    Emit,
    Interrupt,
    Play,
    Reconnect,
    RunTool,
    Send,
    SetAudioFormat,
)
from .arbiter import ALREADY_ACTIVE, ResponseArbiter
from .conversation import Conversation
from .events import Dialect, EventIds, error_summary, normalize_server_event
from .mcpcalls import HostedMcpCalls
from .outofband import OutOfBandRequests, status_reason, still_working_request
from .session_config import build_session_update
from .validate import check_server_event, delta_ok
from .vocab import function_call_output_item, item_create, new_item_id, user_text_item

__all__ = [
    "DELTA_TYPES",
    "Action",
    "AskApproval",
    "AudioDone",
    "CancelCalls",
    "ClientProtocol",
    "Emit",
    "Interrupt",
    "Play",
    "Reconnect",
    "RunTool",
    "Send",
    "SetAudioFormat",
]

FINISHED_KEPT = 64
"""Finished turns kept until collected (the oldest go first past it)."""

HEALTHY_S = 30.0
"""A connection that stayed up this long ends a run of failed reconnects."""
MIN_LIFETIME_S = 1.0
"""A session said to live shorter than this (or to have expired already: the clocks
disagree) is not rotated ahead of expiry; it is reconnected when it ends."""
MIN_COMMIT_MS = 100.0
"""The server refuses to commit less input audio than this."""
MAX_OUTBOX = 256
"""Client events held while no connection is live (user messages, tool outputs)."""

# The tools a response may call: those of the agent the server was configured with when
# the response was created.
Scope = tuple[AgentSpec, dict[str, Tool]]




@dataclass
class _Call:
    cancellable: bool
    handoff: bool


@dataclass
class _Turn:
    """The turn in progress."""

    result: TurnResult = field(default_factory=TurnResult)
    started: float | None = None  # perf_counter when the user's input ended
    responses: int = 0
    response_ids: set[str] = field(default_factory=set)  # its text comes from these only


# -- the protocol -----------------------------------------------------------------------


class ClientProtocol:
    """Every decision of one logical session; see the module docstring.

    Args:
        graph: The agents that may take part.
        agent: The starting agent (already prepared for ``text_only``).
        registry: Installed tools.
        dialect: The server's dialect.
        text_only: Every agent answers in text.
        max_reconnects: Failed reconnects in a row before :meth:`note_failure` gives up.
        rotate_margin_s: Rotate this long before ``expires_at`` (0: never).
    """

    def __init__(
        self,
        graph: AgentGraph,
        agent: AgentSpec,
        registry: ToolRegistry,
        *,
        dialect: Dialect = "ga",
        text_only: bool = False,
        max_reconnects: int = 5,
        rotate_margin_s: float = 120.0,
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.dialect: Dialect = dialect
        self.text_only = text_only
        self.agent = agent
        self.max_reconnects = max_reconnects
        self.rotate_margin_s = rotate_margin_s
        self.ids = EventIds()
        self.conversation = Conversation()
        self.arbiter = ResponseArbiter(ids=self.ids)
        # Finished turns nobody collected yet (Session.wait_turn): the newest are kept, so
        # a served or voice session that never collects them stays bounded.
        self.finished: collections.deque[TurnResult] = collections.deque(maxlen=FINISHED_KEPT)
        self.activity = 0  # bumped when speech or a response begins
        self.live = False
        self.live_since = 0.0  # monotonic, when the current connection went live
        self.expires_at: float | None = None
        self.created_at: float | None = None
        # Tools and configuration.
        self._tools: dict[str, Tool] = {}
        self._live_scope: Scope = (agent, {})
        self._pending_scope: Scope | None = None
        self._response_scope: dict[str, Scope] = {}
        self._expected: dict[str, Any] | None = None
        self._voice: str | None = None
        self._audio_heard = False
        # Calls and turns.
        self._calls: dict[str, _Call] = {}
        self._seen_calls: set[str] = set()
        self._turn: _Turn | None = None
        self._speaking = False
        self._uncommitted_ms = 0.0
        # Reconnects.
        self._seed_count = 0
        self._carried = False
        self._resume: tuple[str, dict[str, Any] | None] | None = None
        self._outbox: list[dict[str, Any]] = []
        self._offline_wish: tuple[str, dict[str, Any] | None] | None = None
        self._streak = 0
        self._oversized = 0
        self._clock_warned = False
        # Out-of-band responses: running, and finished but not collected (bounded).
        self._cancel_next = False  # cancel_response() came while our request was in flight
        self.oob = OutOfBandRequests()
        self.mcp = HostedMcpCalls()  # hosted MCP: the server's calls and approval requests

    # -- queries --------------------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """The server confirmed our last ``session.update``."""
        return self._expected is None

    @property
    def seeded(self) -> bool:
        """The server holds every item :meth:`seed` sent."""
        return len(self.conversation.order) >= self._seed_count

    @property
    def busy(self) -> bool:
        """A response is active, owed or in flight, a call runs, or no connection is live."""
        a = self.arbiter
        return bool(a.active_response_id or a.in_flight or a.wants_response or self._calls or self.mcp.waiting
                    or not self.live)

    @property
    def oob_finished(self) -> collections.OrderedDict[str, OutOfBandResult]:
        """Finished out-of-band results by request id (see :meth:`out_of_band`)."""
        return self.oob.finished

    @property
    def idle(self) -> bool:
        """Nothing is going on: a turn boundary (rotation waits for one)."""
        return not self.busy

    @property
    def pending(self) -> bool:
        """A turn is underway or waiting to be collected."""
        return bool(self.finished) or self._turn is not None or self._speaking or self.busy

    # -- connection lifecycle -------------------------------------------------------------

    def connection_opened(self) -> None:
        """A new socket: fresh conversation and arbiter; what the old one owed is carried."""
        old = self.arbiter
        self._carried = self._carried or bool(old.wants_response or old.in_flight)
        self.oob.fail_all("the connection was replaced before it answered")  # went down with the socket
        self.conversation = Conversation()
        self.arbiter = ResponseArbiter(ids=self.ids)
        self._response_scope.clear()
        # Hosted MCP requests of the old session died with it: an answer now is dropped.
        self.mcp.clear()
        self._audio_heard = False
        self._seed_count = 0
        self.live = False

    def configure(self) -> list[Action]:
        """The ``session.update`` for the active agent (voice included: a new session)."""
        return self._agent_update(self.agent, include_voice=True)

    def seed(self, history: list[dict[str, Any]]) -> list[Action]:
        """Replay ``history`` into the new session (the arbiter does not see it as new)."""
        self._seed_count = len(history)
        out: list[Action] = []
        for event in history:
            stamped = self.ids.stamp(event)
            self.conversation.on_client_event(stamped)
            out.append(Send(stamped))
        answered = {e["item"].get("call_id") for e in history
                    if e["item"].get("type") == "function_call_output"}
        # Calls still running answer a response of the old connection: the follow-up
        # waits for all of their outputs, as it would have there.
        self.arbiter.expect_outputs([c for c in self._calls if c not in answered])
        return out

    def go_live(self, now: float) -> list[Action]:
        """The new session is configured and seeded: send what waited, ask what is owed."""
        self.live = True
        self.live_since = now
        out: list[Action] = []
        held, self._outbox = self._outbox, []
        outputs = [e for e in held if e["item"].get("type") == "function_call_output"]
        for event in held:  # messages typed meanwhile, first
            if event not in outputs:
                out += self._send(event)
        # Outputs that finished meanwhile and what is owed make one request: the wish waits
        # for the last output (its body, a greeting say, rides on that one response.create).
        self.arbiter.expect_outputs([e["item"]["call_id"] for e in outputs])
        wish = self._resume or self._offline_wish
        if wish is None and self._carried:
            wish = ("resume after reconnect", None)
        self._resume = self._offline_wish = None
        self._carried = False
        if wish is not None:
            out += self._sends(self.arbiter.request_response(*wish))
        for event in outputs:
            out += self._send(event)
        return out + self._update_idle()

    def connection_lost(self) -> list[dict[str, Any]]:
        """The socket dropped (or the session expired): the history to seed the next one.

        Owed after the reconnect: the conversation ends on the user or a tool output (a
        reply cut off by the drop is not in the history), or a request was queued or not
        yet started. A reply the server finished before the drop is not asked for twice.
        """
        history = self.conversation.history_items()
        self.live = False
        if _needs_reply(history):
            self._resume = ("resume after reconnect", None)
        return history

    def replace_for_rotation(self) -> list[dict[str, Any]]:
        """The history for a proactive rotation at an idle boundary (nothing is owed)."""
        self.live = False
        return self.conversation.history_items()

    def note_failure(self, now: float, reason: str) -> int:
        """Count one failed connection; returns how many failed in a row.

        Raises:
            ConnectionFailed: More than ``max_reconnects`` in a row with no response
                completed and no connection up for :data:`HEALTHY_S` in between.
        """
        if self.live_since and now - self.live_since >= HEALTHY_S:
            self._streak = 0  # it served a good while: a fresh run of reconnects
        self._streak += 1
        if self._streak > self.max_reconnects:
            raise ConnectionFailed(
                f"gave up after {self.max_reconnects} reconnects in a row with no response"
                f" completed in between (last: {reason})")
        return self._streak

    def oversized_frame(self, message: str) -> list[Action]:
        """A frame over the size limit ended the connection: reconnect once, then give up.

        Raises:
            ConnectionFailed: It happened before in this session.
        """
        self._oversized += 1
        if self._oversized > 1:
            raise ConnectionFailed(f"{message}; it happened twice, ending the session")
        return [Emit("warning", {"message": f"{message}; reconnecting once"})]

    def rotation_due(self) -> tuple[float | None, list[Action]]:
        """When to rotate (wall clock), or None: no expiry known, or one we cannot trust."""
        if self.expires_at is None or self.created_at is None or self.rotate_margin_s <= 0:
            return None, []
        lifetime = self.expires_at - self.created_at
        if lifetime < MIN_LIFETIME_S:
            if self._clock_warned:
                return None, []
            self._clock_warned = True
            return None, [Emit("warning", {"message": (
                f"the server says this session expires in {lifetime:.0f} s (expires_at"
                f" {self.expires_at:.0f}); are the clocks apart? not rotating ahead of"
                " expiry, the session reconnects when it ends")})]
        # Never rotate a session younger than half its life: short-lived sessions (as in
        # tests, or servers with small limits) would otherwise rotate at every turn.
        return self.expires_at - min(self.rotate_margin_s, lifetime / 2), []

    # -- user input -----------------------------------------------------------------------

    def user_text(self, text: str) -> list[Action]:
        """A user text message (with an id of ours, so a dying socket cannot lose it)."""
        self.begin_turn()
        item_id = new_item_id()
        out = self._send(item_create(user_text_item(text, id=item_id)))
        return out + self.request("user text", item_id=item_id)

    def user_message(self, content: list[dict[str, Any]], *, respond: bool) -> list[Action]:
        """A user message of several parts (an image and its question); ``respond`` asks
        for a response to it, as :meth:`user_text` does."""
        item_id = new_item_id()
        out = self._send(item_create({"id": item_id, "type": "message", "role": "user", "content": content}))
        if not respond:
            return out
        self.begin_turn()
        return out + self.request("user message", item_id=item_id)

    def request(self, reason: str, body: dict[str, Any] | None = None, *,
                item_id: str | None = None) -> list[Action]:
        """Ask for a response; the arbiter decides when (now, or once allowed).

        ``item_id`` names the user item it answers (see ``ResponseArbiter.request_response``).
        """
        if not self.live:
            self._offline_wish = (reason, body or (self._offline_wish[1] if self._offline_wish else None))
            return []
        return self._sends(self.arbiter.request_response(reason, body, item_id=item_id)) + self._update_idle()

    def greet(self) -> list[Action] | None:
        """The active agent's greeting request, or None when it has none."""
        body = greeting_response(self.agent)
        if body is None:
            return None
        self.finished.clear()
        self.begin_turn()
        return self.request("greeting", body)

    def audio_appended(self, audio_b64: str, ms: float) -> list[Action]:
        """Input audio to send (already encoded for the wire)."""
        if not self.live:
            return []  # real time: audio of a reconnect gap is not replayed
        self._uncommitted_ms += ms
        return [Send(self.ids.stamp({"type": "input_audio_buffer.append", "audio": audio_b64}))]

    def commit_audio(self) -> list[Action] | None:
        """End a push-to-talk turn, or None when under 100 ms were sent (a warning)."""
        if self._uncommitted_ms < MIN_COMMIT_MS:
            return None
        self._uncommitted_ms = 0.0
        self.begin_turn()
        # Not held for a reconnect: the audio it commits went down with the old session.
        commit = self._send({"type": "input_audio_buffer.commit"}, record=False)
        return commit + self.request("push-to-talk")

    def begin_turn(self) -> None:
        """The user's input just ended (text sent, audio committed, speech stopped)."""
        if self._turn is None:
            self._turn = _Turn()
        self._turn.started = time.perf_counter()
        self._cancel_next = False  # the user's new input wants an answer

    # -- barge-in from the application (push-to-talk, an API call) ---------------------

    def cancel_response(self) -> list[Action]:
        """Stop the assistant now, as a barge-in does, but asked for by the application.

        Returns ``response.cancel`` for the in-conversation response if one is active
        (an out-of-band one is left alone), :class:`CancelCalls` for cancellable calls
        that run, then :class:`Interrupt`: the caller stops playback and reports what was
        heard with :meth:`interrupted` (truncation). After the response ended (audio
        arrives faster than it plays) only the client-side truncation applies. A request
        of ours still in flight is cancelled as soon as its response starts, unless the
        user's next input comes first.
        """
        out: list[Action] = []
        rid = self.arbiter.active_response_id
        if rid is not None and self.live:
            out.append(self._cancel(rid))
        elif self.arbiter.in_flight is not None:
            self._cancel_next = True  # asked for, not started: cancel it as soon as it starts
        cancel = tuple(cid for cid, call in self._calls.items() if call.cancellable)
        if cancel:
            out.append(CancelCalls(cancel))
        return [*out, Interrupt()]

    def _cancel(self, response_id: str) -> Send:
        """``response.cancel`` for that response."""
        return Send(self.ids.stamp({"type": "response.cancel", "response_id": response_id}))

    def clear_input_audio(self) -> list[Action]:
        """Drop the input audio sent since the last commit (``input_audio_buffer.clear``).

        Nothing is sent while no connection is live (its buffer is gone anyway).
        """
        self._uncommitted_ms = 0.0
        return self._send({"type": "input_audio_buffer.clear"}, record=False)

    # -- out-of-band responses ---------------------------------------------------------

    def out_of_band(self, body: dict[str, Any], *, play: bool = False,
                    _announce: bool = False) -> tuple[str, list[Action]]:
        """A response outside the conversation (``conversation: "none"``), sent at once.

        Args:
            body: The ``response.create`` body (``instructions``, ``input``,
                ``output_modalities``, ``metadata``...).
            play: Play its audio (a still-working line); otherwise audio is dropped.

        Returns:
            The request's id (its result appears in :attr:`oob_finished` under it) and
            the actions to carry out.

        Raises:
            SessionError: No connection is live, or too many are running already.
        """
        if not self.live:
            raise SessionError("cannot send an out-of-band response: the session is not connected")
        try:
            events = self.arbiter.out_of_band(body)
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        owner = events[0]["event_id"]
        self.oob.add(owner, play=play, announce=_announce)
        return owner, [Send(self.ids.stamp(e)) for e in events]

    def out_of_band_timeout(self, owner: str) -> list[Action]:
        """Give up on an out-of-band request: cancel its response if it started."""
        response_id = self.oob.give_up(owner)
        self.arbiter.forget_out_of_band(owner)
        if response_id is None or not self.live:
            return []
        return [self._cancel(response_id)]

    def _out_of_band_event(self, owner: str, raw: dict[str, Any]) -> list[Action]:
        """One event of an out-of-band response: never seen by the conversation or turns."""
        checked, problems = check_server_event(raw)
        out: list[Action] = [Emit("warning", {"message": p}, log=True) for p in problems]
        for event in normalize_server_event(checked) if checked is not None else []:
            self.arbiter.on_out_of_band_event(owner, event)
            out += self.oob.on_event(owner, event, self.agent.name)
        return out

    # -- tools ----------------------------------------------------------------------------

    def still_working(self, record: ToolCallRecord, still: StillWorking) -> list[Action]:
        """A call has run ``still.after_s``: tell the user, without a second response.

        The in-conversation response is never touched (its function call still waits for
        the output, delivered when ready). A fixed line is shown (``tool.still_working``)
        and, in audio, spoken through an out-of-band response that reads it out; a
        generated one comes from an out-of-band response that sees the conversation.
        Nothing is spoken while the model is already talking.
        """
        out: list[Action] = [Emit("tool.still_working", {
            "call_id": record.call_id, "name": record.name, "after_s": still.after_s, "say": still.say})]
        audio = "audio" in self.agent.output_modalities and not self.text_only
        if (still.say is not None and not audio) or self.arbiter.active_response_id or not self.live:
            return out
        body = still_working_request(record.name, record.call_id, still, audio=audio)
        try:
            _, sends = self.out_of_band(body, play=audio, _announce=still.generate)
        except SessionError as exc:
            return [*out, Emit("warning", {"message": f"no still-working line for {record.name}: {exc}"})]
        return out + sends

    def tool_done(self, record: ToolCallRecord, outcome: ToolOutcome, duration_s: float) -> list[Action]:
        """A call finished (any outcome): report it and send its output."""
        record.output, record.status, record.duration_s = outcome.output, outcome.status, duration_s
        out: list[Action] = [Emit("tool.finished", {
            "call_id": record.call_id, "name": record.name, "status": outcome.status,
            "output": outcome.output, "duration_s": duration_s, "agent": record.agent,
            "note": outcome.note})]
        if outcome.note:
            out.append(Emit("warning", {"message": outcome.note}, log=True))
        return out + self._output(record.call_id, outcome.output)

    def tool_cancelled(self, record: ToolCallRecord) -> list[Action]:
        """A call was cancelled by barge-in: the model is told."""
        record.status, record.output = "cancelled", error_output("cancelled: the user interrupted")
        return self._output(record.call_id, record.output)

    def call_ended(self, call_id: str) -> list[Action]:
        """Whatever happened, the call is over."""
        self._calls.pop(call_id, None)
        return self._update_idle()

    def handoff(self, target_name: str, call_id: str | None) -> list[Action]:
        """Make ``target_name`` active: by a handoff call, or from the API (no call).

        Keep the voice: ``session.update`` (voice left out once audio exists), the
        greeting wish, then the call's output, so the one follow-up greets. Reconnect
        (``voice_policy: reconnect`` and the voice must change): a :class:`Reconnect`;
        then the connection lifecycle as for any reconnect.

        Raises:
            ConfigError: No such agent.
        """
        target = self.prepare(self.graph.get(target_name))
        previous = self.agent
        voice_change = not target.text_only and self._voice is not None and target.voice != self._voice
        self.agent = target
        out: list[Action] = []
        if voice_change and self._audio_heard and target.voice_policy == "reconnect":
            history = self.replace_for_rotation()
            if call_id is not None:
                history.append(item_create(function_call_output_item(
                    call_id, json.dumps({"transferred_to": target.name}))))
                self._resume = (f"handoff to {target.name}", greeting_response(target))
            self._note_handoff(previous, target)
            return [Reconnect(f"new voice for {target.name}", history),
                    Emit("handoff", {"source": previous.name, "target": target.name, "call_id": call_id})]
        if voice_change and self._audio_heard:
            out.append(Emit("warning", {"message": (
                f"{target.name} speaks with voice {target.voice}, but the API locks the voice once"
                f" audio exists; keeping {self._voice} (set voice_policy: reconnect to switch)")}))
        out += self._agent_update(target, include_voice=not self._audio_heard)
        greeting = greeting_response(target)
        if call_id is not None and greeting is not None:
            out += self.request(f"{target.name} greets", greeting)  # held until the output
        if call_id is not None:
            out += self._output(call_id, json.dumps({"transferred_to": target.name}))
        self._note_handoff(previous, target)
        out.append(Emit("handoff", {"source": previous.name, "target": target.name, "call_id": call_id}))
        return out

    def prepare(self, agent: AgentSpec) -> AgentSpec:
        """The agent as this session runs it (text only when the session is)."""
        return replace(agent, output_modalities=("text",)) if self.text_only else agent

    # -- barge-in -------------------------------------------------------------------------

    def interrupted(self, item_id: str | None, played_ms: int, dropped_ms: int,
                    latency_ms: float, heard: dict[str, int] | None = None) -> list[Action]:
        """Playback stopped at barge-in: truncate to what was heard, end the turn.

        Args:
            item_id: The assistant item whose audio was fed last (None: nothing played).
            played_ms: Milliseconds of it played.
            dropped_ms: Queued milliseconds that were never played.
            latency_ms: From the event that caused the barge-in to playback stopped.
            heard: Milliseconds played of every assistant message of that response
                (:meth:`Conversation.response_audio_items`), for a response of several
                messages (a preamble, then the answer): the one actually playing is
                truncated where it stopped, later ones never heard are deleted.
        """
        out: list[Action] = []
        if item_id is not None:
            plays = dict(heard or {})
            plays[item_id] = played_ms
            events = self.conversation.interrupt_items(plays)
            for event in events:
                out += self._send(event, record=False)
            # Name the item the user was hearing: the last one partly played.
            playing = next((iid for iid in reversed(list(plays)) if plays[iid] > 0), item_id)
            out.append(Emit("interrupted", {
                "item_id": playing, "played_ms": plays[playing], "dropped_ms": dropped_ms,
                "action": events[0]["type"] if events else "none", "latency_ms": latency_ms}))
        return out + self._finish_turn(interrupted=True)  # what follows is a new turn

    # -- server events --------------------------------------------------------------------

    def receive(self, raw: dict[str, Any]) -> list[Action]:
        """One server event as received. Malformed ones are warnings, never exceptions.

        Raises:
            SessionError: The server refused or did not apply our ``session.update``.
        """
        if self.oob.running or raw.get("type") == "response.created" or self.arbiter.has_out_of_band_responses():
            owner = self.arbiter.out_of_band_owner(raw)
            if owner is not None:
                return self._out_of_band_event(owner, raw)
        fast = _DELTAS.get(raw.get("type"))  # type: ignore[arg-type]
        if fast is not None and delta_ok(raw):
            # Thousands per response: deltas change neither the arbiter nor idleness, so
            # they skip normalising (GA names) and the idle check.
            return fast(self, raw)
        checked, problems = check_server_event(raw)
        out: list[Action] = [Emit("warning", {"message": p}, log=True) for p in problems]
        if checked is None:
            return out
        for event in normalize_server_event(checked):
            self.conversation.on_server_event(event)
            out += self._sends(self.arbiter.on_server_event(event))
            try:
                out += self._dispatch(event)
            except RealtalkError:
                raise
            except Exception as exc:  # noqa: BLE001 - one event we cannot act on is not the session's end
                where = f"{event.get('type')} {event.get('event_id') or ''}".strip()
                out.append(Emit("warning", {"message": (
                    f"could not act on server event {where}: {type(exc).__name__}: {exc}")}, log=True))
        return out + self._update_idle()

    def _dispatch(self, event: dict[str, Any]) -> list[Action]:
        kind = event.get("type")
        handler = _HANDLERS.get(str(kind))
        return handler(self, event) if handler is not None else []

    def _on_session_created(self, event: dict[str, Any]) -> list[Action]:
        expires = event.get("session", {}).get("expires_at")
        self.expires_at = float(expires) if isinstance(expires, (int, float)) and expires > 0 else None
        self.created_at = time.time()
        return []

    def _on_session_updated(self, event: dict[str, Any]) -> list[Action]:
        expected = self._expected
        if expected is None:
            return []
        session = event.get("session", {})
        # Function tools only: hosted MCP tools have no name of their own.
        got_tools = sorted(t.get("name", "") for t in session.get("tools") or []
                           if not isinstance(t, dict) or t.get("type", "function") == "function")
        if session.get("instructions") != expected["instructions"] or got_tools != expected["tools"]:
            same = "other" if session.get("instructions") != expected["instructions"] else "the same"
            raise SessionError(
                f"the server did not apply our session.update: it reports tools {got_tools} and"
                f" {same} instructions, expected tools {expected['tools']}")
        self._expected = None
        if self._pending_scope is not None:
            self._live_scope, self._pending_scope = self._pending_scope, None
        return []

    def _on_audio_delta(self, event: dict[str, Any]) -> list[Action]:
        self._audio_heard = True
        self._first_delta()
        return [Play(event.get("item_id", ""), event.get("delta", ""))]

    def _on_audio_done(self, event: dict[str, Any]) -> list[Action]:
        return [AudioDone(event.get("item_id", ""))]

    def _on_text_delta(self, event: dict[str, Any]) -> list[Action]:
        self._first_delta()
        return [Emit("assistant.delta", {"agent": self.agent.name, "delta": event.get("delta", "")})]

    def _on_text_done(self, event: dict[str, Any]) -> list[Action]:
        kind = str(event.get("type"))
        text = event.get("text") if kind.endswith("text.done") else event.get("transcript")
        rid = event.get("response_id")
        # A response cancelled by the application may end after the user's next turn began:
        # its last words belong to the turn it was part of, already over.
        theirs = not isinstance(rid, str) or self._turn is None or rid in self._turn.response_ids
        if self._turn is not None and text and theirs:
            self._turn.result.text = (self._turn.result.text + "\n" + text).strip()
        return [Emit("assistant.done", {"agent": self.agent.name, "text": text or ""})]

    def _on_user_transcript(self, event: dict[str, Any]) -> list[Action]:
        return [Emit("user.transcript", {"text": event.get("transcript", "")})]

    def _on_input_timeout(self, event: dict[str, Any]) -> list[Action]:
        # The server committed the idle buffer and (with create_response) answers it: a
        # turn like any other, timed from here.
        self.begin_turn()
        return [Emit("input.timeout", {
            "item_id": str(event.get("item_id") or ""),
            "audio_start_ms": int(event.get("audio_start_ms") or 0),
            "audio_end_ms": int(event.get("audio_end_ms") or 0)})]

    def _on_transcription_failed(self, event: dict[str, Any]) -> list[Action]:
        error = event.get("error")
        said = (error.get("message") or error.get("code")) if isinstance(error, dict) else None
        return [Emit("warning", {"message": (
            f"the user's speech could not be transcribed ({said or 'no reason given'}); the turn"
            " is kept, but a reconnect could not tell the new session what was said")})]

    def _on_call(self, event: dict[str, Any]) -> list[Action]:
        call_id = event.get("call_id", "")
        if call_id in self._seen_calls:
            return []  # a duplicate done event must not run the tool twice
        self._seen_calls.add(call_id)
        # The agent that produced the response decides what may run, not whoever is
        # active by now: a handoff in the same response must not unlock the target's tools.
        agent, tools = self._response_scope.get(event.get("response_id") or "", self._live_scope)
        record = ToolCallRecord(call_id, event.get("name", ""), event.get("arguments", ""), agent.name)
        if self._turn is not None:
            self._turn.result.tool_calls.append(record)
        tool = tools.get(record.name)
        handoff = tool is not None and tool.handoff_to is not None
        self._calls[call_id] = _Call(cancellable=tool is not None and tool.cancellable and not handoff,
                                     handoff=handoff)
        return [Emit("tool.started", {"call_id": record.call_id, "name": record.name,
                                      "arguments": record.arguments, "agent": record.agent}),
                RunTool(record, tool, tuple(sorted(tools)))]

    def _on_response_created(self, event: dict[str, Any]) -> list[Action]:
        self.activity += 1
        if self._turn is None:  # a response the server started by itself
            self._turn = _Turn()
        self._turn.responses += 1
        rid = event.get("response", {}).get("id")
        if isinstance(rid, str):
            self._response_scope[rid] = self._live_scope
            self._turn.response_ids.add(rid)
            # A still-working line still speaking yields to the answer.
            out: list[Action] = [self._cancel(spoken) for spoken in self.oob.stop_speaking()]
            if self._cancel_next:
                self._cancel_next = False
                out.append(self._cancel(rid))
            return out
        return []

    def _on_response_done(self, event: dict[str, Any]) -> list[Action]:
        response = event.get("response", {})
        if isinstance(response.get("id"), str):
            self._response_scope.pop(response["id"], None)
        if response.get("usage") and self._turn is not None:
            self._turn.result.usage.append(response["usage"])
        status = response.get("status") or "completed"
        if status == "completed":
            self._streak = 0  # progress: a run of failed reconnects is over
            return []
        reason = status_reason(response)
        if self._turn is not None:
            self._turn.result.note_status(str(status), reason)
        if status in ("failed", "incomplete"):
            return [Emit("warning", {"message": f"the response ended {status}: {reason or 'no reason given'}"})]
        return []

    def _on_speech_started(self, event: dict[str, Any]) -> list[Action]:
        self._speaking = True
        self.activity += 1
        cancel = tuple(cid for cid, call in self._calls.items() if call.cancellable)
        out: list[Action] = [CancelCalls(cancel)] if cancel else []
        return [*out, Interrupt()]

    def _on_speech_stopped(self, event: dict[str, Any]) -> list[Action]:
        self._speaking = False
        self.begin_turn()
        return []

    def _on_buffer_done(self, event: dict[str, Any]) -> list[Action]:
        self._uncommitted_ms = 0.0
        return []

    def _on_error(self, event: dict[str, Any]) -> list[Action]:
        error = event.get("error", {})
        cause = self.ids.caused_by(event)
        code = error.get("code")
        message = f"server error {code or error.get('type')}: {error.get('message')}"
        if cause is not None:
            message += f" (in reply to our {cause.get('type')} {cause.get('event_id')})"
            if cause.get("type") == "session.update" and self._expected is not None:
                raise SessionError(f"the server refused our session.update: {error.get('message')}")
        out: list[Action] = [Emit("error", {"message": message, "code": code, "fatal": False}, log=True)]
        if cause is not None and cause.get("type") == "response.create" and code != ALREADY_ACTIVE:
            # Refused for good (the arbiter gave the request up): the turn ends with it.
            if self._turn is None:
                self._turn = _Turn()
            self._turn.result.note_status("failed", error_summary(event))
            if not self.busy:
                out += self._finish_turn(force=True)
        return out

    # -- hosted MCP (what the server calls itself: protocol/mcpcalls.py keeps the records) --

    def mcp_approval(self, approval_request_id: str, approved: bool) -> list[Action]:
        """The approver answered a hosted MCP approval request: send the
        ``mcp_approval_response`` and ask for the response that makes (or declines) the
        call. A denial is reported as the call, refused."""
        waiting, record = self.mcp.answer(approval_request_id, approved)
        if not waiting:
            return []
        out: list[Action] = [self._mcp_finished(record)] if record is not None and not approved else []
        out += self._send(item_create({"id": new_item_id(), "type": "mcp_approval_response",
                                       "approval_request_id": approval_request_id, "approve": approved}))
        return out + self.request("mcp approval")

    def _mcp_finished(self, record: ToolCallRecord) -> Emit:
        return Emit("tool.finished", {"call_id": record.call_id, "name": record.name, "status": record.status,
                                      "output": record.output, "duration_s": 0.0, "agent": record.agent,
                                      "note": None})

    def _in_turn(self, record: ToolCallRecord) -> None:
        if self._turn is not None and record not in self._turn.result.tool_calls:
            self._turn.result.tool_calls.append(record)

    def _on_output_item_added(self, event: dict[str, Any]) -> list[Action]:
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "mcp_call":
            self.mcp.record(item, self.agent.name)
        return []

    def _on_mcp_arguments(self, event: dict[str, Any]) -> list[Action]:
        self.mcp.arguments(event)
        return []

    def _on_mcp_call_started(self, event: dict[str, Any]) -> list[Action]:
        record = self.mcp.started(event)
        if record is None:
            return []
        self._in_turn(record)
        return [Emit("tool.started", {"call_id": record.call_id, "name": record.name,
                                      "arguments": record.arguments, "agent": record.agent})]

    def _on_mcp_call_ended(self, event: dict[str, Any]) -> list[Action]:
        self.mcp.ended(event)
        return []

    def _on_output_item_done(self, event: dict[str, Any]) -> list[Action]:
        item = event.get("item")
        if not isinstance(item, dict):
            return []
        if item.get("type") == "mcp_call":
            done = self.mcp.call_done(item, self.agent.name)
            self._in_turn(done)
            return [self._mcp_finished(done)]
        if item.get("type") == "mcp_approval_request":
            asked = self.mcp.approval_requested(item, self.agent.name)
            if asked is None:
                return []
            self._in_turn(asked)
            request = ApprovalRequest(asked.name, parse_arguments(asked.arguments), asked.agent, asked.call_id)
            return [AskApproval(request, asked.call_id)]
        return []

    def _on_mcp_list_failed(self, event: dict[str, Any]) -> list[Action]:
        item_id = str(event.get("item_id"))
        self.mcp.list_failed(item_id)
        known = self.conversation.items.get(item_id)
        label = known.raw.get("server_label") if known is not None else None
        return [Emit("mcp.tools_listed", {"server_label": str(label or "?"), "tools": (),
                                          "error": "the server could not list the tools of this MCP server"})]

    def _on_mcp_list_progress(self, event: dict[str, Any]) -> list[Action]:
        return []  # the listing's item (conversation.item.done) carries the outcome

    def _on_item_done(self, event: dict[str, Any]) -> list[Action]:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") != "mcp_list_tools":
            return []
        listed = self.mcp.list_done(item)
        if listed is None:
            return []
        label, names = listed
        return [Emit("mcp.tools_listed", {"server_label": label, "tools": names, "error": None})]

    # -- internals ------------------------------------------------------------------------

    def _agent_update(self, agent: AgentSpec, *, include_voice: bool) -> list[Action]:
        tools = self.graph.tools_for(agent, self.registry)
        self._tools = {t.name: t for t in tools}
        event = build_session_update(agent, tools, profile=self.dialect, include_voice=include_voice)
        if include_voice:
            self._voice = agent.voice
        self._expected = {"instructions": agent.instructions, "tools": sorted(self._tools)}
        self._pending_scope = (agent, dict(self._tools))
        stamped = self.ids.stamp(event)
        return [SetAudioFormat(agent.audio_format), Send(stamped)]

    def _send(self, event: dict[str, Any], *, record: bool = True) -> list[Action]:
        """Stamp and record a client event; held in the outbox while no connection is live."""
        if not self.live:
            if record and len(self._outbox) < MAX_OUTBOX:
                self._outbox.append(event)
            return []
        stamped = self.ids.stamp(event)
        self.conversation.on_client_event(stamped)
        return [Send(stamped), *self._sends(self.arbiter.on_client_event(stamped))]

    def _sends(self, events: list[dict[str, Any]]) -> list[Action]:
        """Events the arbiter returned (``response.create``), remembered for error replies."""
        return [Send(self.ids.stamp(e)) for e in events]

    def _output(self, call_id: str, output: str) -> list[Action]:
        return self._send(item_create(function_call_output_item(call_id, output)))

    def _note_handoff(self, previous: AgentSpec, target: AgentSpec) -> None:
        if self._turn is not None:
            self._turn.result.handoffs.append((previous.name, target.name))

    def _first_delta(self) -> None:
        turn = self._turn
        if turn is not None and turn.result.first_delta_ms is None and turn.started:
            turn.result.first_delta_ms = (time.perf_counter() - turn.started) * 1000

    def _update_idle(self) -> list[Action]:
        """A turn that saw a response ends once the session is idle."""
        if self.busy:
            return []
        return self._finish_turn()

    def _finish_turn(self, *, interrupted: bool = False, force: bool = False) -> list[Action]:
        turn = self._turn
        if turn is None or (turn.responses == 0 and not force):
            return []
        result = turn.result
        if turn.started is not None:
            result.done_ms = (time.perf_counter() - turn.started) * 1000
        result.interrupted = interrupted
        self._turn = None
        self.finished.append(result)
        return [Emit("turn.done", {
            "agent": self.agent.name, "text": result.text, "interrupted": interrupted,
            "first_delta_ms": result.first_delta_ms, "done_ms": result.done_ms, "usage": tuple(result.usage),
            "status": result.status, "status_reason": result.status_reason})]


# The delta fast path: what receive() and the handlers above do for these events, with
# the fields already checked by validate.delta_ok (so the delta is a string).


def _fast_audio(self: ClientProtocol, event: dict[str, Any]) -> list[Action]:
    self.conversation.on_audio_delta(event)
    self._audio_heard = True
    if self._turn is not None and self._turn.result.first_delta_ms is None:
        self._first_delta()
    return [Play(event.get("item_id", ""), event["delta"])]


def _fast_transcript(self: ClientProtocol, event: dict[str, Any]) -> list[Action]:
    self.conversation.on_transcript_delta(event)
    if self._turn is not None and self._turn.result.first_delta_ms is None:
        self._first_delta()
    return [Emit("assistant.delta", {"agent": self.agent.name, "delta": event["delta"]})]


def _fast_text(self: ClientProtocol, event: dict[str, Any]) -> list[Action]:
    self.conversation.on_text_delta(event)
    if self._turn is not None and self._turn.result.first_delta_ms is None:
        self._first_delta()
    return [Emit("assistant.delta", {"agent": self.agent.name, "delta": event["delta"]})]


_DELTAS = {
    "response.output_audio.delta": _fast_audio,
    "response.output_audio_transcript.delta": _fast_transcript,
    "response.output_text.delta": _fast_text,
}
DELTA_TYPES = frozenset(_DELTAS)
"""Server events that only stream content: they change no turn, arbiter or idle state."""


def _needs_reply(history: list[dict[str, Any]]) -> bool:
    """True when the seeded conversation ends where the assistant still owes an answer."""
    if not history:
        return False
    last = history[-1]["item"]
    return bool(last.get("type") == "function_call_output" or last.get("role") == "user")


_HANDLERS: dict[str, Any] = {
    "session.created": ClientProtocol._on_session_created,
    "session.updated": ClientProtocol._on_session_updated,
    "response.output_audio.delta": ClientProtocol._on_audio_delta,
    "response.output_audio.done": ClientProtocol._on_audio_done,
    "response.output_text.delta": ClientProtocol._on_text_delta,
    "response.output_audio_transcript.delta": ClientProtocol._on_text_delta,
    "response.output_text.done": ClientProtocol._on_text_done,
    "response.output_audio_transcript.done": ClientProtocol._on_text_done,
    "conversation.item.input_audio_transcription.completed": ClientProtocol._on_user_transcript,
    "conversation.item.input_audio_transcription.failed": ClientProtocol._on_transcription_failed,
    "response.function_call_arguments.done": ClientProtocol._on_call,
    "response.created": ClientProtocol._on_response_created,
    "response.done": ClientProtocol._on_response_done,
    "input_audio_buffer.speech_started": ClientProtocol._on_speech_started,
    "input_audio_buffer.speech_stopped": ClientProtocol._on_speech_stopped,
    "input_audio_buffer.committed": ClientProtocol._on_buffer_done,
    "input_audio_buffer.cleared": ClientProtocol._on_buffer_done,
    "input_audio_buffer.timeout_triggered": ClientProtocol._on_input_timeout,
    "error": ClientProtocol._on_error,
    "conversation.item.done": ClientProtocol._on_item_done,
    "response.output_item.added": ClientProtocol._on_output_item_added,
    "response.output_item.done": ClientProtocol._on_output_item_done,
    "mcp_list_tools.in_progress": ClientProtocol._on_mcp_list_progress,
    "mcp_list_tools.completed": ClientProtocol._on_mcp_list_progress,
    "mcp_list_tools.failed": ClientProtocol._on_mcp_list_failed,
    "response.mcp_call_arguments.delta": ClientProtocol._on_mcp_arguments,
    "response.mcp_call_arguments.done": ClientProtocol._on_mcp_arguments,
    "response.mcp_call.in_progress": ClientProtocol._on_mcp_call_started,
    "response.mcp_call.completed": ClientProtocol._on_mcp_call_ended,
    "response.mcp_call.failed": ClientProtocol._on_mcp_call_ended,
}
