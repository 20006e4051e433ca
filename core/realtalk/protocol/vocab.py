"""The Realtime vocabulary shared by the client runtime and the emulator.

One home for the small facts both sides of a Realtime connection need, so that they
cannot drift apart:

* :class:`AudioFormat` and :func:`audio_format`: the three audio formats in every
  spelling (GA object, GA name, beta name), with rate, sample width and bytes per ms.
* The one G.711 codec (:func:`ulaw_encode`, :func:`ulaw_decode`, :func:`alaw_encode`,
  :func:`alaw_decode`), ITU-exact, on PCM16 little-endian bytes.
* Turn-detection defaults (:data:`SERVER_VAD_DEFAULTS`, :data:`LIVE_SERVER_VAD_DEFAULTS`,
  :data:`SEMANTIC_VAD_DEFAULTS`).
* Ids (:func:`new_event_id`, :func:`new_item_id`, :func:`new_id`) and the live server's
  limits on them.
* Item and event builders (:func:`user_text_item`, :func:`item_create`,
  :func:`error_event`...) and :func:`error_summary`, the one-line form of an ``error``.
* :data:`Dialect`, the one spelling of "ga" or "beta".

Pure: standard library only, no I/O, no asyncio, no numpy.
"""

from __future__ import annotations

import secrets
import sys
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from types import MappingProxyType
from typing import Any, Literal, TypeVar

__all__ = [
    "ALAW_DECODE",
    "EVENT_ID_MAX",
    "ITEM_ID_MAX",
    "LIVE_SERVER_VAD_DEFAULTS",
    "PCM",
    "PCMA",
    "PCMU",
    "SEMANTIC_VAD_DEFAULTS",
    "SERVER_VAD_DEFAULTS",
    "ULAW_DECODE",
    "AudioFormat",
    "Dialect",
    "alaw_decode",
    "alaw_encode",
    "alaw_encode_table",
    "assistant_text_item",
    "audio_format",
    "error_event",
    "error_line",
    "error_summary",
    "function_call_item",
    "function_call_output_item",
    "item_create",
    "json_copy",
    "new_event_id",
    "new_id",
    "new_item_id",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_encode_table",
    "user_text_item",
]

_J = TypeVar("_J")

Dialect = Literal["ga", "beta"]
"""The wire dialect of a server: ``"ga"`` (OpenAI today) or ``"beta"`` (opt-in, legacy)."""


# -- audio formats ----------------------------------------------------------------------------

_BETA_NAMES = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}


