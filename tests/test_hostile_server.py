"""A hostile Realtime server: hypothesis-generated event streams against a real Session.

A scripted loopback server (``websockets`` on 127.0.0.1) plays the GA events the emulator
sends for a text turn, a tool-call turn, two parallel calls and an audio turn (captured
once, kept below as fixtures), and corrupts them as told by a list of :class:`Fault`:
fields deleted, mistyped (a string for an object, a list, null, huge numbers) or
oversized, events stripped to their type, unknown events and junk frames inserted,
events duplicated or swapped with the next one, an oversized frame, and the socket
aborted without a close frame. A real :class:`realtalk.session.Session` (through
``open_session``) talks to it, and every example checks:

* nothing but :class:`~realtalk.exceptions.RealtalkError` (or the documented
  ``TimeoutError`` of ``ask``'s own timeout) escapes ``open_session``, ``ask`` or ``close``;
* no traceback is logged (no record with ``exc_info``) or printed to stderr;
* every ``ask`` returns or raises within its timeout plus a margin (a hang fails the
  example instead of stalling the suite);
* never two ``response.create`` in flight: between one and the ``response.done`` (or
  ``error``) the server sent for it, no second one arrives;
* after a drop, the history the client seeds into the new connection is what was said
  so far: user texts, completed assistant texts, function calls and their outputs, in
  order, nothing twice (checked exactly when no event was corrupted on the dropped
  connection; "nothing twice" always).

Examples are derandomized (the same on every run); a failure prints the example (turns
and faults) to replay it. Shrinking is off to keep the module fast; set
``REALTALK_FUZZ_SHRINK=1`` to shrink a failure to its smallest form.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import realtalk
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from realtalk.exceptions import RealtalkError
from realtalk.runner import open_session
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

ASK_TIMEOUT = 1.0  # seconds; a healthy turn on loopback takes a few milliseconds
MARGIN = 3.0  # beyond ASK_TIMEOUT before an ask counts as hung
SETUP_BOUND = 8.0  # open_session: connect + session.update, with retries after early drops
CLOSE_BOUND = 5.0  # close() allows 2 s for the close handshake and 2 s for the reader
LINGER_BOUND = 5.0  # after close() returned, the server must see the socket end (a leak never ends;
#                    the wait returns as soon as it does, so a loaded machine only needs the room)
MAX_ENDINGS = 3  # connection-ending faults honoured per example (the client retries 5 times)

PHASES = (
    tuple(Phase)
    if os.environ.get("REALTALK_FUZZ_SHRINK")
    else (Phase.explicit, Phase.reuse, Phase.generate)
)

AGENT_YAML = """\
description: Front desk
instructions: You are the front desk.
tools: [weather, stock]
"""

USER_TEXTS = {"text": "hello", "tool": "weather in Lisbon?", "parallel": "weather and towels",
              "audio": "say yes"}


class Tools:
    """The in-process tools the fixtures call."""

    __name__ = "hostile-tools"

    @realtalk.hookimpl
    def register_tools(self, register: realtalk.Registrar) -> None:
        register("weather", description="Weather in a city",
                 handler=lambda city: {"city": city, "temp_c": 21},
                 parameters={"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]})
        register("stock", description="Stock level", handler=lambda item: {"item": item, "count": 3},
                 parameters={"type": "object", "properties": {"item": {"type": "string"}},
                             "required": ["item"]})


# -- faults -----------------------------------------------------------------------------

FAULT_KINDS = (
    "drop",  # abort the socket (no close frame) instead of sending this event
    "delete",  # delete one field (or list element) of the event
    "mistype",  # replace one field by a value of another type
    "oversize",  # replace one field by a very long string
    "bare",  # send only {"type": ...}
    "unknown",  # send an unknown or malformed event first
    "junk",  # send a frame that is not a JSON object first
    "duplicate",  # send the event twice
    "swap",  # send the event after the next one of the same reply
    "huge_frame",  # send a frame over the client's 16 MiB limit instead (it must close)
)
CORRUPTING = {"delete", "mistype", "oversize", "bare"}
ENDING = {"drop", "huge_frame"}

BAD_VALUES: tuple[Any, ...] = (
    None, "", "a string", [], ["a", 1], {}, {"unexpected": True}, 10**30, -1, 3.5, True, 2**63,
)
UNKNOWN_EVENTS: tuple[Any, ...] = (
    {"type": "response.telepathy.delta", "delta": "?"},
    {"type": ""},
    {"type": None},
    {"type": 42},
    {"type": ["response.done"]},
    {"no_type": True},
    {"type": "x" * 5000},
    {"type": "error"},
    {"type": "error", "error": "boom"},
    {"type": "error", "error": {"type": "server_error", "code": None, "message": None, "event_id": 7}},
    {"type": "response.done"},
    {"type": "response.done", "response": {"id": "resp_unknown", "status": "completed", "output": 5}},
    {"type": "response.created", "response": {"id": None}},
    {"type": "conversation.item.deleted", "item_id": "item_nope"},
    {"type": "conversation.item.truncated", "item_id": "item_nope", "audio_end_ms": "x"},
    {"type": "response.output_audio.delta", "item_id": "item_nope", "delta": "%%% not base64"},
    {"type": "response.function_call_arguments.done", "call_id": None, "name": 3},
    {"type": "session.updated", "session": []},
)
JUNK_FRAMES: tuple[str | bytes, ...] = (
    "not json", "[1, 2, 3]", "null", '"a string"', "{\"type\":", b"\x00\xff binary frame",
)
HUGE_FRAME = "x" * (16 * 1024 * 1024 + 1)


@dataclass(frozen=True)
class Fault:
    """What goes wrong at the ``at``-th event the server means to send (counted over all
    connections); ``pick`` chooses the field and the replacement."""

    at: int
    kind: str
    pick: int = 0


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a field or list element inside ``value``."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            found.append((*prefix, key))
            found.extend(_paths(inner, (*prefix, key)))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found.append((*prefix, index))
            found.extend(_paths(inner, (*prefix, index)))
    return found


def corrupt(event: dict[str, Any], fault: Fault) -> dict[str, Any]:
    """A corrupted copy of ``event``. The ``type`` of session events is kept, so setup
    fails fast (SessionError) instead of waiting out its 15 s timeout."""
    if fault.kind == "bare":
        return {"type": event["type"]}
    paths = [p for p in _paths(event)
             if not (p == ("type",) and str(event.get("type")).startswith("session."))]
    out = copy.deepcopy(event)
    if not paths:
        return out
    path = paths[fault.pick % len(paths)]
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    if fault.kind == "delete":
        del parent[path[-1]]
    elif fault.kind == "mistype":
        parent[path[-1]] = BAD_VALUES[(fault.pick // 7) % len(BAD_VALUES)]
    else:  # oversize
        parent[path[-1]] = "x" * 300_000
    return out


# -- what the client should seed --------------------------------------------------------


def normalized(item: dict[str, Any]) -> tuple[Any, ...]:
    """A conversation item as (kind, content...), comparable across connections."""
    kind = item.get("type")
    if kind == "function_call":
        return ("call", item.get("call_id"), item.get("name"), item.get("arguments"))
    if kind == "function_call_output":
        return ("output", item.get("call_id"), item.get("output"))
    texts = [str(part.get("text") or part.get("transcript") or "")
             for part in item.get("content") or [] if isinstance(part, dict)]
    return (str(item.get("role")), " ".join(t for t in texts if t).strip())


@dataclass
class Entry:
    """One item of the server's conversation, and whether the client has seen it complete."""

    item_id: str
    said: tuple[Any, ...] | None  # None: not complete as far as the client could know


