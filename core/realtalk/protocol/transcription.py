"""Transcription-only sessions (``session.type: "transcription"``), sans-I/O.

A transcription session turns input audio into text and never answers: the client
connects with ``intent=transcription``, configures the session with one ``session.update``
whose ``session`` is a GA ``RealtimeTranscriptionSessionCreateRequest``, appends audio,
and the server (with VAD) or the client (without) commits it segment by segment. Each
committed segment is an item that gets ``conversation.item.input_audio_transcription``
events: ``delta`` (streaming models), ``segment`` (speaker-labelled, from the diarizing
model), then ``completed`` or ``failed``.

Two pieces, no I/O:

- :class:`TranscriptionOptions`: what the user asked for, checked (:meth:`check` raises a
  one-line :class:`~realtalk.exceptions.ConfigError`) and turned into the session object.
- :class:`Transcriber`: server events in (:meth:`Transcriber.receive`), display actions
  out (:class:`TranscriptDelta`, :class:`SpeakerSegment`, :class:`Transcript`,
  :class:`ServerError`), and events to send out (:meth:`Transcriber.events_to_send`).

Transcriptions run in parallel on the server, so item B may complete before item A. The
transcriber releases actions in the order the audio was committed: the oldest item not yet
done streams its deltas live; a later item's deltas and segments are held (at most
:data:`MAX_PENDING` items) and released when every item before it is done.

Ending an input (a WAV file, a stopped microphone): :meth:`Transcriber.finish` sends a
``session.update`` that changes nothing, as a barrier: once its ``session.updated``
arrives, the server has acted on all the audio before it. Then, if speech is still open
(or there is no turn detection), a last ``input_audio_buffer.commit``; its answer
(``committed``, or the error ``input_audio_buffer_commit_empty``) is expected and not
shown. :attr:`Transcriber.finished` is true once every committed item is done.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from ..exceptions import ConfigError
from ..models import DEPRECATED_TRANSCRIPTION_MODELS, DIARIZE_MODELS, TRANSCRIPTION_MODEL_ORDER
from .vocab import error_line, new_event_id

__all__ = [
    "DEFAULT_TRANSCRIPTION_MODEL",
    "DEPRECATED_TRANSCRIPTION_MODELS",
    "DIARIZE_MODELS",
    "MAX_PENDING",
    "TRANSCRIPTION_MODELS",
    "TURN_DETECTION_TYPES",
    "ServerError",
    "SpeakerSegment",
    "SpeechStarted",
    "SpeechStopped",
    "Transcriber",
    "Transcript",
    "TranscriptDelta",
    "TranscriptionAction",
    "TranscriptionOptions",
]

TRANSCRIPTION_MODELS: tuple[str, ...] = TRANSCRIPTION_MODEL_ORDER
"""The models a transcription session takes (:mod:`realtalk.models`, which the tests keep
equal to the ``openai`` package's ``AudioTranscription.model``)."""

DEFAULT_TRANSCRIPTION_MODEL = "gpt-transcribe"
"""The current transcription model that is not deprecated and takes every option realtalk
sends (``language``, ``prompt``, turn detection)."""


_NO_PROMPT = frozenset({"gpt-realtime-whisper", "gpt-4o-transcribe-diarize"})
_NO_VAD = frozenset({"gpt-realtime-whisper"})

TURN_DETECTION_TYPES = ("server_vad", "semantic_vad", "none")
"""``none``: the client commits (at the end of the input)."""

MAX_PENDING = 256
"""Items held in commit order while waiting for an earlier one; beyond it the oldest is
given up (a :class:`Transcript` with an ``error``), so memory stays bounded."""

_LANGUAGE = re.compile(r"^[a-z]{2}$")
_EAGERNESS = ("low", "medium", "high", "auto")
_NOISE = ("near_field", "far_field")

# -- options ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptionOptions:
    """What a transcription session is asked to do.

    Attributes:
        model: One of :data:`TRANSCRIPTION_MODELS`.
        language: ISO-639-1 code of the spoken language (``en``), or None to detect it.
        prompt: Text that guides the model (vocabulary, style); not for
            ``gpt-realtime-whisper`` or the diarizing model.
        turn_detection: ``server_vad``, ``semantic_vad`` or ``none``.
        silence_duration_ms: server_vad: silence that ends a segment.
        prefix_padding_ms: server_vad: audio kept before detected speech.
        threshold: server_vad: activation threshold, 0 to 1.
        eagerness: semantic_vad: ``low``, ``medium``, ``high`` or ``auto``.
        noise_reduction: ``near_field``, ``far_field``, or None (off).
        logprobs: Ask for log probabilities (``include``).
    """

    model: str = DEFAULT_TRANSCRIPTION_MODEL
    language: str | None = None
    prompt: str | None = None
    turn_detection: str = "server_vad"
    silence_duration_ms: int | None = None
    prefix_padding_ms: int | None = None
    threshold: float | None = None
    eagerness: str | None = None
    noise_reduction: str | None = None
    logprobs: bool = False

    def check(self) -> None:
        """Refuse what the server would refuse, before connecting.

        Raises:
            ConfigError: One line naming the option and what to do.
        """
        for problem in self._problems():
            raise ConfigError(problem)

    def _problems(self) -> list[str]:
        problems = [*self._model_problems()]
        if self.language is not None and not _LANGUAGE.match(self.language):
            problems.append(f"language {self.language!r}: give an ISO-639-1 code such as 'en' or 'de'")
        if self.turn_detection not in TURN_DETECTION_TYPES:
            problems.append(f"turn detection {self.turn_detection!r}: choose one of {', '.join(TURN_DETECTION_TYPES)}")
        vad_only = {"silence_duration_ms": self.silence_duration_ms, "prefix_padding_ms": self.prefix_padding_ms,
                    "threshold": self.threshold}
        for name, value in vad_only.items():
            if value is not None and self.turn_detection != "server_vad":
                problems.append(f"{name} is a server_vad setting; it does nothing with {self.turn_detection}")
        if self.eagerness is not None and self.turn_detection != "semantic_vad":
            problems.append(f"eagerness is a semantic_vad setting; it does nothing with {self.turn_detection}")
        if self.eagerness is not None and self.eagerness not in _EAGERNESS:
            problems.append(f"eagerness {self.eagerness!r}: choose one of {', '.join(_EAGERNESS)}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            problems.append(f"threshold {self.threshold}: must be from 0 to 1")
        for name in ("silence_duration_ms", "prefix_padding_ms"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name} {value}: must be 0 or more")
        if self.noise_reduction is not None and self.noise_reduction not in _NOISE:
            problems.append(f"noise reduction {self.noise_reduction!r}: choose one of {', '.join(_NOISE)}")
        return problems

    def _model_problems(self) -> list[str]:
        if self.model not in TRANSCRIPTION_MODELS:
            hint = ""
            if self.model.startswith("gpt-realtime") or "audio-preview" in self.model:
                hint = f" ({self.model} is a conversation model: `realtalk run` uses it)"
            return [f"unknown transcription model {self.model!r}{hint}; choose one of {', '.join(TRANSCRIPTION_MODELS)}"]
        problems = []
        if self.prompt is not None and self.model in _NO_PROMPT:
            problems.append(f"{self.model} takes no prompt; drop it, or choose another model")
        if self.model in _NO_VAD and self.turn_detection != "none":
            problems.append(f"{self.model} takes no turn detection: use turn detection none (and a WAV file)")
        return problems

    @property
    def deprecation(self) -> str | None:
        """A one-line warning when the model is deprecated, else None."""
        date = DEPRECATED_TRANSCRIPTION_MODELS.get(self.model)
        if date is None:
            return None
        return (f"{self.model} is deprecated (shutdown announced for {date});"
                f" {DEFAULT_TRANSCRIPTION_MODEL} is the current model")

    @property
    def diarize(self) -> bool:
        """Whether the model labels speakers."""
        return self.model in DIARIZE_MODELS

    def session(self) -> dict[str, Any]:
        """The ``session`` of the ``session.update`` (a GA transcription session)."""
        transcription: dict[str, Any] = {"model": self.model}
        if self.language is not None:
            transcription["language"] = self.language
        if self.prompt is not None:
            transcription["prompt"] = self.prompt
        audio_input: dict[str, Any] = {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": transcription,
            "turn_detection": self._turn_detection(),
            "noise_reduction": None if self.noise_reduction is None else {"type": self.noise_reduction},
        }
        session: dict[str, Any] = {"type": "transcription", "audio": {"input": audio_input}}
        if self.logprobs:
            session["include"] = ["item.input_audio_transcription.logprobs"]
        return session

    def _turn_detection(self) -> dict[str, Any] | None:
        if self.turn_detection == "none":
            return None
        detection: dict[str, Any] = {"type": self.turn_detection}
        if self.turn_detection == "server_vad":
            for name in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
                if getattr(self, name) is not None:
                    detection[name] = getattr(self, name)
        elif self.eagerness is not None:
            detection["eagerness"] = self.eagerness
        return detection


# -- display actions --------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptDelta:
    """New text of the segment being transcribed (streaming models): show it at once."""

    item_id: str
    text: str
    type: Literal["transcript.delta"] = "transcript.delta"


@dataclass(frozen=True)
class SpeakerSegment:
    """A stretch of one speaker's speech (the diarizing model).

    Attributes:
        item_id: The committed audio it belongs to.
        speaker: The server's label (``A``, ``B``...).
        text: What was said.
        start: Seconds from the start of the item's audio.
        end: Seconds from the start of the item's audio.
    """

    item_id: str
    speaker: str
    text: str
    start: float
    end: float
    type: Literal["transcript.segment"] = "transcript.segment"


@dataclass(frozen=True)
class Transcript:
    """One committed stretch of audio, transcribed (or not: see :attr:`error`).

    Attributes:
        item_id: The item the server made of the committed audio.
        text: The transcript (empty for silence, or when it failed).
        segments: Speaker segments, with the diarizing model.
        error: Why there is no transcript (``code: message``), or None.
        usage: The server's ``usage`` (tokens or seconds billed), when given.
        languages: Languages the server detected, when it says.
        logprobs: Log probabilities of the transcript's tokens, when asked for.
    """

    item_id: str
    text: str
    segments: tuple[SpeakerSegment, ...] = ()
    error: str | None = None
    usage: dict[str, Any] | None = None
    languages: tuple[str, ...] = ()
    logprobs: tuple[dict[str, Any], ...] | None = None
    type: Literal["transcript.done"] = "transcript.done"

    @property
    def ok(self) -> bool:
        """Whether it was transcribed."""
        return self.error is None


@dataclass(frozen=True)
class SpeechStarted:
    """The server's VAD heard speech start (``audio_start_ms`` into the input)."""

    item_id: str
    audio_start_ms: int
    type: Literal["speech.started"] = "speech.started"


@dataclass(frozen=True)
class SpeechStopped:
    """The server's VAD heard speech end (``audio_end_ms`` into the input)."""

    item_id: str
    audio_end_ms: int
    type: Literal["speech.stopped"] = "speech.stopped"


@dataclass(frozen=True)
class ServerError:
    """An ``error`` event. ``fatal``: the session could not be configured; stop with
    :attr:`message`. Otherwise show it and go on."""

    message: str
    fatal: bool = False
    type: Literal["error"] = "error"


TranscriptionAction = TranscriptDelta | SpeakerSegment | Transcript | SpeechStarted | SpeechStopped | ServerError
"""Everything :meth:`Transcriber.receive` returns."""


# -- the state machine ------------------------------------------------------------------


@dataclass
class _Item:
    """One committed segment of audio while its transcription is under way."""

    id: str
    text: str = ""
    shown: int = 0  # characters of ``text`` already released as deltas
    segments: list[SpeakerSegment] = field(default_factory=list)
    segments_shown: int = 0
    done: Transcript | None = None


class Transcriber:
    """The rules of a transcription session: events in, actions and events to send out.

    Use::

        t = Transcriber(options)
        send(t.setup())                     # the session.update
        for event in server:                # until t.configured (the server accepted it)
            show(t.receive(event))          # then stream audio, showing t.receive(...)
        for event in t.finish(): send(event)   # at the end of the input
        while not t.finished:               # bounded by the caller's timeout
            show(t.receive(next_event)); send each of t.events_to_send()

    A :class:`ServerError` with ``fatal`` means the session was refused: stop.
    """

    def __init__(self, options: TranscriptionOptions) -> None:
        self.options = options
        self.configured = False
        self.server_session_type: str | None = None
        self._updates_sent = 0
        self._updates_answered = 0
        self._setup_id: str | None = None
        self._items: dict[str, _Item] = {}
        self._order: deque[str] = deque()
        # Items already released, so that a repeated event cannot show a segment twice.
        self._released: deque[str] = deque(maxlen=MAX_PENDING)
        self._speaking: str | None = None  # item id of speech started and not committed
        self._outbox: list[dict[str, Any]] = []
        self._finishing: Literal["no", "barrier", "commit", "drain"] = "no"
        self._commit_id: str | None = None
        self._barrier_id: str | None = None

    # -- what to send ---------------------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        """The ``session.update`` that configures the session; send it first."""
        self._setup_id = new_event_id()
        self._updates_sent += 1
        return {"type": "session.update", "event_id": self._setup_id, "session": self.options.session()}

    def append(self, audio_b64: str) -> dict[str, Any]:
        """The ``input_audio_buffer.append`` of one chunk (base64 PCM16, 24 kHz, mono)."""
        return {"type": "input_audio_buffer.append", "audio": audio_b64}

    def finish(self) -> list[dict[str, Any]]:
        """The input has ended: the events to send now (then read until :attr:`finished`)."""
        if self._finishing != "no":
            return []
        if self.options.turn_detection == "none":
            return [self._commit()]
        self._finishing = "barrier"
        self._updates_sent += 1
        self._barrier_id = new_event_id()
        return [{"type": "session.update", "event_id": self._barrier_id, "session": {"type": "transcription"}}]

    def events_to_send(self) -> list[dict[str, Any]]:
        """Events :meth:`receive` decided to send (the last commit); call after each receive."""
        out, self._outbox = self._outbox, []
        return out

    def _commit(self) -> dict[str, Any]:
        self._finishing = "commit"
        self._commit_id = new_event_id()
        return {"type": "input_audio_buffer.commit", "event_id": self._commit_id}

    @property
    def pending(self) -> int:
        """Committed items whose transcript has not been released yet."""
        return len(self._order)

    @property
    def finished(self) -> bool:
        """After :meth:`finish`: the server acted on all the input and every item is done."""
        return self._finishing == "drain" and not self._order

    def abandon(self, reason: str) -> list[TranscriptionAction]:
        """The connection ended: every item still held, in order, the unfinished ones as
        failed with ``reason``. Use a new transcriber for the next connection."""
        for item_id in self._order:
            item = self._items[item_id]
            if item.done is None:
                item.done = Transcript(item.id, item.text, tuple(item.segments), error=reason)
        return self._release()

    # -- what arrives ---------------------------------------------------------------------

    def receive(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        """Take one server event; return what to show, in commit order.

        Unknown events are ignored (a server may send more than this needs).
        """
        kind = event.get("type")
        handler = _HANDLERS.get(kind if isinstance(kind, str) else "")
        if handler is None:
            return []
        actions: list[TranscriptionAction] = handler(self, event)
        return actions + self._release()

    def _on_session_created(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        session = event.get("session")
        if isinstance(session, dict):
            self.server_session_type = str(session.get("type"))
        return []

    def _on_session_updated(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        self._updates_answered += 1
        if self._updates_answered == 1:
            self.configured = True
        self._after_barrier()
        return []

    def _after_barrier(self) -> None:
        if self._finishing != "barrier" or self._updates_answered < self._updates_sent:
            return
        if self._speaking is not None:
            self._outbox.append(self._commit())
        else:
            self._finishing = "drain"

    def _on_error(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        error = event.get("error")
        error = error if isinstance(error, dict) else {}
        line = error_line(error)
        param = error.get("param")
        shown = f"{line} ({param})" if param else line
        caused_by = error.get("event_id")
        if self._commit_id is not None and caused_by == self._commit_id:
            self._finishing = "drain"  # nothing was left to commit: expected, not shown
            if error.get("code") == "input_audio_buffer_commit_empty":
                return []
            return [ServerError(shown)]
        if not self.configured:
            return [ServerError(self._refused(shown), fatal=True)]
        if self._finishing == "barrier" and caused_by is not None and caused_by == self._barrier_id:
            self._updates_answered += 1
            self._after_barrier()
        return [ServerError(shown)]

    def _refused(self, shown: str) -> str:
        message = f"the server refused the transcription session: {shown}"
        if self.server_session_type not in (None, "transcription"):
            message += (f"; it opened a {self.server_session_type} session, so it does not take"
                        " transcription sessions (intent=transcription)")
        return message

    def _on_speech_started(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        item_id = str(event.get("item_id") or "")
        self._speaking = item_id or "?"
        return [SpeechStarted(item_id, _int(event.get("audio_start_ms")))]

    def _on_speech_stopped(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        return [SpeechStopped(str(event.get("item_id") or ""), _int(event.get("audio_end_ms")))]

    def _on_committed(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        self._speaking = None
        self._item(event)
        if self._finishing == "commit":
            self._finishing = "drain"
        return []

    def _on_delta(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        item = self._item(event)
        if item is not None and isinstance(event.get("delta"), str):
            item.text += event["delta"]
        return []

    def _on_segment(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        item = self._item(event)
        if item is not None:
            item.segments.append(SpeakerSegment(
                item.id, str(event.get("speaker") or "?"), str(event.get("text") or ""),
                _float(event.get("start")), _float(event.get("end"))))
        return []

    def _on_completed(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        item = self._item(event)
        if item is not None and item.done is None:
            usage = event.get("usage")
            languages = event.get("languages")
            logprobs = event.get("logprobs")
            item.done = Transcript(
                item.id, str(event.get("transcript") or ""), tuple(item.segments),
                usage=usage if isinstance(usage, dict) else None,
                languages=tuple(_language(x) for x in languages) if isinstance(languages, list) else (),
                logprobs=tuple(x for x in logprobs if isinstance(x, dict)) if isinstance(logprobs, list) else None)
        return []

    def _on_failed(self, event: dict[str, Any]) -> list[TranscriptionAction]:
        item = self._item(event)
        if item is not None and item.done is None:
            item.done = Transcript(item.id, "", tuple(item.segments), error=error_line(event.get("error")))
        return []

    # -- commit order ---------------------------------------------------------------------

    def _item(self, event: dict[str, Any]) -> _Item | None:
        """The item an event is about; a new one joins the end of the commit order."""
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            return None
        item = self._items.get(item_id)
        if item is None:
            if item_id in self._released:
                return None
            item = self._items[item_id] = _Item(item_id)
            self._order.append(item_id)
        return item

    def _release(self) -> list[TranscriptionAction]:
        """What the oldest items have ready: the head's news, then each done item in order."""
        out: list[TranscriptionAction] = []
        while len(self._order) > MAX_PENDING:
            head = self._items[self._order[0]]
            if head.done is None:
                head.done = Transcript(head.id, head.text, tuple(head.segments),
                                       error=f"no transcript arrived before {MAX_PENDING} later segments")
            out += self._release_head()
        while self._order:
            head = self._items[self._order[0]]
            if head.done is None:
                out += self._news(head)
                break
            out += self._release_head()
        return out

    def _release_head(self) -> list[TranscriptionAction]:
        head = self._items.pop(self._order.popleft())
        self._released.append(head.id)
        assert head.done is not None
        news = self._news(head)
        # The final transcript is what counts; deltas never shown are not repeated first.
        kept: list[TranscriptionAction] = [a for a in news if not isinstance(a, TranscriptDelta)]
        return [*kept, head.done]

    @staticmethod
    def _news(item: _Item) -> list[TranscriptionAction]:
        out: list[TranscriptionAction] = []
        if item.shown < len(item.text):
            out.append(TranscriptDelta(item.id, item.text[item.shown:]))
            item.shown = len(item.text)
        out += item.segments[item.segments_shown:]
        item.segments_shown = len(item.segments)
        return out


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _language(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("code") or "?")
    return str(value)


_HANDLERS = {
    "session.created": Transcriber._on_session_created,
    "session.updated": Transcriber._on_session_updated,
    "transcription_session.updated": Transcriber._on_session_updated,
    "error": Transcriber._on_error,
    "input_audio_buffer.speech_started": Transcriber._on_speech_started,
    "input_audio_buffer.speech_stopped": Transcriber._on_speech_stopped,
    "input_audio_buffer.committed": Transcriber._on_committed,
    "conversation.item.input_audio_transcription.delta": Transcriber._on_delta,
    "conversation.item.input_audio_transcription.segment": Transcriber._on_segment,
    "conversation.item.input_audio_transcription.completed": Transcriber._on_completed,
    "conversation.item.input_audio_transcription.failed": Transcriber._on_failed,
}
