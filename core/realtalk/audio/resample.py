"""Resampling to and from the Realtime API's 24 kHz PCM16, with soxr.

:class:`Resampler` is streaming: it keeps the filter state between chunks, so a signal
cut into arbitrary chunks comes out exactly as if it had been resampled in one piece
(no clicks or gaps at chunk edges). :func:`resample` is the one-shot form for whole
buffers such as a WAV file.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["API_RATE", "Resampler", "resample"]

API_RATE = 24000
"""The Realtime API's PCM16 sample rate in Hz."""

# soxr's "HQ" is transparent for speech and cheap enough for the audio callback rates
# we run (a 40 ms chunk takes tens of microseconds).
_QUALITY = "HQ"


def _to_int16(y: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    # soxr dithers when it outputs int16 (digital silence comes back as +-1 noise), so
    # we resample in float32 and round ourselves: silence stays silent, results are
    # deterministic.
    out: npt.NDArray[np.int16] = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    return out


def _as_int16(pcm: npt.ArrayLike | bytes) -> npt.NDArray[np.int16]:
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        return np.frombuffer(pcm, dtype="<i2")
    return np.asarray(pcm, dtype=np.int16)


def resample(
    samples: npt.ArrayLike | bytes, in_rate: int, out_rate: int = API_RATE
) -> npt.NDArray[np.int16]:
    """Resample a whole mono int16 buffer.

    Args:
        samples: int16 samples, or PCM16 little-endian bytes.
        in_rate: Rate of ``samples`` in Hz.
        out_rate: Wanted rate in Hz (24 kHz by default).

    Returns:
        int16 samples at ``out_rate`` (the input itself when the rates are equal).
    """
    x = _as_int16(samples)
    if in_rate == out_rate or len(x) == 0:
        same: npt.NDArray[np.int16] = x.copy()
        return same
    import soxr

    y = soxr.resample(x.astype(np.float32), in_rate, out_rate, quality=_QUALITY)
    return _to_int16(y)


class Resampler:
    """Streaming mono PCM16 resampler.

    Feed chunks of any size to :meth:`process` and get the resampled audio produced so
    far; call :meth:`flush` at the end of the stream to get the filter's tail. Not
    thread-safe: use one instance per stream from one thread at a time.

    Args:
        in_rate: Input rate in Hz.
        out_rate: Output rate in Hz (24 kHz by default).
    """

    def __init__(self, in_rate: int, out_rate: int = API_RATE) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: object | None = None
        self.reset()

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and audio is passed through unchanged."""
        return self.in_rate == self.out_rate

    def reset(self) -> None:
        """Drop the filter state (after an interruption, or between unrelated streams)."""
        if self.passthrough:
            self._stream = None
            return
        import soxr

        self._stream = soxr.ResampleStream(
            self.in_rate, self.out_rate, 1, dtype="float32", quality=_QUALITY
        )

    def process_array(self, samples: npt.ArrayLike | bytes) -> npt.NDArray[np.int16]:
        """Resample one chunk; returns the int16 samples ready so far (maybe none)."""
        x = _as_int16(samples)
        if self._stream is None:
            same: npt.NDArray[np.int16] = x.copy()
            return same
        y = self._stream.resample_chunk(x.astype(np.float32))  # type: ignore[attr-defined]
        return _to_int16(y)

    def process(self, pcm: bytes) -> bytes:
        """Resample one chunk of PCM16 LE bytes; returns PCM16 LE bytes ready so far."""
        return self.process_array(pcm).astype("<i2", copy=False).tobytes()

    def flush_array(self) -> npt.NDArray[np.int16]:
        """End the stream: return the remaining samples and reset for reuse."""
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        tail = self._stream.resample_chunk(  # type: ignore[attr-defined]
            np.zeros(0, dtype=np.float32), last=True
        )
        self.reset()
        return _to_int16(tail)

    def flush(self) -> bytes:
        """End the stream: return the remaining PCM16 LE bytes and reset for reuse."""
        return self.flush_array().astype("<i2", copy=False).tobytes()
