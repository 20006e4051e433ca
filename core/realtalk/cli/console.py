"""What a person sees on the terminal while a session runs.

:class:`ConsoleRenderer` is a :class:`~realtalk.session.Session` listener. It prints user
and assistant transcripts, each tool call with its arguments, duration and result,
handoffs, reconnects, and per-turn latency, tokens by kind and estimated cost
(:mod:`realtalk.pricing`); warnings and errors (a connection retry: why, the delay, which
attempt) go to a stream of their own (stderr in ``realtalk run``). With ``json=True`` it
prints each event as one JSON line instead, all on the one stream, for scripts; a
``turn.done`` line also carries ``tokens`` (by kind) and ``cost_usd``.

:meth:`ConsoleRenderer.summary` prints the session's total once it is over: one line, or
one ``{"type": "session.usage", ...}`` JSON line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from ..connection import redact_url
from ..pricing import PRICES, Price, UsageTotals
from ..results import (
    AssistantDelta,
    AssistantDone,
    Connected,
    ErrorEvent,
    HandoffDone,
    InputTimeout,
    Interrupted,
    McpToolsListed,
    Reconnected,
    SessionEvent,
    SessionWarning,
    ToolFinished,
    ToolStarted,
    ToolStillWorking,
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
        model: The model the session talks to, which prices its tokens (settable later:
            ``realtalk run`` sets it once the session is open); None: no cost shown.
        prices: The price table (:data:`realtalk.pricing.PRICES`, or a price file's).

    Attributes:
        usage: The session's tokens and cost so far (:class:`~realtalk.pricing.UsageTotals`).
        turns: Turns done so far.
    """

    def __init__(self, stream: TextIO | None = None, *, json_lines: bool = False,
                 stream_deltas: bool = False, err: TextIO | None = None, model: str | None = None,
                 prices: Mapping[str, Price | None] = PRICES) -> None:
        self.err = err or stream or sys.stderr
        self.stream = stream or sys.stdout
        self.json_lines = json_lines
        self.stream_deltas = stream_deltas
        self.prices = prices
        self.usage = UsageTotals(model or "", prices)
        self.turns = 0
        self._mid_line = False

    @property
    def model(self) -> str | None:
        """The model tokens are priced for."""
        return self.usage.model or None

    @model.setter
    def model(self, model: str | None) -> None:
        self.usage.model = model or ""

    def __call__(self, event: SessionEvent) -> None:
        """Print ``event`` (a session listener)."""
        turn = self._count(event) if isinstance(event, TurnDone) else None
        if self.json_lines:
            data = event.as_dict()
            if isinstance(event, Connected):  # never print credentials from a URL
                data["url"] = redact_url(event.url)
            if turn is not None:
                data.update(turn.as_dict())
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
            case InputTimeout():
                self._input_timeout(event)
            case ToolStillWorking():
                self._still_working(event)
            case McpToolsListed():
                self._mcp_listed(event)
            case TurnDone():
                self._turn_done(event, turn)
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

    def _input_timeout(self, event: InputTimeout) -> None:
        self._print("  · no input for a while: the agent follows up")

    def _still_working(self, event: ToolStillWorking) -> None:
        said = f": {event.say}" if event.say else ""
        self._print(f"  … {event.name} still running after {event.after_s:g} s{said}")

    def _mcp_listed(self, event: McpToolsListed) -> None:
        if event.error is not None:
            self._print(f"  ✗ MCP server {event.server_label}: {event.error}")
        else:
            self._print(f"  · MCP server {event.server_label}: {len(event.tools)} tool(s):"
                        f" {', '.join(event.tools) or 'none'}")

    def _turn_done(self, event: TurnDone, turn: UsageTotals | None) -> None:
        parts = []
        if event.first_delta_ms is not None:
            parts.append(f"first delta {event.first_delta_ms:.0f} ms")
        if event.done_ms is not None:
            parts.append(f"done {event.done_ms:.0f} ms")
        if event.usage and turn is not None:
            parts.append(_tokens(turn))
            if turn.cost_usd is not None:
                parts.append(_cost(turn.cost_usd))
        if parts:
            self._print("  · " + ", ".join(parts))
        if event.status not in ("completed", "cancelled"):
            self._print(f"  ✗ turn {event.status}: {event.status_reason or 'no reason given'}")

    # -- usage ------------------------------------------------------------------------------

    def _count(self, event: TurnDone) -> UsageTotals:
        """The turn's tokens and cost, added to the session's."""
        turn = UsageTotals(self.usage.model, self.prices)
        turn.add_all(event.usage)
        self.usage.add_totals(turn)
        self.turns += 1
        return turn

    def summary(self) -> None:
        """Print the session's total: turns, tokens by kind, estimated cost (nothing before
        the first turn)."""
        if not self.turns:
            return
        usage = self.usage
        if self.json_lines:
            data: dict[str, Any] = {"type": "session.usage", "model": self.model, "turns": self.turns,
                                    **usage.as_dict()}
            self._print(json.dumps(data, ensure_ascii=False))
            return
        line = f"· session: {self.turns} turn{'s' if self.turns != 1 else ''}, {_tokens(usage)}"
        if usage.cost_usd is not None:
            line += f", {_cost(usage.cost_usd)} (estimate)"
        elif usage.responses:
            line += f"; no price known for model {self.model or '(unknown)'!r} (--prices FILE)"
        self._print(line)

    def _warning(self, event: SessionWarning) -> None:
        self._print(f"! {event.message}", self.err)

    def _error(self, event: ErrorEvent) -> None:
        self._print(f"! {event.message}", self.err)


def _tokens(usage: UsageTotals) -> str:
    """``tokens 120 in (80 audio, 40 text, 0 cached) / 45 out``."""
    t = usage.tokens
    audio = t["input_audio"] + t["input_cached_audio"]
    text = t["input_text"] + t["input_cached_text"]
    image = t["input_image"] + t["input_cached_image"]
    kinds = f"{audio} audio, {text} text, " + (f"{image} image, " if image else "") + f"{usage.cached_tokens} cached"
    return f"tokens {usage.input_tokens} in ({kinds}) / {usage.output_tokens} out"


def _cost(usd: float) -> str:
    """``~$0.0031``: four decimals below a dollar, cents above."""
    return f"~${usd:.4f}" if usd < 1 else f"~${usd:.2f}"
