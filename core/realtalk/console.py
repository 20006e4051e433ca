"""What a person sees on the terminal while a session runs.

:class:`ConsoleRenderer` is a :class:`~realtalk.session.Session` listener. It prints user
and assistant transcripts, each tool call with its arguments, duration and result,
handoffs, reconnects, warnings, and per-turn latency and token usage. With ``json=True``
it prints each event as one JSON line instead, for scripts.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from .connection import redact_url
from .results import SessionEvent

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
    """

    def __init__(self, stream: TextIO | None = None, *, json_lines: bool = False,
                 stream_deltas: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.json_lines = json_lines
        self.stream_deltas = stream_deltas
        self._mid_line = False

    def __call__(self, event: SessionEvent) -> None:
        if self.json_lines:
            data = event.data
            if isinstance(data.get("url"), str):  # never print credentials from a URL
                data = {**data, "url": redact_url(data["url"])}
            self._print(json.dumps({"type": event.type, **data}, ensure_ascii=False, default=str))
            return
        handler = getattr(self, "_on_" + event.type.replace(".", "_"), None)
        if handler is not None:
            handler(event.data)

    def _print(self, line: str) -> None:
        if self._mid_line:
            self.stream.write("\n")
            self._mid_line = False
        self.stream.write(line + "\n")
        self.stream.flush()

    # -- one method per event type --------------------------------------------------------

    def _on_connected(self, data: dict[str, Any]) -> None:
        self._print(f"· connected to {redact_url(data['url'])} as {data['agent']}")

    def _on_reconnected(self, data: dict[str, Any]) -> None:
        self._print(f"· reconnected ({data['reason']}); restored {data['items']} conversation items")

    def _on_user_transcript(self, data: dict[str, Any]) -> None:
        self._print(f"you: {data['text']}")

    def _on_assistant_delta(self, data: dict[str, Any]) -> None:
        if not self.stream_deltas:
            return
        if not self._mid_line:
            self.stream.write(f"{data['agent']}: ")
            self._mid_line = True
        self.stream.write(data["delta"])
        self.stream.flush()

    def _on_assistant_done(self, data: dict[str, Any]) -> None:
        if self.stream_deltas and self._mid_line:
            self.stream.write("\n")
            self._mid_line = False
        elif data["text"]:
            self._print(f"{data['agent']}: {data['text']}")

    def _on_tool_started(self, data: dict[str, Any]) -> None:
        self._print(f"  → {data['name']}({_short(data['arguments'] or '{}', 120)})")

    def _on_tool_finished(self, data: dict[str, Any]) -> None:
        mark = "✓" if data["status"] == "ok" else "✗"
        ms = data["duration_s"] * 1000
        self._print(f"  {mark} {data['name']} {data['status']} in {ms:.0f} ms: {_short(data['output'])}")

    def _on_handoff(self, data: dict[str, Any]) -> None:
        self._print(f"  ⇢ handoff {data['source']} → {data['target']}")

    def _on_interrupted(self, data: dict[str, Any]) -> None:
        self._print(f"  ✂ interrupted after {data['played_ms']} ms played ({data['action']})")

    def _on_turn_done(self, data: dict[str, Any]) -> None:
        parts = []
        if data.get("first_delta_ms") is not None:
            parts.append(f"first delta {data['first_delta_ms']:.0f} ms")
        if data.get("done_ms") is not None:
            parts.append(f"done {data['done_ms']:.0f} ms")
        usage = data.get("usage") or []
        if usage:
            tokens_in = sum(u.get("input_tokens", 0) for u in usage)
            tokens_out = sum(u.get("output_tokens", 0) for u in usage)
            parts.append(f"tokens {tokens_in} in / {tokens_out} out")
        if parts:
            self._print("  · " + ", ".join(parts))
        status = data.get("status", "completed")
        if status not in ("completed", "cancelled"):
            self._print(f"  ✗ turn {status}: {data.get('status_reason') or 'no reason given'}")

    def _on_warning(self, data: dict[str, Any]) -> None:
        self._print(f"! {data['message']}")

    def _on_error(self, data: dict[str, Any]) -> None:
        self._print(f"! {data['message']}")
