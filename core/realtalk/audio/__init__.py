"""Audio building blocks: devices, capture, playback, tracking, WAV, resampling, G.711.

Everything works with PCM16 little-endian mono at 24 kHz (:data:`API_RATE`), the
Realtime API's ``audio/pcm`` format; :mod:`realtalk.audio.g711` converts to and from
``audio/pcmu``/``audio/pcma``. Importing this package does not load PortAudio:
sounddevice is imported only when a device is listed or opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from realtalk.audio.bridge import AudioOutput
from realtalk.audio.capture import AudioSource, MicrophoneSource, WavFileSource
from realtalk.audio.devices import (
    DeviceInfo,
    DeviceKind,
    audio_error,
    default_devices_available,
    list_devices,
    resolve_device,
)
from realtalk.audio.echo import ECHO_MODES, EchoGate, EchoMode
from realtalk.audio.g711 import (
    G711Decoder,
    G711Encoder,
    G711Law,
    alaw_decode,
    alaw_encode,
    g711_to_pcm24k,
    pcm24k_to_g711,
    ulaw_decode,
    ulaw_encode,
)
from realtalk.audio.playback import SILENCE_DBFS, OutputSink, SpeakerSink, WavFileSink, dbfs
from realtalk.audio.remote import RemoteSink
from realtalk.audio.resample import API_RATE, Resampler, resample
from realtalk.audio.tracker import ItemPlayback, PlaybackTracker
from realtalk.audio.wav import WavAudio, WavWriter, read_wav, write_wav

if TYPE_CHECKING:
    from realtalk.cli.commands import devices_command


def __getattr__(name: str) -> object:
    # `realtalk devices` lives with the other commands in realtalk.cli, which imports
    # this package: loaded on first use, so neither package half-imports the other.
    if name == "devices_command":
        from realtalk.cli.commands import devices_command

        return devices_command
    raise AttributeError(f"module 'realtalk.audio' has no attribute {name!r}")

__all__ = [
    "API_RATE",
    "ECHO_MODES",
    "SILENCE_DBFS",
    "AudioOutput",
    "AudioSource",
    "DeviceInfo",
    "DeviceKind",
    "EchoGate",
    "EchoMode",
    "G711Decoder",
    "G711Encoder",
    "G711Law",
    "ItemPlayback",
    "MicrophoneSource",
    "OutputSink",
    "PlaybackTracker",
    "RemoteSink",
    "Resampler",
    "SpeakerSink",
    "WavAudio",
    "WavFileSink",
    "WavFileSource",
    "WavWriter",
    "alaw_decode",
    "alaw_encode",
    "audio_error",
    "dbfs",
    "default_devices_available",
    "devices_command",
    "g711_to_pcm24k",
    "list_devices",
    "pcm24k_to_g711",
    "read_wav",
    "resample",
    "resolve_device",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
