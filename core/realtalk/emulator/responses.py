"""The responses of an emulated session: scenario steps streamed as GA server events.

Part of the sans-I/O server protocol (:mod:`.protocol`): a :class:`Responder` runs one
response at a time as a generator that yields the moments it must wait for (each audio
chunk's), so the caller decides whether that is real time or no time at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol import codec
from ..protocol.vocab import AudioFormat, audio_format, function_call_item, new_id
from .scenario import Step, render_say
from .state import ScenarioProgress, UserInput

__all__ = ["CHUNK_MS", "Responder", "Speech"]

CHUNK_MS = 100  # each response.output_audio.delta carries this much audio


class Speech(Protocol):
    """The voice: what :class:`Responder` needs of the audio engine.

    Attributes:
        chars_per_second: How fast the voice speaks; transcripts are cut to it.
    """

    chars_per_second: float

    def speech(self, text: str, fmt: AudioFormat, chunk_ms: int) -> Iterator[bytes]:
        """The voice saying ``text`` in ``fmt``, as chunks of ``chunk_ms`` (the last may be
        shorter), produced as they are taken."""


@dataclass
class ActiveResponse:
    """The response being streamed.

    Attributes:
        id: Its ``resp_...`` id.
        modalities: ``["audio"]`` or ``["text"]``.
        metadata: The request's metadata, echoed.
        output: Its output items so far.
        cancel_reason: Why it was cancelled, once it was.
        wait_until: The moment it waits for (the next audio chunk's), if any.
        steps: The generator that streams it.
    """

    id: str
    modalities: list[str]
    metadata: dict[str, Any] | None
    output: list[dict[str, Any]] = field(default_factory=list)
    cancel_reason: str | None = None
    wait_until: float | None = None
    steps: Generator[float, None, None] | None = None


class Responder:
    """Runs a session's responses and keeps what they leave behind.

    Args:
        send: Queues one server event.
        items: The conversation (shared with the protocol, appended to in place).
        session: Returns the current session configuration.
        progress: Where the scenario stands.
        speech: The voice.
        clock: Returns the protocol's clock now.
    """

    def __init__(
        self,
        *,
        send: Callable[[dict[str, Any]], None],
        items: list[dict[str, Any]],
        session: Callable[[], dict[str, Any]],
        progress: ScenarioProgress,
        speech: Speech,
        clock: Callable[[], float],
    ) -> None:
        self._send = send
        self.items = items
        self._session = session
        self.progress = progress
        self.audio = speech
        self._clock = clock
        self.active: ActiveResponse | None = None
        self.audio_ms: dict[str, int] = {}  # assistant item id -> audio sent (ms)
        self.assistant_audio = False
        self._sizes: dict[str, int] = {}  # JSON size of finished items, for usage estimates

    @property
    def session(self) -> dict[str, Any]:
        """The current session configuration."""
        return self._session()

    @property
    def deadline(self) -> float | None:
        """When the active response wants :meth:`tick` next (None: nothing to wait for)."""
        return None if self.active is None else self.active.wait_until

    def tick(self) -> None:
        """Stream what of the active response is due by the clock now."""
        if self.active is not None:
            self._advance(self.active)

    def forget_size(self, item_id: str) -> None:
        """The item changed (truncated): measure it again next time."""
        self._sizes.pop(item_id, None)

    def size(self, item: dict[str, Any]) -> int:
        """The JSON size of ``item``, for usage estimates."""
        # Measured once per item: re-encoding the whole conversation on every response
        # made long scripted sessions quadratic. Truncation forgets the measure.
        size = self._sizes.get(item["id"])
        if size is None:
            size = self._sizes[item["id"]] = len(json.dumps(item))
        return size

    def cancel(self, reason: str) -> None:
        """Cancel the active response (if any): its closing events are sent now."""
        response = self.active
        if response is None:
            return
        response.cancel_reason = reason
        self._advance(response)  # it sends its closing events now, before anything later

    def abandon(self) -> None:
        """Drop the active response where it stands, unfinished (the session ended)."""
        # The session ends under the response: it stops where it stands, unfinished.
        response, self.active = self.active, None
        if response is not None and response.steps is not None:
            response.steps.close()

    def start(self, params: dict[str, Any] | None, user: UserInput | None) -> None:
        """Start a response to ``user`` (None: no new input) with ``response.create``'s
        ``params``, and run it up to its first wait."""
        modalities = list(
            (params or {}).get("output_modalities") or self.session["output_modalities"]
        )
        steps = self.progress.next_reply(user)
        # The real server echoes the request's metadata in the response object.
        response = ActiveResponse(
            id=new_id("resp"), modalities=modalities, metadata=(params or {}).get("metadata")
        )
        response.steps = self._respond(response, steps)
        self.active = response
        self._advance(response)

    def _advance(self, response: ActiveResponse) -> None:
        # Run the response until it waits for a moment not reached yet, or ends. A
        # cancelled response waits for nothing: it closes at once.
        while self.active is response and response.steps is not None:
            due = response.wait_until
            if due is not None and due > self._clock() and response.cancel_reason is None:
                return
            try:
                response.wait_until = next(response.steps)
            except StopIteration:
                response.wait_until = None
                if self.active is response:
                    self.active = None
                return

    def _response_object(self, response: ActiveResponse, status: str) -> dict[str, Any]:
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

    def _respond(
        self, response: ActiveResponse, steps: tuple[Step, ...]
    ) -> Generator[float, None, None]:
        self._send(
            {"type": "response.created", "response": self._response_object(response, "in_progress")}
        )
        for step in steps:
            if response.cancel_reason:
                break
            if step.kind == "say":
                yield from self._say(response, render_say(step.text, self.progress.last_output))
            else:
                self._call(response, step)
        self._finish(response)

    def _finish(self, response: ActiveResponse) -> None:
        body = self._response_object(response, "completed")
        if response.cancel_reason:
            body["status"] = "cancelled"
            body["status_details"] = {"type": "cancelled", "reason": response.cancel_reason}
        else:
            body["status_details"] = {"type": "completed"}
        body["output"] = response.output
        text_tokens = sum(len(json.dumps(i)) for i in response.output) // 16 + 1
        audio_tokens = sum(self.audio_ms.get(i["id"], 0) for i in response.output) // 50
        input_tokens = sum(self.size(i) for i in self.items) // 16 + 1
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
        self.active = None
        self._send({"type": "response.done", "response": body})
        self._send(
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

    def _open_item(self, response: ActiveResponse, item: dict[str, Any]) -> int:
        index = len(response.output)
        response.output.append(item)
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        self._send(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": index,
                "item": item,
            }
        )
        self._send({"type": "conversation.item.added", "item": item, "previous_item_id": previous})
        return index

    def _close_item(self, response: ActiveResponse, index: int, item: dict[str, Any]) -> None:
        item["status"] = "incomplete" if response.cancel_reason else "completed"
        # Found by identity from the end, where it usually is: comparing dicts from the
        # start made closing an item cost the whole conversation.
        position = next(
            (n for n in range(len(self.items) - 1, -1, -1) if self.items[n] is item), 0
        )
        previous = self.items[position - 1]["id"] if position > 0 else None
        self._send({"type": "conversation.item.done", "item": item, "previous_item_id": previous})
        self._send(
            {
                "type": "response.output_item.done",
                "response_id": response.id,
                "output_index": index,
                "item": item,
            }
        )

    def _say(self, response: ActiveResponse, text: str) -> Generator[float, None, None]:
        audio = response.modalities == ["audio"]
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        index = self._open_item(response, item)
        ids = {
            "response_id": response.id,
            "item_id": item["id"],
            "output_index": index,
            "content_index": 0,
        }
        part: dict[str, Any] = (
            {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        )
        self._send({"type": "response.content_part.added", **ids, "part": dict(part)})
        if audio:
            said = yield from self._stream_audio(response, ids, text)
            self._send({"type": "response.output_audio.done", **ids})
            self._send({"type": "response.output_audio_transcript.done", **ids, "transcript": said})
            part["transcript"] = said
            item["content"] = [{"type": "output_audio", "transcript": said}]
        else:
            said = ""
            for word in _words(text):
                if response.cancel_reason:
                    break
                said += word
                self._send({"type": "response.output_text.delta", **ids, "delta": word})
            self._send({"type": "response.output_text.done", **ids, "text": said})
            part["text"] = said
            item["content"] = [{"type": "output_text", "text": said}]
        self._send({"type": "response.content_part.done", **ids, "part": part})
        self._close_item(response, index, item)

    def _stream_audio(
        self, response: ActiveResponse, ids: dict[str, Any], text: str
    ) -> Generator[float, None, str]:
        # Chunk n is due CHUNK_MS * n after the first; the caller decides what "due" means.
        fmt = audio_format(self.session["audio"]["output"]["format"])
        chunks = self.audio.speech(text, fmt, CHUNK_MS)
        self.audio_ms[ids["item_id"]] = 0
        per_chunk = CHUNK_MS / 1000.0
        said = ""
        start = self._clock()
        piece = next(chunks, None)
        n = 0
        while piece is not None:
            yield start + n * per_chunk
            if response.cancel_reason:
                break
            following = next(chunks, None)
            self.assistant_audio = True
            self.audio_ms[ids["item_id"]] += fmt.ms(len(piece))
            self._send(
                {
                    "type": "response.output_audio.delta",
                    **ids,
                    "delta": codec.b64encode(piece),
                }
            )
            n += 1
            upto = (
                len(text) if following is None else int(n * per_chunk * self.audio.chars_per_second)
            )
            words = text[len(said) : upto]
            if words:
                said += words
                self._send(
                    {"type": "response.output_audio_transcript.delta", **ids, "delta": words}
                )
            piece = following
        return said

    def _call(self, response: ActiveResponse, step: Step) -> None:
        call_id = new_id("call", 8)
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "status": "in_progress",
            **function_call_item(call_id, step.name, ""),
        }
        index = self._open_item(response, item)
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
            self._send({"type": "response.function_call_arguments.delta", **ids, "delta": delta})
        self._send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "name": step.name,
                "arguments": item["arguments"],
            }
        )
        self._close_item(response, index, item)


def _words(text: str) -> list[str]:
    words: list[str] = []
    for piece in text.split(" "):
        words.append(piece if not words else " " + piece)
    return [w for w in words if w] or [""]
