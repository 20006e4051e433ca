"""``realtalk transcribe``: speech to text from the microphone or a WAV file, no agent.

What is shown (:class:`TranscriptPrinter`):

- on a terminal, each segment's text as it streams in, its line ended when the segment is
  done (the final transcript replaces the streamed text when they differ);
- piped, one line per finished segment (no partial text), so scripts read whole lines;
- with the diarizing model, one ``[SPEAKER] text`` line per speaker segment;
- ``--json``: every action as a JSON line (``transcript.delta``, ``transcript.segment``,
  ``transcript.done``, ``speech.started``, ``speech.stopped``, ``error``).

A segment the server could not transcribe and a server error that does not end the
session are one warning line each on stderr; a refused session, a bad WAV file or option
is one error line. Exit codes: 0; 1 when a segment of ``--wav`` could not be transcribed
or the session failed; 2 for a usage error; 130 Ctrl-C, 143 SIGTERM, 141 stdout closed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import IO, Any

from ..exceptions import ConfigError
from ..protocol.transcription import (
    DEFAULT_TRANSCRIPTION_MODEL,
    TRANSCRIPTION_MODELS,
    TURN_DETECTION_TYPES,
    ServerError,
    SpeakerSegment,
    Transcript,
    TranscriptDelta,
    TranscriptionAction,
    TranscriptionOptions,
)
from . import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_USAGE, stdout_closed

__all__ = ["TranscriptPrinter", "add_arguments", "transcribe_command"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``realtalk transcribe``."""
    from pathlib import Path

    from .options import non_negative_int, positive_seconds, readable_wav, websocket_url

    what = parser.add_argument_group("what to transcribe (default: the microphone, until Ctrl-C)")
    what.add_argument("--wav", type=readable_wav, metavar="FILE.wav", help="transcribe this WAV file, then exit")
    what.add_argument("--input-device", metavar="DEV", help="microphone (index or name; see realtalk devices)")
    what.add_argument("--fast", action="store_true", help="send --wav without real-time pacing")
    where = parser.add_argument_group("where to connect (default: OpenAI, OPENAI_API_KEY)")
    target = where.add_mutually_exclusive_group()
    target.add_argument("--emulator", action="store_true", help="start a built-in emulator (no key needed)")
    target.add_argument("--url", type=websocket_url,
                        help="any server speaking the GA Realtime protocol (ws:// or wss://; REALTALK_API_KEY)")
    where.add_argument("--scenario", type=Path, metavar="FILE",
                       help="with --emulator: the scenario whose audio turns give the transcripts")
    model = parser.add_argument_group("transcription")
    model.add_argument("--model", default=DEFAULT_TRANSCRIPTION_MODEL, metavar="MODEL",
                       help=f"{', '.join(TRANSCRIPTION_MODELS)} (default {DEFAULT_TRANSCRIPTION_MODEL})")
    model.add_argument("--language", metavar="CODE", help="ISO-639-1 code of the spoken language (en, de...)")
    model.add_argument("--prompt", metavar="TEXT", help="text that guides the model (vocabulary, style)")
    model.add_argument("--noise-reduction", choices=["near_field", "far_field"],
                       help="filter the input: near_field (headset) or far_field (laptop, room)")
    model.add_argument("--logprobs", action="store_true", help="ask for log probabilities (shown with --json)")
    turns = parser.add_argument_group("turn detection (where one segment ends)")
    turns.add_argument("--turn-detection", choices=TURN_DETECTION_TYPES, default="server_vad",
                       help="server_vad (default), semantic_vad, or none (--wav only: one segment)")
    turns.add_argument("--silence-ms", type=non_negative_int, metavar="MS",
                       help="server_vad: silence that ends a segment (500)")
    turns.add_argument("--prefix-padding-ms", type=non_negative_int, metavar="MS",
                       help="server_vad: audio kept before speech (300)")
    turns.add_argument("--threshold", type=float, metavar="X", help="server_vad: activation threshold, 0 to 1 (0.5)")
    turns.add_argument("--eagerness", choices=["low", "medium", "high", "auto"],
                       help="semantic_vad: how soon a segment ends")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print every event as a JSON line")
    out.add_argument("--timeout", type=positive_seconds, default=60.0, metavar="S",
                     help="seconds to wait for the last transcripts after the input ends (60)")


def options_from(args: argparse.Namespace) -> TranscriptionOptions:
    """The session options the command line asks for (not yet checked)."""
    return TranscriptionOptions(
        model=args.model, language=args.language, prompt=args.prompt, turn_detection=args.turn_detection,
        silence_duration_ms=args.silence_ms, prefix_padding_ms=args.prefix_padding_ms, threshold=args.threshold,
        eagerness=args.eagerness, noise_reduction=args.noise_reduction, logprobs=args.logprobs)


