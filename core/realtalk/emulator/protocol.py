"""The emulator's server side without I/O: client events in, actions out.

:class:`ServerProtocol` is one emulated Realtime session, in the style of the
``websockets`` sans-I/O core: the caller feeds it what arrived and what time it is, and
takes the actions it decided on::

    protocol = ServerProtocol(model="gpt-realtime", progress=progress, audio=audio)
    protocol.receive_event({"type": "response.create"}, now)   # a decoded client event
    for action in protocol.actions_to_send():                   # Send(event) / Close(code)
        ...
    deadline = protocol.next_deadline()                         # call receive_tick then

It owns validation of client events, the session configuration, the conversation items,
VAD decisions, scenario steps, response building, usage estimates and ``error`` events
with the real codes. A response is a generator of steps: it runs until it has to wait
for the next audio chunk's moment, and :meth:`ServerProtocol.receive_tick` continues it.
Timers, pacing (or not), faults, sockets and recording belong to the caller
(:mod:`.adapter`). Numerical audio work (the energy VAD, the voice) comes in through an
:class:`AudioEngine` (:mod:`.voice` wraps :mod:`.audio`), so this module imports no
asyncio, websockets or numpy.
"""

from __future__ import annotations

import binascii
import heapq
import itertools
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pybase64

from ..protocol import codec
from ..protocol.vocab import (
    AudioFormat,
    audio_format,
    error_event,
    json_copy,
    new_id,
)
from .builders import (
    EVENT_FIELDS,
    RESPONSE_KEYS,
    SUPPORTED_TYPES,
    TRANSCRIPTION_SESSION_EVENTS,
    ClientError,
    check_event_id,
    duplicate_item,
    validate_item,
)
from .config import (
    SessionUpdateError,
    default_session,
    default_transcription_session,
    merge_session,
    reasoning_error,
    supports_reasoning,
    validate_session_update,
    validate_transcription_update,
)
from .hosted import McpRequest, McpResult, allowed, mcp_servers, server_key, unreachable
from .requests import check_response_params, item_text, response_input
from .responses import DEFAULT_AUDIO_SPEED, ActiveResponse, Responder, Speech
from .state import ScenarioProgress, UserInput
from .transcripts import transcription_events

__all__ = [
    "DEFAULT_TRANSCRIPTION_DELAY",
    "Action",
    "AudioEngine",
    "Close",
    "Detector",
    "McpRequest",
    "Send",
    "ServerProtocol",
    "SpeechChange",
    "VadSettings",
    "decode_frame",
]

_log = logging.getLogger("realtalk.emulator")

MAX_KEPT_INPUT_AUDIO = 2_880_000
"""Bytes of committed input audio a session keeps for ``conversation.item.retrieve``
(60 s of PCM16 at 24 kHz): the newest items' audio, the oldest let go first. Assistant
audio items share the budget."""

DEFAULT_TRANSCRIPTION_DELAY = 0.5
"""Seconds from a commit to its input transcription events, by default: the live server
transcribes asynchronously, so the transcript usually arrives after the response to the
same audio has started."""

# -- actions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send this server event now (it already has its ``event_id``).

    Attributes:
        event: The server event.
    """

    event: dict[str, Any]


@dataclass(frozen=True)
class Close:
    """Close the WebSocket with this code; nothing follows it.

    Attributes:
        code: The close code (1000 normal, 1001 going away after ``session_expired``).
        reason: The close reason.
    """

    code: int
    reason: str = ""


Action = Send | Close | McpRequest
"""What the caller performs: send an event, close, or talk to a hosted MCP server
(:class:`.hosted.McpRequest`; its answer comes back through
:meth:`ServerProtocol.receive_mcp_result`)."""


# -- the audio engine ------------------------------------------------------------------


class SpeechChange(Protocol):
    """A VAD transition: ``kind`` is ``"started"`` or ``"stopped"``, ``ms`` its time."""

    @property
    def kind(self) -> str:
        """``"started"`` or ``"stopped"``."""

    @property
    def ms(self) -> int:
        """``audio_start_ms`` (padding applied) or ``audio_end_ms``."""


class Detector(Protocol):
    """Voice activity detection over the connection's appended audio."""

    def feed(self, audio: bytes) -> Sequence[SpeechChange]:
        """Consume appended audio (session input format); return its transitions."""

    def reset_segment(self) -> None:
        """Forget an unfinished segment (after a commit or a clear)."""


