"""Audio for the emulator: decoding, an energy VAD and a deterministic voice.

Formats, G.711 and the VAD defaults come from :mod:`realtalk.protocol.vocab`, as for the
client. Nothing here does I/O. The VAD maps the ``server_vad`` knobs onto frame energy:

* ``threshold`` (0..1) becomes an RMS level in dBFS, ``-70 + 60 * threshold``: the
  default 0.5 triggers at -40 dBFS (an int16 RMS of about 330), well below normal speech
  (-30..-15 dBFS) and well above digital silence or a quiet room (< -60 dBFS).
* ``prefix_padding_ms`` moves ``audio_start_ms`` back from the first loud frame.
* ``silence_duration_ms`` of consecutive quiet frames ends the speech segment.

The assistant's "voice" is a soft tone per character (pitch from the character, spaces
silent) at about 15 characters per second, so audio length follows the text. It is made
one chunk at a time, as the reply streams, never a whole reply at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..protocol import vocab

__all__ = [
    "CHARS_PER_SECOND",
    "AudioFormat",
    "SpeechEvent",
    "Vad",
    "encode",
    "synthesize",
    "threshold_dbfs",
]

CHARS_PER_SECOND = 15.0
_FRAME_MS = 10


class AudioFormat(vocab.AudioFormat):
    """A session audio format (:class:`realtalk.protocol.vocab.AudioFormat`) that decodes.

    Attributes:
        name: ``audio/pcm``, ``audio/pcmu`` or ``audio/pcma`` (also spelled :attr:`kind`).
        rate: Samples per second.
        width: Bytes per sample.
    """

    @classmethod
    def from_session(cls, fmt: dict[str, Any] | None) -> AudioFormat:
        """Build from a GA format object such as ``{"type": "audio/pcm", "rate": 24000}``.

        An unknown or missing format is PCM16 at 24 kHz (the session was validated before).
        """
        try:
            parsed = vocab.audio_format(fmt or None)
        except ValueError:
            parsed = vocab.PCM
        return cls(parsed.name, parsed.rate, parsed.width)

    @property
    def kind(self) -> str:
        """The GA name (:attr:`name`)."""
        return self.name

    def decode(self, data: bytes) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Decode to float samples in -1..1 (G.711 expanded per ITU-T G.711)."""
        if self.name == "audio/pcmu":
            data = vocab.ulaw_decode(data)
        elif self.name == "audio/pcma":
            data = vocab.alaw_decode(data)
        usable = len(data) - len(data) % 2
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.float64) / 32768.0


def threshold_dbfs(threshold: float) -> float:
    """The RMS level (dBFS) that a VAD ``threshold`` in 0..1 stands for."""
    return -70.0 + 60.0 * threshold


@dataclass(frozen=True)
class SpeechEvent:
    """A VAD transition.

    Attributes:
        kind: ``"started"`` or ``"stopped"``.
        ms: ``audio_start_ms`` (prefix padding applied) or ``audio_end_ms``, counted from
            the first audio of the connection.
    """

    kind: str
    ms: int