class TranscriptPrinter:
    """Shows transcription actions on a stream (stdout), warnings on ``errors`` (stderr).

    Args:
        out: Where transcripts go.
        errors: Where warnings go.
        json_lines: One JSON object per action.
        live: Stream partial text (a terminal); otherwise whole lines only.
    """

    def __init__(self, out: IO[str], errors: IO[str], *, json_lines: bool = False, live: bool = False) -> None:
        self.out = out
        self.errors = errors
        self.json_lines = json_lines
        self.live = live
        self.failed = 0
        self._open: str | None = None  # the item whose streamed text is on the current line
        self._open_text = ""

    def __call__(self, action: TranscriptionAction) -> None:
        """Show one action."""
        if isinstance(action, Transcript) and not action.ok:
            self.failed += 1
        if self.json_lines:
            self.out.write(json.dumps(_as_json(action), ensure_ascii=False) + "\n")
            self.out.flush()
            return
        if isinstance(action, TranscriptDelta) and self.live:
            self._delta(action)
        elif isinstance(action, SpeakerSegment):
            self._end_line()
            self.out.write(f"[{action.speaker}] {action.text.strip()}\n")
        elif isinstance(action, Transcript):
            self._done(action)
        elif isinstance(action, ServerError):
            self._end_line()
            self.errors.write(f"realtalk: warning: server error: {action.message}\n")
        self.out.flush()

    def close(self) -> None:
        """End a line left open by streamed text (the run was stopped mid-segment)."""
        self._end_line()
        self.out.flush()

    def _delta(self, action: TranscriptDelta) -> None:
        if self._open != action.item_id:
            self._end_line()
            self._open = action.item_id
            self._open_text = ""
            action = dataclasses.replace(action, text=action.text.lstrip())
        self._open_text += action.text
        self.out.write(action.text)

    def _done(self, action: Transcript) -> None:
        text = action.text.strip()
        if not action.ok:
            self._end_line()
            self.errors.write(f"realtalk: warning: a segment was not transcribed ({action.item_id}):"
                              f" {action.error}\n")
            return
        if action.segments:  # its speaker lines are shown
            self._end_line()
            return
        if self._open == action.item_id:
            streamed = self._open_text.strip()
            self._open = None
            if streamed == text:
                self.out.write("\n")
                return
            self.out.write("\r\033[K")  # the final transcript replaces the streamed text
        else:
            self._end_line()
        if text:
            self.out.write(text + "\n")

    def _end_line(self) -> None:
        if self._open is not None:
            self.out.write("\n")
            self._open = None


def _has_microphone() -> bool:
    from ..audio import default_devices_available

    return default_devices_available()[0]


def _as_json(action: TranscriptionAction) -> dict[str, Any]:
    data = dataclasses.asdict(action)
    return {"type": data.pop("type"), **data}


async def transcribe_command(args: argparse.Namespace) -> int:
    """Run ``realtalk transcribe`` with parsed arguments; returns the exit code."""
    from .run import until_stopped

    return await until_stopped(lambda stop: _transcribe(args, stop))


async def _transcribe(args: argparse.Namespace, stop: Any) -> int:
    if args.scenario is not None and not args.emulator:
        print("realtalk: error: argument --scenario: only with --emulator", file=sys.stderr)
        return EXIT_USAGE
    options = options_from(args)
    try:
        options.check()
        if args.wav is None and options.turn_detection == "none":
            raise ConfigError("--turn-detection none commits the audio only at the end of --wav FILE;"
                              " from the microphone use server_vad or semantic_vad")
    except ConfigError as exc:
        print(f"realtalk: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.wav is None and args.input_device is None and not _has_microphone():
        print("realtalk: error: no microphone found: transcribe a file with --wav FILE.wav, or name a device"
              " with --input-device (see realtalk devices)", file=sys.stderr)
        return EXIT_ERROR
    if options.deprecation is not None:
        print(f"realtalk: warning: {options.deprecation}", file=sys.stderr)
    from ..transcription import transcribe

    printer = TranscriptPrinter(sys.stdout, sys.stderr, json_lines=args.json,
                                live=not args.json and sys.stdout.isatty())
    actions = transcribe(args.wav, options=options, url=args.url, emulator=args.emulator, scenario=args.scenario,
                         device=args.input_device, realtime=not args.fast, timeout=args.timeout, partial=True)
    try:
        async for action in actions:
            try:
                printer(action)
            except BrokenPipeError:
                stdout_closed()
                return EXIT_BROKEN_PIPE
    finally:
        await actions.aclose()
        if stop.code != EXIT_BROKEN_PIPE:
            try:
                printer.close()
            except BrokenPipeError:
                stdout_closed()
    return EXIT_ERROR if printer.failed else 0
