"""``realtalk run``: choose the mode from the options, then run the session.

Modes, in order of precedence:

- ``--text TEXT`` (repeatable): one turn per text, print the replies, exit.
- ``--input FILE.wav``: speak the file, wait for the replies, exit (``--output`` saves them).
- ``--chat``: an interactive text prompt (``/image PATH`` shows the agent an image).
- ``--image FILE`` (repeatable, with ``--text`` or ``--chat``): images put into the
  conversation before the first turn.
- otherwise voice (microphone and speaker) when audio devices exist; without them, the
  chat prompt when stdin is a terminal, else one clear error.

Text modes answer in text unless ``--output`` asks for audio.

However the run ends, the session is closed and ``--output``/``--record`` files are
complete: SIGTERM cancels the run as Ctrl-C does (exit 143), and so does a closed stdout
(``| head``, exit 141). In ``--text`` mode a last turn that failed or was cut short exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from ..exceptions import AudioDeviceError, ConfigError
from ..images import image_part
from ..pricing import PRICES
from ..results import SessionEvent
from ..runner import open_session, stream_audio_file
from . import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    stdout_closed,
)
from .console import ConsoleRenderer
from .interactive import chat, console_approver, voice
from .options import env_prices

__all__ = ["run_command"]


def _mode(args: argparse.Namespace) -> str:
    if args.text:
        return "text"
    if args.input is not None:
        return "file"
    if args.chat:
        return "chat"
    from ..audio import default_devices_available

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
    from ..audio import SpeakerSink, WavFileSink

    if args.output is not None:
        # Files are written as fast as audio arrives, except in voice mode where the
        # file stands in for a speaker and barge-in needs real playback timing.
        return WavFileSink(args.output, realtime=mode == "voice")
    if mode == "voice":
        return SpeakerSink(args.output_device)
    return None


class _Stop:
    """Ends the run cleanly on Ctrl-C, SIGTERM or a closed stdout: cancels the task and
    keeps the exit code. The first signal stops cleanly; a second one acts as if realtalk
    had not caught it (Ctrl-C raises KeyboardInterrupt, SIGTERM kills), for a stuck cleanup.
    """

    SIGNALS: ClassVar[dict[signal.Signals, int]] = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.code: int | None = None
        self._loop = asyncio.get_running_loop()
        self._handled: list[signal.Signals] = []
        for sig, code in self.SIGNALS.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on Windows
                self._loop.add_signal_handler(sig, self, code)
                self._handled.append(sig)

    def __call__(self, code: int) -> None:
        if self.code is None:
            self.code = code
            self.task.cancel()
            self.release()

    def release(self) -> None:
        """Give the signals back their default handling."""
        for sig in self._handled:
            self._loop.remove_signal_handler(sig)
        self._handled.clear()


def _quiet_on_closed_stdout(renderer: Callable[[SessionEvent], None], stop: _Stop) -> Callable[[SessionEvent], None]:
    def listener(event: SessionEvent) -> None:
        if stop.code is not None:
            return
        try:
            renderer(event)
        except BrokenPipeError:
            stdout_closed()
            stop(EXIT_BROKEN_PIPE)

    return listener


def _summary(renderer: ConsoleRenderer, stop: _Stop) -> None:
    """The session's total tokens and cost, however the run ends (not to a closed stdout)."""
    if stop.code == EXIT_BROKEN_PIPE:
        return
    try:
        renderer.summary()
    except BrokenPipeError:
        stdout_closed()
        if stop.code is None:  # not stop(): the run is over, there is nothing left to cancel
            stop.code = EXIT_BROKEN_PIPE


async def run_command(args: argparse.Namespace) -> int:
    """Run ``realtalk run`` with parsed arguments; returns the exit code.

    Returns:
        0; 1 when the last ``--text`` turn failed or is incomplete; 130 after Ctrl-C,
        143 after SIGTERM, 141 when stdout was closed (each after a clean shutdown).
    """
    return await until_stopped(lambda stop: _run(args, stop))


async def until_stopped(body: Callable[[_Stop], Awaitable[int]]) -> int:
    """Await ``body(stop)`` in the current task; when Ctrl-C, SIGTERM or a closed stdout
    stopped it (see :class:`_Stop`), return that exit code instead of the cancellation."""
    task = asyncio.current_task()
    assert task is not None
    stop = _Stop(task)
    try:
        return await body(stop)
    except asyncio.CancelledError:
        if stop.code is None:
            raise
        if sys.version_info >= (3, 11):
            task.uncancel()
        return stop.code
    finally:
        stop.release()


async def _run(args: argparse.Namespace, stop: _Stop) -> int:
    if args.scenario is not None and not args.emulator:
        print("realtalk: error: argument --scenario: only with --emulator (it scripts the built-in"
              " emulator's replies)", file=sys.stderr)
        return EXIT_USAGE
    prices = args.prices
    if prices is None:
        try:
            prices = env_prices()
        except ConfigError as exc:
            print(f"realtalk: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    mode = _mode(args)
    images = list(getattr(args, "image", None) or [])
    if images and mode not in ("text", "chat"):
        print("realtalk: error: argument --image: only with --text or --chat", file=sys.stderr)
        return EXIT_USAGE
    for image in images:  # checked before connecting: a bad file is one line, no session
        try:
            image_part(image)
        except ConfigError as exc:
            print(f"realtalk: error: argument --image: {exc}", file=sys.stderr)
            return EXIT_USAGE
    text_only = mode in ("text", "chat") and args.output is None
    renderer = ConsoleRenderer(json_lines=args.json, stream_deltas=mode == "chat" and not args.json,
                               prices=PRICES if prices is None else prices)
    output = _output_sink(args, mode)
    source = None
    gate = None
    code = 0
    if mode == "voice":
        from ..audio import EchoGate, MicrophoneSource

        source = MicrophoneSource(args.input_device)
        if args.echo is None:
            print("realtalk: warning: full duplex: with speakers the agent hears itself; wear"
                  " headphones, or use --echo half-duplex", file=sys.stderr)
        elif args.echo == "half-duplex" and output is not None:
            gate = EchoGate(output, "half-duplex")
    try:
        async with open_session(
            args.agent_path, agent=args.agent, url=args.url, azure=args.azure, model=args.model,
            beta=args.beta, emulator=args.emulator, scenario=args.scenario, fast=args.fast or mode != "voice",
            text_only=text_only, approve=_approver(args, mode), record=args.record,
            record_audio=args.record_audio, output=output, block_plugins=args.no_plugin,
            tool_files=args.tools, listeners=[_quiet_on_closed_stdout(renderer, stop)],
        ) as session:
            renderer.model = session.profile.model
            if mode in ("voice", "file") and session.agent.input_transcription is None:
                print("realtalk: warning: no input_audio_transcription in the agent: after a"
                      " reconnect the new session cannot be told what the user said", file=sys.stderr)
            for image in images:
                await session.send_image(image)
            if mode == "text":
                for text in args.text:
                    # Belt and braces: a stop is a cancellation, and code that swallows one
                    # (as asyncio.wait_for did before Python 3.12; realtalk uses
                    # realtalk.waits.within) must still not get another turn started.
                    if stop.code is not None:
                        return stop.code
                    turn = await session.ask(text, args.timeout)
                # The console has shown why; a script must see it in the exit code too.
                if turn.status in ("failed", "incomplete"):
                    code = EXIT_ERROR
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
        _summary(renderer, stop)
    return stop.code if stop.code is not None else code
