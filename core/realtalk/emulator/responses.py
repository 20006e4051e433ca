"""The responses of an emulated session: scenario steps streamed as GA server events.

Part of the sans-I/O server protocol (:mod:`.protocol`): a :class:`Responder` runs each
response as a generator that yields the moments it must wait for (each audio chunk's),
so the caller decides whether that is real time, faster, or no time at all.

As on the live server, at most one response belongs to the conversation at a time
(:attr:`Responder.active`), while any number of out-of-band responses
(``response.create`` with ``conversation: "none"``) may run beside it: their output
items are streamed (``response.output_item.*``) but never enter the conversation (no
``conversation.item.added``/``.done``), and their ``response.done`` carries
``conversation_id: null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol import codec
from ..protocol.vocab import AudioFormat, audio_format, function_call_item, new_id
from .hosted import McpResult, mcp_servers, needs_approval
from .scenario import Step, render_say
from .state import ScenarioProgress, UserInput
from .transcripts import word_deltas

__all__ = [
    "AUDIO_MS_PER_TOKEN",
    "CHARS_PER_TOKEN",
    "CHUNK_MS",
    "CONVERSATION_ID",
    "DEFAULT_AUDIO_SPEED",
    "ActiveResponse",
    "Responder",
    "Speech",
]

CHUNK_MS = 100  # each response.output_audio.delta carries this much audio
CONVERSATION_ID = "conv_emulator"
"""The ``conversation_id`` of in-conversation responses (``null`` for out-of-band ones)."""
DEFAULT_AUDIO_SPEED = 4.0
"""How much faster than real time assistant audio is sent by default: the live server
streams audio ahead of playback, so a reply often ends (``response.done``) long before
the user has heard it, and a barge-in lands after it."""
CHARS_PER_TOKEN = 4
"""Output-token estimate: one token per 4 characters of text, transcript or arguments."""
AUDIO_MS_PER_TOKEN = 50
"""Output-token estimate: one audio token per 50 ms of assistant audio."""


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
    """A response being streamed.

    Attributes:
        id: Its ``resp_...`` id.
        modalities: ``["audio"]`` or ``["text"]``.
        metadata: The request's metadata, echoed.
        in_conversation: False for an out-of-band response (``conversation: "none"``).
        budget: Its ``max_output_tokens`` (None: ``"inf"``).
        max_output_tokens: The value echoed in the response object.
        input_size: JSON size of its own ``input`` items (None: the conversation).
        output: Its output items so far.
        status: Its final status once decided (``cancelled``, ``failed``, ``incomplete``).
        status_details: The ``status_details`` that go with :attr:`status`.
        text_chars: Characters of text, transcript and arguments sent so far.
        audio_ms: Milliseconds of audio sent so far.
        wait_until: The moment it waits for (the next audio chunk's), if any.
        steps: The generator that streams it.
        finished: True once ``response.done`` was sent (or it was abandoned).
        mcp_token: The hosted MCP call it waits for, if any (see :meth:`Responder.mcp_done`).
        mcp_result: That call's result, once it came.
        mcp_listing: The hosted MCP server whose tool listing it waits for, if any.
    """

    id: str
    modalities: list[str]
    metadata: dict[str, Any] | None
    in_conversation: bool = True
    budget: int | None = None
    max_output_tokens: int | str = "inf"
    input_size: int | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    status: str | None = None
    status_details: dict[str, Any] | None = None
    text_chars: int = 0
    audio_ms: int = 0
    wait_until: float | None = None
    steps: Generator[float, None, None] | None = None
    finished: bool = False
    mcp_token: int | None = None
    mcp_result: McpResult | None = None
    mcp_listing: str | None = None

    @property
    def stopped(self) -> bool:
        """True once the response was told to stop where it stands (cancel, limit, fault)."""
        return self.status is not None

    @property
    def cancel_reason(self) -> str | None:
        """Why it was cancelled, once it was."""
        if self.status != "cancelled" or self.status_details is None:
            return None
        reason = self.status_details.get("reason")
        return reason if isinstance(reason, str) else None

    def output_tokens(self) -> tuple[int, int]:
        """The estimated (text, audio) output tokens sent so far."""
        return -(-self.text_chars // CHARS_PER_TOKEN), self.audio_ms // AUDIO_MS_PER_TOKEN


class Responder:
    """Runs a session's responses and keeps what they leave behind.

    Args:
        send: Queues one server event.
        items: The conversation (shared with the protocol, appended to in place).
        session: Returns the current session configuration.
        progress: Where the scenario stands.
        speech: The voice.
        clock: Returns the protocol's clock now.
        audio_speed: How much faster than real time audio chunks fall due (1.0: real
            time); the caller may still send them at once (``fast``).
        on_done: Called with each response right after its ``response.done``.
        keep_audio: Called with an in-conversation assistant item's id and audio when
            the item is done (for ``conversation.item.retrieve``).
        call_mcp: Asks the I/O side to call a hosted MCP tool (server, tool, arguments);
            returns the token its result comes back with (:meth:`mcp_done`).
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
        audio_speed: float = DEFAULT_AUDIO_SPEED,
        on_done: Callable[[ActiveResponse], None] | None = None,
        keep_audio: Callable[[str, bytes], None] | None = None,
        call_mcp: Callable[[dict[str, Any], str, dict[str, Any]], int] | None = None,
    ) -> None:
        if audio_speed <= 0:
            raise ValueError(f"audio_speed must be above 0, not {audio_speed}")
        self._send = send
        self.items = items
        self._session = session
        self.progress = progress
        self.audio = speech
        self._clock = clock
        self.audio_speed = audio_speed
        self._on_done = on_done
        self._keep_audio = keep_audio
        self.active: ActiveResponse | None = None  # the one in-conversation response
        self.out_of_band: dict[str, ActiveResponse] = {}
        self.audio_ms: dict[str, int] = {}  # in-conversation assistant item id -> audio (ms)
        self.assistant_audio = False
        self._sizes: dict[str, int] = {}  # JSON size of finished items, for usage estimates
        self._call_mcp = call_mcp
        # Hosted MCP: the tools each server listed, the answers to approval requests, and
        # the approval request the continuation's mcp_call step waits for.
        self.mcp_tools: dict[str, list[dict[str, Any]]] = {}
        self.mcp_listing: set[str] = set()  # servers whose listing is in flight
        self.approvals: dict[str, bool] = {}
        self._approval_asked: tuple[str, Step] | None = None

    @property
    def session(self) -> dict[str, Any]:
        """The current session configuration."""
        return self._session()

    # -- the running responses ---------------------------------------------------------

    def running(self) -> list[ActiveResponse]:
        """Every response still streaming: the in-conversation one first."""
        found = [] if self.active is None else [self.active]
        return found + list(self.out_of_band.values())

    def find(self, response_id: str) -> ActiveResponse | None:
        """The running response with this id, if any."""
        return next((r for r in self.running() if r.id == response_id), None)

    @property
    def deadline(self) -> float | None:
        """When a running response wants :meth:`tick` next (None: nothing to wait for)."""
        # A response waiting for a hosted MCP call (math.inf) wants no tick: the result
        # wakes it (mcp_done).
        due = [r.wait_until for r in self.running() if r.wait_until is not None and math.isfinite(r.wait_until)]
        return min(due) if due else None

    def listing_done(self, label: str) -> None:
        """A hosted MCP server's tools were listed (or failed to be): responses whose
        model wanted to call one of them continue."""
        self.mcp_listing.discard(label)
        for response in self.running():
            if response.mcp_listing == label:
                response.mcp_listing, response.wait_until = None, None
                self._advance(response)

    def mcp_done(self, token: int, result: McpResult) -> None:
        """A hosted MCP call came back: the response waiting for it continues."""
        for response in self.running():
            if response.mcp_token == token:
                response.mcp_token, response.mcp_result = None, result
                response.wait_until = None
                self._advance(response)

    def tick(self) -> None:
        """Stream what of the running responses is due by the clock now."""
        for response in self.running():
            self._advance(response)

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

    def cancel(self, reason: str, response: ActiveResponse | None = None) -> None:
        """Cancel ``response`` (default: the in-conversation one, if any): its closing
        events are sent now."""
        response = response or self.active
        if response is None or response.finished:
            return
        self._stop(response, "cancelled", {"type": "cancelled", "reason": reason})
        self._advance(response)  # it sends its closing events now, before anything later

    def abandon(self) -> None:
        """Drop every running response where it stands, unfinished (the session ended)."""
        for response in self.running():
            response.finished = True
            if response.steps is not None:
                response.steps.close()
        self.active = None
        self.out_of_band.clear()

    def _calls_without_output(self) -> bool:
        """Whether a function call in the conversation still waits for its output (its
        tool runs on the client: asynchronous function calling)."""
        answered = {i.get("call_id") for i in self.items if i.get("type") == "function_call_output"}
        return any(i.get("type") == "function_call" and i.get("call_id") not in answered for i in self.items)

    def start(
        self,
        params: dict[str, Any] | None,
        user: UserInput | None,
        *,
        steps: tuple[Step, ...] | None = None,
        input_size: int | None = None,
    ) -> ActiveResponse:
        """Start a response to ``user`` (None: no new input) with ``response.create``'s
        ``params``, and run it up to its first wait.

        Args:
            params: The request's ``response`` object (validated by the caller).
            user: The new user input it answers (in-conversation responses).
            steps: The steps to run instead of the scenario's next reply (out-of-band
                responses, whose replies the caller matched).
            input_size: JSON size of the request's own ``input`` items, when it has them.
        """
        params = params or {}
        modalities = list(params.get("output_modalities") or self.session["output_modalities"])
        limit = params.get("max_output_tokens", self.session["max_output_tokens"])
        in_conversation = params.get("conversation", "auto") != "none"
        if steps is None:
            steps = self.progress.next_reply(user, calls_running=self._calls_without_output())
        # The real server echoes the request's metadata in the response object.
        response = ActiveResponse(
            id=new_id("resp"),
            modalities=modalities,
            metadata=params.get("metadata"),
            in_conversation=in_conversation,
            budget=limit if isinstance(limit, int) else None,
            max_output_tokens=limit,
            input_size=input_size,
        )
        response.steps = self._respond(response, steps)
        if in_conversation:
            self.active = response
        else:
            self.out_of_band[response.id] = response
        self._advance(response)
        return response

    def _advance(self, response: ActiveResponse) -> None:
        # Run the response until it waits for a moment not reached yet, or ends. A
        # stopped response waits for nothing: it closes at once.
        while not response.finished and response.steps is not None:
            due = response.wait_until
            if due is not None and due > self._clock() and not response.stopped:
                return
            try:
                response.wait_until = next(response.steps)
            except StopIteration:
                response.wait_until = None
                return

    def _stop(self, response: ActiveResponse, status: str, details: dict[str, Any]) -> None:
        if response.status is None:
            response.status, response.status_details = status, details

    def _spend(self, response: ActiveResponse, chars: int = 0, audio_ms: int = 0) -> bool:
        """Count output about to be sent; False (and the response stopped, incomplete)
        when it would go over ``max_output_tokens``."""
        if response.budget is not None:
            text = -(-(response.text_chars + chars) // CHARS_PER_TOKEN)
            audio = (response.audio_ms + audio_ms) // AUDIO_MS_PER_TOKEN
            if text + audio > response.budget:
                details = {"type": "incomplete", "reason": "max_output_tokens"}
                self._stop(response, "incomplete", details)
                return False
        response.text_chars += chars
        response.audio_ms += audio_ms
        return True

    # -- the response's events ---------------------------------------------------------

    def _response_object(self, response: ActiveResponse, status: str) -> dict[str, Any]:
        return {
            "id": response.id,
            "object": "realtime.response",
            "status": status,
            "status_details": None,
            "output": [],
            "conversation_id": CONVERSATION_ID if response.in_conversation else None,
            "output_modalities": response.modalities,
            "max_output_tokens": response.max_output_tokens,
            "audio": {
                "output": {
                    "format": self.session["audio"]["output"]["format"],
                    "voice": _voice_name(self.session["audio"]["output"]["voice"]),
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
        for number, step in enumerate(steps):
            if response.stopped:
                break
            if step.kind == "mcp_call":
                go_on = yield from self._mcp_call(response, step)
                if go_on is None:  # waits for an approval: the rest runs after it
                    self.progress.continuation.insert(0, steps[number:])
                if not go_on:
                    break
            elif step.kind == "say":
                yield from self._say(response, render_say(step.text, self.progress.last_output))
            elif step.kind == "call":
                self._call(response, step)
            elif step.kind == "fail":
                error = {"type": step.error_type, "code": step.code or None, "message": step.text}
                self._stop(response, "failed", {"type": "failed", "error": error})
            else:  # "incomplete"
                self._stop(response, "incomplete", {"type": "incomplete", "reason": step.code})
        self._finish(response)

    def _usage(self, response: ActiveResponse) -> dict[str, Any]:
        text_tokens, audio_tokens = response.output_tokens()
        if response.input_size is not None:
            input_tokens = response.input_size // 16 + 1
        else:
            input_tokens = sum(self.size(i) for i in self.items) // 16 + 1
        output_tokens = text_tokens + audio_tokens
        return {
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

    def _finish(self, response: ActiveResponse) -> None:
        body = self._response_object(response, response.status or "completed")
        body["status_details"] = response.status_details or {"type": "completed"}
        body["output"] = response.output
        body["usage"] = usage = self._usage(response)
        # Leave before response.done so a client reacting to it can create the next one.
        response.finished = True
        if self.active is response:
            self.active = None
        self.out_of_band.pop(response.id, None)
        self._send({"type": "response.done", "response": body})
        output_tokens = usage["output_tokens"]
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
        if self._on_done is not None:
            self._on_done(response)

    def _open_item(self, response: ActiveResponse, item: dict[str, Any]) -> int:
        index = len(response.output)
        response.output.append(item)
        self._send(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": index,
                "item": item,
            }
        )
        if response.in_conversation:
            previous = self.items[-1]["id"] if self.items else None
            self.items.append(item)
            self._send(
                {"type": "conversation.item.added", "item": item, "previous_item_id": previous}
            )
        return index

    def _close_item(self, response: ActiveResponse, index: int, item: dict[str, Any]) -> None:
        item["status"] = "incomplete" if response.stopped else "completed"
        if response.in_conversation:
            # Found by identity from the end, where it usually is: comparing dicts from the
            # start made closing an item cost the whole conversation.
            position = next(
                (n for n in range(len(self.items) - 1, -1, -1) if self.items[n] is item), 0
            )
            previous = self.items[position - 1]["id"] if position > 0 else None
            self._send(
                {"type": "conversation.item.done", "item": item, "previous_item_id": previous}
            )
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
            for word in word_deltas(text) or [""]:
                if response.stopped or not self._spend(response, chars=len(word)):
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
        # Chunk n is due CHUNK_MS * n / audio_speed after the first; the caller decides
        # what "due" means (real time, or at once when fast).
        fmt = audio_format(self.session["audio"]["output"]["format"])
        chunks = self.audio.speech(text, fmt, CHUNK_MS)
        item_id = ids["item_id"]
        if response.in_conversation:
            self.audio_ms[item_id] = 0
        sent = bytearray()
        per_chunk = CHUNK_MS / 1000.0 / self.audio_speed
        said = ""
        start = self._clock()
        piece = next(chunks, None)
        n = 0
        while piece is not None:
            yield start + n * per_chunk
            if response.stopped:
                break
            following = next(chunks, None)
            n += 1
            upto = (
                len(text)
                if following is None
                else int(n * CHUNK_MS / 1000.0 * self.audio.chars_per_second)
            )
            words = text[len(said) : upto]
            if not self._spend(response, chars=len(words), audio_ms=fmt.ms(len(piece))):
                break
            self.assistant_audio = True
            sent += piece
            if response.in_conversation:
                self.audio_ms[item_id] += fmt.ms(len(piece))
            self._send({"type": "response.output_audio.delta", **ids, "delta": codec.b64encode(piece)})
            if words:
                said += words
                self._send(
                    {"type": "response.output_audio_transcript.delta", **ids, "delta": words}
                )
            piece = following
        if response.in_conversation and self._keep_audio is not None:
            self._keep_audio(item_id, bytes(sent))
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
            delta = step.arguments[start : start + 8]
            if response.stopped or not self._spend(response, chars=len(delta)):
                break
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

    # -- hosted MCP ----------------------------------------------------------------------

    def _mcp_call(self, response: ActiveResponse, step: Step) -> Generator[float, None, bool | None]:
        """The "model" calls a tool of a hosted MCP server; the emulator runs it.

        Returns True to go on with the response's steps, False to end it here (the call
        was declined), None when an approval request ended it (the steps from this one
        run again after the client's ``mcp_approval_response``).
        """
        while step.text in self.mcp_listing and not response.stopped:
            # The model cannot call a tool before it is listed: wait for the listing.
            response.mcp_listing = step.text
            yield math.inf
        response.mcp_listing = None
        if response.stopped:  # cancelled while it waited
            return False
        server = mcp_servers(self.session).get(step.text)
        listed = {t.get("name"): t for t in self.mcp_tools.get(step.text, [])}
        tool = listed.get(step.name, {"name": step.name})
        approval_id = None
        if server is not None and step.name in listed and needs_approval(server, tool):
            asked = self._approval_asked
            if asked is None or asked[1] is not step:
                self._approval_asked = (self._approval_request(response, step), step)
                return None
            approval_id, self._approval_asked = asked[0], None
            if not self.approvals.pop(approval_id, False):
                yield from self._say(response, f"I did not run {step.name}: it was not approved.")
                return False
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "mcp_call",
            "server_label": step.text,
            "name": step.name,
            "arguments": "",
            "approval_request_id": approval_id,
            "output": None,
            "error": None,
        }
        index = self._open_item(response, item)
        ids = {"response_id": response.id, "item_id": item["id"], "output_index": index}
        for start in range(0, len(step.arguments), 8):
            delta = step.arguments[start : start + 8]
            if response.stopped or not self._spend(response, chars=len(delta)):
                break
            item["arguments"] += delta
            self._send({"type": "response.mcp_call_arguments.delta", **ids, "delta": delta})
        self._send({"type": "response.mcp_call_arguments.done", **ids, "arguments": item["arguments"]})
        self._send({"type": "response.mcp_call.in_progress", "item_id": item["id"], "output_index": index})
        result = yield from self._mcp_result(response, server, step, listed)
        if result is None:  # cancelled while the server worked
            self._close_item(response, index, item)
            return False
        if result.error is not None:
            item["error"] = result.error
            self.progress.last_output = str(result.error.get("message", ""))
            self._send({"type": "response.mcp_call.failed", "item_id": item["id"], "output_index": index})
        else:
            item["output"] = result.output or ""
            self.progress.last_output = item["output"]
            self._send({"type": "response.mcp_call.completed", "item_id": item["id"], "output_index": index})
        self._close_item(response, index, item)
        return True

    def _mcp_result(
        self,
        response: ActiveResponse,
        server: dict[str, Any] | None,
        step: Step,
        listed: dict[Any, dict[str, Any]],
    ) -> Generator[float, None, McpResult | None]:
        """Call the tool on its server (through the I/O side) and wait for the result."""
        if server is None:
            return McpResult(error={"type": "protocol_error", "code": -32602,
                                    "message": f"no hosted MCP server {step.text!r} in the session"})
        if step.name not in listed:
            return McpResult(error={"type": "protocol_error", "code": -32602,
                                    "message": f"tool {step.name!r} is not among the tools "
                                               f"{step.text!r} listed"})
        try:
            arguments = json.loads(step.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            return McpResult(error={"type": "protocol_error", "code": -32602,
                                    "message": "the arguments are not a JSON object"})
        if self._call_mcp is None:
            return McpResult(error={"type": "protocol_error", "code": -32000,
                                    "message": "this emulator cannot call MCP servers"})
        response.mcp_token = self._call_mcp(server, step.name, arguments)
        yield math.inf  # woken by mcp_done, or at once when the response is stopped
        result, response.mcp_result, response.mcp_token = response.mcp_result, None, None
        return result

    def _approval_request(self, response: ActiveResponse, step: Step) -> str:
        """Send an ``mcp_approval_request`` item; the response ends after it."""
        item: dict[str, Any] = {
            "id": new_id("mcpr"),
            "type": "mcp_approval_request",
            "server_label": step.text,
            "name": step.name,
            "arguments": step.arguments,
        }
        index = self._open_item(response, item)
        self._close_item(response, index, item)
        return str(item["id"])


def _voice_name(voice: Any) -> Any:
    """The voice as a response carries it: a string (a custom voice ``{"id": ...}`` of the
    session is named by its id, as the GA ``RealtimeResponse`` type takes only strings)."""
    return voice.get("id") if isinstance(voice, dict) else voice
