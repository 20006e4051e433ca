"""One event vocabulary for both Realtime dialects, and client event ids.

The rest of realtalk only ever sees GA event names and GA item content types. Servers that
still speak the beta dialect are translated here, in both directions:

* :func:`normalize_server_event` turns one received event into a list of GA-shaped events
  (a beta ``conversation.item.created`` becomes ``conversation.item.added`` followed by
  ``conversation.item.done``; every other event maps to exactly one).
* :func:`to_wire` turns one GA-shaped client event into what the server's dialect expects.
* :class:`EventIds` stamps client events with ``evt_...`` ids and remembers what it sent, so an
  ``error`` event can be traced back through ``error.event_id`` to the event that caused it.

The ``session.update`` session shape is translated by ``session_config``, not here.
:data:`Dialect` and :func:`error_summary` live in :mod:`realtalk.protocol.vocab` and are
re-exported here for compatibility.

Nothing in this module performs I/O; inputs are never mutated.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any

from .vocab import Dialect, error_summary, json_copy, new_id

__all__ = [
    "BETA_TO_GA_SERVER_EVENTS",
    "Dialect",
    "EventIds",
    "audio_byte_length",
    "error_summary",
    "normalize_server_event",
    "to_wire",
]

BETA_TO_GA_SERVER_EVENTS: dict[str, str] = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "transcription_session.created": "session.created",
    "transcription_session.updated": "session.updated",
}
"""Beta server event names and their GA equivalents (reference §2.2)."""

_BETA_TO_GA_CONTENT = {"text": "output_text", "audio": "output_audio"}
_GA_TO_BETA_CONTENT = {"output_text": "text", "output_audio": "audio"}


# -- server -> client -------------------------------------------------------------------------


def normalize_server_event(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Translate one received server event into GA vocabulary.

    GA events pass through unchanged (as a copy when anything had to change, else the same
    object). Beta names are renamed, assistant content parts ``text``/``audio`` inside items
    become ``output_text``/``output_audio``, and ``conversation.item.created`` is split into
    ``conversation.item.added`` + ``conversation.item.done`` (both dialects may send it).

    Args:
        event: A decoded server event.

    Returns:
        The GA events to process, in order. The caller must feed each of them, in order, to
        the conversation and the arbiter.
    """
    etype = event.get("type")
    if not isinstance(etype, str):
        return [event]
    out = event
    renamed = BETA_TO_GA_SERVER_EVENTS.get(etype)
    if renamed is not None:
        out = dict(event)
        out["type"] = renamed
    if _needs_item_fix(out):
        out = _fix_items(out)
    if out.get("type") == "conversation.item.created":
        added = dict(out)
        added["type"] = "conversation.item.added"
        done = json_copy(added)
        done["type"] = "conversation.item.done"
        return [added, done]
    return [out]


def _needs_item_fix(event: dict[str, Any]) -> bool:
    item = event.get("item")
    if isinstance(item, dict) and _item_has_beta_content(item):
        return True
    response = event.get("response")
    if isinstance(response, dict):
        output = response.get("output")
        if isinstance(output, list):
            return any(isinstance(i, dict) and _item_has_beta_content(i) for i in output)
    return False


def _item_has_beta_content(item: dict[str, Any]) -> bool:
    if item.get("role") != "assistant":
        return False
    content = item.get("content")
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") in _BETA_TO_GA_CONTENT for p in content
    )


def _fix_items(event: dict[str, Any]) -> dict[str, Any]:
    out = json_copy(event)
    item = out.get("item")
    if isinstance(item, dict):
        _rename_content(item, _BETA_TO_GA_CONTENT)
    response = out.get("response")
    if isinstance(response, dict) and isinstance(response.get("output"), list):
        for entry in response["output"]:
            if isinstance(entry, dict):
                _rename_content(entry, _BETA_TO_GA_CONTENT)
    return out


def _rename_content(item: dict[str, Any], table: dict[str, str]) -> None:
    if item.get("role") != "assistant" or not isinstance(item.get("content"), list):
        return
    for part in item["content"]:
        if isinstance(part, dict) and part.get("type") in table:
            part["type"] = table[part["type"]]


