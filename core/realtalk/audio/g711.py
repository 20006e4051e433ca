"""ITU-T G.711 mu-law and A-law on numpy arrays, plus 24 kHz PCM16 helpers.

G.711 itself has one implementation, in :mod:`realtalk.protocol.vocab` (ITU-exact, as in
the ITU-T G.191 reference and Sun's ``g711.c``: linear 0 encodes to ``0xFF`` in mu-law and
``0xD5`` in A-law). This module indexes its tables with numpy, for arrays and for the
client's audio path: the 64 Ki-entry encode table by the uint16 view of each sample, the
256-entry decode table by code.

Realtime sessions with ``audio/pcmu`` or ``audio/pcma`` carry 8 kHz G.711, one byte per
sample (so ``ms = bytes / 8``); :func:`pcm24k_to_g711` and :func:`g711_to_pcm24k` move
between that and the 24 kHz PCM16 used everywhere else in realtalk.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from ..protocol import vocab

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

# The tables come from the one G.711 implementation, realtalk.protocol.vocab (pure Python,
# ITU-exact); numpy only indexes them, which is what the client's audio path wants.
_ULAW_ENC = np.frombuffer(vocab.ulaw_encode_table(), dtype=np.uint8)
_ALAW_ENC = np.frombuffer(vocab.alaw_encode_table(), dtype=np.uint8)
_ULAW_DEC = np.array(vocab.ULAW_DECODE, dtype=np.int16)
_ALAW_DEC = np.array(vocab.ALAW_DECODE, dtype=np.int16)


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
