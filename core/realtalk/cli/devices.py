"""``realtalk devices``: list the audio devices PortAudio sees."""

from __future__ import annotations

import json
import sys

from ..audio.devices import list_devices
from ..exceptions import AudioDeviceError

__all__ = ["devices_command"]


def devices_command(json_output: bool = False) -> int:
    """Print the audio devices, one per line (or as JSON); return the exit code.

    Exit code 0 when at least one device exists; 1 (with one line on stderr saying what
    to do) when PortAudio is missing or finds no device.

    Args:
        json_output: Print a JSON array of device objects instead of a table.
    """
    try:
        devices = list_devices()
    except AudioDeviceError as exc:
        if json_output:
            print("[]")
        print(f"realtalk: {exc}", file=sys.stderr)
        return 1
    if json_output:
        print(json.dumps([d.to_dict() for d in devices], indent=2))
    else:
        for d in devices:
            flags = ("<" if d.is_default_input else " ") + (">" if d.is_default_output else " ")
            print(
                f"{flags} {d.index:3d}  {d.name}  ({d.hostapi}, "
                f"{d.max_input_channels} in, {d.max_output_channels} out, "
                f"{d.default_samplerate:g} Hz)"
            )
        if devices:
            print(
                "< default input, > default output; use --input-device/--output-device INDEX or NAME"
            )
    if not devices:
        print(
            "realtalk: no audio devices found: use --input/--output FILE.wav, or --text",
            file=sys.stderr,
        )
        return 1
    return 0
