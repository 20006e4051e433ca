"""Record a session's events as JSON lines, for debugging and replay.

Each line is ``{"t": <seconds since the recorder started>, "dir": "client"|"server",
"event": {...}}``, compact JSON in UTF-8 (non-ASCII as is). Lines are flushed one by one, so
a crash loses nothing that was recorded. They are encoded by :mod:`realtalk.protocol.codec`
(orjson: a float may be spelled ``0.00005`` rather than ``5e-05``, NaN is ``null``); a
value orjson refuses (a key that is not a string, an integer over 64 bits, a lone
surrogate) is written as the stdlib's ``json.dumps`` writes it, with non-ASCII escaped.

The file stays bounded by what was said, not by what was sent:

* Audio is large and usually unwanted in a log: unless ``record_audio`` is set, every audio
  payload (``input_audio_buffer.append.audio``, ``response.output_audio.delta.delta``, item
  content ``audio``) is replaced by ``"<audio N bytes>"`` with N the decoded length, and an
  image sent as a ``data:`` URL by ``"<image/png N chars>"`` (with ``record_audio`` both
  are kept whole).
* Any other string longer than ``max_chars`` (a huge tool output, echoed back by the server
  in several events) is cut there and ends with ``…<N more chars>``.

Secrets never reach the file: every string is scrubbed of the configured secrets (pass
``ConnectionProfile.secrets``: the API key and credentials in the URL), of anything shaped
like an OpenAI key or a Bearer token, and of credentials inside URLs (``user:pass@``,
``api-key=``/``token=``/``sig=``... query values). Connection headers are never passed to the
recorder in the first place.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from realtalk.protocol import codec
from realtalk.protocol.events import audio_byte_length

__all__ = ["MAX_CHARS", "Recorder", "scrub_event"]

_AUDIO_DELTA_EVENTS = frozenset({
    "response.output_audio.delta",
    "response.audio.delta",  # beta name, in case raw events are recorded
})
_KEYLIKE = re.compile(r"(?:sk-[A-Za-z0-9_\-]{16,}|(?i:bearer)\s+[A-Za-z0-9._\-]{16,})")
# Credentials inside URLs, wherever a URL appears in a string (same names as
# realtalk.connection.redact_url): userinfo, and secret-looking query parameters.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@")
_URL_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:[a-z0-9_.\-]*[_\-])?(?:api[_\-]?key|key|token|secret|sig|signature"
    r"|password|passwd|pass|pwd|auth|authorization|code|credentials?|jwt|sas)=)[^&\s\"'#<>]+"
)
_DATA_URL = re.compile(r"data:([\w.+\-]+/[\w.+\-]+)?[;,]")
MAX_CHARS = 100_000
"""Default longest string kept in a record line (longer ones are cut)."""


def _audio_placeholder(value: str) -> str:
    return f"<audio {audio_byte_length(value)} bytes>"


def scrub_event(
    event: dict[str, Any],
    *,
    record_audio: bool = False,
    secrets: Iterable[str] = (),
    max_chars: int | None = MAX_CHARS,
) -> dict[str, Any]:
    """Return a copy of ``event`` fit for a log file (the input is not changed).

    Args:
        event: A client or server event.
        record_audio: Keep audio payloads and ``data:`` URL images whole (not cut either)
            instead of replacing them by their length.
        secrets: Strings to replace by ``***`` wherever they occur (API keys, credentials
            from the URL: ``ConnectionProfile.secrets``).
        max_chars: Cut longer strings to this many characters (None: keep everything).
    """
    keys = tuple(sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True))
    etype = event.get("type")
    audio_delta = etype in _AUDIO_DELTA_EVENTS

    def clean_str(value: str) -> str:
        for key in keys:
            if key in value:
                value = value.replace(key, "***")
        if "sk-" in value or "earer" in value:
            value = _KEYLIKE.sub("***", value)
        if "://" in value:
            value = _URL_USERINFO.sub(r"\1***@", value)
        if "=" in value:
            value = _URL_SECRET_PARAM.sub(r"\1***", value)
        if max_chars is not None and len(value) > max_chars:
            value = f"{value[:max_chars]}…<{len(value) - max_chars} more chars>"
        return value

    def walk(value: Any, key: str | None, top: bool) -> Any:
        if isinstance(value, str):
            if key == "audio" or (audio_delta and top and key == "delta"):
                return value if record_audio else _audio_placeholder(value)
            if value.startswith("data:") and (media := _DATA_URL.match(value)):
                return value if record_audio else f"<{media.group(1) or 'data'} {len(value)} chars>"
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
        secrets: Strings that must never be written: pass ``ConnectionProfile.secrets``
            (the API key and any credentials in the URL).
        max_chars: Longest string kept in a line; longer ones (huge tool outputs) are cut.

    Use as a context manager, or call :meth:`close` when done.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        record_audio: bool = False,
        secrets: Iterable[str] = (),
        max_chars: int | None = MAX_CHARS,
    ) -> None:
        self.path = Path(path)
        self.record_audio = record_audio
        self.max_chars = max_chars
        self._secrets = tuple(s for s in secrets if s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = self.path.open("wb")
        self._start = time.monotonic()
        self.count = 0
        """Events written so far."""

    def __repr__(self) -> str:
        return f"<Recorder {self.path} events={self.count}{' closed' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._file is None

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Also scrub these strings from what is written from now on (a session adds the
        secrets its hosted MCP tools read from the environment)."""
        self._secrets = tuple(dict.fromkeys((*self._secrets, *(s for s in secrets if s))))

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
            "event": scrub_event(event, record_audio=self.record_audio, secrets=self._secrets,
                                 max_chars=self.max_chars),
        }
        data = codec.dumps(line)
        self._file.write(data + b"\n")
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
