"""``realtalk devices`` without PortAudio: the table, the JSON and the one-line errors.

The same command against real PortAudio on a fake ALSA card is tested in
``tests/audio/test_devices.py``, next to its fixtures.
"""

from __future__ import annotations

import json

import pytest
from realtalk import audio
from realtalk.audio import DeviceInfo
from realtalk.cli import devices, main
from realtalk.exceptions import AudioDeviceError

MIC = DeviceInfo(0, "USB mic", "ALSA", 1, 0, 48000.0, True, False)
SPEAKER = DeviceInfo(1, "speaker", "ALSA", 0, 2, 44100.0, False, True)


def test_the_audio_package_re_exports_the_command() -> None:
    assert audio.devices_command is devices.devices_command
    assert "devices_command" in audio.__all__


def test_table_marks_the_defaults(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(devices, "list_devices", lambda: [MIC, SPEAKER])
    assert main(["devices"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "<    0  USB mic  (ALSA, 1 in, 0 out, 48000 Hz)",
        " >   1  speaker  (ALSA, 0 in, 2 out, 44100 Hz)",
        "< default input, > default output; use --input-device/--output-device INDEX or NAME",
    ]


def test_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(devices, "list_devices", lambda: [MIC])
    assert devices.devices_command(json_output=True) == 0
    assert json.loads(capsys.readouterr().out) == [MIC.to_dict()]


def test_no_device_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(devices, "list_devices", list)
    assert main(["devices"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "realtalk: no audio devices found: use --input/--output FILE.wav, or --text\n"


def test_portaudio_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> list[DeviceInfo]:
        raise AudioDeviceError("PortAudio is not installed")

    monkeypatch.setattr(devices, "list_devices", fail)
    assert devices.devices_command(json_output=True) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("[]\n", "realtalk: PortAudio is not installed\n")
