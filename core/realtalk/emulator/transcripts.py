"""Input audio transcription events, as the live server sends them for a committed item.

Pure functions (no I/O, no clock), used by :mod:`.protocol` when an input audio item's
transcription is due:

* a streaming transcription model sends one ``...input_audio_transcription.delta`` per
  word, then ``.completed``;
* the diarizing model (``gpt-4o-transcribe-diarize``) sends one ``.segment`` per
  speaker turn (``id``, ``speaker``, ``start``/``end`` in seconds), then ``.completed``;
* a scenario's ``transcription_error`` gives ``.failed`` instead;
* with ``include: ["item.input_audio_transcription.logprobs"]`` deltas and
  ``.completed`` carry ``logprobs`` (one entry per word, ``logprob`` -0.01).
"""

from __future__ import annotations

from typing import Any

from ..models import DIARIZE_MODELS

__all__ = [
    "DIARIZE_MODELS",
    "LOGPROBS_INCLUDE",
    "WORD_LOGPROB",
    "transcription_events",
]

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"
"""The ``include`` entry that asks for transcription logprobs."""
WORD_LOGPROB = -0.01
"""The (deterministic) log probability given to every transcribed word."""


def word_deltas(text: str) -> list[str]:
    """``text`` as streamed deltas: one per word, each after the first with its leading
    space, so that they join back to ``text``."""
    words: list[str] = []
    for piece in text.split(" "):
        words.append(piece if not words else " " + piece)
    return [w for w in words if w]


def _logprobs(text: str) -> list[dict[str, Any]]:
    return [
        {"token": word, "bytes": list(word.encode("utf-8")), "logprob": WORD_LOGPROB}
        for word in word_deltas(text)
    ]


def _segments(
    speakers: tuple[tuple[str, str], ...], transcript: str, seconds: float, ids: dict[str, Any]
) -> list[dict[str, Any]]:
    # Each speaker's share of the audio follows the length of what they said.
    turns = speakers or (("A", transcript),)
    total = sum(len(text) for _, text in turns) or 1
    events, start = [], 0.0
    for n, (speaker, text) in enumerate(turns):
        end = round(start + seconds * len(text) / total, 3)
        events.append(
            {
                "type": "conversation.item.input_audio_transcription.segment",
                **ids,
                "id": f"seg_{n:04d}",
                "speaker": speaker,
                "start": start,
                "end": end,
                "text": text,
            }
        )
        start = end
    return events


def transcription_events(
    *,
    item_id: str,
    transcript: str,
    seconds: float,
    model: str | None,
    include: list[str] | None,
    error: str | None = None,
    speakers: tuple[tuple[str, str], ...] = (),
) -> list[dict[str, Any]]:
    """The events that transcribe one committed input audio item, in order.

    Args:
        item_id: The user item.
        transcript: What the user said (the scenario's ``transcript``).
        seconds: The item's audio length, for ``usage`` and the segments' times.
        model: The session's transcription model.
        include: The session's ``include``.
        error: When set, the transcription fails with this message.
        speakers: (speaker, text) pairs for the diarizing model; without them it
            labels the whole transcript speaker ``A``.

    Returns:
        Server events without ``event_id``.
    """
    ids = {"item_id": item_id, "content_index": 0}
    if error is not None:
        failure = {"type": "server_error", "code": "transcription_failed", "message": error,
                   "param": None}
        return [
            {"type": "conversation.item.input_audio_transcription.failed", **ids, "error": failure}
        ]
    if speakers:
        transcript = " ".join(text for _, text in speakers)
    logprobs = include is not None and LOGPROBS_INCLUDE in include
    events: list[dict[str, Any]] = []
    if model in DIARIZE_MODELS:
        events += _segments(speakers, transcript, seconds, ids)
    else:
        for word in word_deltas(transcript):
            delta: dict[str, Any] = {
                "type": "conversation.item.input_audio_transcription.delta",
                **ids,
                "delta": word,
            }
            if logprobs:
                delta["logprobs"] = _logprobs(word)
            events.append(delta)
    completed: dict[str, Any] = {
        "type": "conversation.item.input_audio_transcription.completed",
        **ids,
        "transcript": transcript,
        "usage": {"type": "duration", "seconds": seconds},
    }
    if logprobs:
        completed["logprobs"] = _logprobs(transcript)
    events.append(completed)
    return events
