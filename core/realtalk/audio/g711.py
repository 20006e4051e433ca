"""ITU-T G.711 mu-law and A-law, vectorised with numpy, plus 24 kHz PCM16 helpers.

The codecs follow the ITU-T G.711 tables exactly, as implemented in the ITU-T G.191
reference (and Sun's widely used ``g711.c``): 16-bit input is reduced to 14 bits
(mu-law) or 13 bits (A-law) before segment search, so for example linear 0 encodes to
``0xFF`` in mu-law and ``0xD5`` in A-law. Encoding uses a 64 Ki-entry lookup table built
once from the reference algorithm; decoding a 256-entry table.

Realtime sessions with ``audio/pcmu`` or ``audio/pcma`` carry 8 kHz G.711, one byte per
sample (so ``ms = bytes / 8``); :func:`pcm24k_to_g711` and :func:`g711_to_pcm24k` move
between that and the 24 kHz PCM16 used everywhere else in realtalk.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "G711Decoder",
    "G711Encoder",
    "G711Law",
    "alaw_decode",
    "alaw_encode",
    "g711_to_pcm24k",
    "pcm24k_to_g711",
    "ulaw_decode",
    "ulaw_encode",
]

G711Law = Literal["pcmu", "pcma"]
"""``pcmu`` is mu-law (``audio/pcmu``), ``pcma`` is A-law (``audio/pcma``)."""

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 0x21  # clip, then add bias (0x84 >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag)  # first segment whose end >= mag
    code = (seg << 4) | ((mag >> (seg + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    table = (code ^ mask).astype(np.uint8)
    return np.roll(table, -32768)  # index by the uint16 view of the int16 sample


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag)
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((mag >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    table = (code ^ mask).astype(np.uint8)
    return np.roll(table, -32768)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t = t << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENC = _build_ulaw_encode()
_ALAW_ENC = _build_alaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_DEC = _build_alaw_decode()


def _as_int16(pcm: npt.ArrayLike | bytes) -> npt.NDArray[np.int16]:
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        return np.frombuffer(pcm, dtype="<i2")
    return np.asarray(pcm, dtype=np.int16)


def _as_uint8(codes: npt.ArrayLike | bytes) -> npt.NDArray[np.uint8]:
    if isinstance(codes, (bytes, bytearray, memoryview)):
        return np.frombuffer(codes, dtype=np.uint8)
    return np.asarray(codes, dtype=np.uint8)


def ulaw_encode(pcm: npt.ArrayLike | bytes) -> npt.NDArray[np.uint8]:
    """Encode int16 samples (array or PCM16 LE bytes) to G.711 mu-law codes."""
    return _ULAW_ENC[_as_int16(pcm).view(np.uint16)]


def alaw_encode(pcm: npt.ArrayLike | bytes) -> npt.NDArray[np.uint8]:
    """Encode int16 samples (array or PCM16 LE bytes) to G.711 A-law codes."""
    return _ALAW_ENC[_as_int16(pcm).view(np.uint16)]


def ulaw_decode(codes: npt.ArrayLike | bytes) -> npt.NDArray[np.int16]:
    """Decode G.711 mu-law codes (array or bytes) to int16 samples."""
    return _ULAW_DEC[_as_uint8(codes)]


def alaw_decode(codes: npt.ArrayLike | bytes) -> npt.NDArray[np.int16]:
    """Decode G.711 A-law codes (array or bytes) to int16 samples."""
    return _ALAW_DEC[_as_uint8(codes)]


def _check_law(law: str) -> None:
    if law not in ("pcmu", "pcma"):
        raise ValueError(f"G.711 law must be 'pcmu' or 'pcma', got {law!r}")


class G711Encoder:
    """Streaming 24 kHz PCM16 -> 8 kHz G.711, for the microphone in a G.711 session.

    Keeps the resampler's state between chunks, so chunk edges stay clean.

    Args:
        law: ``"pcmu"`` (mu-law) or ``"pcma"`` (A-law).
    """

    def __init__(self, law: G711Law) -> None:
        from realtalk.audio.resample import Resampler

        _check_law(law)
        self.law: G711Law = law
        self._resampler = Resampler(24000, 8000)
        self._encode = ulaw_encode if law == "pcmu" else alaw_encode

    def encode(self, pcm24k: bytes) -> bytes:
        """Convert one chunk; returns the G.711 bytes ready so far."""
        return self._encode(self._resampler.process_array(pcm24k)).tobytes()

    def flush(self) -> bytes:
        """End of stream: the resampler's tail, encoded."""
        return self._encode(self._resampler.flush_array()).tobytes()


class G711Decoder:
    """Streaming 8 kHz G.711 -> 24 kHz PCM16, for assistant audio in a G.711 session.

    Args:
        law: ``"pcmu"`` (mu-law) or ``"pcma"`` (A-law).
    """

    def __init__(self, law: G711Law) -> None:
        from realtalk.audio.resample import Resampler

        _check_law(law)
        self.law: G711Law = law
        self._resampler = Resampler(8000, 24000)
        self._decode = ulaw_decode if law == "pcmu" else alaw_decode

    def decode(self, codes: bytes) -> bytes:
        """Convert one chunk; returns the PCM16 LE bytes ready so far."""
        return self._resampler.process(self._decode(codes).astype("<i2").tobytes())

    def flush(self) -> bytes:
        """End of stream (or item): the resampler's tail."""
        return self._resampler.flush()

    def reset(self) -> None:
        """Drop the state (after a barge-in: the next audio is unrelated)."""
        self._resampler.reset()


def pcm24k_to_g711(pcm24k: bytes, law: G711Law) -> bytes:
    """Convert a whole 24 kHz PCM16 buffer to 8 kHz G.711 bytes (one-shot).

    For a live stream use :class:`G711Encoder`, so chunk edges stay clean.

    Args:
        pcm24k: PCM16 little-endian mono at 24 kHz.
        law: ``"pcmu"`` (mu-law) or ``"pcma"`` (A-law).

    Returns:
        G.711 codes at 8 kHz, one byte per sample.
    """
    from realtalk.audio.resample import resample

    _check_law(law)
    pcm8k = resample(_as_int16(pcm24k), 24000, 8000)
    enc = ulaw_encode if law == "pcmu" else alaw_encode
    return enc(pcm8k).tobytes()


def g711_to_pcm24k(codes: bytes, law: G711Law) -> bytes:
    """Convert a whole 8 kHz G.711 buffer to 24 kHz PCM16 bytes (one-shot).

    Args:
        codes: G.711 bytes at 8 kHz.
        law: ``"pcmu"`` (mu-law) or ``"pcma"`` (A-law).

    Returns:
        PCM16 little-endian mono at 24 kHz.
    """
    from realtalk.audio.resample import resample

    _check_law(law)
    dec = ulaw_decode if law == "pcmu" else alaw_decode
    return resample(dec(codes), 8000, 24000).astype("<i2").tobytes()
