"""The curated public API of realtalk.audio."""

from __future__ import annotations

import inspect

from realtalk import audio


def test_all_names_exist_once() -> None:
    for name in audio.__all__:
        assert hasattr(audio, name), name
    assert len(set(audio.__all__)) == len(audio.__all__)


def test_every_public_callable_is_documented() -> None:
    for name in audio.__all__:
        obj = getattr(audio, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"realtalk.audio.{name} has no docstring"


def test_the_runtime_facing_api() -> None:
    expected = {
        "AudioSource",
        "DeviceInfo",
        "EchoGate",
        "MicrophoneSource",
        "OutputSink",
        "PlaybackTracker",
        "Resampler",
        "SpeakerSink",
        "WavFileSink",
        "WavFileSource",
        "default_devices_available",
        "devices_command",
        "g711_to_pcm24k",
        "list_devices",
        "pcm24k_to_g711",
        "read_wav",
        "resample",
        "resolve_device",
        "write_wav",
    }
    assert expected <= set(audio.__all__)
