"""Record a session's events as JSON lines, for debugging and replay.

Each line is ``{"t": <seconds since the recorder started>, "dir": "client"|"server",
"event": {...}}``. Lines are flushed one by one, so a crash loses nothing that was recorded.

Audio is large and usually unwanted in a log: unless ``record_audio`` is set, every audio
payload (``input_audio_buffer.append.audio``, ``response.output_audio.delta.delta``, item
content ``audio``) is replaced by ``"<audio N bytes>"`` with N the decoded length.

Secrets never reach the file: every string is scrubbed of the configured API key(s) and of
anything shaped like an OpenAI key or a Bearer token. Connection headers are never passed to
the recorder in the first place.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from realtalk.protocol.events import audio_byte_length

__all__ = ["Recorder", "scrub_event"]

_AUDIO_DELTA_EVENTS = frozenset({
    "response.output_audio.delta",
    "response.audio.delta",  # beta name, in case raw events are recorded
})
_KEYLIKE = re.compile(r"(?:sk-[A-Za-z0-9_\-]{16,}|(?i:bearer)\s+[A-Za-z0-9._\-]{16,})")


def _audio_placeholder(value: str) -> str:
    return f"<audio {audio_byte_length(value)} bytes>"


def scrub_event(
    event: dict[str, Any], *, record_audio: bool = False, secrets: Iterable[str] = ()
) -> dict[str, Any]:
    """Return a copy of ``event`` fit for a log file (the input is not changed).

    Args:
        event: A client or server event.
        record_audio: Keep audio payloads instead of replacing them by their length.
        secrets: Strings to replace by ``***`` wherever they occur (API keys).
    """
    keys = tuple(s for s in secrets if s and len(s) >= 4)
    etype = event.get("type")
    audio_delta = not record_audio and etype in _AUDIO_DELTA_EVENTS

    def clean_str(value: str) -> str:
        for key in keys:
            if key in value:
                value = value.replace(key, "***")
        return _KEYLIKE.sub("***", value) if ("sk-" in value or "earer" in value) else value

    def walk(value: Any, key: str | None, top: bool) -> Any:
        if isinstance(value, str):
            if not record_audio and key == "audio":
                return _audio_placeholder(value)
            if audio_delta and top and key == "delta":
                return _audio_placeholder(value)
            return clean_str(value)
        if isinstance(value, dict):
            return {k: walk(v, k, False) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, None, False) for v in value]
        return value

    return {k: walk(v, k, True) for k, v in event.items()}


class Recorder:
    """Append-only JSON-lines log of the events of one session.

    Args:
        path: The file to write; parent directories are created; an existing file is
            replaced.
        record_audio: Keep audio payloads (large) instead of ``"<audio N bytes>"``.
        secrets: API keys (or other strings) that must never be written.

    Use as a context manager, or call :meth:`close` when done.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        record_audio: bool = False,
        secrets: Iterable[str] = (),
    ) -> None:
        self.path = Path(path)
        self.record_audio = record_audio
        self._secrets = tuple(s for s in secrets if s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        self._start = time.monotonic()
        self.count = 0
        """Events written so far."""

    def __repr__(self) -> str:
        return f"<Recorder {self.path} events={self.count}{' closed' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._file is None

    def record(self, direction: Literal["client", "server"] | str, event: dict[str, Any]) -> None:
        """Write one event (scrubbed) and flush. Ignored after :meth:`close`.

        Args:
            direction: ``"client"`` for events we sent, ``"server"`` for events received.
            event: The event as sent or received.
        """
        if self._file is None:
            return
        if direction not in ("client", "server"):
            raise ValueError(f"direction must be 'client' or 'server', not {direction!r}")
        line = {
            "t": round(time.monotonic() - self._start, 6),
            "dir": direction,
            "event": scrub_event(event, record_audio=self.record_audio, secrets=self._secrets),
        }
        self._file.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Recorder:  # noqa: PYI034 - no typing.Self on 3.10
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