@dataclass(frozen=True)
class AudioFormat:
    """One Realtime audio format, mono.

    Attributes:
        name: The GA name: ``audio/pcm``, ``audio/pcmu`` or ``audio/pcma``.
        rate: Samples per second (24000 for PCM, 8000 for G.711).
        width: Bytes per sample (2 for PCM16, 1 for G.711).
    """

    name: str
    rate: int
    width: int

    @property
    def beta(self) -> str:
        """The beta spelling: ``pcm16``, ``g711_ulaw`` or ``g711_alaw``."""
        return _BETA_NAMES[self.name]

    @property
    def bytes_per_ms(self) -> int:
        """Bytes of audio per millisecond (48 for PCM16 at 24 kHz, 8 for G.711)."""
        return max(1, self.rate * self.width // 1000)

    @property
    def is_g711(self) -> bool:
        """True for ``audio/pcmu`` and ``audio/pcma``."""
        return self.name != "audio/pcm"

    def ms(self, nbytes: int) -> int:
        """Whole milliseconds of audio in ``nbytes`` bytes (rounded down)."""
        return nbytes // self.bytes_per_ms

    def ga_object(self) -> dict[str, Any]:
        """The GA format object: ``{"type": "audio/pcm", "rate": 24000}`` or ``{"type": "audio/pcmu"}``."""
        if self.name == "audio/pcm":
            return {"type": "audio/pcm", "rate": self.rate}
        return {"type": self.name}


PCM = AudioFormat("audio/pcm", 24000, 2)
"""PCM16 little-endian at 24 kHz, the Realtime default."""
PCMU = AudioFormat("audio/pcmu", 8000, 1)
"""G.711 mu-law at 8 kHz."""
PCMA = AudioFormat("audio/pcma", 8000, 1)
"""G.711 A-law at 8 kHz."""

_BY_NAME = {f.name: f for f in (PCM, PCMU, PCMA)} | {f.beta: f for f in (PCM, PCMU, PCMA)}


def audio_format(spec: AudioFormat | str | Mapping[str, Any] | None) -> AudioFormat:
    """Parse an audio format in any spelling.

    Args:
        spec: A GA format object (``{"type": "audio/pcm", "rate": 24000}``; a missing type
            means ``audio/pcm``), a GA name (``"audio/pcmu"``), a beta name
            (``"g711_ulaw"``), an :class:`AudioFormat`, or None (PCM16 at 24 kHz).

    Returns:
        The format. A GA ``audio/pcm`` object keeps its ``rate``.

    Raises:
        ValueError: The format is unknown, or a PCM ``rate`` is not a positive integer.
    """
    if spec is None:
        return PCM
    if isinstance(spec, AudioFormat):
        return spec
    if isinstance(spec, str):
        return _named(spec)
    if isinstance(spec, Mapping):
        fmt = _named(spec.get("type", "audio/pcm"), "type ")
        rate = spec.get("rate", fmt.rate)
        if fmt.name != "audio/pcm" or rate == fmt.rate:
            return fmt
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"audio format rate {rate!r} is not a positive integer")
        return AudioFormat(fmt.name, rate, fmt.width)
    raise ValueError(f"audio format {spec!r} is not a string, a format object or None")


def _named(name: object, what: str = "") -> AudioFormat:
    fmt = _BY_NAME.get(name) if isinstance(name, str) else None
    if fmt is None:
        raise ValueError(
            f"unknown audio format {what}{name!r}: expected audio/pcm, audio/pcmu or"
            " audio/pcma (GA), or pcm16, g711_ulaw or g711_alaw (beta)"
        )
    return fmt


# -- G.711 ------------------------------------------------------------------------------------
# The ITU-T G.711 algorithm as in the G.191 reference and Sun's g711.c: 16-bit input is
# reduced to 14 bits (mu-law) or 13 bits (A-law) before the segment search, so linear 0
# encodes to 0xFF (mu-law) and 0xD5 (A-law). Each function below runs once per table entry
# (decoding tables at import, encoding tables on first use); encoding and decoding are then
# table lookups done by C loops (itemgetter, bytes.translate), never per-sample arithmetic.

def _ulaw_code(pcm14: int) -> int:
    mask = 0x7F if pcm14 < 0 else 0xFF
    mag = min(abs(pcm14), 8159) + 0x21  # clip, then add the bias (0x84 >> 2)
    seg = max(0, mag.bit_length() - 6)  # segment ends 0x3F, 0x7F ... 0x1FFF
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((mag >> (seg + 1)) & 0x0F)) ^ mask


def _alaw_code(pcm13: int) -> int:
    mask = 0xD5 if pcm13 >= 0 else 0x55
    mag = pcm13 if pcm13 >= 0 else -pcm13 - 1
    seg = max(0, mag.bit_length() - 5)  # segment ends 0x1F, 0x3F ... 0xFFF
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((mag >> (1 if seg < 2 else seg)) & 0x0F)) ^ mask


