"""The wire codec: JSON and base64 for every frame, on orjson and pybase64.

Each audio delta or append is about 6.4 KB of base64 inside a JSON object, and both
directions carry tens of them per second per session, so the codec is most of the
per-event cost. Measured on the 2-core machine of ``docs/performance.md`` with one
``response.output_audio.delta`` of 100 ms (4,800 bytes of PCM16):

=================  ==========  ==========================
operation          stdlib      here
=================  ==========  ==========================
parse the frame    12.9 µs     4.8 µs (``orjson.loads``)
encode an event    28.0 µs     1.4 µs (``orjson.dumps``)
base64 decode      28.3 µs     3.6 µs (``pybase64``)
base64 encode      10.2 µs     0.8 µs (``pybase64``)
=================  ==========  ==========================

``dumps`` returns UTF-8 bytes: send them as a text frame (``ws.send(data, text=True)``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pybase64

__all__ = ["DecodeError", "b64decode", "b64encode", "dumps", "loads", "loads_lenient"]

#: Raised by :func:`loads` for text that is not JSON (a subclass of ``ValueError``).
DecodeError = orjson.JSONDecodeError


def loads(data: str | bytes) -> Any:
    """Parse one JSON document (bytes must be UTF-8; invalid UTF-8 is a ``DecodeError``)."""
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (non-ASCII kept as is; NaN and infinity become null).

    A value orjson refuses (an object key that is not a string, an integer over 64 bits,
    a lone surrogate) is encoded as the stdlib's ``json.dumps`` encodes it: integer keys
    become strings, non-ASCII is escaped.

    Raises:
        TypeError, ValueError, RecursionError: Neither can encode it (an object of a
            class JSON does not know, a cycle).
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def loads_lenient(data: bytes) -> Any:
    """:func:`loads`, then the stdlib for what orjson refuses (``NaN``, a lone surrogate
    escape); None for what neither accepts (not JSON, not UTF-8, nested too deep)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return None


def b64encode(data: bytes | bytearray | memoryview) -> str:
    """Standard base64 with padding, as the Realtime API's audio fields carry it."""
    return pybase64.b64encode_as_string(data)


def b64decode(text: str | bytes) -> bytes:
    """Decode standard base64, leniently as the stdlib does (characters outside the
    alphabet are skipped): for audio from a server already checked by ``validate``."""
    return pybase64.b64decode(text)
