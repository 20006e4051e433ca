"""Device listing and selection through real PortAudio on a fake ALSA card (see conftest)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from realtalk.audio import audio_error
from realtalk.exceptions import AudioDeviceError

LIST_SCRIPT = """
import json
from realtalk.audio import default_devices_available, list_devices
print(json.dumps({
    "devices": [d.to_dict() for d in list_devices()],
    "available": default_devices_available(),
}))
"""

RESOLVE_SCRIPT = """
import json
from realtalk.audio import resolve_device
from realtalk.exceptions import AudioDeviceError
out = {}
for spec, kind in [(None, "input"), (None, "output"), ("SPEAKER", "output"), ("fakemic", "input"),
                   ("default", "output"), (0, "output"), ("1", "input"), ("fake", "output"),
                   ("usb", "input"), (99, "output")]:
    try:
        out[f"{spec}/{kind}"] = resolve_device(spec, kind).name
    except AudioDeviceError as exc:
        out[f"{spec}/{kind}"] = "ERROR " + str(exc)
print(json.dumps(out))
"""


def test_lists_the_fake_card(fake_alsa) -> None:  # type: ignore[no-untyped-def]
    result = fake_alsa.run(LIST_SCRIPT)
    by_name = {d["name"]: d for d in result["devices"]}
    assert {"fakespeaker", "fakemic", "default"} <= set(by_name)
    default = by_name["default"]
    assert default["hostapi"] == "ALSA"
    assert default["is_default_input"] and default["is_default_output"]
    assert default["max_input_channels"] > 0 and default["max_output_channels"] > 0
    assert default["default_samplerate"] > 0
    assert not by_name["fakemic"]["is_default_input"]
    assert result["available"] == [True, True]


def test_resolve_by_default_index_and_name(fake_alsa) -> None:  # type: ignore[no-untyped-def]
    r = fake_alsa.run(RESOLVE_SCRIPT)
    assert r["None/input"] == "default"
    assert r["None/output"] == "default"
    assert r["SPEAKER/output"] == "fakespeaker"  # case-insensitive substring
    assert r["fakemic/input"] == "fakemic"
    assert r["default/output"] == "default"
    assert r["0/output"] == "fakespeaker"  # PortAudio indices, as `realtalk devices` prints
    assert r["1/input"] == "fakemic"
    assert r["fake/output"].startswith("ERROR 'fake' matches 2 output devices")
    assert "give more of the name or the index to --output-device" in r["fake/output"]
    assert r["usb/input"] == (
        "ERROR no input audio device matches 'usb': run `realtalk devices` to list them, "
        "or use --input FILE.wav, or --text"
    )
    assert r["99/output"].startswith("ERROR no audio device with index 99")


NO_DEVICE_SCRIPT = """
import asyncio, json
from realtalk.audio import MicrophoneSource, SpeakerSink, default_devices_available, resolve_device
from realtalk.exceptions import AudioDeviceError
out = {"available": default_devices_available()}
for name, make in [("resolve", lambda: resolve_device(None, "input")),
                   ("mic", lambda: MicrophoneSource()),
                   ("speaker", lambda: SpeakerSink())]:
    try:
        make()
        out[name] = "no error"
    except AudioDeviceError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def test_no_sound_card_gives_one_clear_line(no_sound_card) -> None:  # type: ignore[no-untyped-def]
    r = no_sound_card.run(NO_DEVICE_SCRIPT)
    assert r["available"] == [False, False]
    assert r["resolve"] == "no input audio device found: use --input FILE.wav, or --text"
    assert r["mic"] == "no input audio device found: use --input FILE.wav, or --text"
    assert r["speaker"] == "no output audio device found: use --output FILE.wav, or --text"


def test_devices_command_without_a_card(no_sound_card) -> None:  # type: ignore[no-untyped-def]
    proc = no_sound_card.run_raw(
        "import sys; from realtalk.audio import devices_command; sys.exit(devices_command(False))"
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("realtalk:")]
    assert ours == ["realtalk: no audio devices found: use --input/--output FILE.wav, or --text"]
    proc = no_sound_card.run_raw(
        "import sys; from realtalk.audio import devices_command; sys.exit(devices_command(True))"
    )
    assert proc.returncode == 1
    assert proc.stdout.strip() == "[]"


def test_devices_command_lists_the_fake_card(fake_alsa) -> None:  # type: ignore[no-untyped-def]
    proc = fake_alsa.run_raw(
        "import sys; from realtalk.audio import devices_command; sys.exit(devices_command(False))"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    default = next(ln for ln in lines if ln.endswith("Hz)") and " default " in ln)
    assert default.startswith("<>")  # default input and output
    assert "(ALSA, 128 in, 128 out, 44100 Hz)" in default
    assert any("fakespeaker" in ln for ln in lines)
    proc = fake_alsa.run_raw(
        "import sys; from realtalk.audio import devices_command; sys.exit(devices_command(True))"
    )
    assert proc.returncode == 0
    import json

    names = [d["name"] for d in json.loads(proc.stdout)]
    assert "fakemic" in names


def test_portaudio_failures_become_one_line() -> None:
    missing = audio_error(OSError("PortAudio library not found"), "input")
    assert isinstance(missing, AudioDeviceError)
    assert str(missing) == (
        "PortAudio is not installed (apt-get install libportaudio2, brew install portaudio); "
        "use --input FILE.wav, or --text"
    )
    nodev = audio_error(Exception("Error querying device -1"), "output")
    assert str(nodev) == "no output audio device found: use --output FILE.wav, or --text"
    other = audio_error(Exception("Invalid sample rate\n[PaErrorCode -9997]"), None)
    assert str(other) == (
        "audio device failed: Invalid sample rate [PaErrorCode -9997]; "
        "use --input/--output FILE.wav, or --text"
    )


def test_importing_the_package_does_not_load_portaudio() -> None:
    code = "import sys, realtalk.audio; print('sounddevice' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("kind", ["input", "output"])
def test_error_hint_names_the_right_flag(kind: str) -> None:
    err = audio_error(Exception("Error querying device -1"), kind)  # type: ignore[arg-type]
    assert f"--{kind} FILE.wav" in str(err)
