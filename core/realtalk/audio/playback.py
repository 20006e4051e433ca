"""Output sinks: where assistant audio goes (a speaker, or a WAV file).

Both sinks share one design. :meth:`OutputSink.feed` appends 24 kHz PCM16 for an
assistant item to a small jitter buffer; the output consumes frames from it at its own
pace: the PortAudio callback for :class:`SpeakerSink`; for :class:`WavFileSink` a clock
read lazily (``realtime=True``: whenever something happens or is asked, the sink plays
in one step everything the clock says is due since the last time) or the feed itself
(``realtime=False``). Every frame consumed is counted per item in a
:class:`~realtalk.audio.tracker.PlaybackTracker`, so the played time used for barge-in
truncation comes from the output, not an estimate.

:meth:`OutputSink.interrupt` takes the buffer's lock and empties it: once it returns, no
frame of the dropped audio can be consumed, and the tracker holds exactly what was
played. (A speaker still sounds what PortAudio already holds, at most
:attr:`SpeakerSink.latency_ms`.)

All public methods are thread-safe and never block on audio I/O, so they can be called
from an asyncio event loop; :meth:`OutputSink.drain` is a coroutine.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from realtalk.audio.devices import audio_error, import_sounddevice, resolve_device
from realtalk.audio.resample import API_RATE, Resampler
from realtalk.audio.tracker import PlaybackTracker
from realtalk.audio.wav import WavWriter
from realtalk.exceptions import AudioDeviceError

__all__ = ["SILENCE_DBFS", "OutputSink", "SpeakerSink", "WavFileSink", "dbfs"]

SILENCE_DBFS = -100.0
"""The level reported for digital silence."""


def dbfs(samples: npt.NDArray[np.int16]) -> float:
    """RMS level of int16 samples in dBFS (full-scale sine = -3 dBFS), floored at -100."""
    if len(samples) == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms < 1e-5 * 32768:
        return SILENCE_DBFS
    return 20.0 * math.log10(rms / 32768.0)


class _JitterBuffer:
    """Segments in, frames out, under one lock; records what is consumed per item.

    Playback starts once ``prebuffer`` frames are queued, or once the consumer has
    waited that many frames with something queued (a short last item must not wait for
    audio that will never come). After running dry it waits again, which absorbs
    network jitter without drifting the tracker (silence is not attributed to items).

    A queued segment is an ``(item_id, samples)`` tuple, and only the first one is ever
    partly played (``_head_pos``): tuples of a string and an array are untracked by the
    garbage collector, so audio waiting ~100 ms in the queue, which outlives young
    collections, does not fill the old generations and bring on full collections.
    """

    def __init__(self, rate: int, tracker: PlaybackTracker, prebuffer: int) -> None:
        self.rate = rate
        self.tracker = tracker
        self.prebuffer = prebuffer
        self.lock = threading.Lock()
        self.drained = threading.Condition(self.lock)
        self.sleepers = 0  # threads in wait_drained(): only then is `drained` notified
        self.level = SILENCE_DBFS
        self.meter = False  # measure the level of each block (costs a pass over it)
        self.frames_consumed = 0  # all frames consumed, silence included
        self._segments: deque[tuple[str, npt.NDArray[np.int16]]] = deque()
        self._head_pos = 0  # frames of the first segment already played
        self._queued = 0
        self._started = False
        self._waited = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def queued(self) -> int:
        return self._queued

    def push(self, item_id: str, data: npt.NDArray[np.int16]) -> None:
        if len(data) == 0:
            return
        with self.lock:
            self._segments.append((item_id, data))
            self._queued += len(data)

    def queued_items(self) -> set[str]:
        with self.lock:
            return {item_id for item_id, _ in self._segments}

    def take(self, n: int) -> tuple[list[npt.NDArray[np.int16]], int]:
        """Consume ``n`` frames: the audio comes first, the rest of the ``n`` is silence.

        Returns the audio as views of the queued arrays, in order (nothing is copied;
        queued arrays are never written to), and the number of audio frames.
        """
        pieces: list[npt.NDArray[np.int16]] = []
        k = 0
        with self.lock:
            if not self._started and self._queued:
                self._waited += n
                if self._queued >= self.prebuffer or self._waited >= self.prebuffer:
                    self._started = True
            if self._started:
                pos = self._head_pos
                while k < n and self._segments:
                    item_id, data = self._segments[0]
                    take = min(n - k, len(data) - pos)
                    pieces.append(data[pos : pos + take])
                    pos += take
                    k += take
                    self.tracker.add_played(item_id, take, self.rate)
                    if pos >= len(data):
                        self._segments.popleft()
                        pos = 0
                self._head_pos = pos
                self._queued -= k
                if not self._queued:
                    self._idle()
            self.frames_consumed += n
        return pieces, k

    def pull_into(self, out: npt.NDArray[np.int16]) -> int:
        """Fill ``out`` (audio first, then zeros); return the number of audio frames."""
        pieces, k = self.take(len(out))
        at = 0
        for piece in pieces:
            out[at : at + len(piece)] = piece
            at += len(piece)
        out[k:] = 0
        if self.meter:
            self.level = dbfs(out)
        return k

    def clear(self) -> int:
        """Drop everything queued; return the frames dropped."""
        with self.lock:
            dropped = self._queued
            self._segments.clear()
            self._head_pos = 0
            self._queued = 0
            self._idle()
            self.level = SILENCE_DBFS
        return dropped

    def add_waiter(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> bool:
        """Register an asyncio waiter for the next idle moment; False if idle already."""
        with self.lock:
            if not self._queued:
                return False
            self._waiters.append((loop, fut))
            return True

    def _idle(self) -> None:
        # Called with the lock held.
        self._started = False
        self._waited = 0
        if self.sleepers:
            self.drained.notify_all()
        waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


INTERRUPTED_KEPT = 64
"""Items cut by :meth:`OutputSink.interrupt` whose late audio is still ignored (the
newest ones: a cancelled response's deltas arrive within moments of the barge-in)."""


class OutputSink(ABC):
    """Where assistant audio is played; feed 24 kHz PCM16 per item.

    Args:
        rate: The rate the consumer runs at (audio is resampled from 24 kHz to it).
        tracker: Where received and played audio is counted; a new one if omitted.
        prebuffer_ms: Jitter buffer: audio to collect before playback (re)starts.
        autostart: Start the output on the first :meth:`feed`; with False audio
            queues until :meth:`start` (or :meth:`drain`).

    Attributes:
        tracker: The :class:`PlaybackTracker` counting received and played audio.
        rate: The output's sample rate.
        failed: Why the output stopped on its own (device gone, disk full), else None.
    """

    def __init__(
        self,
        rate: int,
        *,
        tracker: PlaybackTracker | None = None,
        prebuffer_ms: int = 0,
        autostart: bool = True,
    ) -> None:
        self.rate = rate
        self.autostart = autostart
        self.tracker = tracker if tracker is not None else PlaybackTracker()
        self._buffer = _JitterBuffer(rate, self.tracker, rate * prebuffer_ms // 1000)
        self._resampler = Resampler(API_RATE, rate)
        self._feed_lock = threading.Lock()  # the resampler is used by feeders only
        self._last_item: str | None = None
        self._interrupted: dict[str, None] = {}  # the newest INTERRUPTED_KEPT, in order
        self._started = False
        self._closed = False
        self.failed: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Open the output and start consuming. Idempotent; ``with sink:`` calls it.

        Raises:
            AudioDeviceError: The speaker cannot be opened.
            ConfigError: The output file cannot be written.
        """
        with self._feed_lock:
            if self._started:
                return
            if self._closed:
                return
            self._open()
            self._started = True

    def close(self) -> None:
        """Stop at once (queued audio is dropped; :meth:`drain` first to finish it)."""
        with self._feed_lock:
            if self._closed:
                return
            self._closed = True
        self._buffer.clear()
        if self._started:
            self._close()

    def __enter__(self) -> OutputSink:  # noqa: PYI034
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    def _after_feed(self) -> None:
        """Hook for sinks that consume on feed (WAV without real-time pacing)."""

    def _sync(self) -> None:
        """Hook: bring the buffer and the tracker up to date with the output's clock
        (a sink that computes what was played lazily does it here)."""

    def _seconds_to_idle(self) -> float | None:
        """Hook: when the queue will run dry if nothing more is fed, for a sink that
        has no consumer of its own to wake :meth:`drain`; None for the others."""
        return None

    # -- audio -------------------------------------------------------------------------

    def feed(self, item_id: str, pcm24k: bytes) -> None:
        """Queue PCM16 LE mono 24 kHz audio of assistant item ``item_id``.

        Counts it as received in the tracker at once. Starts the output if needed
        (unless ``autostart=False``: then audio waits until :meth:`start`). Audio of an item cut by
        :meth:`interrupt` is counted but never played: deltas of a cancelled response
        still arrive after the barge-in. Thread-safe, never blocks on I/O. After
        :meth:`close` it is ignored.
        """
        if len(pcm24k) % 2:
            raise ValueError(
                f"PCM16 audio is 2 bytes per sample; got {len(pcm24k)} bytes for {item_id}"
            )
        if self._closed:
            return
        if self.autostart and not self._started:
            self.start()
        self.tracker.add_received(item_id, len(pcm24k))
        with self._feed_lock:
            if item_id in self._interrupted:
                return
            if self._last_item is not None and item_id != self._last_item:
                self._push(self._last_item, self._resampler.flush_array())
            self._last_item = item_id
            self._push(item_id, self._resampler.process_array(pcm24k))
        self._after_feed()

    def _push(self, item_id: str, data: npt.NDArray[np.int16]) -> None:
        self._buffer.push(item_id, data)

    def end_item(self, item_id: str) -> None:
        """Say that ``item_id``'s audio is complete (``response.output_audio.done``).

        Pushes the resampler's last few samples of the item into the buffer; without
        it they would wait for the next item or :meth:`drain`. A no-op for devices
        running at 24 kHz.
        """
        with self._feed_lock:
            if self._last_item == item_id:
                self._push(item_id, self._resampler.flush_array())
                self._last_item = None
        self._after_feed()

    def interrupt(self) -> int:
        """Stop playback at once and drop all queued audio (barge-in).

        When this returns, no dropped frame can reach the output, and the tracker holds
        what was played; call ``tracker.truncate_point(item_id)`` next. Audio fed later
        for the items that were playing or queued is ignored (the server may still be
        sending the cancelled response); new items play normally.

        Returns:
            Milliseconds of audio dropped.
        """
        with self._feed_lock:
            cut = self._buffer.queued_items()
            if self._last_item is not None:
                cut.add(self._last_item)
            for item_id in cut:
                self._interrupted[item_id] = None
            while len(self._interrupted) > INTERRUPTED_KEPT:
                del self._interrupted[next(iter(self._interrupted))]
            self._resampler.reset()
            self._last_item = None
            dropped = self._buffer.clear()
        return dropped * 1000 // self.rate

    @property
    def is_playing(self) -> bool:
        """True while audio is queued or being played out."""
        self._sync()
        return self._buffer.queued > 0

    @property
    def queued_ms(self) -> int:
        """Milliseconds of audio waiting to be played."""
        self._sync()
        return self._buffer.queued * 1000 // self.rate

    @property
    def meter(self) -> bool:
        """Whether :attr:`level` is measured: off by default, since nothing reads it in
        most sessions and it costs a pass over every block (the echo gate turns it on)."""
        return self._buffer.meter

    @meter.setter
    def meter(self, on: bool) -> None:
        self._buffer.meter = on

    @property
    def level(self) -> float:
        """Level of the most recent output block in dBFS (-100 for silence), while
        :attr:`meter` is on."""
        self._sync()
        return self._buffer.level

    @property
    def frames_consumed(self) -> int:
        """Frames the output has consumed since start, silence included (at :attr:`rate`)."""
        self._sync()
        return self._buffer.frames_consumed

    def _flush_resampler(self) -> None:
        with self._feed_lock:
            if self._last_item is not None:
                self._push(self._last_item, self._resampler.flush_array())
            self._last_item = None

    async def drain(self) -> None:
        """Wait until everything fed so far has been played (or dropped).

        Starts the output if it was not started.
        """
        self.start()
        self._flush_resampler()
        self._after_feed()
        self._sync()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self._buffer.add_waiter(loop, fut):
            self._wake_when_idle(loop, fut)
            await fut

    def _wake_when_idle(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
        # For a sink without a consumer of its own: one timer at the moment the queue
        # runs dry; if more was fed meanwhile, the timer is set again for the new moment.
        if fut.done():
            return
        self._sync()  # resolves fut (through the buffer's idle waiters) if it ran dry
        delay = self._seconds_to_idle()
        if delay is not None and not fut.done():
            loop.call_later(delay, self._wake_when_idle, loop, fut)

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Blocking form of :meth:`drain` for threads; returns False on timeout."""
        self.start()
        self._flush_resampler()
        self._after_feed()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._sync()
            delay = self._seconds_to_idle()
            with self._buffer.drained:
                if self._buffer.queued == 0:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                waits = [w for w in (delay, left) if w is not None]
                self._buffer.sleepers += 1
                try:
                    self._buffer.drained.wait(min(waits) if waits else None)
                finally:
                    self._buffer.sleepers -= 1


class SpeakerSink(OutputSink):
    """Play through a sound device with a sounddevice ``RawOutputStream``.

    Opens the device at 24 kHz when it accepts that, else at its default rate (the
    audio is then resampled with soxr as it is fed); mono, or stereo with the same
    signal on both channels for devices that refuse mono.

    Args:
        device: Index, name substring, or ``None`` for the default output.
        tracker: Where played audio is counted.
        prebuffer_ms: Audio to collect before playback starts (absorbs jitter).
        block_ms: Callback period; the latency of :meth:`interrupt` is at most this
            plus the device's own buffer.
        rate: Force a device rate instead of choosing one.
        autostart: Open the device on the first :meth:`feed` (default), or only on
            :meth:`start`.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        tracker: PlaybackTracker | None = None,
        prebuffer_ms: int = 40,
        block_ms: int = 10,
        rate: int | None = None,
        autostart: bool = True,
    ) -> None:
        self.device = resolve_device(device, "output")
        self._sd = import_sounddevice()
        chosen, channels = _choose_output_format(self._sd, self.device.index, rate)
        super().__init__(chosen, tracker=tracker, prebuffer_ms=prebuffer_ms, autostart=autostart)
        self.channels = channels
        self.block_ms = block_ms
        self._stream: Any = None
        self._scratch = np.zeros(0, dtype=np.int16)
        self.callback_errors = 0
        self.underflows = 0

    @property
    def latency_ms(self) -> float:
        """The device's output latency (audio already handed over), in ms."""
        return float(self._stream.latency) * 1000 if self._stream is not None else 0.0

    def _open(self) -> None:
        sd = self._sd
        try:
            self._stream = sd.RawOutputStream(
                samplerate=self.rate,
                blocksize=max(1, self.rate * self.block_ms // 1000),
                device=self.device.index,
                channels=self.channels,
                dtype="int16",
                latency="low",
                callback=self._callback,
                finished_callback=self._on_finished,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise audio_error(exc, "output") from None

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.abort()  # stop now: close() means "no more sound"
            stream.close()

    def _on_finished(self) -> None:
        # PortAudio's thread, when the stream ends. If we did not close it, the device
        # went away: drop the queue so nobody waits in drain() for audio that cannot
        # play, and let the runtime see it in `failed`.
        if not self._closed:
            self.failed = f"output audio device {self.device.name!r} stopped"
            self._buffer.clear()

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: no allocation in the steady state, never raise
        # (an exception would abort the stream).
        try:
            if status.output_underflow:
                self.underflows += 1
            if len(self._scratch) != frames:
                self._scratch = np.zeros(frames, dtype=np.int16)
            self._buffer.pull_into(self._scratch)
            out = np.frombuffer(outdata, dtype=np.int16)
            if self.channels == 1:
                out[:] = self._scratch
            else:
                out.reshape(-1, self.channels)[:] = self._scratch[:, None]
        except Exception:  # noqa: BLE001 - keep the stream alive, output silence
            self.callback_errors += 1
            np.frombuffer(outdata, dtype=np.uint8)[:] = 0


def _choose_output_format(sd: Any, index: int, rate: int | None) -> tuple[int, int]:
    """Pick (rate, channels) the device accepts: 24 kHz mono preferred."""
    try:
        info = sd.query_devices(index)
    except sd.PortAudioError as exc:
        raise audio_error(exc, "output") from None
    rates = [rate] if rate else [API_RATE, int(info["default_samplerate"])]
    max_ch = int(info["max_output_channels"])
    for r in rates:
        for ch in (1, 2):
            if ch > max_ch:
                continue
            try:
                sd.check_output_settings(device=index, samplerate=r, channels=ch, dtype="int16")
            except sd.PortAudioError:
                continue
            return r, ch
    tried = " or ".join(str(r) for r in dict.fromkeys(rates))
    raise AudioDeviceError(
        f"output device {index} ({info['name']!r}) does not accept 16-bit audio at "
        f"{tried} Hz: pick another with --output-device"
    )


_SILENCE_BYTES = bytes(2 * API_RATE)  # one second of PCM16 silence, written in slices


class WavFileSink(OutputSink):
    """Write assistant audio to a PCM16 mono 24 kHz WAV file (``--output FILE.wav``).

    With ``realtime=True`` the sink plays at real-time pace, as a speaker would, so
    barge-in truncation behaves as with a speaker: it consumes one ``tick_ms`` block at
    each tick of its clock. It runs no thread and no timer for that: the blocks due
    since the last time are consumed in one step, and written to the file in bulk,
    whenever something happens or is asked (:meth:`feed`, :meth:`interrupt`,
    :meth:`close`, :attr:`is_playing`, :attr:`queued_ms`, :attr:`frames_consumed`,
    :attr:`level`, and the tracker's readers). Only :meth:`drain` sets a timer, one, for
    the moment the queue runs dry. The file's content is what a consumer pulling a block
    every ``tick_ms`` exactly on time would write. With ``realtime=False`` audio is
    consumed the moment it is fed (everything received counts as played).

    Args:
        path: The WAV file to write (replaced if it exists).
        tracker: Where played audio is counted.
        realtime: Consume at real-time pace (True) or instantly (False).
        tick_ms: The real-time output's block: what was played is counted in whole
            blocks (so :meth:`interrupt` keeps what was played to within one block).
        write_silence: Also write the silence between responses (a timeline of the
            session) instead of only the assistant's audio.
        autostart: Open the file on the first :meth:`feed` (default), or only on
            :meth:`start`.
        clock: The real-time clock, in seconds (``time.monotonic``); a test can pass
            its own to drive the sink without waiting.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        tracker: PlaybackTracker | None = None,
        realtime: bool = True,
        tick_ms: int = 10,
        write_silence: bool = False,
        autostart: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tick_ms <= 0:
            raise ValueError(f"WavFileSink tick_ms must be positive, got {tick_ms}")
        super().__init__(API_RATE, tracker=tracker, prebuffer_ms=0, autostart=autostart)
        self.path = Path(path)
        self.realtime = realtime
        self.tick_ms = tick_ms
        self.write_silence = write_silence
        self.clock = clock
        self._writer: WavWriter | None = None
        self._io_lock = threading.Lock()  # consume + write are one step w.r.t. interrupt()
        self._block = API_RATE * tick_ms // 1000
        self._running = False  # real time: the clock is counting
        self._clock_start = 0.0
        self._consumed = 0  # frames consumed since _clock_start (real-time mode)

    def _open(self) -> None:
        self._writer = WavWriter(self.path, self.rate)
        if not self.realtime:
            self._started = True  # (start() sets it too, after we return)
            self._after_feed()  # what was fed before start
        if self.realtime:
            self._clock_start = self.clock()
            self._consumed = 0
            self._running = True
            self.tracker.on_read = self._sync  # readers see what was played up to now

    def close(self) -> None:
        """Stop at once: what was played up to now is written, queued audio is dropped."""
        self._sync()
        super().close()

    def _close(self) -> None:
        with self._io_lock:
            self._running = False
            if self.tracker.on_read == self._sync:
                self.tracker.on_read = None
            writer, self._writer = self._writer, None
            if writer is not None:
                try:
                    writer.close()
                except OSError as exc:  # the last buffered bytes: the disk is full
                    self.failed = self.failed or f"cannot write {self.path}: {exc}"

    def interrupt(self) -> int:
        """Stop at once and drop queued audio; the file holds exactly what was played."""
        with self._io_lock:
            self._play_due()
            return super().interrupt()

    # -- real time: consumed lazily from the clock ----------------------------------------

    def _sync(self) -> None:
        if not self._running:
            return
        due = self._due()
        if due <= self._consumed:  # the common case: nothing new is due, no lock taken
            return
        with self._io_lock:
            self._play_due(due)

    def _due(self) -> int:
        """Frames the output has consumed by now: whole blocks since the clock started
        (a thousandth of a frame of slack, so that float rounding of a clock reading
        100.1 - 100.0 does not lose a block)."""
        frames = int((self.clock() - self._clock_start) * self.rate + 0.001)
        return frames - frames % self._block

    def _play_due(self, due: int | None = None) -> None:
        """Consume (and write) everything due by the clock; called with ``_io_lock`` held."""
        if not self._running:
            return
        if due is None:
            due = self._due()
        n = due - self._consumed
        if n <= 0:
            return
        pieces, k = self._buffer.take(n)
        self._consumed = due
        try:
            self._write(pieces, n - k)
        except (OSError, ValueError) as exc:  # disk full, file closed under us
            self.failed = f"cannot write {self.path}: {exc}"
            self._running = False
            self._buffer.clear()  # wake drain(): nothing more will play
            return
        if self._buffer.meter:
            self._buffer.level = self._last_block_level(pieces, n - k)

    def _write(self, pieces: list[npt.NDArray[np.int16]], silence: int) -> None:
        writer = self._writer
        if writer is None:
            return
        for piece in pieces:
            writer.write(piece.data.cast("B"))
        if self.write_silence:
            while silence > 0:
                chunk = min(silence, API_RATE)
                writer.write(memoryview(_SILENCE_BYTES)[: 2 * chunk])
                silence -= chunk

    def _last_block_level(self, pieces: list[npt.NDArray[np.int16]], silence: int) -> float:
        """The level of the last block consumed: audio, then ``silence`` zero frames."""
        audio = self._block - silence
        if audio <= 0 or not pieces:
            return SILENCE_DBFS
        tail = np.concatenate(pieces)[-audio:] if len(pieces) > 1 else pieces[0][-audio:]
        block = np.zeros(self._block, dtype=np.int16)
        block[: len(tail)] = tail
        return dbfs(block)

    def _seconds_to_idle(self) -> float | None:
        if not self._running:
            return None
        queued = self._buffer.queued
        if not queued:
            return 0.0
        blocks = -(-(self._consumed + queued) // self._block)  # the block it ends in
        at = self._clock_start + blocks * self._block / self.rate
        return max(0.0, at - self.clock()) + 0.0005  # (a hair late, never a hair early)

    def feed(self, item_id: str, pcm24k: bytes) -> None:
        """As :meth:`OutputSink.feed`; not in real time, the bytes go to the file as they are."""
        if self.realtime:
            if not self._started or self._closed or len(pcm24k) % 2:
                super().feed(item_id, pcm24k)  # (starts the output; refuses an odd length)
                return
            self.tracker.add_received(item_id, len(pcm24k))
            # 24 kHz in, 24 kHz out: the bytes are queued as they are, no resampler, no
            # copy (bytes never change, and the queue never writes to its arrays).
            data = np.frombuffer(pcm24k, dtype="<i2")
            with self._io_lock:
                self._play_due()  # what was due before this audio arrived
                if item_id in self._interrupted:
                    return
                self._last_item = item_id
                self._buffer.push(item_id, data)
            return
        if not self._started or self._writer is None or len(pcm24k) % 2:
            super().feed(item_id, pcm24k)  # (it also refuses an odd length)
            return
        if self._closed:
            return
        self.tracker.add_received(item_id, len(pcm24k))
        with self._feed_lock:
            if item_id in self._interrupted:
                return
            self._last_item = item_id  # 24 kHz in, 24 kHz out: the resampler holds nothing
            with self._io_lock:
                if self._writer is None:
                    return
                self._writer.write(pcm24k)
                frames = len(pcm24k) // 2
                self.tracker.add_played(item_id, frames)
                self._buffer.frames_consumed += frames
                if self._buffer.meter:
                    self._buffer.level = dbfs(np.frombuffer(pcm24k, dtype="<i2"))

    def _push(self, item_id: str, data: npt.NDArray[np.int16]) -> None:
        if self.realtime or not self._started or self._writer is None:
            super()._push(item_id, data)
            return
        # Not real time: what is fed is played at once, so it goes straight to the file
        # (no trip through the jitter buffer).
        with self._io_lock:
            if self._writer is not None and len(data):
                self._writer.write(data)
                self._buffer.tracker.add_played(item_id, len(data), self.rate)
                self._buffer.frames_consumed += len(data)
                if self._buffer.meter:
                    self._buffer.level = dbfs(data)

    def _after_feed(self) -> None:
        if self.realtime or not self._started:
            return
        with self._io_lock:
            while self._buffer.queued:
                n = self._buffer.queued
                pieces, k = self._buffer.take(n)
                if self._writer is not None:
                    self._write(pieces, n - k)
                if self._buffer.meter:
                    self._buffer.level = dbfs(np.concatenate(pieces)) if pieces else SILENCE_DBFS
