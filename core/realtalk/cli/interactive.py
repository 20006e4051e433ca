"""The terminal front ends of ``realtalk run``: text chat, voice, and approval prompts.

Reading the terminal blocks, so every prompt runs in a worker thread; the session's
event loop keeps serving tools and audio meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..exceptions import ConfigError
from ..protocol.vocab import PCM
from ..session import ApprovalRequest, Session

__all__ = ["chat", "console_approver", "voice"]

CHAT_HELP = ("commands: /agent NAME (switch agent), /agent or /agents (list), /image PATH [QUESTION]"
             " (show the agent a PNG or JPEG), /quit; anything else is said to the agent")


async def _prompt(text: str, reader: Callable[[str], str]) -> str | None:
    try:
        if reader is input and sys.stdin.isatty():
            return await _terminal_input(text)
        return await asyncio.to_thread(reader, text)
    except EOFError:
        return None


async def _terminal_input(text: str) -> str:
    """``input(text)`` on a terminal, in a daemon thread.

    A prompt still waiting when the run is stopped (Ctrl-C, SIGTERM) must not hold the
    exit until someone presses Enter, as a worker of ``asyncio.to_thread`` would. On a
    terminal ``input`` reads through readline, not ``sys.stdin``'s buffer, so the thread
    left behind holds no lock the interpreter needs at exit.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def settle(line: str | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(line or "")

    def read() -> None:
        line: str | None = None
        error: BaseException | None = None
        try:
            line = input(text)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, line, error)

    threading.Thread(target=read, name="realtalk-prompt", daemon=True).start()
    return await answer


def console_approver(reader: Callable[[str], str] = input) -> Callable[[ApprovalRequest], Any]:
    """An approval callback that asks ``approve NAME(args)? [y/N]`` on the terminal."""

    async def approve(request: ApprovalRequest) -> bool:
        args = json.dumps(request.arguments, ensure_ascii=False)
        answer = await _prompt(f"approve {request.tool}({args}) for {request.agent}? [y/N] ", reader)
        return (answer or "").strip().lower() in {"y", "yes"}

    return approve


async def chat(session: Session, *, reader: Callable[[str], str] = input, out: TextIO | None = None) -> None:
    """An interactive prompt: each line is a user turn; ``/agent NAME`` switches agents
    (the new one greets, as after a handoff), ``/agent`` or ``/agents`` lists them.

    Ends at end of input or ``/quit``.
    """
    out = out or sys.stdout
    print(CHAT_HELP, file=out)
    while True:
        line = await _prompt("you> ", reader)
        if line is None or line.strip() in {"/quit", "/exit"}:
            return
        line = line.strip()
        if not line:
            continue
        command, _, name = line.partition(" ")
        if command in ("/agent", "/agents") and not name.strip():
            names = [f"{n}{' (active)' if n == session.agent.name else ''}" for n in session.graph.agents]
            print("agents: " + ", ".join(names) + "; switch with /agent NAME", file=out)
        elif command == "/agent":
            try:
                await session.switch_agent(name.strip())  # it greets, as after a handoff
            except ConfigError as exc:
                print(f"! {exc}", file=out)
        elif command == "/image":
            await _image(session, name, out)
        elif line.startswith("/"):
            print(f"! unknown command {line.split()[0]}; {CHAT_HELP}", file=out)
        else:
            await session.ask(line)


async def _image(session: Session, rest: str, out: TextIO) -> None:
    """``/image PATH [QUESTION]``: the image joins the conversation; a question is asked
    about it at once, without one the next line is (quote a path with spaces)."""
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        print(f"! /image: {exc}", file=out)
        return
    if not words:
        print("! /image needs a file: /image PATH [QUESTION]", file=out)
        return
    path, question = words[0], " ".join(words[1:])
    try:
        if question:
            await session.ask_image(path, question)
        else:
            await session.send_image(path)
            print(f"· image {path} added; ask about it", file=out)
    except ConfigError as exc:
        print(f"! {exc}", file=out)


async def voice(session: Session, source: Any, *, gate: Any | None = None, meter: bool = True,
                err: TextIO | None = None, reader: Callable[[str], str] = input) -> None:
    """Talk through a microphone until Ctrl-C (or the source ends).

    With server or semantic VAD the microphone streams continuously; with
    ``turn_detection: none`` Enter starts and stops each push-to-talk turn. Starting a turn
    interrupts the assistant (``response.cancel``, playback cut and truncated) and starts
    from an empty input buffer (``input_audio_buffer.clear``).

    Args:
        session: A started session.
        source: An ``AudioSource`` (microphone or WAV file).
        gate: An ``EchoGate`` for half-duplex use with speakers, or None.
        meter: Show a live input level meter on stderr.
        err: Where the meter goes.
        reader: Reads Enter presses (push-to-talk).
    """
    err = err or sys.stderr
    push_to_talk = session.agent.turn_detection is None
    talking = asyncio.Event()
    if not push_to_talk:
        talking.set()

    async def pump() -> None:
        # Never send faster than real time: an unclocked virtual device would otherwise
        # flood the server (a real microphone is never ahead of the clock).
        started = time.monotonic()
        sent_ms = 0.0
        async with source:
            async for chunk in source:
                sent_ms += len(chunk) / PCM.bytes_per_ms
                ahead = sent_ms / 1000 - (time.monotonic() - started)
                if ahead > 0.2:
                    await asyncio.sleep(ahead)
                if meter and err.isatty():
                    err.write("\r" + _meter(source.level_dbfs))
                    err.flush()
                if not talking.is_set():
                    continue
                # Gated chunks become silence, so the server's VAD timeline stays whole.
                await session.append_audio(gate.process(chunk) if gate is not None else chunk)

    task = asyncio.create_task(pump())
    try:
        if push_to_talk:
            print("push-to-talk: press Enter to talk, Enter again to send (Ctrl-D quits)", file=err)
            while not task.done():
                if await _prompt("", reader) is None:
                    break
                await push_to_talk_start(session)
                talking.set()
                if await _prompt("", reader) is None:
                    break
                talking.clear()
                # Not waiting for the reply: pressing Enter during it is a barge-in.
                await session.commit_audio()
        else:
            await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def push_to_talk_start(session: Session) -> None:
    """The user starts talking: stop the assistant (barge-in) and empty the input buffer."""
    await session.cancel_response()
    await session.clear_input_audio()


def _meter(level_dbfs: float, width: int = 30) -> str:
    filled = max(0, min(width, int((level_dbfs + 60) / 60 * width)))
    return f"mic [{'#' * filled}{' ' * (width - filled)}] {level_dbfs:6.1f} dBFS"
