"""The conversation as the client knows it, built from the events both sides send.

Feed :meth:`Conversation.on_server_event` every server event (after
:func:`~realtalk.protocol.events.normalize_server_event`) and
:meth:`Conversation.on_client_event` every client event actually sent. The state answers:

* which items exist, in server order (``previous_item_id`` respected);
* which response is active and what it called (:class:`FunctionCall`, keyed by ``call_id``);
* how much assistant audio arrived per item, so barge-in truncation can be clamped
  (:meth:`Conversation.interrupt`);
* transcripts and text per item, user transcripts, usage per response;
* :meth:`Conversation.history_items`: ``conversation.item.create`` events that re-seed a new
  session with everything said so far (assistant turns as text, never audio).

No I/O. Audio is never stored, only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from realtalk.protocol import vocab
from realtalk.protocol.events import audio_byte_length

__all__ = [
    "HISTORY_MAX",
    "MAX_ITEMS",
    "MAX_RESPONSES",
    "UNTRANSCRIBED",
    "Conversation",
    "FunctionCall",
    "Item",
    "ResponseState",
    "bytes_per_ms",
]

UNTRANSCRIBED = "[the user spoke here; no transcript of it exists]"
"""Stands for user audio without a transcript in re-seeded history (the words are lost,
the turn is not)."""


def bytes_per_ms(audio_format: str | dict[str, Any] | None) -> int:
    """Return bytes per millisecond of mono audio in a Realtime format.

    Kept for compatibility: :func:`realtalk.protocol.vocab.audio_format` is the parser.
    Unlike it, this never raises: an unknown format counts as PCM16 at 24 kHz.

    Args:
        audio_format: A GA format object (``{"type": "audio/pcm", "rate": 24000}``), a beta
            format string (``"pcm16"``, ``"g711_ulaw"``...), or ``None`` (pcm16 at 24 kHz).

    Returns:
        48 for 16-bit PCM at 24 kHz, 8 for G.711. PCM at another rate scales with the rate.
    """
    try:
        return vocab.audio_format(audio_format).bytes_per_ms
    except ValueError:
        return vocab.PCM.bytes_per_ms


@dataclass
class FunctionCall:
    """One function call the model made.

    Attributes:
        call_id: The model's ``call_id``; key outputs by it.
        name: The function name (may be empty until the arguments are done).
        item_id: The ``function_call`` item's id.
        response_id: The response that produced it.
        arguments: The JSON arguments text (complete once ``arguments_done``).
        arguments_done: Whether ``response.function_call_arguments.done`` (or the item's
            ``done``) was seen.
        output: The output we sent, if any.
        output_sent: Whether a ``function_call_output`` for this call was sent.
    """

    call_id: str
    name: str = ""
    item_id: str | None = None
    response_id: str | None = None
    arguments: str = ""
    arguments_done: bool = False
    output: str | None = None
    output_sent: bool = False


@dataclass
class ResponseState:
    """One response.

    Attributes:
        id: The response id.
        status: ``in_progress`` until ``response.done`` sets the final status.
        status_details: The final ``status_details`` (reason for cancelled/incomplete/failed).
        call_ids: The function calls it made, in order.
        item_ids: Its output items, in order.
        usage: Token usage from ``response.done``.
    """

    id: str
    status: str = "in_progress"
    status_details: dict[str, Any] | None = None
    call_ids: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None


@dataclass
class Item:
    """One conversation item as last seen.

    Attributes:
        id: Item id.
        type: ``message``, ``function_call``, ``function_call_output``, ...
        role: For messages: ``user``, ``assistant`` or ``system``.
        status: The server's item status, when given.
        raw: The latest full item dict the server sent (content parts included).
        text: Assistant ``output_text`` accumulated from deltas (or the final text).
        transcript: Assistant audio transcript, or the user's input-audio transcript.
        audio_bytes: Assistant audio bytes received for this item.
        played_ms: Assistant audio played to the user, as reported by the caller.
        truncated_ms: ``audio_end_ms`` of a confirmed truncation, if any.
        response_id: The response that produced it (assistant output items).
        content_done: The item's text or transcript is final (its ``.done`` event, or the
            item's own ``done``): an assistant item without it was cut off mid-stream.
    """

    id: str
    type: str
    role: str | None = None
    status: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    transcript: str | None = None
    audio_bytes: int = 0
    played_ms: int | None = None
    truncated_ms: int | None = None
    response_id: str | None = None
    content_done: bool = False
    placed: bool = field(default=False, repr=False)  # position came from previous_item_id


MAX_ITEMS = 512
"""Items the mirror keeps (the newest): a session's memory stays bounded however long it
runs. The model's own context window holds far fewer."""

