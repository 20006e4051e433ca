"""How much of each assistant item was received and how much was actually played.

The numbers come from the output side, never from the wall clock: a sink reports the
bytes it was given (:meth:`PlaybackTracker.add_received`) and the frames its output
callback actually consumed (:meth:`PlaybackTracker.add_played`). On barge-in the
runtime sends ``conversation.item.truncate`` with :meth:`PlaybackTracker.truncate_point`,
which is the played time clamped to what was received (the server rejects an
``audio_end_ms`` past the item's audio); ``None`` means nothing was heard and the caller
should delete the item instead.

Thread-safe: the output callback writes from the audio thread while the runtime reads
from the event loop. A sink that counts what was played lazily (the real-time
:class:`~realtalk.audio.playback.WavFileSink`) sets :attr:`PlaybackTracker.on_read`, which
the readers of played time call first, so they always see what was played up to now.

The tracker keeps the newest ``max_items`` items: a session of any length holds a bounded
number of counters (truncation only ever concerns the item playing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ItemPlayback", "PlaybackTracker"]


@dataclass(frozen=True)
class ItemPlayback:
    """A snapshot of one item's counters.

    Attributes:
        item_id: The assistant item id.
        received_ms: Audio received for the item, in ms.
        played_ms: Audio consumed by the output for the item, in ms.
    """

    item_id: str
    received_ms: int
    played_ms: int


class PlaybackTracker:
    """Per-item received and played audio, counted in 24 kHz samples.

    Args:
        rate: The rate received audio is counted at (the API's 24 kHz by default).
        bytes_per_sample: Bytes per received sample (2 for PCM16, 1 for G.711).
        max_items: Items kept; the oldest is forgotten when a new one would pass it.

    Attributes:
        on_read: Called (without the tracker's lock) before played time is read, by a
            sink that brings its counts up to date only when asked; None otherwise.
    """

    def __init__(self, rate: int = 24000, bytes_per_sample: int = 2, max_items: int = 256) -> None:
        if max_items < 1:
            raise ValueError(f"PlaybackTracker max_items must be at least 1, got {max_items}")
        self.rate = rate
        self.bytes_per_sample = bytes_per_sample
        self.max_items = max_items
        self.on_read: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._received: dict[str, int] = {}  # samples at self.rate
        self._played: dict[str, float] = {}  # samples at self.rate (fractional: resampling)

    # -- writers (sinks) ---------------------------------------------------------------

    def add_received(self, item_id: str, nbytes: int) -> None:
        """Record ``nbytes`` of audio received for ``item_id``."""
        with self._lock:
            if item_id not in self._played:
                self._add_item(item_id)
            self._received[item_id] = (
                self._received.get(item_id, 0) + nbytes // self.bytes_per_sample
            )

    def add_played(self, item_id: str, frames: float, rate: int | None = None) -> None:
        """Record ``frames`` consumed by the output for ``item_id``.

        Args:
            item_id: The item the frames belong to.
            frames: Frames consumed, at ``rate``.
            rate: The output's rate when it differs from the tracker's (a speaker that
                runs at 48 kHz reports 48 kHz frames); defaults to the tracker's rate.
        """
        scaled = frames if rate is None or rate == self.rate else frames * self.rate / rate
        with self._lock:
            if item_id not in self._played:
                self._add_item(item_id)
            self._played[item_id] += scaled

    def _add_item(self, item_id: str) -> None:
        # With the lock held. Every item has a played count; the oldest goes past the limit.
        self._played[item_id] = 0.0
        while len(self._played) > self.max_items:
            oldest = next(iter(self._played))
            del self._played[oldest]
            self._received.pop(oldest, None)

    def forget(self, item_id: str) -> None:
        """Drop an item's counters (after it was truncated or deleted)."""
        with self._lock:
            self._received.pop(item_id, None)
            self._played.pop(item_id, None)

    # -- readers (runtime) -------------------------------------------------------------

    def received_ms(self, item_id: str) -> int:
        """Milliseconds of audio received for ``item_id`` (0 if unknown)."""
        with self._lock:
            return self._received.get(item_id, 0) * 1000 // self.rate

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of ``item_id`` the output has consumed (0 if unknown)."""
        if self.on_read is not None:
            self.on_read()
        with self._lock:
            return int(self._played.get(item_id, 0.0) * 1000 // self.rate)

    def truncate_point(self, item_id: str) -> int | None:
        """The ``audio_end_ms`` to send in ``conversation.item.truncate``.

        Returns:
            Played milliseconds clamped to the milliseconds received, or ``None`` when
            nothing of the item was played (the caller should then send
            ``conversation.item.delete`` instead of a truncate).
        """
        if self.on_read is not None:
            self.on_read()
        with self._lock:
            played = int(self._played.get(item_id, 0.0) * 1000 // self.rate)
            received = self._received.get(item_id, 0) * 1000 // self.rate
        point = min(played, received)
        return point if point > 0 else None

    def snapshot(self) -> list[ItemPlayback]:
        """All (kept) items' counters, in the order they were first seen."""
        if self.on_read is not None:
            self.on_read()
        with self._lock:
            ids = list(dict.fromkeys([*self._received, *self._played]))
            return [
                ItemPlayback(
                    item_id=i,
                    received_ms=self._received.get(i, 0) * 1000 // self.rate,
                    played_ms=int(self._played.get(i, 0.0) * 1000 // self.rate),
                )
                for i in ids
            ]
