"""Between a session and the sound: formats, playback, and what was heard at barge-in.

:class:`AudioBridge` is what :class:`~realtalk.session.Session` talks to. It converts the
session's wire format (``audio/pcm`` 24 kHz, or G.711 ``audio/pcmu``/``audio/pcma``) to and
from the 24 kHz PCM16 that sources and sinks use, feeds assistant audio to the sink, and
on barge-in stops playback at once and says how many milliseconds of which item were
actually played, from the sink's playback tracker (frames consumed, not wall-clock time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..protocol import codec
from ..protocol.vocab import audio_format as parse_format
from .g711 import G711Decoder, G711Encoder, G711Law
from .tracker import PlaybackTracker

__all__ = ["AudioBridge", "AudioOutput", "Interruption"]


class AudioOutput(Protocol):
    """What the bridge plays through: an :class:`~realtalk.audio.playback.OutputSink`
    (24 kHz PCM16 in), or a :class:`~realtalk.audio.remote.RemoteSink`, which takes G.711
    unchanged when its ``passthrough`` is true."""

    tracker: PlaybackTracker

    def feed(self, item_id: str, pcm24k: bytes) -> None: ...
    def end_item(self, item_id: str) -> None: ...
    def interrupt(self) -> int: ...


@dataclass(frozen=True)
class Interruption:
    """What barge-in cut off.

    Attributes:
        item_id: The assistant item that was playing.
        played_ms: Milliseconds of it the user heard, at most what was received.
        dropped_ms: Queued milliseconds that were never played.
    """

    item_id: str
    played_ms: int
    dropped_ms: int


class AudioBridge:
    """Audio in and out of one session.

    Args:
        output: Where assistant audio plays (or None to discard it).
        audio_format: The session's GA format type (``audio/pcm``, ``audio/pcmu``, ``audio/pcma``).
    """

    def __init__(self, output: AudioOutput | None, audio_format: str = "audio/pcm") -> None:
        self.output = output
        self._playing: str | None = None
        self._complete: str | None = None  # the playing item, once its audio is all received
        self._interrupted: set[str] = set()
        self.set_format(audio_format)

    def set_format(self, audio_format: str) -> None:
        """Switch the wire format (after a handoff to an agent with another format).

        Raises:
            ValueError: ``audio_format`` is not a Realtime audio format.
        """
        fmt = parse_format(audio_format)
        if getattr(self.output, "passthrough", False) and getattr(self.output, "audio_format", None) != fmt.name:
            raise ValueError(f"this output takes {getattr(self.output, 'audio_format', None)} unchanged,"
                             f" but the session's audio is {fmt.name}")
        self.audio_format = fmt.name
        law: G711Law | None = None
        if fmt.is_g711:
            law = "pcmu" if fmt.name == "audio/pcmu" else "pcma"
        self._encoder = G711Encoder(law) if law else None
        self._decoder = G711Decoder(law) if law else None

    # -- input ------------------------------------------------------------------------

    def encode_input(self, pcm24k: bytes) -> str:
        """24 kHz PCM16 from a source -> base64 audio for ``input_audio_buffer.append``."""
        data = self._encoder.encode(pcm24k) if self._encoder is not None else pcm24k
        return codec.b64encode(data)

    def wire_input_ms(self, data: bytes) -> float:
        """Milliseconds of ``data`` in the wire format (G.711: 8 bytes per ms; PCM16: 48)."""
        return len(data) / (8 if self._encoder is not None else 48)

    # -- output -----------------------------------------------------------------------

    def on_delta(self, item_id: str, delta_b64: str) -> None:
        """Play one ``response.output_audio.delta``.

        Audio of an item already interrupted is not played: the user has moved on.
        """
        if self.output is None or item_id in self._interrupted:
            return
        data = codec.b64decode(delta_b64)
        if self._decoder is not None and not getattr(self.output, "passthrough", False):
            data = self._decoder.decode(data)
        self._playing = item_id
        self.output.feed(item_id, data)

    def on_done(self, item_id: str) -> None:
        """``response.output_audio.done``: let the sink play out the item's tail now."""
        if self.output is not None and item_id not in self._interrupted:
            self.output.end_item(item_id)
            if item_id == self._playing:
                self._complete = item_id

    def interrupt(self) -> Interruption | None:
        """Barge-in: stop playback at once and drop queued audio.

        Returns:
            The item that was playing and how much of it was heard, or None when no
            assistant audio was playing, or the last item's audio was complete and all
            of it was heard (nothing to truncate). Otherwise the caller must send
            ``conversation.item.truncate`` (or delete the item when ``played_ms`` is 0).
        """
        if self.output is None or self._playing is None:
            return None
        item = self._playing
        self._playing = None
        tracker = self.output.tracker
        if item == self._complete and tracker.played_ms(item) >= tracker.received_ms(item):
            return None  # the user spoke after the whole reply was heard: nothing to cut
        dropped = self.output.interrupt()
        if self._decoder is not None:
            self._decoder.reset()
        self._interrupted.add(item)
        played = min(tracker.played_ms(item), tracker.received_ms(item))
        return Interruption(item, played, dropped)

    def stop(self) -> None:
        """Drop everything queued (the connection is being replaced)."""
        if self.output is not None:
            self.output.interrupt()
        self._playing = None
