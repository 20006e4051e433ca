"""Audio building blocks: WAV files, resampling, G.711, capture, playback, tracking."""

from __future__ import annotations

from realtalk.audio.g711 import (
    alaw_decode,
    alaw_encode,
    g711_to_pcm24k,
    pcm24k_to_g711,
    ulaw_decode,
    ulaw_encode,
)
from realtalk.audio.resample import API_RATE, Resampler, resample
from realtalk.audio.tracker import ItemPlayback, PlaybackTracker
from realtalk.audio.wav import WavAudio, WavWriter, read_wav, write_wav

__all__ = [
    "API_RATE",
    "ItemPlayback",
    "PlaybackTracker",
    "Resampler",
    "WavAudio",
    "WavWriter",
    "alaw_decode",
    "alaw_encode",
    "g711_to_pcm24k",
    "pcm24k_to_g711",
    "read_wav",
    "resample",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