@dataclass
class Conn:
    """What happened on one connection."""

    number: int
    client: list[dict[str, Any]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    corrupted: bool = False  # an event was corrupted: the expected history is not exact
    in_flight: str | None = None  # event_id of the response.create not yet answered
    since: list[str] = field(default_factory=list)  # event types sent while in flight
    ended: bool = False
    updated_ok: bool = False  # an intact session.updated was sent: the client seeds next
    confirmed: int = 0  # client-created items confirmed by an intact conversation.item.done
    created: set[str] = field(default_factory=set)  # ids of the items the client created

    def entry(self, item_id: str) -> Entry:
        for entry in self.entries:
            if entry.item_id == item_id:
                return entry
        entry = Entry(item_id, None)
        self.entries.append(entry)
        return entry

    def expected_history(self) -> list[tuple[Any, ...]]:
        return [e.said for e in self.entries if e.said is not None]


# -- the server -------------------------------------------------------------------------

# A frame to send, and the event it was meant to be when it is that event intact.
Frame = tuple["str | bytes | dict[str, Any]", "dict[str, Any] | None"]

_IDS = re.compile(r"\b(resp|item|call)_[0-9a-f]{6,}\b")


class HostileServer:
    """Plays ``replies`` (one per response.create) to whoever connects, with ``faults``."""

    def __init__(self, replies: list[list[dict[str, Any]]], faults: list[Fault]) -> None:
        self.replies = list(replies)
        self.faults: dict[int, list[Fault]] = {}
        endings = 0
        for fault in faults:
            if fault.kind in ENDING:
                endings += 1
                if endings > MAX_ENDINGS:
                    continue
            self.faults.setdefault(fault.at, []).append(fault)
        self.index = 0
        self.sockets: list[ServerConnection] = []
        self.conns: list[Conn] = []
        self.violations: list[str] = []

    async def handle(self, ws: ServerConnection) -> None:
        conn = Conn(len(self.conns))
        self.conns.append(conn)
        self.sockets.append(ws)
        session = copy.deepcopy(SESSION_CREATED["session"])
        session["id"] = "sess_" + secrets.token_hex(10)
        session["expires_at"] = int(time.time()) + 3600
        try:
            await self.play(ws, conn, [{"type": "session.created", "session": session}])
            async for message in ws:
                if conn.ended:
                    return
                try:
                    event = json.loads(message)
                except ValueError:
                    self.violations.append(f"connection {conn.number}: client sent a non-JSON frame")
                    continue
                conn.client.append(event)
                await self.play(ws, conn, self.react(conn, session, event))
        except ConnectionClosed:
            pass
        finally:
            conn.ended = True

    def react(self, conn: Conn, session: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events a well-behaved server answers ``event`` with (before any fault)."""
        kind = event.get("type")
        if kind == "session.update":
            session.update({k: v for k, v in event["session"].items() if k != "type"})
            return [{"type": "session.updated", "session": copy.deepcopy(session)}]
        if kind == "conversation.item.create":
            call_id = event["item"].get("call_id", "")
            if not isinstance(call_id, str) or (event["item"].get("type") == "function_call_output"
                                                and not call_id):
                self.violations.append(f"connection {conn.number}: the client sent an item with call_id"
                                       f" {call_id!r}: {event['item']}")
                return [{"type": "error", "error": {
                    "type": "invalid_request_error", "code": "invalid_type", "param": "item.call_id",
                    "message": "Invalid type for 'item.call_id'.", "event_id": event.get("event_id")}}]
            given = event["item"].get("id")  # the server keeps an id the client chose
            item = {**event["item"], "id": given if isinstance(given, str) else "item_" + secrets.token_hex(11),
                    "object": "realtime.item", "status": "completed"}
            previous = conn.entries[-1].item_id if conn.entries else None
            conn.entries.append(Entry(item["id"], normalized(item)))  # the client said it
            conn.created.add(item["id"])
            return [{"type": "conversation.item.added", "item": item, "previous_item_id": previous},
                    {"type": "conversation.item.done", "item": item, "previous_item_id": previous}]
        if kind == "response.create":
            if conn.in_flight is not None:
                self.violations.append(
                    f"connection {conn.number}: a second response.create ({event.get('event_id')}) while"
                    f" {conn.in_flight} was in flight; sent since: {conn.since}")
                return [{"type": "error", "error": {
                    "type": "invalid_request_error", "code": "conversation_already_has_active_response",
                    "message": "Conversation already has an active response in progress.",
                    "param": None, "event_id": event.get("event_id")}}]
            conn.in_flight = str(event.get("event_id"))
            conn.since = []
            reply = self.replies.pop(0) if self.replies else TEXT_REPLY
            return self.fresh(conn, reply, (event.get("response") or {}).get("metadata"))
        return []

    def fresh(self, conn: Conn, reply: list[dict[str, Any]], metadata: Any) -> list[dict[str, Any]]:
        """``reply`` with new ids, our request's metadata, and the real previous items."""
        fresh: dict[str, str] = {}
        text = _IDS.sub(lambda m: fresh.setdefault(m.group(0), f"{m.group(1)}_{secrets.token_hex(11)}"),
                        json.dumps(reply))
        events: list[dict[str, Any]] = json.loads(text)
        order = [e.item_id for e in conn.entries]
        for event in events:
            if isinstance(event.get("response"), dict):
                event["response"]["metadata"] = metadata
            if event["type"] == "conversation.item.added":
                event["previous_item_id"] = order[-1] if order else None
                order.append(event["item"]["id"])
            elif event["type"] == "conversation.item.done":
                at = order.index(event["item"]["id"])
                event["previous_item_id"] = order[at - 1] if at > 0 else None
        return events

    async def play(self, ws: ServerConnection, conn: Conn, events: list[dict[str, Any]]) -> None:
        """Send ``events``, applying the faults due at their indexes."""
        wire: list[Frame] = []
        deferred: list[Frame] = []
        for natural in events:
            due = self.faults.get(self.index, [])
            self.index += 1
            if any(f.kind == "drop" for f in due):
                await self.send_all(ws, conn, wire + deferred)
                conn.ended = True
                ws.transport.abort()
                return
            if any(f.kind == "huge_frame" for f in due):
                # The client must close on it (1009): nothing after it reaches the client.
                await self.send_all(ws, conn, [*wire, *deferred, (HUGE_FRAME, None)])
                conn.ended = True
                return
            event: dict[str, Any] = natural
            copies = 1
            swap = False
            for fault in due:
                if fault.kind in CORRUPTING:
                    event = corrupt(event, fault)
                elif fault.kind == "unknown":
                    wire.append((UNKNOWN_EVENTS[fault.pick % len(UNKNOWN_EVENTS)], None))
                elif fault.kind == "junk":
                    wire.append((JUNK_FRAMES[fault.pick % len(JUNK_FRAMES)], None))
                elif fault.kind == "duplicate":
                    copies += 1
                elif fault.kind == "swap":
                    swap = True
            intact = event == natural
            entries: list[Frame] = [(event, natural if intact else None)] * copies
            wire.extend(deferred)
            deferred = []
            if swap:
                deferred = entries
            else:
                wire.extend(entries)
        await self.send_all(ws, conn, wire + deferred)

    async def send_all(self, ws: ServerConnection, conn: Conn,
                       wire: list[Frame]) -> None:
        for frame, natural in wire:
            if conn.ended:
                return
            if isinstance(frame, dict):
                self.note_sent(conn, frame, natural)
                frame = json.dumps(frame)
            await ws.send(frame)

    def note_sent(self, conn: Conn, event: dict[str, Any], natural: dict[str, Any] | None) -> None:
        """Keep the in-flight state and the expected history as the client sees them."""
        kind = event.get("type")
        if conn.in_flight is not None:
            conn.since.append(str(kind))
            error = event.get("error")
            if kind == "response.done" or (kind == "error" and isinstance(error, dict)
                                           and error.get("event_id") == conn.in_flight):
                conn.in_flight = None
        if natural is None:
            if not any(event is u for u in UNKNOWN_EVENTS):
                conn.corrupted = True
            return
        item = natural.get("item")
        if kind == "session.updated":
            conn.updated_ok = True
        if kind == "conversation.item.done" and isinstance(item, dict) and item["id"] in conn.created:
            conn.confirmed += 1
        if kind == "conversation.item.added" and isinstance(item, dict) and "response_id" not in natural:
            conn.entry(item["id"])
        elif kind in ("conversation.item.done", "response.output_item.done") and isinstance(item, dict):
            if item.get("type") != "function_call_output" and item.get("status") == "completed":
                conn.entry(item["id"]).said = normalized(item)
        elif kind == "response.function_call_arguments.done":
            conn.entry(natural["item_id"]).said = (
                "call", natural["call_id"], natural["name"], natural["arguments"])
        elif kind == "response.done":
            for out in natural["response"].get("output") or []:
                if out.get("status") == "completed":
                    conn.entry(out["id"]).said = normalized(out)


def seeded(conn: Conn) -> list[tuple[Any, ...]]:
    """The items the client created on ``conn``, in order (seed first, then live ones)."""
    return [normalized(e["item"]) for e in conn.client
            if e.get("type") == "conversation.item.create" and isinstance(e.get("item"), dict)]


def settled(history: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``history`` with each output right after its call: parallel calls finish in any
    order, and an output may be seeded right after its call or after its siblings."""
    outputs = {said[1]: said for said in history if said[0] == "output"}
    out: list[tuple[Any, ...]] = []
    for said in history:
        if said[0] != "output":
            out.append(said)
            if said[0] == "call" and said[1] in outputs:
                out.append(outputs.pop(said[1]))
    return out + list(outputs.values())


def history_problems(server: HostileServer) -> list[str]:
    """Compare each seed with the conversation of the last connection that went live."""
    problems: list[str] = []
    live: Conn | None = None
    for conn in server.conns:
        got = seeded(conn)
        twice = sorted({s for s in got if s[0] in ("call", "output") and got.count(s) > 1}, key=str)
        if twice:
            problems.append(f"connection {conn.number}: the client created these items twice: {twice}")
        expected = live.expected_history() if live is not None else []
        if conn.updated_ok and live is not None and not live.corrupted:
            calls = {e[1] for e in expected if e[0] == "call"}
            answered = {e[1] for e in expected if e[0] == "output"}
            # An output the client sent as the socket died (or once its tool finished) may
            # come anywhere after its call; everything else must be the seed, in order.
            late = [s for s in got if s[0] == "output" and s[1] in calls - answered]
            prefix = [s for s in got if s not in late][: len(expected)]
            # A connection dropped while being seeded holds only the start of the seed.
            if settled(prefix) != settled(expected if conn.confirmed >= len(expected)
                                          else expected[: len(prefix)]):
                problems.append(f"connection {conn.number}: the client seeded {prefix}, but the"
                                f" conversation on connection {live.number} was {expected}")
        if conn.updated_ok and conn.confirmed >= len(expected):
            live = conn
    return problems


# -- fixtures: what the emulator sends (captured once from Emulator(fast=True)) -----------
# The replies to one response.create each, from response.created to rate_limits.updated
# (event ids dropped; audio deltas shortened). Ids are replaced by fresh ones each time.

SESSION_CREATED: dict[str, Any] = {'type': 'session.created',
 'session': {'type': 'realtime',
             'object': 'realtime.session',
             'id': 'sess_bbab2b8dff2b0b28ccd9',
             'model': 'gpt-realtime',
             'output_modalities': ['audio'],
             'instructions': 'You are a helpful, witty, and friendly AI.',
             'tools': [],
             'tool_choice': 'auto',
             'max_output_tokens': 'inf',
             'tracing': None,
             'truncation': 'auto',
             'prompt': None,
             'include': None,
             'expires_at': 1796221884,
             'audio': {'input': {'format': {'type': 'audio/pcm', 'rate': 24000},
                                 'transcription': None,
                                 'noise_reduction': None,
                                 'turn_detection': {'type': 'server_vad',
                                                    'threshold': 0.5,
                                                    'prefix_padding_ms': 300,
                                                    'silence_duration_ms': 200,
                                                    'idle_timeout_ms': None,
                                                    'create_response': True,
                                                    'interrupt_response': True}},
                       'output': {'format': {'type': 'audio/pcm', 'rate': 24000},
                                  'voice': 'alloy',
                                  'speed': 1.0}}}}

TEXT_REPLY: list[dict[str, Any]] = [
    {'type': 'response.created', 'response': {'id': 'resp_b54433712cee74f486d86a', 'object': 'realtime.response', 'status': 'in_progress', 'status_details': None, 'output': [], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_3'}, 'usage': None}},
    {'type': 'response.output_item.added', 'response_id': 'resp_b54433712cee74f486d86a', 'output_index': 0, 'item': {'id': 'item_e7d6be7651ccadee881332', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'in_progress', 'content': []}},
    {'type': 'conversation.item.added', 'item': {'id': 'item_e7d6be7651ccadee881332', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'in_progress', 'content': []}, 'previous_item_id': 'item_b46f8e88caa9663d65f445'},
    {'type': 'response.content_part.added', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'part': {'type': 'text', 'text': ''}},
    {'type': 'response.output_text.delta', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'delta': 'Hi'},
    {'type': 'response.output_text.delta', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'delta': ' there,'},
    {'type': 'response.output_text.delta', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'delta': ' how'},
    {'type': 'response.output_text.delta', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'delta': ' can'},
    {'type': 'response.output_text.delta', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'delta': ' I'},
    {'type': 'response.output_text.delta', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'delta': ' help?'},
    {'type': 'response.output_text.done', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'text': 'Hi there, how can I help?'},
    {'type': 'response.content_part.done', 'response_id': 'resp_b54433712cee74f486d86a', 'item_id': 'item_e7d6be7651ccadee881332', 'output_index': 0, 'content_index': 0, 'part': {'type': 'text', 'text': 'Hi there, how can I help?'}},
    {'type': 'conversation.item.done', 'item': {'id': 'item_e7d6be7651ccadee881332', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'Hi there, how can I help?'}]}, 'previous_item_id': 'item_b46f8e88caa9663d65f445'},
    {'type': 'response.output_item.done', 'response_id': 'resp_b54433712cee74f486d86a', 'output_index': 0, 'item': {'id': 'item_e7d6be7651ccadee881332', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'Hi there, how can I help?'}]}},
    {'type': 'response.done', 'response': {'id': 'resp_b54433712cee74f486d86a', 'object': 'realtime.response', 'status': 'completed', 'status_details': {'type': 'completed'}, 'output': [{'id': 'item_e7d6be7651ccadee881332', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'Hi there, how can I help?'}]}], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_3'}, 'usage': {'total_tokens': 37, 'input_tokens': 24, 'output_tokens': 13, 'input_token_details': {'text_tokens': 24, 'audio_tokens': 0, 'image_tokens': 0, 'cached_tokens': 0, 'cached_tokens_details': {'text_tokens': 0, 'audio_tokens': 0, 'image_tokens': 0}}, 'output_token_details': {'text_tokens': 13, 'audio_tokens': 0}}}},
    {'type': 'rate_limits.updated', 'rate_limits': [{'name': 'tokens', 'limit': 40000, 'remaining': 39987, 'reset_seconds': 0.019}]},
]

TOOL_CALL: list[dict[str, Any]] = [
    {'type': 'response.created', 'response': {'id': 'resp_5689ff8e731da80791d04a', 'object': 'realtime.response', 'status': 'in_progress', 'status_details': None, 'output': [], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_5'}, 'usage': None}},
    {'type': 'response.output_item.added', 'response_id': 'resp_5689ff8e731da80791d04a', 'output_index': 0, 'item': {'id': 'item_13b8193c9745c57a65a372', 'object': 'realtime.item', 'type': 'function_call', 'status': 'in_progress', 'call_id': 'call_d9435f3b41e3e681', 'name': 'weather', 'arguments': ''}},
    {'type': 'conversation.item.added', 'item': {'id': 'item_13b8193c9745c57a65a372', 'object': 'realtime.item', 'type': 'function_call', 'status': 'in_progress', 'call_id': 'call_d9435f3b41e3e681', 'name': 'weather', 'arguments': ''}, 'previous_item_id': 'item_69f251eb85a28d652afcec'},
    {'type': 'response.function_call_arguments.delta', 'response_id': 'resp_5689ff8e731da80791d04a', 'item_id': 'item_13b8193c9745c57a65a372', 'output_index': 0, 'call_id': 'call_d9435f3b41e3e681', 'delta': '{"city":'},
    {'type': 'response.function_call_arguments.delta', 'response_id': 'resp_5689ff8e731da80791d04a', 'item_id': 'item_13b8193c9745c57a65a372', 'output_index': 0, 'call_id': 'call_d9435f3b41e3e681', 'delta': '"Lisbon"'},
    {'type': 'response.function_call_arguments.delta', 'response_id': 'resp_5689ff8e731da80791d04a', 'item_id': 'item_13b8193c9745c57a65a372', 'output_index': 0, 'call_id': 'call_d9435f3b41e3e681', 'delta': '}'},
    {'type': 'response.function_call_arguments.done', 'response_id': 'resp_5689ff8e731da80791d04a', 'item_id': 'item_13b8193c9745c57a65a372', 'output_index': 0, 'call_id': 'call_d9435f3b41e3e681', 'name': 'weather', 'arguments': '{"city":"Lisbon"}'},
    {'type': 'conversation.item.done', 'item': {'id': 'item_13b8193c9745c57a65a372', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_d9435f3b41e3e681', 'name': 'weather', 'arguments': '{"city":"Lisbon"}'}, 'previous_item_id': 'item_69f251eb85a28d652afcec'},
    {'type': 'response.output_item.done', 'response_id': 'resp_5689ff8e731da80791d04a', 'output_index': 0, 'item': {'id': 'item_13b8193c9745c57a65a372', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_d9435f3b41e3e681', 'name': 'weather', 'arguments': '{"city":"Lisbon"}'}},
    {'type': 'response.done', 'response': {'id': 'resp_5689ff8e731da80791d04a', 'object': 'realtime.response', 'status': 'completed', 'status_details': {'type': 'completed'}, 'output': [{'id': 'item_13b8193c9745c57a65a372', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_d9435f3b41e3e681', 'name': 'weather', 'arguments': '{"city":"Lisbon"}'}], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_5'}, 'usage': {'total_tokens': 61, 'input_tokens': 48, 'output_tokens': 13, 'input_token_details': {'text_tokens': 48, 'audio_tokens': 0, 'image_tokens': 0, 'cached_tokens': 0, 'cached_tokens_details': {'text_tokens': 0, 'audio_tokens': 0, 'image_tokens': 0}}, 'output_token_details': {'text_tokens': 13, 'audio_tokens': 0}}}},
    {'type': 'rate_limits.updated', 'rate_limits': [{'name': 'tokens', 'limit': 40000, 'remaining': 39987, 'reset_seconds': 0.019}]},
]

TOOL_FOLLOWUP: list[dict[str, Any]] = [
    {'type': 'response.created', 'response': {'id': 'resp_00c7683fe4d9e541ebea3d', 'object': 'realtime.response', 'status': 'in_progress', 'status_details': None, 'output': [], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_7'}, 'usage': None}},
    {'type': 'response.output_item.added', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'output_index': 0, 'item': {'id': 'item_4139deef7e7e23805b1545', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'in_progress', 'content': []}},
    {'type': 'conversation.item.added', 'item': {'id': 'item_4139deef7e7e23805b1545', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'in_progress', 'content': []}, 'previous_item_id': 'item_c3c8c8942e1f889536bc2c'},
    {'type': 'response.content_part.added', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'item_id': 'item_4139deef7e7e23805b1545', 'output_index': 0, 'content_index': 0, 'part': {'type': 'text', 'text': ''}},
    {'type': 'response.output_text.delta', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'item_id': 'item_4139deef7e7e23805b1545', 'output_index': 0, 'content_index': 0, 'delta': 'It'},
    {'type': 'response.output_text.delta', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'item_id': 'item_4139deef7e7e23805b1545', 'output_index': 0, 'content_index': 0, 'delta': ' is'},
    {'type': 'response.output_text.delta', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'item_id': 'item_4139deef7e7e23805b1545', 'output_index': 0, 'content_index': 0, 'delta': ' 21'},
    {'type': 'response.output_text.delta', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'item_id': 'item_4139deef7e7e23805b1545', 'output_index': 0, 'content_index': 0, 'delta': ' degrees.'},
    {'type': 'response.output_text.done', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'item_id': 'item_4139deef7e7e23805b1545', 'output_index': 0, 'content_index': 0, 'text': 'It is 21 degrees.'},
    {'type': 'response.content_part.done', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'item_id': 'item_4139deef7e7e23805b1545', 'output_index': 0, 'content_index': 0, 'part': {'type': 'text', 'text': 'It is 21 degrees.'}},
    {'type': 'conversation.item.done', 'item': {'id': 'item_4139deef7e7e23805b1545', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'It is 21 degrees.'}]}, 'previous_item_id': 'item_c3c8c8942e1f889536bc2c'},
    {'type': 'response.output_item.done', 'response_id': 'resp_00c7683fe4d9e541ebea3d', 'output_index': 0, 'item': {'id': 'item_4139deef7e7e23805b1545', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'It is 21 degrees.'}]}},
    {'type': 'response.done', 'response': {'id': 'resp_00c7683fe4d9e541ebea3d', 'object': 'realtime.response', 'status': 'completed', 'status_details': {'type': 'completed'}, 'output': [{'id': 'item_4139deef7e7e23805b1545', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'It is 21 degrees.'}]}], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_7'}, 'usage': {'total_tokens': 86, 'input_tokens': 73, 'output_tokens': 13, 'input_token_details': {'text_tokens': 73, 'audio_tokens': 0, 'image_tokens': 0, 'cached_tokens': 0, 'cached_tokens_details': {'text_tokens': 0, 'audio_tokens': 0, 'image_tokens': 0}}, 'output_token_details': {'text_tokens': 13, 'audio_tokens': 0}}}},
    {'type': 'rate_limits.updated', 'rate_limits': [{'name': 'tokens', 'limit': 40000, 'remaining': 39987, 'reset_seconds': 0.019}]},
]

PARALLEL_CALLS: list[dict[str, Any]] = [
    {'type': 'response.created', 'response': {'id': 'resp_031cb744f9b82e09bd78b8', 'object': 'realtime.response', 'status': 'in_progress', 'status_details': None, 'output': [], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_9'}, 'usage': None}},
    {'type': 'response.output_item.added', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'output_index': 0, 'item': {'id': 'item_43be3f4c02843919b7f10f', 'object': 'realtime.item', 'type': 'function_call', 'status': 'in_progress', 'call_id': 'call_84104746e031fcf4', 'name': 'weather', 'arguments': ''}},
    {'type': 'conversation.item.added', 'item': {'id': 'item_43be3f4c02843919b7f10f', 'object': 'realtime.item', 'type': 'function_call', 'status': 'in_progress', 'call_id': 'call_84104746e031fcf4', 'name': 'weather', 'arguments': ''}, 'previous_item_id': 'item_06decc9e66c2fac792a742'},
    {'type': 'response.function_call_arguments.delta', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'item_id': 'item_43be3f4c02843919b7f10f', 'output_index': 0, 'call_id': 'call_84104746e031fcf4', 'delta': '{"city":'},
    {'type': 'response.function_call_arguments.delta', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'item_id': 'item_43be3f4c02843919b7f10f', 'output_index': 0, 'call_id': 'call_84104746e031fcf4', 'delta': '"Oslo"}'},
    {'type': 'response.function_call_arguments.done', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'item_id': 'item_43be3f4c02843919b7f10f', 'output_index': 0, 'call_id': 'call_84104746e031fcf4', 'name': 'weather', 'arguments': '{"city":"Oslo"}'},
    {'type': 'conversation.item.done', 'item': {'id': 'item_43be3f4c02843919b7f10f', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_84104746e031fcf4', 'name': 'weather', 'arguments': '{"city":"Oslo"}'}, 'previous_item_id': 'item_06decc9e66c2fac792a742'},
    {'type': 'response.output_item.done', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'output_index': 0, 'item': {'id': 'item_43be3f4c02843919b7f10f', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_84104746e031fcf4', 'name': 'weather', 'arguments': '{"city":"Oslo"}'}},
    {'type': 'response.output_item.added', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'output_index': 1, 'item': {'id': 'item_222638ccf55905344dbf96', 'object': 'realtime.item', 'type': 'function_call', 'status': 'in_progress', 'call_id': 'call_51672ff05856c5b6', 'name': 'stock', 'arguments': ''}},
    {'type': 'conversation.item.added', 'item': {'id': 'item_222638ccf55905344dbf96', 'object': 'realtime.item', 'type': 'function_call', 'status': 'in_progress', 'call_id': 'call_51672ff05856c5b6', 'name': 'stock', 'arguments': ''}, 'previous_item_id': 'item_43be3f4c02843919b7f10f'},
    {'type': 'response.function_call_arguments.delta', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'item_id': 'item_222638ccf55905344dbf96', 'output_index': 1, 'call_id': 'call_51672ff05856c5b6', 'delta': '{"item":'},
    {'type': 'response.function_call_arguments.delta', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'item_id': 'item_222638ccf55905344dbf96', 'output_index': 1, 'call_id': 'call_51672ff05856c5b6', 'delta': '"towels"'},
    {'type': 'response.function_call_arguments.delta', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'item_id': 'item_222638ccf55905344dbf96', 'output_index': 1, 'call_id': 'call_51672ff05856c5b6', 'delta': '}'},
    {'type': 'response.function_call_arguments.done', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'item_id': 'item_222638ccf55905344dbf96', 'output_index': 1, 'call_id': 'call_51672ff05856c5b6', 'name': 'stock', 'arguments': '{"item":"towels"}'},
    {'type': 'conversation.item.done', 'item': {'id': 'item_222638ccf55905344dbf96', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_51672ff05856c5b6', 'name': 'stock', 'arguments': '{"item":"towels"}'}, 'previous_item_id': 'item_43be3f4c02843919b7f10f'},
    {'type': 'response.output_item.done', 'response_id': 'resp_031cb744f9b82e09bd78b8', 'output_index': 1, 'item': {'id': 'item_222638ccf55905344dbf96', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_51672ff05856c5b6', 'name': 'stock', 'arguments': '{"item":"towels"}'}},
    {'type': 'response.done', 'response': {'id': 'resp_031cb744f9b82e09bd78b8', 'object': 'realtime.response', 'status': 'completed', 'status_details': {'type': 'completed'}, 'output': [{'id': 'item_43be3f4c02843919b7f10f', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_84104746e031fcf4', 'name': 'weather', 'arguments': '{"city":"Oslo"}'}, {'id': 'item_222638ccf55905344dbf96', 'object': 'realtime.item', 'type': 'function_call', 'status': 'completed', 'call_id': 'call_51672ff05856c5b6', 'name': 'stock', 'arguments': '{"item":"towels"}'}], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_9'}, 'usage': {'total_tokens': 135, 'input_tokens': 109, 'output_tokens': 26, 'input_token_details': {'text_tokens': 109, 'audio_tokens': 0, 'image_tokens': 0, 'cached_tokens': 0, 'cached_tokens_details': {'text_tokens': 0, 'audio_tokens': 0, 'image_tokens': 0}}, 'output_token_details': {'text_tokens': 26, 'audio_tokens': 0}}}},
    {'type': 'rate_limits.updated', 'rate_limits': [{'name': 'tokens', 'limit': 40000, 'remaining': 39974, 'reset_seconds': 0.039}]},
]

PARALLEL_FOLLOWUP: list[dict[str, Any]] = [
    {'type': 'response.created', 'response': {'id': 'resp_05c59e1f3bf52a926d8643', 'object': 'realtime.response', 'status': 'in_progress', 'status_details': None, 'output': [], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_12'}, 'usage': None}},
    {'type': 'response.output_item.added', 'response_id': 'resp_05c59e1f3bf52a926d8643', 'output_index': 0, 'item': {'id': 'item_3c348ce916b31c501eeae1', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'in_progress', 'content': []}},
    {'type': 'conversation.item.added', 'item': {'id': 'item_3c348ce916b31c501eeae1', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'in_progress', 'content': []}, 'previous_item_id': 'item_79f9fbbb59bc6dd12d7654'},
    {'type': 'response.content_part.added', 'response_id': 'resp_05c59e1f3bf52a926d8643', 'item_id': 'item_3c348ce916b31c501eeae1', 'output_index': 0, 'content_index': 0, 'part': {'type': 'text', 'text': ''}},
    {'type': 'response.output_text.delta', 'response_id': 'resp_05c59e1f3bf52a926d8643', 'item_id': 'item_3c348ce916b31c501eeae1', 'output_index': 0, 'content_index': 0, 'delta': 'Done.'},
    {'type': 'response.output_text.done', 'response_id': 'resp_05c59e1f3bf52a926d8643', 'item_id': 'item_3c348ce916b31c501eeae1', 'output_index': 0, 'content_index': 0, 'text': 'Done.'},
    {'type': 'response.content_part.done', 'response_id': 'resp_05c59e1f3bf52a926d8643', 'item_id': 'item_3c348ce916b31c501eeae1', 'output_index': 0, 'content_index': 0, 'part': {'type': 'text', 'text': 'Done.'}},
    {'type': 'conversation.item.done', 'item': {'id': 'item_3c348ce916b31c501eeae1', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'Done.'}]}, 'previous_item_id': 'item_79f9fbbb59bc6dd12d7654'},
    {'type': 'response.output_item.done', 'response_id': 'resp_05c59e1f3bf52a926d8643', 'output_index': 0, 'item': {'id': 'item_3c348ce916b31c501eeae1', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'Done.'}]}},
    {'type': 'response.done', 'response': {'id': 'resp_05c59e1f3bf52a926d8643', 'object': 'realtime.response', 'status': 'completed', 'status_details': {'type': 'completed'}, 'output': [{'id': 'item_3c348ce916b31c501eeae1', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_text', 'text': 'Done.'}]}], 'conversation_id': 'conv_emulator', 'output_modalities': ['text'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_87c4368a_12'}, 'usage': {'total_tokens': 158, 'input_tokens': 146, 'output_tokens': 12, 'input_token_details': {'text_tokens': 146, 'audio_tokens': 0, 'image_tokens': 0, 'cached_tokens': 0, 'cached_tokens_details': {'text_tokens': 0, 'audio_tokens': 0, 'image_tokens': 0}}, 'output_token_details': {'text_tokens': 12, 'audio_tokens': 0}}}},
    {'type': 'rate_limits.updated', 'rate_limits': [{'name': 'tokens', 'limit': 40000, 'remaining': 39988, 'reset_seconds': 0.018}]},
]

AUDIO_REPLY: list[dict[str, Any]] = [
    {'type': 'response.created', 'response': {'id': 'resp_f500965deb50c0758e43f5', 'object': 'realtime.response', 'status': 'in_progress', 'status_details': None, 'output': [], 'conversation_id': 'conv_emulator', 'output_modalities': ['audio'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_e6fd85a7_3'}, 'usage': None}},
    {'type': 'response.output_item.added', 'response_id': 'resp_f500965deb50c0758e43f5', 'output_index': 0, 'item': {'id': 'item_4d9dedd95080107f69d0eb', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'in_progress', 'content': []}},
    {'type': 'conversation.item.added', 'item': {'id': 'item_4d9dedd95080107f69d0eb', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'in_progress', 'content': []}, 'previous_item_id': 'item_93a77578a9662e3c7ac425'},
    {'type': 'response.content_part.added', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'part': {'type': 'audio', 'transcript': ''}},
    {'type': 'response.output_audio.delta', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'delta': 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'},
    {'type': 'response.output_audio_transcript.delta', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'delta': 'Y'},
    {'type': 'response.output_audio.delta', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'delta': 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'},
    {'type': 'response.output_audio_transcript.delta', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'delta': 'es'},
    {'type': 'response.output_audio.delta', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'delta': 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'},
    {'type': 'response.output_audio_transcript.delta', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'delta': '.'},
    {'type': 'response.output_audio.done', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0},
    {'type': 'response.output_audio_transcript.done', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'transcript': 'Yes.'},
    {'type': 'response.content_part.done', 'response_id': 'resp_f500965deb50c0758e43f5', 'item_id': 'item_4d9dedd95080107f69d0eb', 'output_index': 0, 'content_index': 0, 'part': {'type': 'audio', 'transcript': 'Yes.'}},
    {'type': 'conversation.item.done', 'item': {'id': 'item_4d9dedd95080107f69d0eb', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_audio', 'transcript': 'Yes.'}]}, 'previous_item_id': 'item_93a77578a9662e3c7ac425'},
    {'type': 'response.output_item.done', 'response_id': 'resp_f500965deb50c0758e43f5', 'output_index': 0, 'item': {'id': 'item_4d9dedd95080107f69d0eb', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_audio', 'transcript': 'Yes.'}]}},
    {'type': 'response.done', 'response': {'id': 'resp_f500965deb50c0758e43f5', 'object': 'realtime.response', 'status': 'completed', 'status_details': {'type': 'completed'}, 'output': [{'id': 'item_4d9dedd95080107f69d0eb', 'object': 'realtime.item', 'type': 'message', 'role': 'assistant', 'status': 'completed', 'content': [{'type': 'output_audio', 'transcript': 'Yes.'}]}], 'conversation_id': 'conv_emulator', 'output_modalities': ['audio'], 'max_output_tokens': 'inf', 'audio': {'output': {'format': {'type': 'audio/pcm', 'rate': 24000}, 'voice': 'marin'}}, 'metadata': {'realtalk_request': 'evt_e6fd85a7_3'}, 'usage': {'total_tokens': 40, 'input_tokens': 23, 'output_tokens': 17, 'input_token_details': {'text_tokens': 23, 'audio_tokens': 0, 'image_tokens': 0, 'cached_tokens': 0, 'cached_tokens_details': {'text_tokens': 0, 'audio_tokens': 0, 'image_tokens': 0}}, 'output_token_details': {'text_tokens': 12, 'audio_tokens': 5}}}},
    {'type': 'rate_limits.updated', 'rate_limits': [{'name': 'tokens', 'limit': 40000, 'remaining': 39983, 'reset_seconds': 0.026}]},
]


# -- one example ------------------------------------------------------------------------

REPLIES = {
    "text": lambda: [TEXT_REPLY],
    "tool": lambda: [TOOL_CALL, TOOL_FOLLOWUP],
    "parallel": lambda: [PARALLEL_CALLS, PARALLEL_FOLLOWUP],
    "audio": lambda: [AUDIO_REPLY],
}


class _Hung(Exception):
    pass


async def bounded(step: Awaitable[Any], limit: float) -> Any:
    """Await ``step`` for at most ``limit`` seconds; raise _Hung (after cancelling) if not done."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise _Hung
    return task.result()


def foreign(exc: BaseException, *, ask: bool = False) -> bool:
    """True for an exception that must not escape the public API."""
    if isinstance(exc, RealtalkError):
        return False
    return not (ask and isinstance(exc, TimeoutError) and str(exc).startswith("the turn did not finish"))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def play(agent: Path, turns: list[str], faults: list[Fault]) -> list[str]:
    """Run one example; return every broken invariant, one line each."""
    replies = [reply for turn in turns for reply in REPLIES[turn]()]
    server = HostileServer(replies, faults)
    problems: list[str] = []
    async with serve(server.handle, "127.0.0.1", 0, max_size=None, ping_interval=None) as listener:
        port = listener.sockets[0].getsockname()[1]
        opened = open_session(agent, url=f"ws://127.0.0.1:{port}/v1/realtime", extra_plugins=[Tools()],
                              backoff_s=0.01)
        try:
            session = await bounded(opened.__aenter__(), SETUP_BOUND)
        except _Hung:
            return [f"open_session did not return within {SETUP_BOUND} s"]
        except BaseException as exc:  # noqa: BLE001  (judged, not swallowed)
            if foreign(exc):
                problems.append(f"open_session raised {type(exc).__name__}: {exc}")
            return problems + server.violations
        try:
            for turn in turns:
                try:
                    await bounded(session.ask(USER_TEXTS[turn], timeout=ASK_TIMEOUT), ASK_TIMEOUT + MARGIN)
                except _Hung:
                    problems.append(f"ask({USER_TEXTS[turn]!r}, timeout={ASK_TIMEOUT}) still running"
                                    f" after {ASK_TIMEOUT + MARGIN} s")
                    break
                except BaseException as exc:  # noqa: BLE001
                    if foreign(exc, ask=True):
                        problems.append(f"ask({USER_TEXTS[turn]!r}) raised {type(exc).__name__}: {exc}")
                    if not isinstance(exc, TimeoutError):
                        break  # the session failed; later asks raise the same
        finally:
            try:
                await bounded(opened.__aexit__(None, None, None), CLOSE_BOUND)
            except _Hung:
                problems.append(f"closing the session took over {CLOSE_BOUND} s")
            except BaseException as exc:  # noqa: BLE001
                if foreign(exc):
                    problems.append(f"close raised {type(exc).__name__}: {exc}")
            # Whatever state it failed in, a closed session holds no socket.
            waits = [asyncio.ensure_future(ws.wait_closed()) for ws in server.sockets]
            if waits:
                await asyncio.wait(waits, timeout=LINGER_BOUND)
            for future in waits:
                future.cancel()
            for number, ws in enumerate(server.sockets):
                if ws.state.name != "CLOSED":
                    problems.append(f"connection {number} still {ws.state.name} {LINGER_BOUND} s after"
                                    " the session closed")
                    ws.transport.abort()
    return problems + server.violations + history_problems(server)


def run(agent: Path, turns: list[str], faults: list[Fault]) -> list[str]:
    """:func:`play` in a fresh event loop, with logging and stderr watched for tracebacks."""
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            problems = asyncio.run(play(agent, turns, faults))
    finally:
        root.removeHandler(records)
    for record in records.records:
        if record.exc_info or "Traceback" in record.getMessage():
            kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "?"
            problems.append(f"traceback logged by {record.name}: {record.getMessage()} ({kind})")
        elif record.name == "asyncio" and record.levelno >= logging.ERROR:
            problems.append(f"asyncio complained: {record.getMessage()}")
    if "Traceback" in stderr.getvalue():
        problems.append("traceback on stderr: " + stderr.getvalue().strip().splitlines()[-1])
    return problems


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "front.yaml"
    path.write_text(AGENT_YAML)
    return path


turns_strategy = st.lists(st.sampled_from(sorted(REPLIES)), min_size=1, max_size=3)


def faults_strategy(kinds: tuple[str, ...], most: int) -> st.SearchStrategy[list[Fault]]:
    return st.lists(st.builds(Fault, at=st.integers(0, 80), kind=st.sampled_from(kinds),
                              pick=st.integers(0, 2**16)), max_size=most)


# Failures the fuzz found once, replayed on every run (turns, faults).
FOUND: tuple[tuple[list[str], list[Fault]], ...] = (
    (["tool", "text", "tool"], [Fault(2, "unknown", 31458)]),  # args.done with call_id null
    (["tool", "tool"], [Fault(10, "bare", 44398), Fault(2, "delete", 63472)]),  # call_id ""
    (["text", "text", "audio"], [Fault(14, "unknown", 61481)]),  # response.done output: 5
    (["audio", "audio"], [Fault(1, "oversize", 59642)]),  # session.updated session: "xxx..."
    (["parallel", "audio"], [Fault(14, "unknown", 38276)]),  # error: "boom"
    (["audio", "tool", "text"], [Fault(2, "huge_frame", 27644)]),  # 1009 before the user item
)


def check(name: str, agent: Path, examples: int, kinds: tuple[str, ...], most: int,
          found: tuple[tuple[list[str], list[Fault]], ...] = ()) -> None:
    runs = 0

    def replaying(test: Any) -> Any:
        for turns, faults in found:
            test = hypothesis.example(turns=turns, faults=faults)(test)
        return test

    @replaying
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=True,
              phases=PHASES, suppress_health_check=[HealthCheck.too_slow])
    @given(turns=turns_strategy, faults=faults_strategy(kinds, most))
    def example(turns: list[str], faults: list[Fault]) -> None:
        nonlocal runs
        runs += 1
        problems = run(agent, turns, faults)
        assert not problems, "\n".join(problems)

    try:
        example()
    finally:
        RUNS[name] = runs
        print(f"\n{name}: {runs} examples run")
    assert runs >= examples // 2


RUNS: dict[str, int] = {}


def test_healthy_streams_pass(agent: Path) -> None:
    """Without faults every turn kind completes: a failure elsewhere is the faults' doing."""
    for turns in (["text", "tool", "parallel", "audio"], ["audio", "audio"]):
        assert run(agent, turns, []) == []


def test_hostile_server(agent: Path) -> None:
    """Corrupted, unknown, reordered, duplicated events and drops anywhere."""
    check("hostile-server fuzz", agent, 100, FAULT_KINDS, 5, FOUND)


def test_drops_keep_the_history(agent: Path) -> None:
    """Valid events (some duplicated, swapped, or among junk) and drops: exact history."""
    check("drop-history fuzz", agent, 60, ("drop", "drop", "duplicate", "swap", "junk", "unknown"), 3)
