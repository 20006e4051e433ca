"""Echo handling for a speaker and a microphone in the same room (``--echo``).

``headphones`` passes the microphone through untouched. ``half-duplex`` replaces mic
chunks with silence while the assistant is playing (and for a short tail after, for the
room's reverberation and the device's buffer), unless the mic is clearly louder than
the playback: level above the playback level plus ``margin_db``. That is a person
talking over the assistant, so the chunk passes and the server's VAD can detect the
barge-in; once open, the gate holds open for ``hold_ms`` so speech is not chopped
between syllables. Gated chunks are replaced by silence, not dropped, so the server's
audio timeline (``audio_start_ms``) stays continuous.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from realtalk.audio.playback import SILENCE_DBFS, dbfs
from realtalk.protocol.vocab import PCM

__all__ = ["ECHO_MODES", "EchoGate", "EchoMode", "PlaybackState"]

EchoMode = Literal["half-duplex", "headphones"]
ECHO_MODES: tuple[EchoMode, ...] = ("half-duplex", "headphones")


class PlaybackState(Protocol):
    """What the gate needs from an output sink (every OutputSink provides it)."""

    @property
    def is_playing(self) -> bool:
        """True while assistant audio is being played."""
        ...

    @property
    def level(self) -> float:
        """Recent output level in dBFS."""
        ...

    meter: bool
    """Whether ``level`` is measured (the gate turns it on)."""


class EchoGate:
    """Gate microphone chunks against the assistant's playback.

    Args:
        playback: The output sink being played to.
        mode: ``"half-duplex"`` or ``"headphones"`` (pass everything).
        margin_db: How far above the playback level the mic must be to pass.
        tail_ms: Keep gating this long after playback stops.
        hold_ms: Once a chunk passes during playback, pass this long after it.
        floor_dbfs: Mic chunks quieter than this never open the gate.
    """

    def __init__(
        self,
        playback: PlaybackState,
        mode: EchoMode = "half-duplex",
        *,
        margin_db: float = 6.0,
        tail_ms: int = 200,
        hold_ms: int = 500,
        floor_dbfs: float = -50.0,
    ) -> None:
        if mode not in ECHO_MODES:
            raise ValueError(f"echo mode must be one of {', '.join(ECHO_MODES)}, got {mode!r}")
        self.playback = playback
        self.mode: EchoMode = mode
        if mode != "headphones":
            playback.meter = True  # the gate compares the mic with the playback level
        self.margin_db = margin_db
        self.tail_ms = tail_ms
        self.hold_ms = hold_ms
        self.floor_dbfs = floor_dbfs
        self.gated_chunks = 0
        self.passed_over_playback = 0
        self._tail_left = 0.0
        self._hold_left = 0.0
        self._ref_db = SILENCE_DBFS

    def process(self, chunk: bytes) -> bytes:
        """Return ``chunk`` or silence of the same length.

        Args:
            chunk: PCM16 LE mono 24 kHz microphone audio.
        """
        if self.mode == "headphones":
            return chunk
        chunk_ms = len(chunk) / PCM.bytes_per_ms
        if self.playback.is_playing:
            self._tail_left = self.tail_ms
            self._ref_db = max(self.playback.level, SILENCE_DBFS)
        elif self._tail_left > 0:
            self._tail_left -= chunk_ms
        else:
            self._hold_left = 0.0
            return chunk
        mic_db = dbfs(np.frombuffer(chunk, dtype="<i2"))
        if mic_db >= self.floor_dbfs and mic_db >= self._ref_db + self.margin_db:
            self._hold_left = self.hold_ms
            self.passed_over_playback += 1
            return chunk
        if self._hold_left > 0:
            self._hold_left -= chunk_ms
            return chunk
        self.gated_chunks += 1
        return bytes(len(chunk))