def _ulaw_linear(code: int) -> int:
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def _alaw_linear(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = t + 8 if seg == 0 else (t + 0x108) << max(seg - 1, 0)
    return t if a & 0x80 else -t


def _by_uint16(table: bytes, bits: int) -> bytes:
    """Expand a table indexed by the signed ``bits``-bit sample to one indexed by uint16.

    ``table[i]`` is the code of sample ``i - 2**(bits-1)``. The uint16 view ``u`` of an
    int16 sample ``s`` reduced to ``bits`` bits is ``u >> (16 - bits)``, whose entry is the
    table rotated by half; each entry then repeats ``2**(16-bits)`` times in a row.
    """
    half = len(table) // 2
    rotated = table[half:] + table[:half]
    step = 1 << (16 - bits)
    out = bytearray(65536)
    for k in range(step):
        out[k::step] = rotated
    return bytes(out)


@cache
def ulaw_encode_table() -> bytes:
    """The mu-law code of every int16 sample, indexed by its uint16 view (65536 bytes).

    Built on first use (some 25 ms), then shared.
    """
    return _by_uint16(bytes(_ulaw_code(v) for v in range(-8192, 8192)), 14)


@cache
def alaw_encode_table() -> bytes:
    """The A-law code of every int16 sample, indexed by its uint16 view (65536 bytes).

    Built on first use, then shared.
    """
    return _by_uint16(bytes(_alaw_code(v) for v in range(-4096, 4096)), 13)


ULAW_DECODE: tuple[int, ...] = tuple(_ulaw_linear(c) for c in range(256))
"""The int16 sample of every mu-law code."""
ALAW_DECODE: tuple[int, ...] = tuple(_alaw_linear(c) for c in range(256))
"""The int16 sample of every A-law code."""

# Decoding: one translate per output byte (low, high) of the little-endian sample.
_ULAW_LO = bytes(v & 0xFF for v in ULAW_DECODE)
_ULAW_HI = bytes((v >> 8) & 0xFF for v in ULAW_DECODE)
_ALAW_LO = bytes(v & 0xFF for v in ALAW_DECODE)
_ALAW_HI = bytes((v >> 8) & 0xFF for v in ALAW_DECODE)


def _uint16_samples(pcm: bytes | bytearray | memoryview) -> memoryview | array[int]:
    raw = memoryview(pcm).cast("B")
    if len(raw) % 2:
        raise ValueError(f"PCM16 audio must have an even number of bytes, got {len(raw)}")
    if sys.byteorder == "little":
        return raw.cast("H")
    samples = array("H", raw.tobytes())
    samples.byteswap()
    return samples


def _encode(pcm: bytes | bytearray | memoryview, table: bytes) -> bytes:
    samples = _uint16_samples(pcm)
    if len(samples) < 2:  # itemgetter of one index returns the item, not a tuple
        return bytes(table[u] for u in samples)
    return bytes(itemgetter(*samples)(table))


def _decode(codes: bytes | bytearray | memoryview, lo: bytes, hi: bytes) -> bytes:
    data = bytes(codes)
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(lo)
    out[1::2] = data.translate(hi)
    return bytes(out)


def ulaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """Encode PCM16 little-endian audio to G.711 mu-law, one byte per sample.

    Raises:
        ValueError: ``pcm`` has an odd number of bytes.
    """
    return _encode(pcm, ulaw_encode_table())


def alaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """Encode PCM16 little-endian audio to G.711 A-law, one byte per sample.

    Raises:
        ValueError: ``pcm`` has an odd number of bytes.
    """
    return _encode(pcm, alaw_encode_table())


def ulaw_decode(codes: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 mu-law bytes to PCM16 little-endian audio."""
    return _decode(codes, _ULAW_LO, _ULAW_HI)


def alaw_decode(codes: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 A-law bytes to PCM16 little-endian audio."""
    return _decode(codes, _ALAW_LO, _ALAW_HI)


# -- turn detection ---------------------------------------------------------------------------

SERVER_VAD_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
})
"""``server_vad`` as documented: what an agent sends when its file does not say."""

LIVE_SERVER_VAD_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,  # the live server's default, not the documented 500
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
})
"""``server_vad`` as the live server puts it in a new session (what the emulator does)."""

SEMANTIC_VAD_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
})
"""``semantic_vad`` defaults, documented and live alike."""


