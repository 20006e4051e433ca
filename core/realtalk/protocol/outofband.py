"""Out-of-band responses of one logical session: what each request gathered, and its result.

An out-of-band response (``response.create`` with ``conversation: "none"``) never enters
the conversation. The :class:`~realtalk.protocol.arbiter.ResponseArbiter` sends the
requests and routes their events (by metadata tag, then ``response_id``);
:class:`OutOfBandRequests` collects what each one says and turns its end into an
:class:`~realtalk.results.OutOfBandResult` (or, for a generated still-working line, into
the agent's words on the console). No I/O.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ConfigError
from ..results import OutOfBandResult
from ..tools import StillWorking
from .actions import Action, AudioDone, Emit, Play
from .events import error_summary
from .vocab import error_line, user_text_item

__all__ = [
    "MAX_OOB_KEPT",
    "OutOfBandRequests",
    "out_of_band_body",
    "response_text",
    "status_reason",
    "still_working_request",
]

MAX_OOB_KEPT = 16
"""Finished out-of-band results kept until collected (the oldest go first past it)."""


def out_of_band_body(
    instructions: str | None,
    input: list[dict[str, Any] | str] | None,
    metadata: dict[str, str] | None,
    output_modalities: tuple[str, ...] | list[str],
) -> dict[str, Any]:
    """The ``response.create`` body of a side question (see ``Session.ask_out_of_band``).

    Raises:
        ConfigError: ``input`` holds something else than items and strings, or
            ``metadata`` is not at most 15 string values (one line).
    """
    body: dict[str, Any] = {"output_modalities": list(output_modalities)}
    if instructions is not None:
        body["instructions"] = instructions
    if input is not None:
        body["input"] = [_input_item(i) for i in input]
    if metadata:
        if len(metadata) > 15 or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ConfigError("out-of-band metadata takes at most 15 string keys with string values"
                              " (the server allows 16; realtalk uses one to match the answer)")
        body["metadata"] = dict(metadata)
    return body


def _input_item(value: dict[str, Any] | str) -> dict[str, Any]:
    """An out-of-band ``input`` entry: an item as given, or a string as a user message."""
    if isinstance(value, str):
        return user_text_item(value)
    if not isinstance(value, dict):
        raise ConfigError(f"out-of-band input must be items (dicts) or strings, got {type(value).__name__}")
    return value


@dataclass
class _Request:
    """An out-of-band request waiting for its response to end."""

    play: bool  # its audio goes to the speaker (a still-working line), else it is dropped
    announce: bool  # show its text as the agent's words (a generated still-working line)
    parts: list[str] = field(default_factory=list)  # text or transcript deltas
    response_id: str | None = None


class OutOfBandRequests:
    """The running out-of-band requests and the finished results nobody collected yet."""

    def __init__(self) -> None:
        self.running: dict[str, _Request] = {}
        self.finished: collections.OrderedDict[str, OutOfBandResult] = collections.OrderedDict()
        """Results by request id, for whoever waits on them; bounded by :data:`MAX_OOB_KEPT`."""

    def add(self, owner: str, *, play: bool, announce: bool) -> None:
        """A request was sent (``owner`` is its ``event_id``)."""
        self.running[owner] = _Request(play=play, announce=announce)

    def give_up(self, owner: str) -> str | None:
        """Stop waiting for ``owner``; returns its response id if it started (to cancel)."""
        request = self.running.pop(owner, None)
        return request.response_id if request is not None else None

    def stop_speaking(self) -> list[str]:
        """The conversation's own response starts: spoken requests fall silent (their audio
        is no longer played, so two voices never overlap). Returns the ids of their
        responses already started, for the caller to cancel."""
        started = []
        for request in self.running.values():
            if request.play:
                request.play = False
                if request.response_id is not None:
                    started.append(request.response_id)
        return started

    def fail_all(self, reason: str) -> None:
        """Every running request failed (its connection is gone)."""
        for owner in list(self.running):
            self.finish(owner, "failed", error=reason, agent="")

    def on_event(self, owner: str, event: dict[str, Any], agent: str) -> list[Action]:
        """One normalised event of ``owner``'s response: the actions it asks for."""
        request = self.running.get(owner)
        if request is None:  # given up: its events are dropped
            return []
        etype = event.get("type")
        if etype == "response.created":
            request.response_id = event["response"].get("id")
        elif etype in ("response.output_text.delta", "response.output_audio_transcript.delta"):
            request.parts.append(str(event.get("delta") or ""))
        elif etype == "response.output_audio.delta" and request.play:
            return [Play(str(event.get("item_id", "")), str(event.get("delta", "")))]
        elif etype == "response.output_audio.done" and request.play:
            return [AudioDone(str(event.get("item_id", "")))]
        elif etype == "response.done":
            resp = event.get("response", {})
            return self.finish(owner, str(resp.get("status") or "completed"), response=resp,
                               error=status_reason(resp), agent=agent)
        elif etype == "error":
            self.finish(owner, "failed", error=error_summary(event), agent=agent)
            return [Emit("error", {"message": f"the out-of-band response was refused: {error_summary(event)}",
                                   "code": event.get("error", {}).get("code"), "fatal": False}, log=True)]
        return []

    def finish(self, owner: str, status: str, *, response: dict[str, Any] | None = None,
               error: str | None = None, agent: str) -> list[Action]:
        """``owner`` ended: keep its result, or show a generated still-working line."""
        request = self.running.pop(owner, None)
        if request is None:
            return []
        text = (response_text(response) if response else "") or "".join(request.parts)
        if request.announce:  # a still-working line: shown, not collected
            return [Emit("assistant.done", {"agent": agent, "text": text})] if text else []
        self.finished[owner] = OutOfBandResult(
            text=text, status=status, response_id=request.response_id,
            metadata=dict((response or {}).get("metadata") or {}), error=error)
        while len(self.finished) > MAX_OOB_KEPT:
            self.finished.popitem(last=False)
        return []


def still_working_request(tool: str, call_id: str, still: StillWorking, *, audio: bool) -> dict[str, Any]:
    """The ``response.create`` body that tells the user a call of ``tool`` still runs.

    A fixed line is read out with no context (``input: []``); a generated one sees the
    conversation.
    """
    body: dict[str, Any] = {"output_modalities": ["audio" if audio else "text"]}
    if still.say is not None:
        body["instructions"] = f"Say exactly this, and nothing else: {still.say}"
        body["input"] = []
    else:
        body["instructions"] = (
            f"The tool {tool} you called is still running. In one short sentence, tell the"
            " user you are still working on it. Do not answer their request yet.")
    body["metadata"] = {"purpose": "still_working", "call_id": call_id[:512]}
    return body


def response_text(response: dict[str, Any]) -> str:
    """The text (or audio transcript) of a finished response's messages, joined."""
    texts = []
    for out in response.get("output") or []:
        if not isinstance(out, dict) or out.get("type") != "message":
            continue
        for part in out.get("content") or []:
            if isinstance(part, dict):
                said = part.get("text") or part.get("transcript")
                if isinstance(said, str) and said:
                    texts.append(said)
    return "\n".join(texts)


def status_reason(response: dict[str, Any]) -> str | None:
    """``server_error: The server had an error`` / ``max_output_tokens`` from ``status_details``."""
    details = response.get("status_details")
    if not isinstance(details, dict):
        return None
    if isinstance(details.get("error"), dict):
        return error_line(details["error"])
    reason = details.get("reason")
    return str(reason) if reason else None
