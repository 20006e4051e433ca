"""Assistant audio for a remote player (a browser page, a phone call) that says what it played.

A terminal session plays through :class:`~realtalk.audio.playback.SpeakerSink`, whose
callback counts the frames the device consumed. A served session plays on the caller's
side: :class:`RemoteSink` sends every chunk at once (the player keeps its own jitter
buffer) and learns what was heard from the player's reports, so barge-in truncation is
as exact as the reports are frequent (the browser console reports every ~20 ms; a phone
call through Twilio echoes a ``mark`` after every 20 ms chunk).

Reports count samples per *epoch*. Epoch 0 starts with the session; each barge-in
(:meth:`RemoteSink.interrupt`) starts the next one and tells the player, through
``send_clear(epoch)``, to drop what it holds and count from 0 again. A report names its
epoch, so a late report about audio that was cleared is never mistaken for the new audio.
Within an epoch, samples are attributed to items in the order they were sent.

The sink never blocks and holds no thread: ``send_audio`` and ``send_clear`` must hand
the data to the transport's bounded queue and return. All methods are meant to be called
from the session's event loop.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from ..protocol.vocab import audio_format as parse_format
from ..waits import within
from .tracker import PlaybackTracker

__all__ = ["RemoteSink"]

MAX_SEGMENTS = 4096
"""Sent segments kept per epoch awaiting a played report (a segment is one delta, ~20-100 ms
of audio): about seven minutes of 100 ms deltas; the oldest are counted as played past it."""


class RemoteSink:
    """Assistant audio sent to a remote player that reports what it actually played.

    Args:
        send_audio: Called with each chunk of audio to send (the session's wire format:
            PCM16 LE 24 kHz, or G.711 bytes unchanged when ``audio_format`` is G.711).
        send_clear: Called with the new epoch when the player must drop its queued audio.
        audio_format: The format the player takes: ``audio/pcm`` (24 kHz PCM16) or
            ``audio/pcmu``/``audio/pcma`` (8 kHz G.711, passed through unchanged).

    Attributes:
        tracker: Received and played audio per item, in the player's samples.
        rate: Samples per second of the player's audio.
        bytes_per_sample: 2 for PCM16, 1 for G.711.
        passthrough: True when the session hands this sink wire bytes unchanged (G.711).
        epoch: The current epoch (0, then +1 per :meth:`interrupt`).
        sent_samples: Samples sent in the current epoch.
        played_samples: Samples the player reported played in the current epoch.
    """

    def __init__(self, send_audio: Callable[[bytes], None], send_clear: Callable[[int], None], *,
                 audio_format: str = "audio/pcm") -> None:
        fmt = parse_format(audio_format)
        self.audio_format = fmt.name
        self.passthrough = fmt.is_g711
        self.rate = 8000 if fmt.is_g711 else 24000
        self.bytes_per_sample = 1 if fmt.is_g711 else 2
        self.tracker = PlaybackTracker(self.rate, self.bytes_per_sample)
        self.epoch = 0
        self.sent_samples = 0
        self.played_samples = 0
        self._send_audio = send_audio
        self._send_clear = send_clear
        # (item_id, end sample) of each chunk sent in this epoch and not yet reported played.
        self._segments: collections.deque[tuple[str, int]] = collections.deque()
        self._attributed = 0  # samples of this epoch already counted in the tracker
        self._interrupted: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    # -- from the session ----------------------------------------------------------------

    def feed(self, item_id: str, data: bytes) -> None:
        """Send a chunk of ``item_id``'s audio now (counted as received at once).

        Audio of an item cut by :meth:`interrupt` is counted but not sent: deltas of a
        cancelled response still arrive after the barge-in.
        """
        if len(data) % self.bytes_per_sample:
            raise ValueError(f"PCM16 audio is 2 bytes per sample; got {len(data)} bytes for {item_id}")
        if self._closed:
            return
        self.tracker.add_received(item_id, len(data))
        if item_id in self._interrupted or not data:
            return
        self.sent_samples += len(data) // self.bytes_per_sample
        if len(self._segments) >= MAX_SEGMENTS:  # a player that never reports
            self._attribute(self._segments[0][1])
        self._segments.append((item_id, self.sent_samples))
        self._idle.clear()
        self._send_audio(data)

    def end_item(self, item_id: str) -> None:
        """The item's audio is complete (nothing to flush: every chunk was sent as it came)."""

    def interrupt(self) -> int:
        """Barge-in: tell the player to drop its queue, and start the next epoch.

        The tracker keeps what the newest report said was played, which is what the
        session truncates to. Audio fed later for the items that were sent in this epoch
        is not sent.

        Returns:
            Milliseconds of sent audio not reported played (dropped by the player, or
            played in the last instants before it heard of the barge-in).
        """
        dropped = self.sent_samples - self.played_samples
        self._interrupted.update(item for item, _ in self._segments)
        if len(self._interrupted) > 64:  # only the newest matter: deltas of a cut response
            self._interrupted = {item for item, _ in self._segments}
        self.epoch += 1
        self.sent_samples = self.played_samples = self._attributed = 0
        self._segments.clear()
        self._idle.set()
        if not self._closed:
            self._send_clear(self.epoch)
        return dropped * 1000 // self.rate

    # -- from the player -----------------------------------------------------------------

    def played(self, epoch: int, samples: int) -> None:
        """The player's report: ``samples`` played since ``epoch`` began (cumulative).

        Reports of an older epoch are ignored (the session has already truncated to the
        newest report of that epoch); a report past what was sent is clamped to it, and
        a report below an earlier one changes nothing.
        """
        if epoch != self.epoch or samples <= self.played_samples:
            return
        self.played_samples = min(samples, self.sent_samples)
        self._attribute(self.played_samples)
        if self.played_samples >= self.sent_samples:
            self._idle.set()

    def _attribute(self, upto: int) -> None:
        """Count samples up to ``upto`` of this epoch as played, item by item, in send order."""
        while self._segments and self._attributed < upto:
            item, end = self._segments[0]
            step = min(end, upto) - self._attributed
            self.tracker.add_played(item, step)
            self._attributed += step
            if self._attributed >= end:
                self._segments.popleft()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Nothing to open: the transport is the caller's connection."""

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until the player reported everything sent as played (or was cleared).

        Returns:
            True when it did, False when ``timeout`` passed first or the sink was closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed and self.played_samples < self.sent_samples:
            self._idle.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await within(self._idle.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return not self._closed

    def close(self) -> None:
        """Stop sending (idempotent); a waiting :meth:`drain` returns False."""
        self._closed = True
        self._idle.set()