# -- client -> server -------------------------------------------------------------------------


def to_wire(event: dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    """Translate one GA-shaped client event into the server's dialect.

    For ``"ga"`` the event is returned as is. For ``"beta"``, assistant item content
    ``output_text``/``output_audio`` becomes ``text``/``audio``, and a ``response.create``
    override's ``output_modalities`` becomes ``modalities``. ``session.update`` bodies are
    left alone: ``session_config`` builds them in the right shape.

    Args:
        event: A client event in GA vocabulary (never mutated).
        dialect: The server's dialect.

    Returns:
        The event to serialise. The caller must send it (and record the GA form, if it
        records anything, so logs read the same for both dialects).
    """
    if dialect == "ga":
        return event
    etype = event.get("type")
    if etype == "conversation.item.create" and isinstance(event.get("item"), dict):
        out = json_copy(event)
        _rename_content(out["item"], _GA_TO_BETA_CONTENT)
        return out
    if etype == "response.create" and isinstance(event.get("response"), dict):
        body = event["response"]
        if "output_modalities" in body:
            out = json_copy(event)
            out["response"]["modalities"] = out["response"].pop("output_modalities")
            return out
    return event


_PAYLOAD_FREE = {"input_audio_buffer.append": "input_audio_buffer.append"}
"""Client events :class:`EventIds` remembers by type and id only (their payload is audio)."""


class EventIds:
    """Stamps client events with unique ``evt_...`` ids and remembers recent ones.

    Ids look like ``evt_<8 hex chars per instance>_<counter>``: unique within a process and
    readable in logs. The last ``remember`` sent events are kept, so an ``error`` whose
    ``error.event_id`` names one can be explained with :meth:`lookup`.

    Args:
        remember: How many recently stamped events to keep for :meth:`lookup`.
    """

    def __init__(self, remember: int = 256) -> None:
        self._prefix = f"{new_id('evt', 4)}_"
        self._counter = itertools.count(1)
        self._remember = remember
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def new_id(self) -> str:
        """Return a fresh event id (at most 32 characters, well under the 512 limit)."""
        return f"{self._prefix}{next(self._counter)}"

    def stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        """Return ``event`` with an ``event_id`` (a copy; an existing id is kept).

        The caller must send the returned event, not the original, so that errors can be
        correlated.
        """
        out = dict(event)
        eid = out.get("event_id")
        if not isinstance(eid, str) or not eid:
            out["event_id"] = eid = self.new_id()
        # Audio appends are remembered without their payload: 256 of them would hold
        # megabytes, and an error about one needs only its type and id.
        kept = _PAYLOAD_FREE.get(out.get("type", ""))
        recent = self._recent
        recent[eid] = {"type": kept, "event_id": eid} if kept else out
        if len(recent) > self._remember:  # one event in, at most one out
            recent.popitem(last=False)
        return out

    def lookup(self, event_id: str | None) -> dict[str, Any] | None:
        """Return the recently stamped event with this id, or ``None`` if unknown/forgotten."""
        if event_id is None:
            return None
        return self._recent.get(event_id)

    def caused_by(self, error_event: dict[str, Any]) -> dict[str, Any] | None:
        """Return the client event an ``error`` server event refers to, if we still know it."""
        err = error_event.get("error")
        if not isinstance(err, dict):
            return None
        eid = err.get("event_id")
        return self.lookup(eid if isinstance(eid, str) else None)


# -- helpers ----------------------------------------------------------------------------------


def audio_byte_length(b64: str) -> int:
    """Return the decoded length of a base64 string without decoding it.

    Args:
        b64: Standard base64 text (padding optional; whitespace is not expected).
    """
    n = len(b64)
    if n % 4 or b64[-1:] != "=":  # (no copy of the text unless it ends in padding)
        return (n * 3) // 4
    return (n * 3) // 4 - (n - len(b64.rstrip("=")))