MAX_RESPONSES = 64
"""Finished responses (and their usage) kept; the active one is never dropped."""

HISTORY_MAX = 256
"""Items a reconnect re-seeds at most (the newest), well under :data:`MAX_ITEMS`."""


class Conversation:
    """Client-side mirror of one Realtime conversation (one session).

    It keeps the newest :data:`MAX_ITEMS` items and :data:`MAX_RESPONSES` finished
    responses, so its memory is bounded whatever the session's length.

    Args:
        output_format: The assistant audio format until ``session.created``/``updated`` says
            otherwise (GA format object or beta string; default pcm16 at 24 kHz).
    """

    def __init__(self, output_format: str | dict[str, Any] | None = None) -> None:
        self._bpms = bytes_per_ms(output_format)
        self._order: list[str] = []
        self.items: dict[str, Item] = {}
        self.responses: dict[str, ResponseState] = {}
        self.calls: dict[str, FunctionCall] = {}
        self.active_response_id: str | None = None
        self.usage: list[dict[str, Any]] = []
        self.session: dict[str, Any] = {}
        # Messages we sent that the server has not confirmed yet (item id -> item): a
        # socket that dies under them loses them, so history_items() sends them again.
        self.unconfirmed: dict[str, dict[str, Any]] = {}

    # -- queries ------------------------------------------------------------------------------

    @property
    def order(self) -> list[str]:
        """Item ids in conversation order (a copy)."""
        return list(self._order)

    @property
    def bytes_per_ms(self) -> int:
        """Bytes per millisecond of assistant audio in the current output format."""
        return self._bpms

    def received_ms(self, item_id: str) -> int:
        """Milliseconds of assistant audio received for an item (0 if unknown)."""
        item = self.items.get(item_id)
        return item.audio_bytes // self._bpms if item else 0

    def pending_calls(self) -> list[FunctionCall]:
        """Calls whose arguments are complete but whose output was not sent yet, in order."""
        return [c for c in self.calls.values() if c.arguments_done and not c.output_sent]

    def user_transcripts(self) -> list[tuple[str, str]]:
        """``(item_id, transcript)`` for user audio items with a known transcript, in order."""
        out = []
        for iid in self._order:
            it = self.items[iid]
            if it.role == "user" and it.transcript is not None:
                out.append((iid, it.transcript))
        return out

    def last_assistant_audio_item(self) -> str | None:
        """The most recent assistant item that received audio, or ``None``."""
        for iid in reversed(self._order):
            it = self.items[iid]
            if it.role == "assistant" and it.audio_bytes > 0:
                return iid
        return None

    # -- server events ------------------------------------------------------------------------

    def on_server_event(self, event: dict[str, Any]) -> None:
        """Update the state from one normalised (GA-named) server event.

        The caller must pass every server event, in arrival order, after
        ``normalize_server_event``. Nothing needs to be sent in response.
        """
        etype = event.get("type")
        handler = _SERVER_HANDLERS.get(str(etype))
        if handler is not None:
            handler(self, event)

    def _on_session(self, event: dict[str, Any]) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            return
        self.session = session
        audio = session.get("audio")
        fmt: Any = None
        if isinstance(audio, dict) and isinstance(audio.get("output"), dict):
            fmt = audio["output"].get("format")
        elif "output_audio_format" in session:
            fmt = session.get("output_audio_format")
        if fmt is not None:
            self._bpms = bytes_per_ms(fmt)

    def _on_item(self, event: dict[str, Any]) -> None:
        raw = event.get("item")
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            return
        authoritative = event.get("type") == "conversation.item.retrieved"
        self.unconfirmed.pop(raw["id"], None)
        item = self._upsert_item(raw, event.get("previous_item_id"), "previous_item_id" in event)
        if item.status == "completed" and event.get("type") != "conversation.item.added":
            item.content_done = True
        if item.type == "function_call":
            self._track_call(raw, item.response_id)
        elif item.type == "function_call_output":
            cid = raw.get("call_id")
            if isinstance(cid, str):
                call = self.calls.setdefault(cid, FunctionCall(call_id=cid))
                call.output_sent = True
                if isinstance(raw.get("output"), str):
                    call.output = raw["output"]
        # Final text/transcript in content parts overrides what deltas built.
        for part in raw.get("content") or []:
            if not isinstance(part, dict):
                continue
            ptype = part.get("type")
            if ptype == "output_text" and isinstance(part.get("text"), str) and part["text"]:
                item.text = part["text"]
            elif (
                ptype in ("output_audio", "input_audio")
                and isinstance(part.get("transcript"), str)
                and part["transcript"]
                # After a truncation only a retrieve reflects what the server kept; an
                # item.done may still carry the full, partly unheard transcript.
                and (item.truncated_ms is None or authoritative)
            ):
                item.transcript = part["transcript"]

    def _upsert_item(self, raw: dict[str, Any], prev: Any, has_prev: bool) -> Item:
        iid = raw["id"]
        item = self.items.get(iid)
        if item is None:
            item = Item(id=iid, type=str(raw.get("type", "message")))
            self.items[iid] = item
            self._insert(iid, prev if has_prev else None)
            item.placed = has_prev
        elif has_prev and not item.placed:
            # First seen in response.output_item.added (no position); now we know where.
            self._order.remove(iid)
            self._insert(iid, prev)
            item.placed = True
        item.raw = vocab.json_copy(raw)
        item.type = str(raw.get("type", item.type))
        if isinstance(raw.get("role"), str):
            item.role = raw["role"]
        if isinstance(raw.get("status"), str):
            item.status = raw["status"]
        return item

    def _insert(self, iid: str, prev: Any) -> None:
        # null/absent/unknown previous_item_id appends: servers and the beta dialect are not
        # consistent about sending it, and appending is what the server does by default.
        if prev == "root":
            self._order.insert(0, iid)
        elif isinstance(prev, str) and prev in self.items and prev in self._order:
            self._order.insert(self._order.index(prev) + 1, iid)
        else:
            self._order.append(iid)
        if len(self._order) > MAX_ITEMS:
            self._forget(self._order[0])

    def _forget(self, iid: str) -> None:
        """Drop the oldest item (and its call, once answered) from the mirror."""
        del self._order[0]
        item = self.items.pop(iid, None)
        cid = item.raw.get("call_id") if item is not None else None
        call = self.calls.get(cid) if isinstance(cid, str) else None
        if call is not None and (call.output_sent or item is not None and item.type == "function_call_output"):
            del self.calls[call.call_id]

    def _track_call(self, raw: dict[str, Any], response_id: str | None) -> FunctionCall | None:
        cid = raw.get("call_id")
        if not isinstance(cid, str):
            return None
        call = self.calls.setdefault(cid, FunctionCall(call_id=cid))
        if isinstance(raw.get("name"), str) and raw["name"]:
            call.name = raw["name"]
        if isinstance(raw.get("id"), str):
            call.item_id = raw["id"]
        if response_id is not None:
            call.response_id = response_id
        args = raw.get("arguments")
        if isinstance(args, str) and (args or raw.get("status") == "completed"):
            call.arguments = args
        if raw.get("status") == "completed":
            call.arguments_done = True
        if call.response_id is not None:
            resp = self.responses.get(call.response_id)
            if resp is not None and cid not in resp.call_ids:
                resp.call_ids.append(cid)
        return call

    def _on_output_item(self, event: dict[str, Any]) -> None:
        raw = event.get("item")
        rid = event.get("response_id")
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            return
        item = self.items.get(raw["id"])
        if item is None:
            item = self._upsert_item(raw, None, False)
        if isinstance(rid, str):
            item.response_id = rid
            resp = self.responses.get(rid)
            if resp is not None and item.id not in resp.item_ids:
                resp.item_ids.append(item.id)
        if raw.get("type") == "function_call":
            self._track_call(raw, rid if isinstance(rid, str) else None)

    def _on_response_created(self, event: dict[str, Any]) -> None:
        resp = event.get("response")
        if isinstance(resp, dict) and isinstance(resp.get("id"), str):
            self.responses.setdefault(resp["id"], ResponseState(id=resp["id"]))
            self.active_response_id = resp["id"]

    def _on_response_done(self, event: dict[str, Any]) -> None:
        resp = event.get("response")
        if not isinstance(resp, dict) or not isinstance(resp.get("id"), str):
            return
        rid = resp["id"]
        state = self.responses.setdefault(rid, ResponseState(id=rid))
        state.status = str(resp.get("status") or "completed")
        details = resp.get("status_details")
        state.status_details = details if isinstance(details, dict) else None
        usage = resp.get("usage")
        if isinstance(usage, dict):
            state.usage = usage
            self.usage.append(usage)
        for out in resp.get("output") or []:
            if not isinstance(out, dict):
                continue
            if isinstance(out.get("id"), str):
                if out["id"] not in self.items:
                    self._upsert_item(out, None, False)
                self.items[out["id"]].response_id = rid
                if out["id"] not in state.item_ids:
                    state.item_ids.append(out["id"])
            if out.get("type") == "function_call":
                self._track_call(out, rid)
        if self.active_response_id == rid:
            self.active_response_id = None
        if len(self.responses) > MAX_RESPONSES:
            for old in [r for r in self.responses if r != self.active_response_id][: len(self.responses) - MAX_RESPONSES]:
                del self.responses[old]
            del self.usage[:-MAX_RESPONSES]

    def _on_args_delta(self, event: dict[str, Any]) -> None:
        cid = event.get("call_id")
        if isinstance(cid, str):
            call = self.calls.setdefault(cid, FunctionCall(call_id=cid))
            if not call.arguments_done:
                call.arguments += str(event.get("delta") or "")

    def _on_args_done(self, event: dict[str, Any]) -> None:
        cid = event.get("call_id")
        if not isinstance(cid, str):
            return
        call = self.calls.setdefault(cid, FunctionCall(call_id=cid))
        if isinstance(event.get("arguments"), str):
            call.arguments = event["arguments"]
        if isinstance(event.get("name"), str) and event["name"]:
            call.name = event["name"]
        if isinstance(event.get("item_id"), str):
            call.item_id = event["item_id"]
        rid = event.get("response_id")
        if isinstance(rid, str):
            call.response_id = rid
            resp = self.responses.get(rid)
            if resp is not None and cid not in resp.call_ids:
                resp.call_ids.append(cid)
        call.arguments_done = True

    def _item_for(self, event: dict[str, Any]) -> Item | None:
        iid = event.get("item_id")
        if not isinstance(iid, str):
            return None
        item = self.items.get(iid)
        if item is None:
            item = Item(id=iid, type="message", role="assistant")
            self.items[iid] = item
            self._order.append(iid)
        rid = event.get("response_id")
        if isinstance(rid, str) and item.response_id is None:
            item.response_id = rid
        return item

    def on_audio_delta(self, event: dict[str, Any]) -> None:
        """One ``response.output_audio.delta`` (the hot path calls this directly)."""
        item = self._item_for(event)
        delta = event.get("delta")
        if item is not None and isinstance(delta, str):
            item.audio_bytes += audio_byte_length(delta)

    def on_text_delta(self, event: dict[str, Any]) -> None:
        """One ``response.output_text.delta`` (the hot path calls this directly)."""
        item = self._item_for(event)
        if item is not None:
            item.text += str(event.get("delta") or "")

    def _on_text_done(self, event: dict[str, Any]) -> None:
        item = self._item_for(event)
        if item is not None and isinstance(event.get("text"), str):
            item.text = event["text"]
            item.content_done = True

    def on_transcript_delta(self, event: dict[str, Any]) -> None:
        """One ``response.output_audio_transcript.delta`` (the hot path calls this directly)."""
        item = self._item_for(event)
        if item is not None and item.truncated_ms is None:
            item.transcript = (item.transcript or "") + str(event.get("delta") or "")

    def _on_transcript_done(self, event: dict[str, Any]) -> None:
        item = self._item_for(event)
        if item is not None and item.truncated_ms is None and isinstance(
            event.get("transcript"), str
        ):
            item.transcript = event["transcript"]
            item.content_done = True

    def _on_user_transcript(self, event: dict[str, Any]) -> None:
        iid = event.get("item_id")
        if not isinstance(iid, str):
            return
        item = self.items.get(iid)
        if item is None:
            item = Item(id=iid, type="message", role="user")
            self.items[iid] = item
            self._order.append(iid)
        if isinstance(event.get("transcript"), str):
            item.transcript = event["transcript"]

    def _on_truncated(self, event: dict[str, Any]) -> None:
        iid = event.get("item_id")
        ms = event.get("audio_end_ms")
        item = self.items.get(iid) if isinstance(iid, str) else None
        if item is None or not isinstance(ms, int):
            return
        item.truncated_ms = ms
        item.played_ms = ms
        if item.transcript:
            item.transcript = _heard_part(item.transcript, ms, item.audio_bytes // self._bpms)

    def _on_deleted(self, event: dict[str, Any]) -> None:
        iid = event.get("item_id")
        if isinstance(iid, str) and iid in self.items:
            del self.items[iid]
            self._order.remove(iid)

    # -- client events ------------------------------------------------------------------------

    def on_client_event(self, event: dict[str, Any]) -> None:
        """Record one client event that was sent (GA vocabulary).

        The caller must pass every event it sent, after sending it. Only
        ``function_call_output`` items change state here (the call counts as answered even if
        the socket drops before the server confirms), and messages that carry an ``id``
        stay :attr:`unconfirmed` until the server's own events confirm them.
        """
        if event.get("type") != "conversation.item.create":
            return
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "message":
            iid = item.get("id")
            if isinstance(iid, str) and iid not in self.items:
                self.unconfirmed[iid] = item
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            cid = item.get("call_id")
            if isinstance(cid, str):
                call = self.calls.setdefault(cid, FunctionCall(call_id=cid))
                call.output_sent = True
                call.output = str(item.get("output", ""))

    # -- barge-in -----------------------------------------------------------------------------

    def interrupt(self, item_id: str, played_ms: int) -> list[dict[str, Any]]:
        """Build the events that make the server forget the unheard part of an item.

        Args:
            item_id: The assistant item that was playing.
            played_ms: Milliseconds of it actually played to the user.

        Returns:
            ``[conversation.item.truncate]`` with ``audio_end_ms`` clamped to the audio
            received, ``[conversation.item.delete]`` if nothing was heard, or ``[]`` if the
            item is unknown, already fully played, or already truncated. The caller must send
            these events (stamped) right away, after stopping playback.
        """
        item = self.items.get(item_id)
        if item is None or item.truncated_ms is not None:
            return []
        received = item.audio_bytes // self._bpms
        end = max(0, min(int(played_ms), received))
        item.played_ms = end
        if end <= 0:
            return [{"type": "conversation.item.delete", "item_id": item_id}]
        done = item.status == "completed" or (
            item.response_id is not None
            and self.responses.get(item.response_id, ResponseState("")).status != "in_progress"
        )
        if end >= received and done:
            return []
        return [
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": end,
            }
        ]

    def response_audio_items(self, item_id: str) -> list[str]:
        """The assistant messages of ``item_id``'s response that received audio, in order.

        A response may hold several messages (a preamble before a tool call, or two
        spoken parts): barge-in must cut each of them at what was heard. ``[item_id]``
        when the item's response is unknown.
        """
        item = self.items.get(item_id)
        rid = item.response_id if item is not None else None
        state = self.responses.get(rid) if rid is not None else None
        if state is None:
            return [item_id]
        out = [iid for iid in state.item_ids
               if iid in self.items and self.items[iid].role == "assistant" and self.items[iid].audio_bytes > 0]
        return out if item_id in out else [*out, item_id]

    def interrupt_items(self, heard: dict[str, int]) -> list[dict[str, Any]]:
        """Barge-in over several assistant messages: each one cut at what was heard.

        Args:
            heard: Milliseconds played per assistant item (those of
                :meth:`response_audio_items`); an item played in full owes nothing, one
                partly heard is truncated there, one never heard is deleted.

        Returns:
            The events to send (stamped) at once, in item order (see :meth:`interrupt`).
        """
        out: list[dict[str, Any]] = []
        for iid, played_ms in heard.items():
            out += self.interrupt(iid, played_ms)
        return out

    def mark_played(self, item_id: str, played_ms: int) -> None:
        """Record how much of an item's audio was played; nothing to send.

        Used by :meth:`history_items` when a truncation was never confirmed.
        """
        item = self.items.get(item_id)
        if item is not None:
            item.played_ms = max(0, int(played_ms))

    # -- history ------------------------------------------------------------------------------

    def history_items(self) -> list[dict[str, Any]]:
        """Return ``conversation.item.create`` events that re-seed a new session.

        The newest :data:`HISTORY_MAX` items, in conversation order: user messages (text, or the transcript of their audio;
        images kept), system messages, assistant messages as ``output_text`` (audio
        transcript cut to the heard part when the item was truncated), function calls with
        complete arguments, and their outputs (also outputs we sent that the server never
        confirmed), then messages we sent that the server never confirmed. User audio
        without a transcript is kept as a marked placeholder, so the turn is not lost.
        Skipped: assistant items deleted at barge-in, and assistant items cut off
        mid-stream by a drop (the caller asks for that response again). No ``event_id``s
        and no item ids: the caller must stamp and send them, in order, before any
        ``response.create``.
        """
        events: list[dict[str, Any]] = []
        confirmed = {
            it.raw.get("call_id")
            for it in self.items.values()
            if it.type == "function_call_output"
        }
        newest = self._order[-HISTORY_MAX:]
        kept_calls = {self.items[i].raw.get("call_id") for i in newest if self.items[i].type == "function_call"}
        for iid in newest:
            item = self.items[iid]
            if item.type == "function_call_output" and item.raw.get("call_id") not in kept_calls:
                continue  # its call is older than what is re-seeded: an output of nothing
            built = self._history_item(item)
            if built is None:
                continue
            events.append(vocab.item_create(built))
            if built["type"] == "function_call" and built["call_id"] not in confirmed:
                # An output we sent but the server never confirmed (socket dropped).
                call = self.calls.get(built["call_id"])
                if call is not None and call.output_sent and call.output is not None:
                    item_out = vocab.function_call_output_item(call.call_id, call.output)
                    events.append(vocab.item_create(item_out))
        for sent in self.unconfirmed.values():
            message = {k: v for k, v in sent.items() if k != "id"}
            events.append(vocab.item_create(message))
        return events

    def _history_item(self, item: Item) -> dict[str, Any] | None:
        raw = item.raw
        if item.type == "function_call":
            call = self.calls.get(str(raw.get("call_id", "")))
            if call is None or not call.arguments_done:
                return None
            return vocab.function_call_item(call.call_id, call.name, call.arguments)
        if item.type == "function_call_output":
            if not isinstance(raw.get("call_id"), str):
                return None
            return vocab.function_call_output_item(raw["call_id"], str(raw.get("output", "")))
        if item.type != "message":
            return None
        if item.role == "assistant":
            if not (item.content_done or item.played_ms is not None or item.truncated_ms is not None):
                return None  # cut off by a drop: the response will be asked for again
            text = self._assistant_text(item)
            if not text:
                return None
            return vocab.assistant_text_item(text)
        content: list[dict[str, Any]] = []
        for part in raw.get("content") or []:
            if not isinstance(part, dict):
                continue
            ptype = part.get("type")
            if ptype in ("input_text", "text") and part.get("text"):
                content.append({"type": "input_text", "text": part["text"]})
            elif ptype == "input_image":
                content.append({k: v for k, v in part.items() if k in ("type", "image_url", "detail")})
            elif ptype == "input_audio":
                said = part.get("transcript") or item.transcript
                content.append({"type": "input_text", "text": said or UNTRANSCRIBED})
        if not content and item.role == "user" and item.transcript:
            content.append({"type": "input_text", "text": item.transcript})
        if not content:
            return None
        return {"type": "message", "role": item.role or "user", "content": content}

    def _assistant_text(self, item: Item) -> str:
        if item.audio_bytes > 0 or item.transcript is not None:
            said = item.transcript or ""
            if item.truncated_ms is None and item.played_ms is not None:
                said = _heard_part(said, item.played_ms, item.audio_bytes // self._bpms)
            return said.strip()
        if item.text:
            return item.text.strip()
        parts = [
            str(p.get("text") or p.get("transcript") or "")
            for p in item.raw.get("content") or []
            if isinstance(p, dict)
        ]
        return " ".join(p for p in parts if p).strip()


def _heard_part(transcript: str, heard_ms: int, received_ms: int) -> str:
    """Estimate the heard prefix of a transcript: the same share of words as of audio.

    The server does not say which words were heard; this keeps whole words only.
    """
    if received_ms <= 0 or heard_ms >= received_ms:
        return transcript
    if heard_ms <= 0:
        return ""
    words = transcript.split()
    keep = int(len(words) * heard_ms / received_ms)
    return " ".join(words[:keep])


_SERVER_HANDLERS: dict[str, Any] = {
    "session.created": Conversation._on_session,
    "session.updated": Conversation._on_session,
    "conversation.item.added": Conversation._on_item,
    "conversation.item.done": Conversation._on_item,
    "conversation.item.retrieved": Conversation._on_item,
    "conversation.item.truncated": Conversation._on_truncated,
    "conversation.item.deleted": Conversation._on_deleted,
    "conversation.item.input_audio_transcription.completed": Conversation._on_user_transcript,
    "response.created": Conversation._on_response_created,
    "response.done": Conversation._on_response_done,
    "response.output_item.added": Conversation._on_output_item,
    "response.output_item.done": Conversation._on_output_item,
    "response.function_call_arguments.delta": Conversation._on_args_delta,
    "response.function_call_arguments.done": Conversation._on_args_done,
    "response.output_audio.delta": Conversation.on_audio_delta,
    "response.output_text.delta": Conversation.on_text_delta,
    "response.output_text.done": Conversation._on_text_done,
    "response.output_audio_transcript.delta": Conversation.on_transcript_delta,
    "response.output_audio_transcript.done": Conversation._on_transcript_done,
}
