"""The server protocol's audio engine: :mod:`.audio`'s energy VAD and deterministic voice.

:class:`~.protocol.ServerProtocol` imports no numpy; it gets its detectors and its speech
from a :class:`ToneAudio` given by the caller. The voice is synthesized by
:func:`.audio.synthesize` one chunk at a time, as the response takes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..protocol import vocab
from .audio import CHARS_PER_SECOND, AudioFormat, SpeechEvent, Vad, synthesize
from .protocol import Detector, VadSettings

__all__ = ["ToneAudio"]


class _EnergyDetector:
    """A :class:`.audio.Vad` behind the protocol's :class:`~.protocol.Detector` interface."""

    def __init__(self, vad: Vad, fmt: AudioFormat) -> None:
        self.vad = vad
        self.format = fmt

    def feed(self, audio: bytes) -> Sequence[SpeechEvent]:
        return self.vad.feed(self.format.decode(audio))

    def reset_segment(self) -> None:
        self.vad.reset_segment()


class ToneAudio:
    """Energy VAD and a voice of soft tones, about 15 characters a second.

    Attributes:
        chars_per_second: How fast the voice speaks.
    """

    chars_per_second = CHARS_PER_SECOND

    def detector(self, settings: VadSettings, previous: Detector | None) -> Detector:
        """An energy VAD for ``settings``, continuing the audio clock of ``previous``."""
        fmt = AudioFormat.from_session(settings.format.ga_object())
        vad = Vad(
            rate=fmt.rate,
            threshold=settings.threshold,
            prefix_padding_ms=settings.prefix_padding_ms,
            silence_duration_ms=settings.silence_duration_ms,
        )
        if isinstance(previous, _EnergyDetector):
            vad.continue_clock(previous.vad)
        return _EnergyDetector(vad, fmt)

    def speech(self, text: str, fmt: vocab.AudioFormat, chunk_ms: int) -> Iterator[bytes]:
        """``text`` spoken in ``fmt``, in chunks of ``chunk_ms``, each made when taken."""
        return synthesize(text, AudioFormat.from_session(fmt.ga_object()), chunk_ms)
