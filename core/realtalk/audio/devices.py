"""Audio devices through PortAudio: listing, choosing, and turning failures into one line.

This module (with the rest of :mod:`realtalk.audio`) is the only place that imports
sounddevice, and only inside functions: importing it loads PortAudio, which fails on a
machine without ``libportaudio2`` and scans the sound cards, neither of which a text
session or ``realtalk check`` should pay for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any, Literal

from realtalk.exceptions import AudioDeviceError

__all__ = [
    "DeviceInfo",
    "DeviceKind",
    "audio_error",
    "default_devices_available",
    "import_sounddevice",
    "list_devices",
    "resolve_device",
]

DeviceKind = Literal["input", "output"]

_HINT = {
    "input": "use --input FILE.wav, or --text",
    "output": "use --output FILE.wav, or --text",
}


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device.

    Attributes:
        index: PortAudio's device index (what ``--input 3`` means).
        name: The device name (``--input NAME`` matches a substring of it).
        hostapi: The host API, such as ``ALSA`` or ``Core Audio``.
        max_input_channels: Capture channels (0 for an output-only device).
        max_output_channels: Playback channels (0 for an input-only device).
        default_samplerate: The rate the device prefers, in Hz.
        is_default_input: True for the system's default input.
        is_default_output: True for the system's default output.
    """

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool
    is_default_output: bool

    def supports(self, kind: DeviceKind) -> bool:
        """True when the device has channels for ``kind``."""
        return (self.max_input_channels if kind == "input" else self.max_output_channels) > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)


def audio_error(exc: BaseException, kind: DeviceKind | None = None) -> AudioDeviceError:
    """Turn a PortAudio or sounddevice failure into a one-line :class:`AudioDeviceError`.

    Args:
        exc: What sounddevice raised (``OSError`` when the PortAudio library is missing,
            ``sounddevice.PortAudioError`` otherwise, e.g. "Error querying device -1").
        kind: Which side failed, to point at the right workaround.

    Returns:
        The error to raise (``raise audio_error(exc, "input") from None``).
    """
    text = " ".join(str(exc).split())  # PortAudio messages can span lines
    hint = _HINT[kind] if kind else "use --input/--output FILE.wav, or --text"
    what = f"{kind} audio device" if kind else "audio device"
    if isinstance(exc, OSError) and "PortAudio library not found" in text:
        return AudioDeviceError(
            f"PortAudio is not installed (apt-get install libportaudio2, "
            f"brew install portaudio); {hint}"
        )
    if "querying device -1" in text:
        return AudioDeviceError(f"no {what} found: {hint}")
    return AudioDeviceError(f"{what} failed: {text}; {hint}")


def import_sounddevice() -> ModuleType:
    """Import sounddevice (loading PortAudio), or raise a one-line AudioDeviceError."""
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise audio_error(exc) from None
    module: ModuleType = sounddevice
    return module


def list_devices() -> list[DeviceInfo]:
    """All PortAudio devices, in index order.

    Raises:
        AudioDeviceError: PortAudio is missing or failed.
    """
    sd = import_sounddevice()
    try:
        raw = sd.query_devices()
        apis = [api["name"] for api in sd.query_hostapis()]
        default_in, default_out = sd.default.device
    except sd.PortAudioError as exc:
        raise audio_error(exc) from None
    # sounddevice's default may be -1 (none) or a name; PortAudio's own default is in
    # each host API's record, which is what "default" means to the user.
    if default_in is None or default_in < 0 or default_out is None or default_out < 0:
        for api in sd.query_hostapis():
            if default_in is None or default_in < 0:
                default_in = api.get("default_input_device", -1)
            if default_out is None or default_out < 0:
                default_out = api.get("default_output_device", -1)
            break
    return [
        DeviceInfo(
            index=int(d["index"]),
            name=str(d["name"]),
            hostapi=apis[d["hostapi"]] if d["hostapi"] < len(apis) else str(d["hostapi"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_samplerate=float(d["default_samplerate"]),
            is_default_input=int(d["index"]) == default_in,
            is_default_output=int(d["index"]) == default_out,
        )
        for d in raw
    ]


def default_devices_available() -> tuple[bool, bool]:
    """Whether a default input and a default output device exist.

    Returns:
        ``(input_ok, output_ok)``; both false when PortAudio itself is missing.
    """
    try:
        devices = list_devices()
    except AudioDeviceError:
        return (False, False)
    return (
        any(d.is_default_input and d.supports("input") for d in devices),
        any(d.is_default_output and d.supports("output") for d in devices),
    )


def resolve_device(spec: int | str | None, kind: DeviceKind) -> DeviceInfo:
    """Find the device a user asked for.

    Args:
        spec: ``None`` (or ``""``/``"default"``) for the system default, an index (int
            or digits), or a case-insensitive substring of the name; an exact name wins
            over substring matches.
        kind: ``"input"`` or ``"output"``: the device must have channels for it.

    Returns:
        The device.

    Raises:
        AudioDeviceError: No such device, an ambiguous name, a device without channels
            for ``kind``, or no default device; one line saying what to do.
    """
    devices = list_devices()
    usable = [d for d in devices if d.supports(kind)]
    flag = "--input-device" if kind == "input" else "--output-device"
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "default")):
        for d in usable:
            if d.is_default_input if kind == "input" else d.is_default_output:
                return d
        raise AudioDeviceError(f"no {kind} audio device found: {_HINT[kind]}")
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        match = next((d for d in devices if d.index == index), None)
        if match is None:
            raise AudioDeviceError(
                f"no audio device with index {index} (there are {len(devices)}): "
                f"run `realtalk devices` to list them, or {_HINT[kind]}"
            )
        if not match.supports(kind):
            raise AudioDeviceError(
                f"audio device {index} ({match.name!r}) has no {kind} channels: "
                f"run `realtalk devices` and pick one for {flag}"
            )
        return match
    needle = spec.strip().lower()
    exact = [d for d in usable if d.name.lower() == needle]
    if exact:
        return exact[0]
    found = [d for d in usable if needle in d.name.lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise AudioDeviceError(
            f"no {kind} audio device matches {spec!r}: "
            f"run `realtalk devices` to list them, or {_HINT[kind]}"
        )
    names = ", ".join(f"{d.index}: {d.name!r}" for d in found[:5])
    raise AudioDeviceError(
        f"{spec!r} matches {len(found)} {kind} devices ({names}): "
        f"give more of the name or the index to {flag}"
    )
