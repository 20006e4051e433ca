"""One emulated Realtime session: client events in, GA server events out.

The reader handles client events one at a time; a response runs as its own task so that
``response.cancel`` and barge-in can stop it. Every send goes through :meth:`Session.send`,
which stamps an ``event_id``, records the event and applies the drop fault.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .audio import CHARS_PER_SECOND, AudioFormat, Vad, synthesize
from .builders import (
    EVENT_FIELDS,
    RESPONSE_KEYS,
    SUPPORTED_TYPES,
    ClientError,
    new_id,
    validate_item,
)
from .config import (
    SessionUpdateError,
    default_session,
    merge_session,
    validate_session_update,
)
from .scenario import Step, render_say
from .state import ConnectionRecord, ScenarioProgress, UserInput

__all__ = ["Options", "Session"]

_log = logging.getLogger("realtalk.emulator")

_CHUNK_S = 0.1


@dataclass
class Options:
    """Per-emulator settings, shared by its sessions.

    Attributes:
        fast: Send audio without real-time pacing.
        expire_after: Seconds until ``session_expired`` (and close 1001).
        drop_after_events: Abort the socket (no close frame) after this many server events.
        drops_left: How many more connections the drop fault may hit; shared, so a client
            that reconnects after a drop gets a healthy session.
        latency_ms: Delay before the server reacts to each client event.
    """

    fast: bool = False
    expire_after: float = 3600.0
    drop_after_events: int | None = None
    drops_left: int = 1
    latency_ms: float = 0.0


class _Dropped(Exception):
    """The drop fault fired; stop everything."""


@dataclass
class _Response:
    id: str
    modalities: list[str]
    output: list[dict[str, Any]] = field(default_factory=list)
    cancel_reason: str | None = None
    metadata: dict[str, Any] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Session:
    """The server side of one connection that passed the handshake."""

    def __init__(
        self,
        ws: ServerConnection,
        record: ConnectionRecord,
        options: Options,
        progress: ScenarioProgress,
        model: str,
    ) -> None:
        self.ws = ws
        self.record = record
        self.options = options
        self.progress = progress
        self.created_at = time.time()
        self.session = default_session(model, int(self.created_at + options.expire_after))
        self.items: list[dict[str, Any]] = []
        self._sizes: dict[str, int] = {}  # JSON size of finished items, for usage estimates
        self.audio_ms: dict[str, int] = {}  # assistant item id -> audio sent (ms)
        self.input_audio: dict[str, bytes] = {}
        self.assistant_audio = False
        self.buffer = bytearray()
        self.vad: Vad | None = None
        self.speech_item: str | None = None
        self.pending_input: UserInput | None = None
        self.response: _Response | None = None
        self.sent = 0
        self._lock = asyncio.Lock()
        self._vad_key: tuple[str, AudioFormat] | None = None
        self._configure_vad()

    # -- sending ---------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        """Stamp, record and send one server event; apply the drop fault."""
        event = {"event_id": new_id("event"), **event}
        async with self._lock:
            if self.record.dropped:
                raise _Dropped
            self.record.add("server", event)
            await self.ws.send(json.dumps(event))
            self.sent += 1
            limit = self.options.drop_after_events
            if limit is not None and self.sent >= limit and self.options.drops_left > 0:
                self.options.drops_left -= 1
                self.record.dropped = True
                self.ws.transport.abort()  # no close frame: the "network" just vanished
                raise _Dropped

    async def error(
        self,
        code: str | None,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        """Send an ``error`` event."""
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": type_,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": client_event_id,
                },
            }
        )

    # -- main loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session until the client leaves, it expires, or a fault ends it."""
        expiry = asyncio.create_task(self._expire())
        try:
            await self._delay()
            await self.send({"type": "session.created", "session": self.session})
            async for message in self.ws:
                await self._handle(message)
        except (_Dropped, ConnectionClosed):
            pass
        finally:
            expiry.cancel()
            await self._stop_response()
            await asyncio.gather(expiry, return_exceptions=True)

    async def _delay(self) -> None:
        if self.options.latency_ms > 0:
            await asyncio.sleep(self.options.latency_ms / 1000.0)

    async def _expire(self) -> None:
        await asyncio.sleep(self.options.expire_after)
        minutes = f"{self.options.expire_after / 60:g}"
        message = f"Your session hit the maximum duration of {minutes} minutes."
        try:
            await self._stop_response()
            await self.error("session_expired", message)
            self.record.close_code = 1001
            await self.ws.close(1001, message)
        except (_Dropped, ConnectionClosed):
            pass

    async def _stop_response(self) -> None:
        response = self.response
        if response is not None and response.task is not None:
            response.task.cancel()
            await asyncio.gather(response.task, return_exceptions=True)

    async def _handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.record.add("client", {"_binary": len(message)})
            await self._delay()
            await self.error(
                "invalid_event",
                "Expected a text WebSocket message; binary frames are not supported.",
            )
            return
        try:
            event = json.loads(message)
        except ValueError as exc:
            self.record.add("client", {"_raw": message})
            await self._delay()
            await self.error("invalid_json", f"Invalid event: failed to parse JSON value. {exc}")
            return
        if not isinstance(event, dict):
            self.record.add("client", {"_raw": message})
            await self._delay()
            await self.error("invalid_json", "Invalid event: expected a JSON object.")
            return
        self.record.add("client", event)
        if not str(event.get("type")).endswith("input_audio_buffer.append"):
            # Appends get no reply; delaying them would only make the audio fall behind.
            await self._delay()
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        try:
            await self._dispatch(event)
        except ClientError as exc:
            await self.error(exc.code, exc.message, exc.param, event_id)
        except (_Dropped, ConnectionClosed):
            raise
        except Exception:  # noqa: BLE001  (an emulator bug: say so on the wire, as the server would)
            _log.exception("emulator failed on client event %s", event.get("type"))
            await self.error(
                None,
                "The server had an error while processing your request "
                "(emulator bug; see the log).",
                None,
                event_id,
                type_="server_error",
            )

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
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
        await getattr(self, "_on_" + name.replace(".", "_"))(event)

    # -- session ---------------------------------------------------------------------

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        try:
            update = validate_session_update(event["session"])
        except SessionUpdateError as exc:
            raise ClientError(exc.code, exc.message, exc.param) from None
        voice = update.get("audio", {}).get("output", {}).get("voice")
        if (
            voice is not None
            and voice != self.session["audio"]["output"]["voice"]
            and self.assistant_audio
        ):
            raise ClientError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
            )
        self.session = merge_session(self.session, update)
        self._configure_vad()
        await self.send({"type": "session.updated", "session": self.session})

    async def _on_session_close(self, event: dict[str, Any]) -> None:
        self.record.close_code = 1000
        await self.ws.close(1000)

    def _configure_vad(self) -> None:
        detection = self.session["audio"]["input"]["turn_detection"]
        fmt = AudioFormat.from_session(self.session["audio"]["input"]["format"])
        key = (json.dumps(detection, sort_keys=True), fmt)
        if key == self._vad_key:
            return  # unchanged: keep a segment in progress
        self._vad_key = key
        if detection is None:
            self.vad = None
            return
        server = detection["type"] == "server_vad"
        eagerness = {"low": 1000, "high": 200}.get(str(detection.get("eagerness")), 500)
        old = self.vad
        self.vad = Vad(
            rate=fmt.rate,
            threshold=detection["threshold"] if server else 0.5,
            prefix_padding_ms=detection["prefix_padding_ms"] if server else 300,
            silence_duration_ms=detection["silence_duration_ms"] if server else eagerness,
        )
        if old is not None:
            self.vad.continue_clock(old)

    @property
    def _input_format(self) -> AudioFormat:
        return AudioFormat.from_session(self.session["audio"]["input"]["format"])

    @property
    def _output_format(self) -> AudioFormat:
        return AudioFormat.from_session(self.session["audio"]["output"]["format"])

    # -- input audio -----------------------------------------------------------------

    async def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        audio = event["audio"]
        if not isinstance(audio, str):
            raise ClientError(
                "invalid_type", "Invalid type for 'audio': expected a base64 string.", "audio"
            )
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ClientError(
                "invalid_value", "Invalid 'audio': not valid base64.", "audio"
            ) from None
        self.buffer.extend(data)
        if self.vad is None:
            return
        detection = self.session["audio"]["input"]["turn_detection"]
        for change in self.vad.feed(self._input_format.decode(data)):
            if change.kind == "started":
                self.speech_item = new_id("item")
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": change.ms,
                        "item_id": self.speech_item,
                    }
                )
                if detection.get("interrupt_response") and self.response is not None:
                    await self._cancel("turn_detected")
            else:
                item_id = self.speech_item or new_id("item")
                self.speech_item = None
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": change.ms,
                        "item_id": item_id,
                    }
                )
                await self._commit(item_id)
                self.vad.reset_segment()
                if detection.get("create_response") and self.response is None:
                    await self._start_response(None)

    async def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        fmt = self._input_format
        if fmt.ms(len(self.buffer)) < 100:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio "
                "buffer: buffer too small. Expected at least 100ms of audio, but "
                f"buffer only has {len(self.buffer) / fmt.bytes_per_ms:.2f}ms of audio.",
            )
        await self._commit(self.speech_item or new_id("item"))
        self.speech_item = None
        if self.vad is not None:
            self.vad.reset_segment()

    async def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        self.speech_item = None
        if self.vad is not None:
            self.vad.reset_segment()
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _commit(self, item_id: str) -> None:
        previous = self.items[-1]["id"] if self.items else None
        audio, self.buffer = bytes(self.buffer), bytearray()
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
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
        self.input_audio[item_id] = audio
        await self._add_item(item, len(self.items))
        self.pending_input = UserInput(text="", audio=True)
        if self.session["audio"]["input"]["transcription"] is not None:
            turn = self.progress.peek_audio_turn()
            transcript = (turn.transcript if turn is not None else None) or ""
            item["content"][0]["transcript"] = transcript
            seconds = round(self._input_format.ms(len(audio)) / 1000.0, 3)
            if transcript:  # streaming transcription models send deltas first
                await self.send(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "delta": transcript,
                    }
                )
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": transcript,
                    "usage": {"type": "duration", "seconds": seconds},
                }
            )

    # -- conversation items ----------------------------------------------------------

    def _index(self, item_id: Any, code: str, param: str = "item_id") -> int:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        raise ClientError(code, f"Item with item_id not found: {item_id}", param)

    async def _add_item(self, item: dict[str, Any], index: int) -> None:
        self.items.insert(index, item)
        previous = self.items[index - 1]["id"] if index > 0 else None
        await self.send(
            {"type": "conversation.item.added", "item": item, "previous_item_id": previous}
        )
        await self.send(
            {"type": "conversation.item.done", "item": item, "previous_item_id": previous}
        )

    async def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = validate_item(event["item"])
        previous = event.get("previous_item_id")
        if previous is None:
            index = len(self.items)
        elif previous == "root":
            index = 0
        else:
            index = self._index(previous, "invalid_value", "previous_item_id") + 1
        if any(i["id"] == item["id"] for i in self.items):
            raise ClientError(
                "invalid_value", f"Item with id '{item['id']}' already exists.", "item.id"
            )
        await self._add_item(item, index)
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

    async def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        index = self._index(event["item_id"], "item_delete_invalid_item_id")
        del self.items[index]
        await self.send({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    async def _on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.items[self._index(event["item_id"], "item_retrieve_invalid_item_id")]
        if item["id"] in self.input_audio:
            audio = base64.b64encode(self.input_audio[item["id"]]).decode()
            item = {**item, "content": [{**item["content"][0], "audio": audio}]}
        await self.send({"type": "conversation.item.retrieved", "item": item})

    def _size(self, item: dict[str, Any]) -> int:
        # Measured once per item: re-encoding the whole conversation on every response
        # made long scripted sessions quadratic. Truncation forgets the measure.
        size = self._sizes.get(item["id"])
        if size is None:
            size = self._sizes[item["id"]] = len(json.dumps(item))
        return size

    async def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item = self.items[self._index(event["item_id"], "item_truncate_invalid_item_id")]
        self._sizes.pop(item["id"], None)
        if item["id"] not in self.audio_ms:
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
        have = self.audio_ms[item["id"]]
        if end > have:
            raise ClientError(
                "invalid_value",
                f"Audio content of {have}ms is already shorter than {end}ms",
                "audio_end_ms",
            )
        self.audio_ms[item["id"]] = end
        part = item["content"][0]
        keep = int(end / 1000.0 * CHARS_PER_SECOND)
        part["transcript"] = (part.get("transcript") or "")[:keep]
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": 0,
                "audio_end_ms": end,
            }
        )

    # -- responses -------------------------------------------------------------------

    async def _on_response_create(self, event: dict[str, Any]) -> None:
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
        metadata = params.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and len(metadata) <= 16
            and all(isinstance(v, str) for v in metadata.values())
        ):
            raise ClientError(
                "invalid_type",
                "Invalid 'response.metadata': expected an object of at most 16 string values.",
                "response.metadata",
            )
        modalities = params.get("output_modalities")
        if modalities is not None and modalities not in (["text"], ["audio"]):
            raise ClientError(
                "invalid_value",
                "Invalid 'response.output_modalities': expected ['text'] or ['audio'].",
                "response.output_modalities",
            )
        if self.response is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                "Conversation already "
                f"has an active response in progress: {self.response.id}. Wait "
                "until the response is finished before creating a new one.",
            )
        await self._start_response(params)

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self.response is None or (wanted is not None and wanted != self.response.id):
            raise ClientError(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
        await self._cancel("client_cancelled")

    async def _cancel(self, reason: str) -> None:
        response = self.response
        if response is None or response.task is None:
            return
        response.cancel_reason = reason
        response.wake.set()
        # The task sends the closing events itself; wait so they precede later events.
        await asyncio.gather(response.task, return_exceptions=True)

    async def _start_response(self, params: dict[str, Any] | None) -> None:
        modalities = list(
            (params or {}).get("output_modalities") or self.session["output_modalities"]
        )
        user, self.pending_input = self.pending_input, None
        steps = self.progress.next_reply(user)
        response = _Response(id=new_id("resp"), modalities=modalities)
        # The real server echoes the request's metadata in the response object.
        response.metadata = (params or {}).get("metadata")
        self.response = response
        response.task = asyncio.create_task(self._respond(response, steps))

    def _response_object(self, response: _Response, status: str) -> dict[str, Any]:
        return {
            "id": response.id,
            "object": "realtime.response",
            "status": status,
            "status_details": None,
            "output": [],
            "conversation_id": "conv_emulator",
            "output_modalities": response.modalities,
            "max_output_tokens": self.session["max_output_tokens"],
            "audio": {
                "output": {
                    "format": self.session["audio"]["output"]["format"],
                    "voice": self.session["audio"]["output"]["voice"],
                }
            },
            "metadata": response.metadata,
            "usage": None,
        }

    async def _respond(self, response: _Response, steps: tuple[Step, ...]) -> None:
        try:
            await self.send(
                {
                    "type": "response.created",
                    "response": self._response_object(response, "in_progress"),
                }
            )
            for step in steps:
                if response.cancel_reason:
                    break
                if step.kind == "say":
                    text = render_say(step.text, self.progress.last_output)
                    await self._say(response, text)
                else:
                    await self._call(response, step)
            await self._finish(response)
        except (_Dropped, ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            if self.response is response:
                self.response = None

    async def _finish(self, response: _Response) -> None:
        body = self._response_object(response, "completed")
        if response.cancel_reason:
            body["status"] = "cancelled"
            body["status_details"] = {"type": "cancelled", "reason": response.cancel_reason}
        else:
            body["status_details"] = {"type": "completed"}
        body["output"] = response.output
        text_tokens = sum(len(json.dumps(i)) for i in response.output) // 16 + 1
        audio_tokens = sum(self.audio_ms.get(i["id"], 0) for i in response.output) // 50
        input_tokens = sum(self._size(i) for i in self.items) // 16 + 1
        output_tokens = text_tokens + audio_tokens
        body["usage"] = {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {
                "text_tokens": input_tokens,
                "audio_tokens": 0,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        }
        # Clear before response.done so a client reacting to it can create the next one.
        self.response = None
        await self.send({"type": "response.done", "response": body})
        await self.send(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {
                        "name": "tokens",
                        "limit": 40000,
                        "remaining": 40000 - output_tokens,
                        "reset_seconds": round(output_tokens * 0.0015, 3),
                    }
                ],
            }
        )

    async def _open_item(self, response: _Response, item: dict[str, Any]) -> int:
        index = len(response.output)
        response.output.append(item)
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": index,
                "item": item,
            }
        )
        await self.send(
            {"type": "conversation.item.added", "item": item, "previous_item_id": previous}
        )
        return index

    async def _close_item(self, response: _Response, index: int, item: dict[str, Any]) -> None:
        item["status"] = "incomplete" if response.cancel_reason else "completed"
        position = self.items.index(item) if item in self.items else 0
        previous = self.items[position - 1]["id"] if position > 0 else None
        await self.send(
            {"type": "conversation.item.done", "item": item, "previous_item_id": previous}
        )
        await self.send(
            {
                "type": "response.output_item.done",
                "response_id": response.id,
                "output_index": index,
                "item": item,
            }
        )

    async def _say(self, response: _Response, text: str) -> None:
        audio = response.modalities == ["audio"]
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        index = await self._open_item(response, item)
        ids = {
            "response_id": response.id,
            "item_id": item["id"],
            "output_index": index,
            "content_index": 0,
        }
        part: dict[str, Any] = (
            {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        )
        await self.send({"type": "response.content_part.added", **ids, "part": dict(part)})
        if audio:
            said = await self._stream_audio(response, ids, text)
            await self.send({"type": "response.output_audio.done", **ids})
            await self.send(
                {"type": "response.output_audio_transcript.done", **ids, "transcript": said}
            )
            part["transcript"] = said
            item["content"] = [{"type": "output_audio", "transcript": said}]
        else:
            said = ""
            for word in _words(text):
                if response.cancel_reason:
                    break
                said += word
                await self.send({"type": "response.output_text.delta", **ids, "delta": word})
            await self.send({"type": "response.output_text.done", **ids, "text": said})
            part["text"] = said
            item["content"] = [{"type": "output_text", "text": said}]
        await self.send({"type": "response.content_part.done", **ids, "part": part})
        await self._close_item(response, index, item)

    async def _stream_audio(self, response: _Response, ids: dict[str, Any], text: str) -> str:
        fmt = self._output_format
        data = synthesize(text, fmt)
        chunk = int(fmt.rate * _CHUNK_S) * fmt.width
        count = math.ceil(len(data) / chunk)
        self.audio_ms[ids["item_id"]] = 0
        said = ""
        start = time.monotonic()
        for n in range(count):
            if not self.options.fast:
                # Real-time pace; a cancel wakes us at once.
                delay = start + n * _CHUNK_S - time.monotonic()
                if delay > 0 and not response.cancel_reason:
                    try:
                        await asyncio.wait_for(response.wake.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
            if response.cancel_reason:
                break
            piece = data[n * chunk : (n + 1) * chunk]
            self.assistant_audio = True
            self.audio_ms[ids["item_id"]] += fmt.ms(len(piece))
            await self.send(
                {
                    "type": "response.output_audio.delta",
                    **ids,
                    "delta": base64.b64encode(piece).decode(),
                }
            )
            upto = len(text) if n == count - 1 else int((n + 1) * _CHUNK_S * CHARS_PER_SECOND)
            words = text[len(said) : upto]
            if words:
                said += words
                await self.send(
                    {"type": "response.output_audio_transcript.delta", **ids, "delta": words}
                )
        return said

    async def _call(self, response: _Response, step: Step) -> None:
        call_id = "call_" + secrets.token_hex(8)
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": step.name,
            "arguments": "",
        }
        index = await self._open_item(response, item)
        ids = {
            "response_id": response.id,
            "item_id": item["id"],
            "output_index": index,
            "call_id": call_id,
        }
        for start in range(0, len(step.arguments), 8):
            if response.cancel_reason:
                break
            delta = step.arguments[start : start + 8]
            item["arguments"] += delta
            await self.send(
                {"type": "response.function_call_arguments.delta", **ids, "delta": delta}
            )
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "name": step.name,
                "arguments": item["arguments"],
            }
        )
        await self._close_item(response, index, item)


def _words(text: str) -> list[str]:
    words: list[str] = []
    for piece in text.split(" "):
        words.append(piece if not words else " " + piece)
    return [w for w in words if w] or [""]
