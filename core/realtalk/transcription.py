"""Transcription-only sessions: audio in, text out, no agent and no replies.

:func:`transcribe` is the Python API (``realtalk transcribe`` is built on it)::

    async for transcript in transcribe("meeting.wav", language="en"):
        print(transcript.text)

It opens a connection with ``intent=transcription`` (OpenAI, any ``url``, or a built-in
emulator), configures a transcription session, streams a WAV file or the microphone, and
yields what the server transcribed, in the order it was spoken. The rules (what to send,
what each event means, commit order) are :mod:`realtalk.protocol.transcription`'s; this
module only moves data between the socket, the audio source and the caller.

Every wait after the input ends is bounded (``timeout``); the session's confirmation is
awaited at most ``setup_timeout``. From the microphone the run lasts until the caller
stops iterating (or the task is cancelled: Ctrl-C in the CLI).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .audio.capture import AudioSource
from .connection import ConnectionClosed, FrameTooLarge, RealtimeConnection, connect
from .exceptions import ConfigError, ServerRejected, SessionError
from .profiles import OPENAI_URL, ConnectionProfile
from .protocol.transcription import (
    DEFAULT_TRANSCRIPTION_MODEL,
    ServerError,
    Transcriber,
    Transcript,
    TranscriptionAction,
    TranscriptionOptions,
)
from .protocol.vocab import SERVER_VAD_DEFAULTS
from .waits import within

__all__ = ["transcribe", "transcription_profile", "transcription_stream"]

log = logging.getLogger(__name__)

MAX_RECONNECTS = 3
"""New connections allowed in a row, without a transcript in between, when one ends early."""

END_SILENCE_MARGIN_MS = 700
"""Silence added after a WAV file beyond the VAD's silence duration, so the last words
end a segment the way a pause would."""


def transcription_profile(*, url: str | None = None, api_key: str | None = None) -> ConnectionProfile:
    """Where a transcription session connects: OpenAI (``OPENAI_API_KEY``) or ``url``
    (``REALTALK_API_KEY``, if set), with ``intent=transcription`` in the query.

    Raises:
        AuthenticationFailed: OpenAI without a key.
        ConnectionFailed: ``url`` is not a WebSocket URL.
    """
    if url is None:
        # OpenAI's key rules; the query names the intent instead of a model.
        profile = ConnectionProfile.openai("", api_key)
        return dataclasses.replace(profile, ws_url=_with_intent(OPENAI_URL), model=None)
    # Never send an OpenAI key to an arbitrary server: custom URLs get their own variable.
    profile = ConnectionProfile.url(url, api_key=api_key or os.environ.get("REALTALK_API_KEY") or None)
    return dataclasses.replace(profile, ws_url=_with_intent(profile.ws_url))


def _with_intent(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("intent", "transcription")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _source(source: str | Path | AudioSource | None, options: TranscriptionOptions, *, realtime: bool,
            device: int | str | None) -> AudioSource:
    """The audio source: a WAV file (with trailing silence for the VAD), or the microphone."""
    from .audio import MicrophoneSource, WavFileSource

    if isinstance(source, AudioSource):
        return source
    if source is None:
        if options.turn_detection == "none":
            raise ConfigError("turn detection none commits the audio only at the end of a WAV file;"
                              " from the microphone use server_vad or semantic_vad")
        return MicrophoneSource(device)
    silence = 0
    if options.turn_detection != "none":
        # A pause as long as server_vad's; a segment still open after it is committed at the end.
        silence = options.silence_duration_ms or int(SERVER_VAD_DEFAULTS["silence_duration_ms"])
        silence += END_SILENCE_MARGIN_MS
    return WavFileSource(source, realtime=realtime, trailing_silence_ms=silence)


async def transcribe(
    source: str | Path | AudioSource | None = None,
    *,
    model: str = DEFAULT_TRANSCRIPTION_MODEL,
    language: str | None = None,
    prompt: str | None = None,
    turn_detection: str = "server_vad",
    options: TranscriptionOptions | None = None,
    url: str | None = None,
    api_key: str | None = None,
    emulator: bool | Any = False,
    scenario: str | Path | dict[str, Any] | None = None,
    device: int | str | None = None,
    realtime: bool = True,
    timeout: float = 60.0,
    setup_timeout: float = 10.0,
    partial: bool = False,
) -> AsyncGenerator[Any, None]:
    """Transcribe a WAV file or the microphone; yield transcripts in the order spoken.

    Args:
        source: A WAV file, an ``AudioSource``, or None for the default microphone.
        model: The transcription model (ignored when ``options`` is given).
        language: ISO-639-1 code of the spoken language (ignored with ``options``).
        prompt: Text that guides the model (ignored with ``options``).
        turn_detection: ``server_vad``, ``semantic_vad`` or ``none`` (ignored with
            ``options``; ``none`` only for a WAV file, committed whole at its end).
        options: Every setting (:class:`~realtalk.protocol.transcription.TranscriptionOptions`).
        url: Any server speaking the GA protocol, instead of OpenAI.
        api_key: Instead of ``OPENAI_API_KEY`` (``REALTALK_API_KEY`` with ``url``).
        emulator: True to start a built-in emulator, or a running ``Emulator`` to use.
        scenario: The built-in emulator's scenario (its audio turns' ``transcript``).
        device: The microphone (index or name), when ``source`` is None.
        realtime: Send a WAV file at real-time pace (False: as fast as possible).
        timeout: Seconds to wait for the last transcripts once the input has ended.
        setup_timeout: Seconds to wait for the server to confirm the session.
        partial: Also yield :class:`TranscriptDelta`, :class:`SpeakerSegment`, speech
            start and stop, and non-fatal :class:`ServerError` values as they come; by
            default only each segment's :class:`Transcript` (empty ones skipped).

    Yields:
        :class:`~realtalk.protocol.transcription.Transcript` values (and, with
        ``partial``, every other action).

    Raises:
        ConfigError: An option the server would refuse (one line naming it).
        ServerRejected: The server refused the session (e.g. a model it does not serve).
        SessionError: No confirmation within ``setup_timeout``, or transcripts still
            missing ``timeout`` seconds after the input ended.
        ConnectionFailed: The server could not be reached, or the connection ended
            :data:`MAX_RECONNECTS` times in a row (a connection that ends is replaced
            while there is input left; the segments under way on it come as failed).
    """
    options = options or TranscriptionOptions(model=model, language=language, prompt=prompt,
                                              turn_detection=turn_detection)
    options.check()
    audio = _source(source, options, realtime=realtime, device=device)

    async with contextlib.AsyncExitStack() as stack:
        if emulator is True:
            from .emulator import Emulator

            if scenario is None:
                log.warning("emulator: no scenario, so every segment is transcribed as empty text (give one"
                            " whose audio turns have a transcript: --scenario FILE, or scenario=...)")
            emu = Emulator(scenario=scenario, fast=True)
            await stack.enter_async_context(emu)
            url = emu.url
        elif emulator:
            url = emulator.url
        profile = transcription_profile(url=url, api_key=api_key)
        stack.push_async_callback(audio.aclose)
        async for action in transcription_stream(lambda: connect(profile), options, audio, timeout=timeout,
                                                 setup_timeout=setup_timeout):
            wanted = isinstance(action, Transcript) and bool(action.text or action.segments or not action.ok)
            if partial or wanted:
                yield action
            elif isinstance(action, ServerError):
                log.warning("server error: %s", action.message)


async def transcription_stream(
    open_connection: Callable[[], Awaitable[RealtimeConnection]],
    options: TranscriptionOptions,
    source: AudioSource,
    *,
    timeout: float = 60.0,
    setup_timeout: float = 10.0,
    max_reconnects: int = MAX_RECONNECTS,
) -> AsyncIterator[TranscriptionAction]:
    """Open a connection, configure the session, stream ``source``, yield every action in order.

    Ends when the input has ended and every committed segment is done. When the connection
    ends before that (a dropped socket, the session's expiry), the segments under way on it
    are yielded as failed, and, while there is input left, a new connection takes the rest
    (at most ``max_reconnects`` times in a row without a transcript in between).

    Raises:
        ServerRejected: The server refused the session configuration.
        SessionError: A wait ran out (see :func:`transcribe`).
        ConnectionFailed: No connection, or one ended too many times in a row.
    """
    audio = _Input(source)
    failures = 0
    while True:
        conn = await open_connection()
        transcriber = Transcriber(options)
        try:
            async for action in _session(conn, transcriber, audio, timeout=timeout, setup_timeout=setup_timeout):
                if isinstance(action, Transcript) and action.ok:
                    failures = 0
                yield action
            return
        except ConnectionClosed as exc:
            if isinstance(exc, FrameTooLarge):
                raise
            lost = transcriber.abandon(f"the connection ended before its transcript arrived ({exc})")
            for action in lost:
                yield action
            failures += 1
            if audio.ended or failures > max_reconnects:
                if audio.ended:
                    return
                raise
            log.warning("%s; reconnecting (segments under way: %d lost)", exc, len(lost))
        finally:
            await conn.close(timeout=2.0)


class _Input:
    """The audio source across connections: iterated by each connection's sender in turn."""

    def __init__(self, source: AudioSource) -> None:
        self.source = source
        self.ended = False


async def _session(
    conn: RealtimeConnection, transcriber: Transcriber, audio: _Input, *, timeout: float, setup_timeout: float,
) -> AsyncIterator[TranscriptionAction]:
    """One connection: configure, stream what is left of the input, read until finished."""
    await conn.send(transcriber.setup())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + setup_timeout
    while not transcriber.configured:
        try:
            event = await within(conn.recv(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise SessionError(f"{conn.profile.display_url} did not confirm the transcription session"
                               f" (session.updated) within {setup_timeout:g} s") from None
        for action in _checked(transcriber.receive(event)):
            yield action
    sender = asyncio.ensure_future(_send_audio(conn, transcriber, audio))
    receiving: asyncio.Future[dict[str, Any]] | None = None
    end: float | None = None
    try:
        while not transcriber.finished:
            if sender.done() and end is None:
                sender.result()  # the source or the socket failed: raise it here
                end = loop.time() + timeout
            if receiving is None:
                receiving = asyncio.ensure_future(conn.recv())
            waits: set[asyncio.Future[Any]] = {receiving} if sender.done() else {receiving, sender}
            done, _ = await asyncio.wait(waits, timeout=None if end is None else max(0.0, end - loop.time()),
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise SessionError(f"{transcriber.pending} segment(s) still without a transcript"
                                   f" {timeout:g} s after the input ended")
            if receiving in done:
                event, receiving = receiving.result(), None
                for action in _checked(transcriber.receive(event)):
                    yield action
                for outgoing in transcriber.events_to_send():
                    await conn.send(outgoing)
    finally:
        for task in (sender, receiving):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def _checked(actions: list[TranscriptionAction]) -> list[TranscriptionAction]:
    for action in actions:
        if isinstance(action, ServerError) and action.fatal:
            raise ServerRejected(action.message)
    return actions


async def _send_audio(conn: RealtimeConnection, transcriber: Transcriber, audio: _Input) -> None:
    """Append the rest of the input, then what :meth:`Transcriber.finish` says.

    Not ``async with`` the source: a connection that ends leaves it open for the next one.
    """
    if not audio.ended:
        async for chunk in audio.source:
            await conn.send(transcriber.append(base64.b64encode(chunk).decode("ascii")))
            # A source with audio always ready (a WAV with --fast, a device running ahead)
            # and a send that did not have to wait never yield: let the reader and the
            # keepalive in between chunks, or the server's pings go unanswered.
            await asyncio.sleep(0)
        audio.ended = True
    for event in transcriber.finish():
        await conn.send(event)
