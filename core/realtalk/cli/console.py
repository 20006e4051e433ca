"""What a person sees on the terminal while a session runs.

:class:`ConsoleRenderer` is a :class:`~realtalk.session.Session` listener. It prints user
and assistant transcripts, each tool call with its arguments, duration and result,
handoffs, reconnects, and per-turn latency and token usage; warnings and errors (a
connection retry: why, the delay, which attempt) go to a stream of their own (stderr in
``realtalk run``). With ``json=True`` it prints each event as one JSON line instead, all
on the one stream, for scripts.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from ..connection import redact_url
from ..results import (
    AssistantDelta,
    AssistantDone,
    Connected,
    ErrorEvent,
    HandoffDone,
    Interrupted,
    Reconnected,
    SessionEvent,
    SessionWarning,
    ToolFinished,
    ToolStarted,
    TurnDone,
    UserText,
    UserTranscript,
)

__all__ = ["ConsoleRenderer"]

_MAX_RESULT = 200


def _short(text: str, limit: int = _MAX_RESULT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ConsoleRenderer:
    """Prints session events for a person (or as JSON lines).

    Args:
        stream: Where to print (stdout by default).
        json_lines: Print every event as ``{"type": ..., ...}`` JSON instead of prose.
        stream_deltas: Print assistant text as it streams (interactive use); otherwise
            print each reply once it is complete.
        err: Where warnings and errors go in prose: stderr by default, or ``stream``
            when a stream is given without one.
    """

    def __init__(self, stream: TextIO | None = None, *, json_lines: bool = False,
                 stream_deltas: bool = False, err: TextIO | None = None) -> None:
        self.err = err or stream or sys.stderr
        self.stream = stream or sys.stdout
        self.json_lines = json_lines
        self.stream_deltas = stream_deltas
        self._mid_line = False

    def __call__(self, event: SessionEvent) -> None:
        """Print ``event`` (a session listener)."""
        if self.json_lines:
            data = event.as_dict()
            if isinstance(event, Connected):  # never print credentials from a URL
                data["url"] = redact_url(event.url)
            self._print(json.dumps(data, ensure_ascii=False, default=str))
            return
        match event:
            case Connected():
                self._connected(event)
            case Reconnected():
                self._reconnected(event)
            case UserText():
                self._user_text(event)
            case UserTranscript():
                self._user_transcript(event)
            case AssistantDelta():
                self._assistant_delta(event)
            case AssistantDone():
                self._assistant_done(event)
            case ToolStarted():
                self._tool_started(event)
            case ToolFinished():
                self._tool_finished(event)
            case HandoffDone():
                self._handoff(event)
            case Interrupted():
                self._interrupted(event)
            case TurnDone():
                self._turn_done(event)
            case SessionWarning():
                self._warning(event)
            case ErrorEvent():
                self._error(event)

    def _print(self, line: str, stream: TextIO | None = None) -> None:
        if self._mid_line:
            self.stream.write("\n")
            self.stream.flush()
            self._mid_line = False
        out = stream or self.stream
        out.write(line + "\n")
        out.flush()

    # -- one method per event class -------------------------------------------------------

    def _connected(self, event: Connected) -> None:
        self._print(f"· connected to {redact_url(event.url)} as {event.agent}")

    def _reconnected(self, event: Reconnected) -> None:
        self._print(f"· reconnected ({event.reason}); restored {event.items} conversation items")

    def _user_text(self, event: UserText) -> None:
        if self.stream_deltas:  # interactive: the person has just typed it at the prompt
            return
        self._print(f"you: {event.text}")

    def _user_transcript(self, event: UserTranscript) -> None:
        self._print(f"you: {event.text}")

    def _assistant_delta(self, event: AssistantDelta) -> None:
        if not self.stream_deltas:
            return
        if not self._mid_line:
            self.stream.write(f"{event.agent}: ")
            self._mid_line = True
        self.stream.write(event.delta)
        self.stream.flush()

    def _assistant_done(self, event: AssistantDone) -> None:
        if self.stream_deltas and self._mid_line:
            self.stream.write("\n")
            self._mid_line = False
        elif event.text:
            self._print(f"{event.agent}: {event.text}")

    def _tool_started(self, event: ToolStarted) -> None:
        self._print(f"  → {event.name}({_short(event.arguments or '{}', 120)})")

    def _tool_finished(self, event: ToolFinished) -> None:
        mark = "✓" if event.status == "ok" else "✗"
        ms = event.duration_s * 1000
        self._print(f"  {mark} {event.name} {event.status} in {ms:.0f} ms: {_short(event.output)}")

    def _handoff(self, event: HandoffDone) -> None:
        self._print(f"  ⇢ handoff {event.source} → {event.target}")

    def _interrupted(self, event: Interrupted) -> None:
        self._print(f"  ✂ interrupted after {event.played_ms} ms played ({event.action})")

    def _turn_done(self, event: TurnDone) -> None:
        parts = []
        if event.first_delta_ms is not None:
            parts.append(f"first delta {event.first_delta_ms:.0f} ms")
        if event.done_ms is not None:
            parts.append(f"done {event.done_ms:.0f} ms")
        if event.usage:
            tokens_in = sum(u.get("input_tokens", 0) for u in event.usage)
            tokens_out = sum(u.get("output_tokens", 0) for u in event.usage)
            parts.append(f"tokens {tokens_in} in / {tokens_out} out")
        if parts:
            self._print("  · " + ", ".join(parts))
        if event.status not in ("completed", "cancelled"):
            self._print(f"  ✗ turn {event.status}: {event.status_reason or 'no reason given'}")

    def _warning(self, event: SessionWarning) -> None:
        self._print(f"! {event.message}", self.err)

    def _error(self, event: ErrorEvent) -> None:
        self._print(f"! {event.message}", self.err)
