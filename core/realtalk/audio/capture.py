"""Input sources: async iterators of 24 kHz PCM16 mono chunks (a microphone or a WAV).

Every source yields chunks of exactly ``chunk_ms`` (20-100 ms, default 40) as PCM16
little-endian bytes at 24 kHz, ready for ``input_audio_buffer.append``, and exposes
:attr:`AudioSource.level_dbfs` for a level meter and the echo gate::

    async with MicrophoneSource() as mic:
        async for chunk in mic:
            ...

The microphone runs at the device's own rate: PortAudio's callback thread only copies
each block into a bounded deque and, when the event loop is waiting, wakes it with
``loop.call_soon_threadsafe``; resampling and re-chunking happen on the loop side,
so the callback never blocks and the loop never waits on audio I/O.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from realtalk.audio.devices import audio_error, import_sounddevice, resolve_device
from realtalk.audio.playback import SILENCE_DBFS, dbfs
from realtalk.audio.resample import API_RATE, Resampler, resample
from realtalk.audio.wav import read_wav
from realtalk.exceptions import AudioDeviceError

__all__ = ["AudioSource", "MicrophoneSource", "WavFileSource"]

_BYTES_PER_MS = API_RATE * 2 // 1000  # PCM16 mono at 24 kHz: 48 bytes per ms


def _check_chunk_ms(chunk_ms: int) -> int:
    if not 20 <= chunk_ms <= 100:
        raise ValueError(f"chunk_ms must be between 20 and 100, got {chunk_ms}")
    return chunk_ms


class AudioSource(ABC):
    """An async iterator of 24 kHz PCM16 mono chunks of :attr:`chunk_ms` each."""

    def __init__(self, chunk_ms: int) -> None:
        self.chunk_ms = _check_chunk_ms(chunk_ms)
        self.chunk_bytes = chunk_ms * _BYTES_PER_MS
        self._level = SILENCE_DBFS

    @property
    def level_dbfs(self) -> float:
        """Level of the most recent input, in dBFS (-100 for silence)."""
        return self._level

    async def start(self) -> None:
        """Open the source (idempotent; iteration starts it when needed)."""

    async def aclose(self) -> None:
        """Stop the source; iteration then ends."""

    def __aiter__(self) -> AudioSource:
        return self

    @abstractmethod
    async def __anext__(self) -> bytes: ...

    async def __aenter__(self) -> AudioSource:  # noqa: PYI034
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class WavFileSource(AudioSource):
    """Stream a WAV file as if it were a microphone (``--input FILE.wav``).

    The file is read and resampled to 24 kHz when the source is created, so a bad file
    fails before anything connects.

    Args:
        path: Any WAV file :func:`~realtalk.audio.wav.read_wav` reads.
        chunk_ms: Chunk length in ms (20-100).
        realtime: Pace chunks at real time (chunk ``n`` is yielded ``n * chunk_ms``
            after the first) like a microphone; False yields them as fast as they are
            consumed (``--fast``).
        trailing_silence_ms: Silence appended after the file so a server VAD sees the
            end of speech (rounded up to whole chunks).

    Raises:
        ConfigError: The file cannot be read or decoded.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        chunk_ms: int = 40,
        realtime: bool = True,
        trailing_silence_ms: int = 0,
    ) -> None:
        super().__init__(chunk_ms)
        self.path = Path(path)
        self.realtime = realtime
        wav = read_wav(self.path)
        pcm = resample(wav.samples, wav.rate, API_RATE)
        per_chunk = self.chunk_bytes // 2
        silence = -(-trailing_silence_ms // chunk_ms) * per_chunk
        total = -(-len(pcm) // per_chunk) * per_chunk + silence
        padded = np.zeros(total, dtype="<i2")
        padded[: len(pcm)] = pcm
        self._pcm = padded
        self.duration_ms = len(pcm) * 1000 // API_RATE
        self._pos = 0
        self._index = 0
        self._t0: float | None = None
        self._closed = False

    @property
    def total_chunks(self) -> int:
        """How many chunks the source yields, trailing silence included."""
        return len(self._pcm) * 2 // self.chunk_bytes

    async def aclose(self) -> None:
        """Stop early; iteration then ends."""
        self._closed = True

    async def __anext__(self) -> bytes:
        if self._closed or self._pos >= len(self._pcm):
            raise StopAsyncIteration
        if self.realtime:
            loop = asyncio.get_running_loop()
            if self._t0 is None:
                self._t0 = loop.time()
            delay = self._t0 + self._index * self.chunk_ms / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        n = self.chunk_bytes // 2
        chunk = self._pcm[self._pos : self._pos + n]
        self._pos += n
        self._index += 1
        self._level = dbfs(chunk)
        return chunk.tobytes()


class MicrophoneSource(AudioSource):
    """Capture from a sound device with a sounddevice ``RawInputStream``.

    Args:
        device: Index, name substring, or ``None`` for the default input.
        chunk_ms: Chunk length in ms (20-100).
        rate: Capture rate; the device's default rate if omitted (then resampled to
            24 kHz with soxr).
        max_queue_ms: Audio held for a consumer that falls behind; beyond it new
            blocks are dropped and counted in :attr:`dropped_ms`.

    Raises:
        AudioDeviceError: No such input device, or PortAudio is missing. Iteration
            raises it too if the device stops delivering audio (unplugged).
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        chunk_ms: int = 40,
        rate: int | None = None,
        max_queue_ms: int = 10_000,
    ) -> None:
        super().__init__(chunk_ms)
        self.device = resolve_device(device, "input")
        self._sd = import_sounddevice()
        self.rate = rate or int(self.device.default_samplerate)
        self.channels = 1
        self.max_queue_ms = max_queue_ms
        self.callback_errors = 0
        self._resampler = Resampler(self.rate, API_RATE)
        self._lock = threading.Lock()
        self._blocks: deque[bytes] = deque()
        self._queued_frames = 0
        self._dropped_frames = 0
        self._overflows = 0
        self._waiting = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._pending = bytearray()
        self._closed = False
        self._failed: str | None = None  # set when PortAudio ends the stream on its own

    @property
    def dropped_ms(self) -> int:
        """Input dropped because the consumer fell more than ``max_queue_ms`` behind."""
        return self._dropped_frames * 1000 // self.rate

    @property
    def overflows(self) -> int:
        """Times PortAudio reported an input overflow (audio lost in the driver)."""
        return self._overflows

    async def start(self) -> None:
        """Open and start the input stream.

        Raises:
            AudioDeviceError: The device cannot be opened.
        """
        if self._stream is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        sd = self._sd
        blocksize = max(1, self.rate * self.chunk_ms // 1000)
        last_error: Exception | None = None
        # Mono first; some hardware devices only open in stereo (we then downmix).
        for channels in (1, 2):
            if channels > self.device.max_input_channels:
                break
            try:
                stream = sd.RawInputStream(
                    samplerate=self.rate,
                    blocksize=blocksize,
                    device=self.device.index,
                    channels=channels,
                    dtype="int16",
                    callback=self._callback,
                    finished_callback=self._on_finished,
                )
            except sd.PortAudioError as exc:
                last_error = exc
                continue
            self.channels = channels
            try:
                stream.start()
            except sd.PortAudioError as exc:
                stream.close()
                raise audio_error(exc, "input") from None
            self._stream = stream
            return
        raise audio_error(last_error or RuntimeError("no channels"), "input")

    async def aclose(self) -> None:
        """Stop capturing; iteration ends after the chunks already captured."""
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.abort()
            stream.close()
        if self._wake is not None:
            self._wake.set()

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: copy, measure, hand over. Never block, never raise.
        try:
            if status.input_overflow:
                self._overflows += 1
            data = bytes(indata)
            self._level = dbfs(np.frombuffer(data, dtype=np.int16))
            wake = False
            with self._lock:
                if self._queued_frames * 1000 >= self.max_queue_ms * self.rate:
                    self._dropped_frames += frames
                    return
                self._blocks.append(data)
                self._queued_frames += frames
                if self._waiting:
                    self._waiting = False
                    wake = True
            if wake and self._loop is not None and self._wake is not None:
                self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop closed under us: the source is being torn down
            pass
        except Exception:  # noqa: BLE001 - an exception here would abort the stream
            self.callback_errors += 1

    def _on_finished(self) -> None:
        # PortAudio's thread, when the stream ends: by aclose(), or because the device
        # went away (unplugged, driver error). Wake the consumer either way.
        if self._closed:
            return
        self._failed = f"{self.device.name!r} stopped delivering audio"
        with self._lock:
            self._waiting = False
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass

    def _take_block(self) -> bytes | None:
        """The oldest captured block, or None (and arm the wake-up) when there is none.

        One block at a time: audio stays counted against ``max_queue_ms`` until the
        consumer needs it, so a consumer that falls behind, or a lost device, never
        sees more than the cap plus one block.
        """
        with self._lock:
            if self._blocks:
                block = self._blocks.popleft()
                self._queued_frames -= len(block) // (2 * self.channels)
                return block
            self._waiting = True
            if self._wake is not None:
                self._wake.clear()
            return None

    def _to_mono(self, data: bytes) -> npt.NDArray[np.int16]:
        x: npt.NDArray[np.int16] = np.frombuffer(data, dtype=np.int16)
        if self.channels == 1:
            return x
        mixed: npt.NDArray[np.int16] = np.round(x.reshape(-1, self.channels).mean(axis=1)).astype(
            np.int16
        )
        return mixed

    async def __anext__(self) -> bytes:
        if self._stream is None and not self._closed:
            await self.start()
        while len(self._pending) < self.chunk_bytes:
            block = self._take_block()
            if block is not None:
                self._pending += self._resampler.process(_le_bytes(self._to_mono(block)))
                continue
            if self._closed:
                raise StopAsyncIteration
            if self._failed is not None:
                raise AudioDeviceError(
                    f"input audio device {self._failed}: check the device, "
                    "or use --input FILE.wav, or --text"
                )
            assert self._wake is not None
            await self._wake.wait()
        chunk = bytes(self._pending[: self.chunk_bytes])
        del self._pending[: self.chunk_bytes]
        return chunk


def _le_bytes(samples: npt.NDArray[np.int16]) -> bytes:
    return samples.astype("<i2", copy=False).tobytes()