@dataclass(frozen=True)
class VadSettings:
    """What the session's ``turn_detection`` asks of the detector.

    Attributes:
        format: The session's input audio format.
        threshold: Energy threshold, 0..1.
        prefix_padding_ms: Audio kept before the first loud frame.
        silence_duration_ms: Quiet time that ends a segment.
    """

    format: AudioFormat
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int


class AudioEngine(Speech, Protocol):
    """The numerical audio work the protocol needs, supplied by the caller: the voice
    (:class:`.responses.Speech`) and voice activity detection."""

    def detector(self, settings: VadSettings, previous: Detector | None) -> Detector:
        """A detector for ``settings`` that continues ``previous``'s audio clock, if any."""


# -- the protocol ----------------------------------------------------------------------


class ServerProtocol:
    """One emulated Realtime session, without I/O.

    The first action is ``session.created``. After every ``receive_*`` call, send what
    :meth:`actions_to_send` returns, in order; after a :class:`Close`, stop. When
    :meth:`next_deadline` is not None, call :meth:`receive_tick` at (or, to send audio
    faster than real time, instead of waiting for) that time.

    Args:
        model: The model the client asked for (echoed in the session); None for a
            transcription session.
        progress: Where the scenario stands (shared by an emulator's connections).
        audio: The VAD and the voice.
        created_at: Wall-clock seconds of the connection, for ``expires_at``.
        expire_after: Seconds the session lives (see :meth:`expire`).
        now: The caller's monotonic clock now; it paces audio and timers.
        transcription: Serve a transcription session (``session.type:
            "transcription"``): audio in, transcripts out, no conversation, no responses.
        audio_speed: How much faster than real time assistant audio falls due
            (1.0: real time).
        transcription_delay: Seconds from a commit to its input transcription events
            (0: at once, before anything else happens).
    """

    def __init__(
        self,
        *,
        model: str | None,
        progress: ScenarioProgress,
        audio: AudioEngine,
        created_at: float = 0.0,
        expire_after: float = 3600.0,
        now: float = 0.0,
        transcription: bool = False,
        audio_speed: float = DEFAULT_AUDIO_SPEED,
        transcription_delay: float = DEFAULT_TRANSCRIPTION_DELAY,
    ) -> None:
        if transcription_delay < 0:
            raise ValueError(f"transcription_delay must be 0 or more, not {transcription_delay}")
        self.progress = progress
        self.audio = audio
        self.expire_after = expire_after
        self.transcription = transcription
        self.transcription_delay = transcription_delay
        expires_at = int(created_at + expire_after)
        self.session = (
            default_transcription_session(expires_at)
            if transcription
            else default_session(model or "gpt-realtime", expires_at)
        )
        self.items: list[dict[str, Any]] = []
        # Committed user audio and assistant audio per item, oldest first; at most
        # MAX_KEPT_INPUT_AUDIO bytes in all (for conversation.item.retrieve).
        self.item_audio: dict[str, bytes] = {}
        self._input_audio_bytes = 0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []  # a heap
        self._timer_numbers = itertools.count()
        self._audio_ms = 0  # input audio appended so far: the idle timeout's clock
        self._idle_from: int | None = None  # where the idle timeout counts from
        self._response_start_ms = 0
        self.buffer = bytearray()
        self.speech_item: str | None = None
        self.pending_input: UserInput | None = None
        self.closed = False
        self._now = now
        self._actions: list[Action] = []
        # Event ids as the live server's (``event_`` and 22 hex digits): 16 random per
        # session, then a counter; a random draw per event cost a system call each.
        self._event_prefix = "event_" + secrets.token_hex(8)
        self._event_numbers = itertools.count()
        self._vad: Detector | None = None
        self._vad_key: tuple[str, AudioFormat] | None = None
        self._padding_bytes = 0  # what of the buffer the VAD keeps while it hears no speech
        # Hosted MCP: the requests out for an answer, and each server's configuration
        # as last listed (an update that keeps it does not list again).
        self._mcp_numbers = itertools.count(1)
        self._mcp_waiting: dict[int, Callable[[McpResult], None] | None] = {}
        self._mcp_listed: dict[str, str] = {}
        self.responder = Responder(
            send=self._send,
            items=self.items,
            session=lambda: self.session,
            progress=progress,
            speech=audio,
            clock=lambda: self._now,
            audio_speed=audio_speed,
            on_done=self._response_done,
            keep_audio=self._keep_audio,
            call_mcp=self._call_mcp,
        )
        self._configure_vad()
        self._send({"type": "session.created", "session": self.session})

    # -- the caller's side -------------------------------------------------------------

    def actions_to_send(self) -> list[Action]:
        """Take the actions decided since the last call; perform them in order."""
        actions, self._actions = self._actions, []
        return actions

    def next_deadline(self) -> float | None:
        """When a running response or a timer wants :meth:`receive_tick` next (None:
        never)."""
        if self.closed:
            return None
        due = [d for d in (self.responder.deadline,) if d is not None]
        if self._timers:
            due.append(self._timers[0][0])
        return min(due) if due else None

    def receive_tick(self, now: float) -> None:
        """Time passed: fire the timers and stream what of the responses is due by
        ``now``, in the order they fall due."""
        self._clock(now)
        while not self.closed:
            timer = self._timers[0][0] if self._timers and self._timers[0][0] <= now else None
            chunk = self.responder.deadline
            if timer is not None and (chunk is None or timer <= chunk):
                _, _, action = heapq.heappop(self._timers)
                action()
                continue
            self.responder.tick()
            return

    def _at(self, when: float, action: Callable[[], None]) -> None:
        """Run ``action`` at ``when`` (by :meth:`receive_tick`)."""
        heapq.heappush(self._timers, (when, next(self._timer_numbers), action))

    def receive_bad_frame(self, problem: tuple[str, str], now: float) -> None:
        """A message that is no client event arrived (see :func:`decode_frame`): answer
        it with the ``error`` (code, message) the real server sends."""
        self._clock(now)
        if not self.closed:
            self._error(problem[0], problem[1])

    def receive_event(self, event: dict[str, Any], now: float) -> None:
        """A decoded client event arrived at ``now``: validate it and act on it.

        An invalid event is answered with an ``error`` event (the socket stays open); an
        emulator bug with a ``server_error`` and a log record.
        """
        self._clock(now)
        if self.closed:
            return
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        try:
            self._dispatch(event)
        except ClientError as exc:
            self._error(exc.code, exc.message, exc.param, event_id)
        except Exception:  # noqa: BLE001  (an emulator bug: say so on the wire, as the server would)
            _log.exception("emulator failed on client event %s", event.get("type"))
            self._error(
                None,
                "The server had an error while processing your request "
                "(emulator bug; see the log).",
                None,
                event_id,
                type_="server_error",
            )

    def receive_audio(self, audio: bytes, now: float) -> None:
        """Audio was appended to the input buffer (session input format): run the VAD."""
        self._clock(now)
        if not self.closed:
            self._append(audio)

    def receive_mcp_result(self, token: int, result: McpResult, now: float) -> None:
        """A hosted MCP server answered the :class:`McpRequest` with ``token``."""
        self._clock(now)
        if token not in self._mcp_waiting or self.closed:
            return
        handler = self._mcp_waiting.pop(token)
        if handler is None:
            self.responder.mcp_done(token, result)
        else:
            handler(result)

    def expire(self) -> None:
        """The session reached its maximum duration: stop any response where it stands,
        send ``session_expired`` and close 1001."""
        if self.closed:
            return
        self.responder.abandon()
        minutes = f"{self.expire_after / 60:g}"
        message = f"Your session hit the maximum duration of {minutes} minutes."
        self._error("session_expired", message)
        self._close(1001, message)

    # -- sending -------------------------------------------------------------------------

    def _clock(self, now: float) -> None:
        self._now = max(self._now, now)

    def _send(self, event: dict[str, Any]) -> None:
        # A snapshot: items keep changing after the event that shows them is decided. Only
        # objects and arrays can change; an audio delta (strings and numbers) is copied
        # shallowly, which is most of what a session sends.
        number = next(self._event_numbers) & 0xFFFFFF
        snapshot: dict[str, Any] = {"event_id": f"{self._event_prefix}{number:06x}"}
        for key, value in event.items():
            snapshot[key] = json_copy(value) if isinstance(value, (dict, list)) else value
        self._actions.append(Send(snapshot))

    def _close(self, code: int, reason: str = "") -> None:
        self._actions.append(Close(code, reason))
        self.closed = True

    def _error(
        self,
        code: str | None,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        self._send(error_event(type_, code, message, param, client_event_id))

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        check_event_id(event)
        if kind is None:
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'type'.", "type"
            )
        if kind not in SUPPORTED_TYPES:
            supported = ", ".join(f"'{t}'" for t in SUPPORTED_TYPES[:-1])
            raise ClientError(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: "
                f"{supported} and '{SUPPORTED_TYPES[-1]}'.",
                "type",
            )
        if self.transcription and kind not in TRANSCRIPTION_SESSION_EVENTS:
            raise ClientError(
                "invalid_value",
                f"Invalid value: '{kind}' is not supported in a transcription session.",
                "type",
            )
        allowed, required = EVENT_FIELDS[kind]
        for key in event:
            if key not in allowed and key not in ("type", "event_id"):
                raise ClientError("unknown_parameter", f"Unknown parameter: '{key}'.", key)
        for key in required:
            if key not in event:
                raise ClientError(
                    "missing_required_parameter", f"Missing required parameter: '{key}'.", key
                )
        # The translation-style alias is the same event as input_audio_buffer.append.
        name = kind.removeprefix("session.") if kind.startswith("session.input") else kind
        getattr(self, "_on_" + name.replace(".", "_"))(event)

    # -- session -------------------------------------------------------------------------

    def _on_session_update(self, event: dict[str, Any]) -> None:
        validate = validate_transcription_update if self.transcription else validate_session_update
        try:
            update = validate(event["session"])
            if "reasoning" in update and not supports_reasoning(self.session["model"]):
                raise reasoning_error(self.session["model"], "session.reasoning")
        except SessionUpdateError as exc:
            raise ClientError(exc.code, exc.message, exc.param) from None
        voice = update.get("audio", {}).get("output", {}).get("voice")
        if (
            voice is not None
            and voice != self.session["audio"]["output"]["voice"]
            and self.responder.assistant_audio
        ):
            raise ClientError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
            )
        self.session = merge_session(self.session, update)
        self._configure_vad()
        self._send({"type": "session.updated", "session": self.session})
        self._list_mcp_tools()

    # -- hosted MCP ----------------------------------------------------------------------

    def _mcp_request(
        self,
        server: dict[str, Any],
        tool: str | None,
        arguments: dict[str, Any],
        then: Callable[[McpResult], None] | None,
    ) -> int:
        token = next(self._mcp_numbers)
        self._mcp_waiting[token] = then
        self._actions.append(McpRequest(token, json_copy(server), tool, arguments))
        return token

    def _call_mcp(self, server: dict[str, Any], tool: str, arguments: dict[str, Any]) -> int:
        # A call's result goes to the response waiting for it (None: the responder's).
        return self._mcp_request(server, tool, arguments, None)

    def _list_mcp_tools(self) -> None:
        """List the tools of each hosted MCP server the session names anew, as the live
        server does after ``session.updated``: an ``mcp_list_tools`` item is added (no
        tools yet), ``mcp_list_tools.in_progress``, then ``.completed`` (or ``.failed``)
        and ``conversation.item.done`` with the tools ``allowed_tools`` keeps."""
        servers = mcp_servers(self.session)
        for label in list(self._mcp_listed):
            if label not in servers:
                del self._mcp_listed[label]
                self.responder.mcp_tools.pop(label, None)
        for label, server in servers.items():
            key = server_key(server)
            if self._mcp_listed.get(label) == key:
                continue
            self._mcp_listed[label] = key
            item: dict[str, Any] = {
                "id": new_id("item"),
                "type": "mcp_list_tools",
                "server_label": label,
                "tools": [],
            }
            previous = self.items[-1]["id"] if self.items else None
            self.items.append(item)
            self._send({"type": "conversation.item.added", "item": item, "previous_item_id": previous})
            self._send({"type": "mcp_list_tools.in_progress", "item_id": item["id"]})
            self.responder.mcp_listing.add(label)
            reason = unreachable(server)
            if reason is not None:  # no I/O for what cannot be reached
                _log.warning("hosted MCP server %r: %s", label, reason)
                error = {"type": "protocol_error", "code": -32000, "message": reason}
                self._tools_listed(item, server, McpResult(error=error))
                continue
            self._mcp_request(server, None, {}, self._on_listed(item, server))

    def _on_listed(self, item: dict[str, Any], server: dict[str, Any]) -> Callable[[McpResult], None]:
        def then(result: McpResult) -> None:
            self._tools_listed(item, server, result)

        return then

    def _tools_listed(self, item: dict[str, Any], server: dict[str, Any], result: McpResult) -> None:
        if result.error is None:
            item["tools"] = [tool for tool in result.tools if allowed(server, tool)]
            self.responder.mcp_tools[item["server_label"]] = item["tools"]
            self._send({"type": "mcp_list_tools.completed", "item_id": item["id"]})
        else:
            self.responder.mcp_tools.pop(item["server_label"], None)
            self._send({"type": "mcp_list_tools.failed", "item_id": item["id"]})
        position = next((n for n, it in enumerate(self.items) if it is item), None)
        previous = self.items[position - 1]["id"] if position else None
        self._send({"type": "conversation.item.done", "item": item, "previous_item_id": previous})
        self.responder.listing_done(item["server_label"])

    def _on_session_close(self, event: dict[str, Any]) -> None:
        self.responder.abandon()
        self._close(1000)

    def _configure_vad(self) -> None:
        detection = self.session["audio"]["input"]["turn_detection"]
        fmt = self._input_format
        key = (json.dumps(detection, sort_keys=True), fmt)
        if key == self._vad_key:
            return  # unchanged: keep a segment in progress
        self._vad_key = key
        if detection is None:
            self._vad = None
            self._padding_bytes = 0
            return
        server = detection["type"] == "server_vad"
        eagerness = {"low": 1000, "high": 200}.get(str(detection.get("eagerness")), 500)
        settings = VadSettings(
            format=fmt,
            threshold=detection["threshold"] if server else 0.5,
            prefix_padding_ms=detection["prefix_padding_ms"] if server else 300,
            silence_duration_ms=detection["silence_duration_ms"] if server else eagerness,
        )
        self._vad = self.audio.detector(settings, self._vad)
        per_ms = fmt.bytes_per_ms
        self._padding_bytes = settings.prefix_padding_ms * per_ms // fmt.width * fmt.width

    @property
    def _input_format(self) -> AudioFormat:
        return audio_format(self.session["audio"]["input"]["format"])

    # -- input audio ---------------------------------------------------------------------

    def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        audio = event["audio"]
        if not isinstance(audio, str):
            raise ClientError(
                "invalid_type", "Invalid type for 'audio': expected a base64 string.", "audio"
            )
        try:
            data = pybase64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ClientError(
                "invalid_value", "Invalid 'audio': not valid base64.", "audio"
            ) from None
        self._append(data)

    def _append(self, data: bytes) -> None:
        self.buffer.extend(data)
        self._audio_ms += self._input_format.ms(len(data))
        vad = self._vad
        if vad is None:
            return
        detection = self.session["audio"]["input"]["turn_detection"]
        for change in vad.feed(data):
            if change.kind == "started":
                self._idle_from = None  # the user spoke: no idle timeout
                self.speech_item = new_id("item")
                self._send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": change.ms,
                        "item_id": self.speech_item,
                    }
                )
                if (
                    detection.get("interrupt_response")
                    and self.responder.active is not None
                    and not self.transcription
                ):
                    self.responder.cancel("turn_detected")
            else:
                item_id = self.speech_item or new_id("item")
                self.speech_item = None
                self._send(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": change.ms,
                        "item_id": item_id,
                    }
                )
                self._commit(item_id)
                vad.reset_segment()
                if (
                    detection.get("create_response")
                    and self.responder.active is None
                    and not self.transcription
                ):
                    self._start_response(None, self._take_input())
        self._check_idle(detection)
        if self.speech_item is None and len(self.buffer) > self._padding_bytes:
            # No speech: the buffer keeps only what a segment starting next would begin
            # with (its prefix padding), so hours of silence between turns take no memory.
            del self.buffer[: len(self.buffer) - self._padding_bytes]

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        fmt = self._input_format
        if fmt.ms(len(self.buffer)) < 100:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio "
                "buffer: buffer too small. Expected at least 100ms of audio, but "
                f"buffer only has {len(self.buffer) / fmt.bytes_per_ms:.2f}ms of audio.",
            )
        self._commit(self.speech_item or new_id("item"))
        self.speech_item = None
        if self._vad is not None:
            self._vad.reset_segment()

    def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        self.speech_item = None
        if self._vad is not None:
            self._vad.reset_segment()
        self._send({"type": "input_audio_buffer.cleared"})

    def _commit(self, item_id: str, *, idle: bool = False) -> None:
        previous = self.items[-1]["id"] if self.items else None
        audio, self.buffer = bytes(self.buffer), bytearray()
        self._send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": None if self.transcription else previous,
            }
        )
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        if not self.transcription:  # a transcription session has no conversation
            self._keep_audio(item_id, audio)
            self._add_item(item, len(self.items))
            self.pending_input = UserInput(text="", audio=True, idle=idle)
        self._transcribe(item, self._input_format.ms(len(audio)), idle)

    def _transcribe(self, item: dict[str, Any], ms: int, idle: bool) -> None:
        # The live server transcribes asynchronously: the events come after
        # transcription_delay, usually after the response to the same audio started.
        transcription = self.session["audio"]["input"]["transcription"]
        if transcription is None:
            return
        turn = None
        if not idle:
            turn = (
                self.progress.take_audio_turn()
                if self.transcription
                else self.progress.peek_audio_turn()
            )
        events = transcription_events(
            item_id=item["id"],
            transcript=(turn.transcript if turn is not None else None) or "",
            seconds=round(ms / 1000.0, 3),
            model=transcription.get("model"),
            include=self.session.get("include"),
            error=turn.transcription_error if turn is not None else None,
            speakers=turn.speakers if turn is not None else (),
        )

        def deliver() -> None:
            for event in events:
                if event["type"].endswith(".completed"):
                    item["content"][0]["transcript"] = event["transcript"]
                self._send(event)

        if self.transcription_delay <= 0:
            deliver()
        else:
            self._at(self._now + self.transcription_delay, deliver)

    def _keep_audio(self, item_id: str, audio: bytes) -> None:
        self.item_audio[item_id] = audio
        self._input_audio_bytes += len(audio)
        while self._input_audio_bytes > MAX_KEPT_INPUT_AUDIO and len(self.item_audio) > 1:
            oldest = next(iter(self.item_audio))
            self._input_audio_bytes -= len(self.item_audio.pop(oldest))

    # -- the idle timeout ----------------------------------------------------------------

    def _check_idle(self, detection: dict[str, Any] | None) -> None:
        """``idle_timeout_ms`` (server_vad): once that much input audio has been appended
        since the last response's audio would have finished playing, with no speech,
        send ``timeout_triggered``, commit the buffer and respond."""
        timeout = (detection or {}).get("idle_timeout_ms")
        if (
            timeout is None
            or detection is None
            or detection["type"] != "server_vad"
            or self._idle_from is None
            or self.speech_item is not None
            or self.responder.active is not None
            or self._audio_ms < self._idle_from + timeout
        ):
            return
        item_id = new_id("item")
        self._send(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": self._idle_from,
                "audio_end_ms": self._audio_ms,
                "item_id": item_id,
            }
        )
        self._idle_from = None
        self._commit(item_id, idle=True)
        if self._vad is not None:
            self._vad.reset_segment()
        self._start_response(None, self._take_input())

    def _response_done(self, response: ActiveResponse) -> None:
        # The idle timeout counts from when the reply's audio would have finished
        # playing, had playback started with the response (audio clock).
        if response.in_conversation:
            self._idle_from = max(self._audio_ms, self._response_start_ms + response.audio_ms)

    # -- conversation items --------------------------------------------------------------

    def _index(self, item_id: Any, code: str, param: str = "item_id") -> int:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        raise ClientError(code, f"Item with item_id not found: {item_id}", param)

    def _add_item(self, item: dict[str, Any], index: int) -> None:
        self.items.insert(index, item)
        previous = self.items[index - 1]["id"] if index > 0 else None
        self._send({"type": "conversation.item.added", "item": item, "previous_item_id": previous})
        self._send({"type": "conversation.item.done", "item": item, "previous_item_id": previous})

    def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = validate_item(event["item"])
        previous = event.get("previous_item_id")
        if previous is None:
            index = len(self.items)
        elif previous == "root":
            index = 0
        else:
            index = self._index(previous, "invalid_value", "previous_item_id") + 1
        if any(i["id"] == item["id"] for i in self.items):
            raise duplicate_item(item["id"])
        self._add_item(item, index)
        if item["type"] == "message" and item["role"] == "user":
            text = " ".join(
                str(c.get("text") or c.get("transcript") or "") for c in item["content"]
            )
            # Audio without text is speech, as if it had come through the input buffer.
            spoken = all(c["type"] == "input_audio" for c in item["content"]) and not text.strip()
            self.pending_input = UserInput(
                text=text.strip(), audio=spoken and bool(item["content"])
            )
        elif item["type"] == "function_call_output":
            # A tool output after the user's words means those words were answered
            # already (e.g. history re-seeded after a reconnect): continue the turn.
            self.pending_input = None
            self.progress.last_output = item["output"]
        elif item["type"] == "message" and item["role"] == "assistant":
            self.pending_input = None  # seeded history: that user message was answered
        elif item["type"] == "mcp_approval_response":
            # The answer to an approval request: the response.create that follows runs
            # the call (approved) or says it was not (denied).
            self.pending_input = None
            self.responder.approvals[item["approval_request_id"]] = item["approve"]

    def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        index = self._index(event["item_id"], "item_delete_invalid_item_id")
        del self.items[index]
        self._input_audio_bytes -= len(self.item_audio.pop(event["item_id"], b""))  # its audio too
        self._send({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    def _on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.items[self._index(event["item_id"], "item_retrieve_invalid_item_id")]
        if item["id"] in self.item_audio:  # user input audio, or assistant audio
            audio = codec.b64encode(self.item_audio[item["id"]])
            item = {**item, "content": [{**item["content"][0], "audio": audio}]}
        self._send({"type": "conversation.item.retrieved", "item": item})

    def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item = self.items[self._index(event["item_id"], "item_truncate_invalid_item_id")]
        self.responder.forget_size(item["id"])
        if item["id"] not in self.responder.audio_ms:
            raise ClientError(
                "item_truncate_invalid_item_id",
                "Only model output audio messages can be truncated",
                "item_id",
            )
        if event["content_index"] != 0:
            raise ClientError(
                "invalid_value",
                "Invalid 'content_index': only content_index 0 can be truncated.",
                "content_index",
            )
        end = event["audio_end_ms"]
        if not isinstance(end, int) or isinstance(end, bool) or end < 0:
            raise ClientError(
                "invalid_value",
                "Invalid 'audio_end_ms': expected a non-negative integer.",
                "audio_end_ms",
            )
        have = self.responder.audio_ms[item["id"]]
        if end > have:
            raise ClientError(
                "invalid_value",
                f"Audio content of {have}ms is already shorter than {end}ms",
                "audio_end_ms",
            )
        self.responder.audio_ms[item["id"]] = end
        kept = self.item_audio.get(item["id"])
        if kept is not None:  # what is retrieved later is what was heard
            cut = end * audio_format(self.session["audio"]["output"]["format"]).bytes_per_ms
            self._input_audio_bytes -= len(kept) - len(kept[:cut])
            self.item_audio[item["id"]] = kept[:cut]
        part = item["content"][0]
        keep = int(end / 1000.0 * self.audio.chars_per_second)
        part["transcript"] = (part.get("transcript") or "")[:keep]
        self._send(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": 0,
                "audio_end_ms": end,
            }
        )

    def _take_input(self) -> UserInput | None:
        user, self.pending_input = self.pending_input, None
        return user

    # -- responses -----------------------------------------------------------------------

    def _on_response_create(self, event: dict[str, Any]) -> None:
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise ClientError(
                "invalid_type", "Invalid type for 'response': expected an object.", "response"
            )
        for key in params:
            if key not in RESPONSE_KEYS:
                raise ClientError(
                    "unknown_parameter", f"Unknown parameter: 'response.{key}'.", f"response.{key}"
                )
        check_response_params(params, self.session["model"])
        user_text = None
        input_size = None
        if "input" in params:
            items = response_input(params["input"], self.items)
            user_text = " ".join(item_text(item) for item in items).strip()
            input_size = sum(len(json.dumps(item)) for item in items)
        if params.get("conversation") == "none":
            # Out of band: beside anything else running; replied from out_of_band turns,
            # matched against its instructions and input (or the latest user message).
            if user_text is None:
                user_text = self._latest_user_text()
            text = " ".join(t for t in (params.get("instructions"), user_text) if t)
            steps = self.progress.out_of_band_reply(text)
            self.responder.start(params, None, steps=steps, input_size=input_size)
            return
        if self.responder.active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                "Conversation already "
                f"has an active response in progress: {self.responder.active.id}. Wait "
                "until the response is finished before creating a new one.",
            )
        if user_text is not None:
            user = UserInput(text=user_text, audio=False)
            self._start_response(params, user, input_size=input_size)
        else:
            self._start_response(params, self._take_input())

    def _start_response(
        self, params: dict[str, Any] | None, user: UserInput | None, input_size: int | None = None
    ) -> None:
        """Start the in-conversation response (the idle timeout waits for it to end)."""
        self._idle_from = None
        self._response_start_ms = self._audio_ms
        self.responder.start(params, user, input_size=input_size)

    def _latest_user_text(self) -> str:
        for item in reversed(self.items):
            if item.get("type") == "message" and item.get("role") == "user":
                return item_text(item)
        return ""

    def _on_response_cancel(self, event: dict[str, Any]) -> None:
        # Without a response_id, the in-conversation response; with one, any running
        # response, out-of-band ones included.
        wanted = event.get("response_id")
        response = self.responder.active if wanted is None else self.responder.find(wanted)
        if response is None:
            raise ClientError(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
        self.responder.cancel("client_cancelled", response)


def decode_frame(message: str | bytes) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """Decode one WebSocket message into a client event.

    Returns:
        ``(event, None)`` for a JSON object; ``(None, (code, message))`` for anything
        else, with the ``error`` the real server answers (``invalid_event`` for a binary
        frame, ``invalid_json`` for text that is not a JSON object).
    """
    if isinstance(message, bytes):
        return None, (
            "invalid_event",
            "Expected a text WebSocket message; binary frames are not supported.",
        )
    try:
        event = codec.loads(message)
    except codec.DecodeError as exc:
        return None, ("invalid_json", f"Invalid event: failed to parse JSON value. {exc}")
    if not isinstance(event, dict):
        return None, ("invalid_json", "Invalid event: expected a JSON object.")
    return event, None