# -- ids --------------------------------------------------------------------------------------

ITEM_ID_MAX = 32
"""The live server refuses a client item id longer than this."""
EVENT_ID_MAX = 512
"""The live server refuses a client event id longer than this."""


def new_id(prefix: str, nbytes: int = 11) -> str:
    """A random id in OpenAI's style: ``prefix``, ``_``, then ``2 * nbytes`` hex digits.

    Args:
        prefix: ``event``, ``item``, ``resp``, ``call``...
        nbytes: Random bytes (11 gives the live server's 22 hex digits).
    """
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def new_event_id() -> str:
    """A fresh event id: ``event_`` and 22 hex digits (28 characters)."""
    return new_id("event")


def new_item_id() -> str:
    """A fresh client item id: ``item_rt`` and 16 hex digits (23 of the 32 allowed)."""
    return f"item_rt{secrets.token_hex(8)}"


# -- items and events -------------------------------------------------------------------------


def user_text_item(text: str, id: str | None = None) -> dict[str, Any]:
    """A user ``message`` item with one ``input_text`` part (and ``id`` first, if given)."""
    item: dict[str, Any] = {} if id is None else {"id": id}
    item.update(type="message", role="user", content=[{"type": "input_text", "text": text}])
    return item


def assistant_text_item(text: str) -> dict[str, Any]:
    """An assistant ``message`` item with one ``output_text`` part (GA content type)."""
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A ``function_call`` item; ``arguments`` is the JSON text the model produced."""
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def function_call_output_item(call_id: str, output: str) -> dict[str, Any]:
    """A ``function_call_output`` item answering ``call_id``."""
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def item_create(item: dict[str, Any], previous_item_id: str | None = None) -> dict[str, Any]:
    """The ``conversation.item.create`` client event for ``item`` (no ``event_id``)."""
    event: dict[str, Any] = {"type": "conversation.item.create", "item": item}
    if previous_item_id is not None:
        event["previous_item_id"] = previous_item_id
    return event


def error_event(
    type: str,
    code: str | None,
    message: str,
    param: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An ``error`` server event, shaped as the live server sends it.

    Args:
        type: The error type (``invalid_request_error``, ``server_error``...).
        code: The error code (``invalid_value``...), or None.
        message: What was wrong, in the server's words.
        param: The offending parameter's path (``session.voice``), or None.
        event_id: The client event that caused it (``error.event_id``), or None.

    Returns:
        The event without its own top-level ``event_id``: the sender stamps that.
    """
    return {
        "type": "error",
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


def error_line(error: Any) -> str:
    """``code: message`` for an error object (``error`` of an event, ``status_details.error``).

    The code falls back to the type, then to ``error``; without a message, the code alone.
    """
    if not isinstance(error, dict):
        return "error"
    code = error.get("code") or error.get("type") or "error"
    message = str(error.get("message") or "").strip()
    return f"{code}: {message}" if message else str(code)


def error_summary(event: dict[str, Any]) -> str:
    """Return a one-line description of an ``error`` server event, for logs and exceptions.

    Example: ``invalid_value: Invalid value: 'nope'. (param type, caused by evt_..._3)``.
    """
    err = event.get("error")
    if not isinstance(err, dict):
        return "server error without details"
    code = err.get("code") or err.get("type") or "error"
    msg = str(err.get("message") or "").strip()
    extras = []
    if err.get("param"):
        extras.append(f"param {err['param']}")
    if err.get("event_id"):
        extras.append(f"caused by {err['event_id']}")
    tail = f" ({', '.join(extras)})" if extras else ""
    return f"{code}: {msg}{tail}"


def json_copy(value: _J) -> _J:
    """A deep copy of a JSON value (dicts and lists copied, everything else shared).

    About 4x faster than ``copy.deepcopy`` on a session object with a few tools, which
    the emulator copies on every ``session.update`` and ``session.updated``.
    """
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [json_copy(item) for item in value]  # type: ignore[return-value]
    return value