@dataclass
class Vad:
    """Frame-energy voice activity detection over a stream of appended audio.

    Feed decoded samples with :meth:`feed`; it returns the transitions found. The clock
    is the total audio appended on the connection, as the real server counts it.
    """

    rate: int
    threshold: float = vocab.LIVE_SERVER_VAD_DEFAULTS["threshold"]
    prefix_padding_ms: int = vocab.LIVE_SERVER_VAD_DEFAULTS["prefix_padding_ms"]
    silence_duration_ms: int = vocab.LIVE_SERVER_VAD_DEFAULTS["silence_duration_ms"]
    in_speech: bool = False
    _pending: np.ndarray[Any, np.dtype[np.float64]] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float64)
    )
    _frames_seen: int = 0
    _silent_ms: int = 0
    _last_voiced_end_ms: int = 0
    floor_ms: int = 0

    def feed(self, samples: np.ndarray[Any, np.dtype[np.float64]]) -> list[SpeechEvent]:
        """Consume samples; return the speech transitions they contain, in order."""
        events: list[SpeechEvent] = []
        frame = self.rate * _FRAME_MS // 1000
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        limit = 10 ** (threshold_dbfs(self.threshold) / 20.0)
        whole = len(buf) // frame * frame
        # Every whole frame's energy in one numpy call (a call per frame cost ten).
        frames = buf[:whole].reshape(-1, frame)
        levels = np.sqrt(np.mean(frames * frames, axis=1)).tolist() if whole else []
        for rms in levels:
            t0 = self._frames_seen * _FRAME_MS
            self._frames_seen += 1
            loud = rms >= limit
            if not self.in_speech and loud:
                self.in_speech = True
                self._silent_ms = 0
                self._last_voiced_end_ms = t0 + _FRAME_MS
                events.append(
                    SpeechEvent("started", max(self.floor_ms, t0 - self.prefix_padding_ms))
                )
            elif self.in_speech and loud:
                self._silent_ms = 0
                self._last_voiced_end_ms = t0 + _FRAME_MS
            elif self.in_speech:
                self._silent_ms += _FRAME_MS
                if self._silent_ms >= self.silence_duration_ms:
                    self.in_speech = False
                    events.append(SpeechEvent("stopped", self._last_voiced_end_ms))
        self._pending = buf[whole:]
        return events

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio analysed so far."""
        return self._frames_seen * _FRAME_MS

    def continue_clock(self, previous: Vad) -> None:
        """Take over ``previous``'s audio clock (after a turn_detection change)."""
        self._frames_seen = previous._frames_seen
        self.floor_ms = previous.position_ms

    def reset_segment(self) -> None:
        """Forget an unfinished segment (after ``input_audio_buffer.clear`` or a commit)."""
        self.in_speech = False
        self._silent_ms = 0
        self.floor_ms = self.position_ms


def encode(samples: np.ndarray[Any, np.dtype[np.float64]], fmt: vocab.AudioFormat) -> bytes:
    """Encode float samples as PCM16 or G.711 (the inverse of AudioFormat.decode)."""
    pcm = bytes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    if fmt.name == "audio/pcmu":
        return vocab.ulaw_encode(pcm)
    if fmt.name == "audio/pcma":
        return vocab.alaw_encode(pcm)
    return pcm


def synthesize(text: str, fmt: vocab.AudioFormat, chunk_ms: int = 100) -> Iterator[bytes]:
    """Deterministic audio for ``text``: one soft tone per character, 15 characters a second.

    The audio is made one chunk at a time, as it is taken, so a long reply is never
    synthesized whole; the chunks joined are the same bytes whatever ``chunk_ms``.

    Args:
        text: What the assistant "says".
        fmt: The session's output format.
        chunk_ms: Milliseconds of audio per chunk (the last one may be shorter).

    Yields:
        Audio bytes in ``fmt``, at least 100 ms in all.

    Raises:
        ValueError: ``chunk_ms`` is shorter than one sample.
    """
    chunk = fmt.rate * chunk_ms // 1000
    if chunk < 1:
        raise ValueError(f"chunk_ms={chunk_ms} is shorter than one sample at {fmt.rate} Hz")
    per_char = int(fmt.rate / CHARS_PER_SECOND)
    total = max(per_char * len(text), fmt.rate // 10)
    for start in range(0, total, chunk):
        end = min(start + chunk, total)
        out = np.zeros(end - start, dtype="<i2")
        # The characters this chunk overlaps; past the text (a short reply) is silence.
        for index in range(start // per_char, min(len(text), -(-end // per_char))):
            char = text[index]
            if char.isspace():
                continue
            samples = _tone(fmt.rate, 220.0 + (ord(char) % 32) * 15.0)
            lo = max(start, index * per_char)
            hi = min(end, (index + 1) * per_char)
            out[lo - start : hi - start] = samples[lo - index * per_char : hi - index * per_char]
        pcm = out.tobytes()
        if fmt.name == "audio/pcmu":
            yield vocab.ulaw_encode(pcm)
        elif fmt.name == "audio/pcma":
            yield vocab.alaw_encode(pcm)
        else:
            yield pcm


@lru_cache(maxsize=128)  # 32 pitches a rate
def _tone(rate: int, pitch: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    # One character's tone as PCM16 (what encode() makes of it: never clipped at 0.2).
    per_char = int(rate / CHARS_PER_SECOND)
    t = np.arange(per_char, dtype=np.float64) / rate
    # A short fade keeps the tone free of clicks between characters.
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) * 200.0)
    samples = 0.2 * envelope * np.sin(2 * np.pi * pitch * t)
    tone: np.ndarray[Any, np.dtype[np.int16]] = (samples * 32767).astype("<i2")
    tone.flags.writeable = False  # shared by every reply
    return tone
