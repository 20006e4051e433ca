"""Input audio transcription beyond the transcript: ``.failed`` (a scenario's
``transcription_error``), ``.segment`` (the diarizing model, with speakers) and logprobs
(``include: ["item.input_audio_transcription.logprobs"]``)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.realtime import (
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemInputAudioTranscriptionDeltaEvent,
    ConversationItemInputAudioTranscriptionFailedEvent,
    ConversationItemInputAudioTranscriptionSegment,
)
from realtalk.emulator import load_scenario
from realtalk.emulator.transcripts import WORD_LOGPROB
from realtalk.exceptions import ScenarioError

PREFIX = "conversation.item.input_audio_transcription."


def transcribe(model: str, **session: Any) -> dict[str, Any]:
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["text"],
            "audio": {"input": {"transcription": {"model": model}}},
            **session,
        },
    }


async def _turn(client: Any, append_audio: Any, speech: bytes, update: dict[str, Any],
                last: str) -> list[dict[str, Any]]:
    await client.send(update)
    await client.until("session.updated")
    await append_audio(client, speech)
    return await client.until(PREFIX + last)


async def test_transcription_failed(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    scenario = {"turns": [{"audio": True, "transcription_error": "Audio unintelligible.",
                           "reply": "Sorry?"}]}
    emu = await make_emulator(scenario)
    async with open_client(emu) as client:
        events = await _turn(client, append_audio, speech, transcribe("gpt-4o-transcribe"),
                             "failed")
    failed = ConversationItemInputAudioTranscriptionFailedEvent.model_validate(events[-1])
    assert failed.type == "conversation.item.input_audio_transcription.failed"
    assert failed.error.message == "Audio unintelligible."
    assert (failed.error.type, failed.error.code) == ("server_error", "transcription_failed")
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    assert failed.item_id == committed["item_id"]
    assert not [e for e in events if e["type"] == PREFIX + "completed"]
    # The response still happens: a failed transcription does not stop the turn.
    assert "response.done" in [e["type"] for e in events]


async def test_diarized_segments(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    scenario = {"turns": [{"audio": True, "speakers": [{"A": "Is it open?"}, {"B": "Yes."}],
                           "reply": "Noted."}]}
    emu = await make_emulator(scenario)
    async with open_client(emu) as client:
        events = await _turn(client, append_audio, speech,
                             transcribe("gpt-4o-transcribe-diarize"), "completed")
    segments = [
        ConversationItemInputAudioTranscriptionSegment.model_validate(e)
        for e in events if e["type"] == "conversation.item.input_audio_transcription.segment"
    ]
    assert [(s.speaker, s.text) for s in segments] == [("A", "Is it open?"), ("B", "Yes.")]
    assert segments[0].start == 0.0 and segments[0].end == segments[1].start
    # Together they span the committed audio (300 ms padding, 800 ms speech, 200 ms quiet).
    assert segments[1].end == events[-1]["usage"]["seconds"] == 1.3
    assert len({s.id for s in segments}) == 2
    assert events[-1]["transcript"] == "Is it open? Yes."
    assert not [e for e in events if e["type"] == PREFIX + "delta"]


async def test_diarize_without_speakers_is_one_speaker(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    scenario = {"turns": [{"audio": True, "transcript": "hello there", "reply": "Hi."}]}
    emu = await make_emulator(scenario)
    async with open_client(emu) as client:
        events = await _turn(client, append_audio, speech,
                             transcribe("gpt-4o-transcribe-diarize"), "completed")
    [segment] = [e for e in events if e["type"] == PREFIX + "segment"]
    assert (segment["speaker"], segment["text"]) == ("A", "hello there")


async def test_logprobs_when_included(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    scenario = {"turns": [{"audio": True, "transcript": "book a room", "reply": "Sure."}]}
    emu = await make_emulator(scenario)
    update = transcribe("gpt-4o-transcribe", include=["item.input_audio_transcription.logprobs"])
    async with open_client(emu) as client:
        events = await _turn(client, append_audio, speech, update, "completed")
    deltas = [
        ConversationItemInputAudioTranscriptionDeltaEvent.model_validate(e)
        for e in events if e["type"] == PREFIX + "delta"
    ]
    assert [[p.token for p in d.logprobs or []] for d in deltas] == [["book"], [" a"], [" room"]]
    assert deltas[0].logprobs and deltas[0].logprobs[0].bytes == list(b"book")
    completed = ConversationItemInputAudioTranscriptionCompletedEvent.model_validate(events[-1])
    assert [p.token for p in completed.logprobs or []] == ["book", " a", " room"]
    assert {p.logprob for p in completed.logprobs or []} == {WORD_LOGPROB}


async def test_no_logprobs_unless_included(
    make_emulator: Any, open_client: Any, append_audio: Any, speech: bytes
) -> None:
    scenario = {"turns": [{"audio": True, "transcript": "book a room", "reply": "Sure."}]}
    emu = await make_emulator(scenario)
    async with open_client(emu) as client:
        events = await _turn(client, append_audio, speech, transcribe("gpt-4o-transcribe"),
                             "completed")
    assert not [e for e in events if "logprobs" in e]


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ({"user": "x", "transcription_error": "no", "reply": "r"},
         "'transcription_error' is text, and only for 'audio: true' turns"),
        ({"user": "x", "speakers": [{"A": "hi"}], "reply": "r"},
         "'speakers' is only for 'audio: true' turns"),
        ({"audio": True, "speakers": [{"A": "hi", "B": "yo"}], "reply": "r"},
         "each speaker segment must be {SPEAKER: TEXT}"),
        ({"audio": True, "speakers": [], "reply": "r"},
         "'speakers' must be a non-empty list"),
    ],
)
def test_bad_transcription_keys(turn: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_scenario({"turns": [turn]})
