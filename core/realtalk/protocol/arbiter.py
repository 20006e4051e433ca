"""The response arbiter: the one place that decides when ``response.create`` is sent.

Nothing else in realtalk may send ``response.create``. The session feeds the arbiter every
(normalised) server event and tells it about tool outputs and explicit wishes; each method
returns the client events to send *now* (at most one ``response.create``, already carrying an
``event_id``). The caller must send them in order, right after whatever it just sent.

Rules (reference §5.6, §7, §8; DESIGN §5):

1. **Never two in flight.** A ``response.create`` we sent is in flight from the moment it is
   returned until the server answers with ``response.created`` (ours) or an ``error`` for it.
   No other ``response.create`` is returned meanwhile.
2. **Never while a response is active.** Any ``response.created`` (ours, or one the server
   made by itself for server VAD) marks a response active until its ``response.done``.
   Wishes made meanwhile are queued, never dropped.
3. **One follow-up per function-call response.** Once a response that called functions is
   done *and* every call of it has an output sent, exactly one ``response.create`` is sent, so
   the model can use the results. Several finished responses, and an explicit wish, merge into
   that one request.
4. **A response already covers what it can see.** Outputs the server confirmed
   (``conversation.item.added`` of the output) before some other response started, are
   already in that response's context; they owe no further request.
5. **The user's turn wins.** With server VAD creating responses, after
   ``input_audio_buffer.speech_started`` the arbiter holds everything while the user speaks
   and until the server's own response for that turn starts (or the buffer is cleared, or a
   running response ends after the user stopped). That response sees every output the
   server confirmed before it, and answers wishes made during the turn.
6. **Barge-in.** Calls of a response that ended ``cancelled`` still get their outputs (the
   session sends them so the conversation stays consistent) but never cause a
   ``response.create`` by themselves: the user interrupted, and their new turn decides what
   happens next.
7. **``conversation_already_has_active_response`` never loses a wish.** Our request is
   re-queued and retried after the next ``response.done``, unless a response the server
   started in the meantime already covered it.

Out-of-band responses (``response.create`` with ``conversation: "none"``) are the one
exception to rules 1 and 2: they never enter the conversation, so any number up to
``max_out_of_band`` may run beside each other and beside the in-conversation response.
:meth:`ResponseArbiter.out_of_band` returns their request at once; each carries
``response.metadata = {"realtalk_oob": <event_id>}``, by which the server's
``response.created`` is matched to it. From then on every event of that response
(``response_id``) belongs to the request (:meth:`ResponseArbiter.out_of_band_owner`) and
none of them changes the in-conversation state above.

Correlation: each request carries ``response.metadata = {"realtalk_request": <event_id>}``.
OpenAI echoes metadata in ``response.created``, which tells our response apart from a
server-VAD one even when both race. Whether a server echoes is learnt from the first tagged
``response.created`` (or declared with ``echo_metadata=True``). Until then, and for servers
that never echo, an untagged ``response.created`` while ours is in flight is taken as ours;
should an ``error`` for our request arrive afterwards, that assumption is undone and the
request re-queued. A race with a server-VAD response may then cost one redundant
``response.create`` (refused by the server and retried after ``response.done``), never a
missing one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from realtalk.protocol.events import EventIds

__all__ = ["ALREADY_ACTIVE", "MAX_OUT_OF_BAND", "OOB_KEY", "TAG_KEY", "ResponseArbiter"]

ALREADY_ACTIVE = "conversation_already_has_active_response"
"""Error code the server sends for a ``response.create`` while a response is active."""

TAG_KEY = "realtalk_request"
"""``response.metadata`` key carrying the ``event_id`` of our ``response.create``."""

OOB_KEY = "realtalk_oob"
"""``response.metadata`` key carrying the ``event_id`` of an out-of-band ``response.create``."""

MAX_OUT_OF_BAND = 4
"""Out-of-band requests that may run at once (the default of ``max_out_of_band``)."""


@dataclass
class _Wish:
    reason: str
    body: dict[str, Any] | None = None
    in_user_turn: bool = False  # made while the server was about to answer the user
    item_id: str | None = None  # the user item the wish is about, if any
    item_seen: bool = False  # the server confirmed that item (so a response can see it)

    def covered_by_server_response(self) -> bool:
        """A response the server starts during the user's turn answers this wish."""
        return self.body is None and self.in_user_turn and (self.item_id is None or self.item_seen)


@dataclass
class _Request:
    event_id: str
    seq: int  # outputs with a sequence number below this were sent before the request
    wish: _Wish | None
    answered: dict[str, int] = field(default_factory=dict)  # outputs cleared at ack time
    acked: bool = False


