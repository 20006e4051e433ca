"""Read any common WAV file as mono PCM16, and write PCM16 mono WAV files.

The reader parses the RIFF chunks itself rather than using :mod:`wave`, because the
standard library (before 3.12) refuses ``WAVE_FORMAT_EXTENSIBLE`` and never reads IEEE
float or G.711 files, which is what many recorders and telephony tools produce.

Supported on input: integer PCM of 8 (unsigned), 16, 24 and 32 bits; IEEE float of 32
and 64 bits; G.711 mu-law and A-law; any sample rate; any channel count (downmixed to
mono by averaging). Everything else raises :class:`~realtalk.exceptions.ConfigError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from realtalk.audio import g711
from realtalk.exceptions import ConfigError

__all__ = ["WavAudio", "WavWriter", "read_wav", "write_wav"]

_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_ALAW = 0x0006
_FORMAT_MULAW = 0x0007
_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0055: "MP3",
    0x0092: "Dolby AC3",
}


@dataclass(frozen=True)
class WavAudio:
    """Decoded WAV contents.

    Attributes:
        samples: Mono int16 samples.
        rate: Sample rate of ``samples`` in Hz (the file's own rate).
        channels: Channel count of the file before downmixing.
        sample_width: Bytes per sample in the file (1, 2, 3, 4 or 8).
    """

    samples: npt.NDArray[np.int16]
    rate: int
    channels: int
    sample_width: int

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return len(self.samples) / self.rate


def _bad(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{what}: use a PCM WAV file (e.g. `sox in.mp3 -b 16 out.wav`)", file=path)


def read_wav(path: str | Path) -> WavAudio:
    """Read a WAV file as mono int16 at the file's own sample rate.

    Args:
        path: The WAV file.

    Returns:
        The decoded samples (multichannel input averaged to mono) and the file's rate.

    Raises:
        ConfigError: The file is missing, unreadable, not a WAV file, or in an
            unsupported encoding; the message names the file and what to do.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read WAV file: {exc.strerror or exc}; check the path", file=path
        ) from None
    if len(data) < 12 or data[0:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise _bad(path, "not a WAV file (no RIFF/WAVE header)")
    if data[0:4] == b"RIFX":
        raise _bad(path, "big-endian RIFX WAV files are not supported")

    fmt: bytes | None = None
    payload: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            # Some streaming writers leave the size as 0 or 0xFFFFFFFF: take the rest.
            payload = body if size not in (0, 0xFFFFFFFF) else data[pos + 8 :]
            if fmt is not None:
                break
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None or len(fmt) < 16:
        raise _bad(path, "WAV file has no valid 'fmt ' chunk")
    if payload is None:
        raise _bad(path, "WAV file has no 'data' chunk")

    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _FORMAT_EXTENSIBLE and len(fmt) >= 26:
        (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the SubFormat GUID
    if channels < 1 or rate < 1:
        raise _bad(path, f"WAV header says {channels} channels at {rate} Hz")
    width = block_align // channels if block_align else (bits + 7) // 8
    usable = len(payload) - len(payload) % (width * channels)
    raw = payload[:usable]
    samples = _decode(path, raw, tag, width, bits)
    frames = samples.reshape(-1, channels)
    mono = frames[:, 0] if channels == 1 else frames.mean(axis=1)
    out = np.clip(np.round(mono), -32768, 32767).astype(np.int16)
    return WavAudio(samples=out, rate=rate, channels=channels, sample_width=width)


def _decode(path: Path, raw: bytes, tag: int, width: int, bits: int) -> npt.NDArray[np.float64]:
    """Decode interleaved samples to float64 on the int16 scale."""
    if tag == _FORMAT_PCM:
        if width == 1:
            u8 = np.frombuffer(raw, dtype=np.uint8)
            return (u8.astype(np.float64) - 128.0) * 256.0
        if width == 2:
            return np.frombuffer(raw, dtype="<i2").astype(np.float64)
        if width == 3:
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            v = np.where(v & 0x800000, v - 0x1000000, v)
            return v.astype(np.float64) / 256.0
        if width == 4:
            return np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0
        raise _bad(path, f"unsupported PCM sample width of {width} bytes ({bits} bits)")
    if tag == _FORMAT_FLOAT:
        if width not in (4, 8):
            raise _bad(path, f"unsupported float sample width of {width} bytes")
        f = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
        return np.clip(f, -1.0, 1.0) * 32767.0
    if tag in (_FORMAT_MULAW, _FORMAT_ALAW) and width == 1:
        codes = np.frombuffer(raw, dtype=np.uint8)
        decoded = g711.ulaw_decode(codes) if tag == _FORMAT_MULAW else g711.alaw_decode(codes)
        return decoded.astype(np.float64)
    name = _FORMAT_NAMES.get(tag, f"format tag 0x{tag:04x}")
    raise _bad(path, f"unsupported WAV encoding ({name})")


def write_wav(path: str | Path, samples: npt.ArrayLike | bytes, rate: int = 24000) -> None:
    """Write mono PCM16 samples to a WAV file.

    Args:
        path: Where to write; an existing file is replaced.
        samples: int16 samples, or raw little-endian PCM16 bytes.
        rate: Sample rate in Hz.

    Raises:
        ConfigError: The file cannot be written.
    """
    with WavWriter(path, rate) as writer:
        writer.write(samples)


def _wav_header(rate: int, frames: int) -> bytes:
    """RIFF/WAVE header of PCM16 mono audio holding ``frames`` frames."""
    data = frames * 2
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 1,
                       rate, rate * 2, 2, 16, b"data", data)


class WavWriter:
    """Incremental PCM16 mono WAV writer (the header is finalised on :meth:`close`).

    Args:
        path: Where to write; an existing file is replaced.
        rate: Sample rate in Hz.

    Raises:
        ConfigError: The file cannot be created.
    """

    def __init__(self, path: str | Path, rate: int = 24000) -> None:
        self.path = Path(path)
        self.rate = rate
        self.frames_written = 0
        try:
            # Open the file ourselves: wave.open(path) leaves a half-built object whose
            # __del__ raises when the path is not writable.
            self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(
                f"cannot write WAV file: {exc.strerror or exc}; check the directory exists",
                file=self.path,
            ) from None
        # The canonical 44-byte PCM header, sizes patched on close: writing the frames
        # straight to the (buffered) file costs a fraction of wave.writeframesraw.
        self._file.write(_wav_header(rate, 0))

    def write(self, samples: npt.ArrayLike | bytes) -> None:
        """Append samples (int16 array or PCM16 little-endian bytes)."""
        if self._file is None:
            raise ValueError("WavWriter is closed")
        if isinstance(samples, (bytes, bytearray, memoryview)):
            data: bytes | memoryview = samples if isinstance(samples, (bytes, memoryview)) else bytes(samples)
        else:
            data = np.asarray(samples, dtype="<i2").tobytes()
        self._file.write(data)
        self.frames_written += len(data) // 2

    def close(self) -> None:
        """Finalise the header and close the file. Idempotent."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            if file.seekable():
                file.seek(0)
                file.write(_wav_header(self.rate, self.frames_written))
        finally:
            file.close()

    def __enter__(self) -> WavWriter:  # noqa: PYI034
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
