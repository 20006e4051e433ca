"""``realtalk run``: choose the mode from the options, then run the session.

Modes, in order of precedence:

- ``--text TEXT`` (repeatable): one turn per text, print the replies, exit.
- ``--input FILE.wav``: speak the file, wait for the replies, exit (``--output`` saves them).
- ``--chat``: an interactive text prompt.
- otherwise voice (microphone and speaker) when audio devices exist; without them, the
  chat prompt when stdin is a terminal, else one clear error.

Text modes answer in text unless ``--output`` asks for audio.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .console import ConsoleRenderer
from .exceptions import AudioDeviceError
from .interactive import chat, console_approver, voice
from .runner import open_session, stream_audio_file

__all__ = ["run_command"]


def _mode(args: argparse.Namespace) -> str:
    if args.text:
        return "text"
    if args.input is not None:
        return "file"
    if args.chat:
        return "chat"
    from .audio import default_devices_available

    has_input, has_output = default_devices_available()
    if (has_input or args.input_device is not None) and (has_output or args.output_device is not None
                                                          or args.output is not None):
        return "voice"
    if sys.stdin.isatty():
        return "chat"
    raise AudioDeviceError(
        "no audio device found: use --input FILE.wav and --output FILE.wav, --text TEXT, or --chat")


def _approver(args: argparse.Namespace, mode: str) -> Any:
    choice = args.approve or ("ask" if mode in ("chat", "voice") and sys.stdin.isatty() else "none")
    if choice == "all":
        return lambda request: True
    if choice == "ask":
        return console_approver()
    return None


def _output_sink(args: argparse.Namespace, mode: str) -> Any:
    from .audio import SpeakerSink, WavFileSink

    if args.output is not None:
        # Files are written as fast as audio arrives, except in voice mode where the
        # file stands in for a speaker and barge-in needs real playback timing.
        return WavFileSink(args.output, realtime=mode == "voice")
    if mode == "voice":
        return SpeakerSink(args.output_device)
    return None


async def run_command(args: argparse.Namespace) -> int:
    """Run ``realtalk run`` with parsed arguments; returns the exit code."""
    mode = _mode(args)
    text_only = mode in ("text", "chat") and args.output is None
    renderer = ConsoleRenderer(json_lines=args.json, stream_deltas=mode == "chat" and not args.json)
    output = _output_sink(args, mode)
    source = None
    gate = None
    if mode == "voice":
        from .audio import EchoGate, MicrophoneSource

        source = MicrophoneSource(args.input_device)
        if args.echo is None:
            print("realtalk: warning: full duplex: with speakers the agent hears itself; wear"
                  " headphones, or use --echo half-duplex", file=sys.stderr)
        elif args.echo == "half-duplex" and output is not None:
            gate = EchoGate(output, "half-duplex")
    try:
        async with open_session(
            args.agent_path, agent=args.agent, url=args.url, azure=args.azure, model=args.model,
            beta=args.beta, emulator=args.emulator, fast=args.fast or mode != "voice",
            text_only=text_only, approve=_approver(args, mode), record=args.record,
            record_audio=args.record_audio, output=output, block_plugins=args.no_plugin,
            listeners=[renderer],
        ) as session:
            if mode in ("voice", "file") and session.agent.input_transcription is None:
                print("realtalk: warning: no input_audio_transcription in the agent: after a"
                      " reconnect the new session cannot be told what the user said", file=sys.stderr)
            if mode == "text":
                for text in args.text:
                    await session.ask(text, args.timeout)
            elif mode == "file":
                await stream_audio_file(session, args.input, realtime=not args.fast, timeout=args.timeout)
                if output is not None:
                    await output.drain()
            elif mode == "chat":
                await session.greet(args.timeout)
                await chat(session)
            else:
                await session.greet(args.timeout)
                await voice(session, source, gate=gate)
    finally:
        if output is not None:
            output.close()
    return 0