@dataclass
class _Call:
    call_id: str
    response_id: str | None
    output_sent: bool = False


class ResponseArbiter:
    """Decides when ``response.create`` may be sent; see the module docstring for the rules.

    Args:
        auto_response: Whether the server creates responses itself at the end of a user turn
            (server/semantic VAD with ``create_response`` true). Updated automatically from
            ``session.created``/``session.updated``.
        ids: Event id source shared with the session, so errors correlate.
        tag_requests: Put ``response.metadata.realtalk_request`` into each request. Turn off
            only for servers that reject ``metadata`` (implies ``echo_metadata=False``).
        echo_metadata: Whether the server echoes ``response.metadata`` in
            ``response.created``: True (OpenAI does; an untagged ``response.created`` is then
            never taken for ours), False, or None to learn it from the first tagged one.
    """

    def __init__(
        self,
        *,
        auto_response: bool = True,
        ids: EventIds | None = None,
        tag_requests: bool = True,
        echo_metadata: bool | None = None,
    ) -> None:
        self.auto_response = auto_response
        self._ids = ids or EventIds()
        self._tag = tag_requests
        self._echo: bool | None = echo_metadata if tag_requests else False
        self._seq = itertools.count()
        self._inflight: _Request | None = None
        self._last: _Request | None = None
        self._active: str | None = None
        self._blocked = False  # refused as already-active: wait for a response.done
        self._speaking = False
        self._turn_pending = False  # speech started; the server's reply has not begun
        self._wish: _Wish | None = None
        self._calls: dict[str, _Call] = {}
        self._status: dict[str, str] = {}  # response id -> in_progress | final status
        self._unanswered: dict[str, int] = {}  # call_id -> output sequence number
        self._confirmed: set[str] = set()  # unanswered outputs the server has confirmed
        self.sent = 0
        """How many ``response.create`` events this arbiter has returned."""
        self.last_error: dict[str, Any] | None = None
        """The last ``error`` event that refused one of our requests (not already-active)."""
        self.max_out_of_band = MAX_OUT_OF_BAND
        self._oob_requests: set[str] = set()  # out-of-band event ids not finished
        self._oob_responses: dict[str, str] = {}  # their response ids -> event id
        self._oob_items: dict[str, str] = {}  # their output item ids -> event id

    # -- queries ------------------------------------------------------------------------------

    @property
    def in_flight(self) -> str | None:
        """``event_id`` of our ``response.create`` awaiting ``response.created``, if any."""
        return self._inflight.event_id if self._inflight else None

    @property
    def active_response_id(self) -> str | None:
        """The response currently in progress (ours or the server's), if any."""
        return self._active

    @property
    def wants_response(self) -> bool:
        """Whether a ``response.create`` is owed or wished but cannot be sent yet."""
        return self._wish is not None or bool(self._unanswered)

    @property
    def awaiting_outputs(self) -> list[str]:
        """``call_id``s of finished, non-cancelled responses still waiting for an output."""
        return [c.call_id for c in self._calls.values() if self._blocks(c)]

    @property
    def out_of_band_running(self) -> int:
        """Out-of-band requests sent and not finished (neither ``response.done`` nor refused)."""
        return len(self._oob_requests)

    def has_out_of_band_responses(self) -> bool:
        """Whether events may belong to an out-of-band response (they need routing)."""
        return bool(self._oob_responses or self._oob_items)

    def out_of_band_owner(self, event: dict[str, Any]) -> str | None:
        """The ``event_id`` of the out-of-band request ``event`` belongs to, or None.

        ``response.created`` is matched by its metadata tag; every later event of that
        response by its ``response_id`` (``response.done`` by ``response.id``); an ``error``
        by the ``event_id`` it answers. Call before :meth:`on_server_event` and, for an
        owned event, pass it to :meth:`on_out_of_band_event` instead.
        """
        etype = event.get("type")
        if etype == "error":
            err = event.get("error")
            eid = err.get("event_id") if isinstance(err, dict) else None
            return eid if isinstance(eid, str) and eid in self._oob_requests else None
        if etype == "response.created":
            # Any response tagged as out-of-band is one, even of a request given up
            # (timed out): it must never pass for the conversation's response.
            resp = event.get("response")
            meta = resp.get("metadata") if isinstance(resp, dict) else None
            tag = meta.get(OOB_KEY) if isinstance(meta, dict) else None
            return tag if isinstance(tag, str) else None
        if not (self._oob_requests or self._oob_responses or self._oob_items):
            return None
        if etype == "response.done":
            resp = event.get("response")
            if not isinstance(resp, dict):
                return None
            rid = resp.get("id")
        elif etype in ("conversation.item.added", "conversation.item.done"):
            # A server that also announces out-of-band output as conversation items.
            item = event.get("item")
            iid = item.get("id") if isinstance(item, dict) else None
            return self._oob_items.get(iid) if isinstance(iid, str) else None
        else:
            rid = event.get("response_id")
        return self._oob_responses.get(rid) if isinstance(rid, str) else None

    def on_out_of_band_event(self, owner: str, event: dict[str, Any]) -> None:
        """Update from an event :meth:`out_of_band_owner` gave to ``owner``; nothing to send.

        ``response.created`` ties the response to the request; ``response.done`` or an
        ``error`` ends the request. The in-conversation state is never touched.
        """
        etype = event.get("type")
        resp = event.get("response")
        if etype == "response.created" and isinstance(resp, dict) and isinstance(resp.get("id"), str):
            self._oob_responses[resp["id"]] = owner
            self._echo = True  # the server echoes metadata
        elif etype == "response.output_item.added":
            item = event.get("item")
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                self._oob_items[item["id"]] = owner
        elif etype == "response.done" or etype == "error":
            self._oob_requests.discard(owner)
            for rid in [r for r, o in self._oob_responses.items() if o == owner]:
                del self._oob_responses[rid]
            # Its items may still be announced (conversation.item.done): kept, bounded.
            while len(self._oob_items) > 64:
                del self._oob_items[next(iter(self._oob_items))]

    def forget_out_of_band(self, owner: str) -> None:
        """Give up on an out-of-band request (timed out): it no longer counts against
        ``max_out_of_band``, but events of its response are still routed to ``owner``
        (to be dropped) until its ``response.done``."""
        self._oob_requests.discard(owner)

    # -- inputs -------------------------------------------------------------------------------

    def out_of_band(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        """An out-of-band ``response.create`` to send now (it may run beside anything).

        Args:
            response: The ``response.create`` body; ``conversation`` is set to ``"none"``
                and ``metadata`` gets the :data:`OOB_KEY` tag.

        Returns:
            ``[response.create]``; the caller must send it. Its ``event_id`` names the
            request in :meth:`out_of_band_owner`.

        Raises:
            ValueError: ``max_out_of_band`` requests are already running.
        """
        if len(self._oob_requests) >= self.max_out_of_band:
            raise ValueError(
                f"{len(self._oob_requests)} out-of-band responses are already running (at most"
                f" {self.max_out_of_band}); wait for one to finish")
        event_id = self._ids.new_id()
        body = dict(response)
        body["conversation"] = "none"
        body["metadata"] = {**dict(body.get("metadata") or {}), OOB_KEY: event_id}
        self._oob_requests.add(event_id)
        return [{"type": "response.create", "event_id": event_id, "response": body}]

    def request_response(
        self, reason: str, response: dict[str, Any] | None = None, *, item_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Ask for a model response (user text sent, greeting, handoff without a call...).

        Args:
            reason: Why; kept for logs and tests.
            response: Optional ``response.create`` body (instructions, modalities...). Wishes
                queued together merge into one request; a later body replaces an earlier one.
            item_id: The user item (sent just before) the response must answer: a response
                the server starts by itself only covers the wish if it started after the
                server confirmed this item.

        Returns:
            ``[response.create]`` if it may be sent now, else ``[]`` (queued: it will come
            out of a later call). The caller must send what is returned.
        """
        old = self._wish
        body = dict(response) if response else (old.body if old else None)
        in_turn = self._in_user_turn() and (old is None or old.in_user_turn)
        wish = _Wish(reason, body, in_turn)
        if item_id is not None:
            wish.item_id = item_id
        elif old is not None:
            wish.item_id, wish.item_seen = old.item_id, old.item_seen
        self._wish = wish
        return self._maybe_send()

    def on_output_sent(self, call_id: str) -> list[dict[str, Any]]:
        """Record that a ``function_call_output`` for ``call_id`` was just sent.

        Idempotent. The caller must have sent the output before calling this, and must send
        the returned ``response.create`` (if any) after it.
        """
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(call_id, None)
        if call.output_sent:
            return []
        call.output_sent = True
        if call.response_id is None or self._status.get(call.response_id) != "cancelled":
            self._unanswered[call_id] = next(self._seq)
        return self._maybe_send()

    def on_client_event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Observe a client event that was sent (convenience for the session's send path).

        A ``conversation.item.create`` of a ``function_call_output`` is handled as
        :meth:`on_output_sent`; everything else is ignored. The caller must send what is
        returned.
        """
        if event.get("type") == "conversation.item.create":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                cid = item.get("call_id")
                if isinstance(cid, str):
                    return self.on_output_sent(cid)
        return []

    def expect_outputs(self, call_ids: list[str]) -> None:
        """Register calls of a response that ended on another connection (a reconnect).

        Their outputs are still to come; the follow-up ``response.create`` waits until every
        one of them is sent, as it would have on the old connection. Nothing to send.
        """
        lost = f"lost_{next(self._seq)}"
        self._status[lost] = "completed"
        for call_id in call_ids:
            call = self._calls.get(call_id)
            if call is None:
                self._calls[call_id] = _Call(call_id, lost)
            elif not call.output_sent:
                call.response_id = lost

    def withdraw(self) -> None:
        """Drop the queued wish and every owed follow-up (e.g. the session is ending).

        A request already in flight is not recalled. Nothing to send.
        """
        self._wish = None
        self._unanswered.clear()
        self._confirmed.clear()

    def on_server_event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Update from one normalised server event.

        The caller must pass every server event in arrival order (after
        ``normalize_server_event``) and send the returned events at once.
        """
        etype = event.get("type")
        if etype == "response.created":
            self._on_created(event)
        elif etype == "response.done":
            self._on_done(event)
            return self._maybe_send()
        elif etype in ("response.output_item.done", "conversation.item.done",
                       "conversation.item.added"):
            self._on_item(event)
        elif etype == "response.function_call_arguments.done":
            cid, rid = event.get("call_id"), event.get("response_id")
            if isinstance(cid, str):
                self._register_call(cid, rid if isinstance(rid, str) else None)
        elif etype == "input_audio_buffer.speech_started":
            self._speaking = self._turn_pending = True
        elif etype == "input_audio_buffer.speech_stopped":
            self._speaking = False
        elif etype == "input_audio_buffer.timeout_triggered":
            # The server committed the idle input and answers it itself (create_response).
            self._turn_pending = True
        elif etype == "input_audio_buffer.cleared":
            self._speaking = self._turn_pending = False
            return self._maybe_send()
        elif etype == "error":
            return self._on_error(event)
        elif etype in ("session.created", "session.updated"):
            self._on_session(event)
            return self._maybe_send()
        return []

    # -- server event handlers ----------------------------------------------------------------

    def _on_session(self, event: dict[str, Any]) -> None:
        session = event.get("session")
        if isinstance(session, dict):
            td: Any = "absent"
            audio = session.get("audio")
            if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
                td = audio["input"].get("turn_detection", "absent")
            elif "turn_detection" in session:
                td = session["turn_detection"]
            if td is None:
                self.auto_response = False
            elif isinstance(td, dict):
                self.auto_response = td.get("create_response", True) is not False
        if event.get("type") == "session.created":
            # A new session (first connect or reconnect): whatever was in flight on the old
            # socket is gone. Keep wishes and owed follow-ups; the caller re-seeds history.
            if self._inflight is not None and self._inflight.wish is not None:
                self._wish = self._wish or self._inflight.wish
            self._inflight = None
            self._active = None
            self._blocked = False
            self._speaking = self._turn_pending = False
            self._confirmed.clear()
            self._oob_requests.clear()  # their answers went down with the old socket
            self._oob_responses.clear()
            self._oob_items.clear()
            for rid, status in self._status.items():
                if status == "in_progress":
                    self._status[rid] = "lost"

    def _on_created(self, event: dict[str, Any]) -> None:
        resp = event.get("response")
        if not isinstance(resp, dict):
            return
        rid = resp.get("id")
        rid = rid if isinstance(rid, str) else f"unknown_{next(self._seq)}"
        self._active = rid
        self._status[rid] = "in_progress"
        if not self._speaking:
            self._turn_pending = False
        meta = resp.get("metadata")
        tag = meta.get(TAG_KEY) if isinstance(meta, dict) else None
        if isinstance(tag, str):
            self._echo = True
        req = self._inflight
        ours = req is not None and (
            tag == req.event_id if isinstance(tag, str) else self._echo is not True
        )
        if ours and req is not None:
            req.acked = True
            req.answered = {c: s for c, s in self._unanswered.items() if s < req.seq}
            for cid in req.answered:
                self._unanswered.pop(cid, None)
                self._confirmed.discard(cid)
            self._inflight = None
            return
        # A response the server started by itself: it sees every output it has confirmed,
        # and it answers a plain wish made while the user's turn was pending (a wish made
        # at another time may concern an item the server had not received yet).
        for cid in list(self._confirmed):
            self._unanswered.pop(cid, None)
        self._confirmed.clear()
        if self._wish is not None and self._wish.covered_by_server_response():
            self._wish = None
        if req is not None and req.wish is not None and req.wish.covered_by_server_response():
            req.wish = None

    def _on_done(self, event: dict[str, Any]) -> None:
        resp = event.get("response")
        if not isinstance(resp, dict):
            return
        rid = resp.get("id")
        if not isinstance(rid, str):
            return
        status = str(resp.get("status") or "completed")
        self._status[rid] = status
        for out in resp.get("output") or []:
            if (
                isinstance(out, dict)
                and out.get("type") == "function_call"
                and out.get("status", "completed") == "completed"
                and isinstance(out.get("call_id"), str)
            ):
                self._register_call(out["call_id"], rid)
        if status == "cancelled":
            # Barge-in: outputs of these calls are still sent but owe no response.
            for call in self._calls.values():
                if call.response_id == rid:
                    self._unanswered.pop(call.call_id, None)
                    self._confirmed.discard(call.call_id)
        if self._active == rid:
            self._active = None
        self._blocked = False
        if not self._speaking:
            # The user's turn ended while a response was running: the server will not
            # answer it on its own any more, so stop holding.
            self._turn_pending = False

    def _on_item(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            return
        for wish in (self._wish, self._inflight.wish if self._inflight else None):
            if wish is not None and wish.item_id is not None and item.get("id") == wish.item_id:
                wish.item_seen = True
        cid = item.get("call_id")
        if not isinstance(cid, str):
            return
        if item.get("type") == "function_call" and item.get("status") == "completed":
            rid = event.get("response_id")
            self._register_call(cid, rid if isinstance(rid, str) else None)
        elif item.get("type") == "function_call_output" and cid in self._unanswered:
            self._confirmed.add(cid)

    def _register_call(self, call_id: str, response_id: str | None) -> None:
        call = self._calls.get(call_id)
        if call is None:
            self._calls[call_id] = _Call(call_id, response_id or self._active)
        elif call.response_id is None:
            call.response_id = response_id or self._active

    def _on_error(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        err = event.get("error")
        if not isinstance(err, dict):
            return []
        code, eid = err.get("code"), err.get("event_id")
        req = None
        if self._inflight is not None and (
            eid == self._inflight.event_id or (eid is None and code == ALREADY_ACTIVE)
        ):
            req = self._inflight
        elif self._last is not None and self._last.acked and eid == self._last.event_id:
            # We took a server-VAD response for ours; it was not. Undo that.
            req = self._last
            for cid, seq in req.answered.items():
                call = self._calls.get(cid)
                if call is None or self._status.get(call.response_id or "") != "cancelled":
                    self._unanswered.setdefault(cid, seq)
            req.answered = {}
            req.acked = False
        if req is None:
            return []
        if self._inflight is req:
            self._inflight = None
        if code == ALREADY_ACTIVE:
            if req.wish is not None and self._wish is None:
                self._wish = req.wish
            # A response is active (maybe one we have not seen start): retry after its done.
            self._blocked = True
            return []
        # Any other refusal would repeat forever if retried: give the request up.
        self.last_error = event
        for cid in list(self._unanswered):
            if self._unanswered[cid] < req.seq:
                del self._unanswered[cid]
                self._confirmed.discard(cid)
        return self._maybe_send()

    # -- decision -----------------------------------------------------------------------------

    def _blocks(self, call: _Call) -> bool:
        if call.output_sent or call.response_id is None:
            return False
        status = self._status.get(call.response_id, "in_progress")
        return status not in ("in_progress", "cancelled")

    def _in_user_turn(self) -> bool:
        return self.auto_response and (self._speaking or self._turn_pending)

    def _maybe_send(self) -> list[dict[str, Any]]:
        if self._inflight is not None or self._active is not None or self._blocked:
            return []
        if self._wish is None and not self._unanswered:
            return []
        if self._in_user_turn():
            return []
        if any(self._blocks(c) for c in self._calls.values()):
            return []
        wish = self._wish
        self._wish = None
        body: dict[str, Any] = dict(wish.body) if wish and wish.body else {}
        event_id = self._ids.new_id()
        if self._tag:
            meta = dict(body.get("metadata") or {})
            meta[TAG_KEY] = event_id
            body["metadata"] = meta
        event: dict[str, Any] = {"type": "response.create", "event_id": event_id}
        if body:
            event["response"] = body
        req = _Request(event_id=event_id, seq=next(self._seq), wish=wish)
        self._inflight = self._last = req
        self.sent += 1
        return [event]
