"""Transcription sessions, sans-I/O: options in, session.update out; server events in,
display actions out, with plain dicts.

Every server event fed here is first validated against the ``openai`` package's GA types,
and every client event the transcriber emits too, so these tests speak the wire format
the live server does.
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from realtalk.exceptions import ConfigError
from realtalk.protocol.transcription import (
    DEPRECATED_TRANSCRIPTION_MODELS,
    MAX_PENDING,
    TRANSCRIPTION_MODELS,
    ServerError,
    SpeakerSegment,
    SpeechStarted,
    SpeechStopped,
    Transcriber,
    Transcript,
    TranscriptDelta,
    TranscriptionAction,
    TranscriptionOptions,
)

# -- GA events, validated -------------------------------------------------------------------


def ga(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with an event_id, after checking it is a GA server event."""
    event = {"event_id": f"event_{abs(hash(repr(event))) % 10**8:08d}", **event}
    assert server_event_problems([event]) == []
    return event


def sent(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert client_event_problems(events) == []
    return events


def created(kind: str = "transcription") -> dict[str, Any]:
    session: dict[str, Any] = {"type": kind}
    if kind == "realtime":
        session["model"] = "gpt-realtime"
    return ga({"type": "session.created", "session": session})


def updated() -> dict[str, Any]:
    return ga({"type": "session.updated", "session": {"type": "transcription"}})


def committed(item_id: str, previous: str | None = None) -> dict[str, Any]:
    return ga({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous})


def delta(item_id: str, text: str) -> dict[str, Any]:
    return ga({"type": "conversation.item.input_audio_transcription.delta", "item_id": item_id,
               "content_index": 0, "delta": text})


def completed(item_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return ga({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
               "content_index": 0, "transcript": text, "usage": {"type": "duration", "seconds": 1.5}, **extra})


def failed(item_id: str) -> dict[str, Any]:
    return ga({"type": "conversation.item.input_audio_transcription.failed", "item_id": item_id,
               "content_index": 0, "error": {"type": "server_error", "code": "audio_unintelligible",
                                             "message": "Audio could not be transcribed."}})


def segment(item_id: str, speaker: str, text: str, start: float, end: float) -> dict[str, Any]:
    return ga({"type": "conversation.item.input_audio_transcription.segment", "item_id": item_id,
               "content_index": 0, "id": f"seg_{start}", "speaker": speaker, "text": text,
               "start": start, "end": end})


def error(message: str, *, code: str = "invalid_value", param: str | None = None,
          caused_by: str | None = None) -> dict[str, Any]:
    return ga({"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message,
                                          "param": param, "event_id": caused_by}})


def speech(kind: str, item_id: str, ms: int) -> dict[str, Any]:
    field = "audio_start_ms" if kind == "started" else "audio_end_ms"
    return ga({"type": f"input_audio_buffer.speech_{kind}", "item_id": item_id, field: ms})


def configured(options: TranscriptionOptions | None = None) -> Transcriber:
    t = Transcriber(options or TranscriptionOptions())
    sent([t.setup()])
    assert t.receive(created()) == [] and not t.configured
    assert t.receive(updated()) == [] and t.configured
    return t


def feed(t: Transcriber, *events: dict[str, Any]) -> list[TranscriptionAction]:
    actions: list[TranscriptionAction] = []
    for event in events:
        actions += t.receive(event)
    return actions


# -- options --------------------------------------------------------------------------------


def test_the_models_are_those_of_the_openai_types() -> None:
    from openai.types.realtime.audio_transcription import AudioTranscription

    hint = AudioTranscription.model_fields["model"].annotation
    literal = next(arg for arg in typing.get_args(hint) if typing.get_origin(arg) is typing.Literal)
    assert set(TRANSCRIPTION_MODELS) == set(typing.get_args(literal))
    assert set(DEPRECATED_TRANSCRIPTION_MODELS) <= set(TRANSCRIPTION_MODELS)


def test_the_setup_is_a_ga_transcription_session_update() -> None:
    options = TranscriptionOptions(model="gpt-4o-transcribe", language="de", prompt="Fachbegriffe der Medizin",
                                   silence_duration_ms=700, threshold=0.6, prefix_padding_ms=200,
                                   noise_reduction="far_field", logprobs=True)
    event = Transcriber(options).setup()
    assert sent([event])
    assert event["session"] == {
        "type": "transcription",
        "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "gpt-4o-transcribe", "language": "de", "prompt": "Fachbegriffe der Medizin"},
            "turn_detection": {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200,
                               "silence_duration_ms": 700},
            "noise_reduction": {"type": "far_field"},
        }},
        "include": ["item.input_audio_transcription.logprobs"],
    }


@pytest.mark.parametrize(("options", "turn_detection"), [
    (TranscriptionOptions(), {"type": "server_vad"}),
    (TranscriptionOptions(turn_detection="semantic_vad", eagerness="low"), {"type": "semantic_vad", "eagerness": "low"}),
    (TranscriptionOptions(turn_detection="none"), None),
])
def test_turn_detection_in_the_session(options: TranscriptionOptions, turn_detection: Any) -> None:
    options.check()
    event = Transcriber(options).setup()
    assert sent([event])
    assert event["session"]["audio"]["input"]["turn_detection"] == turn_detection
    assert event["session"]["audio"]["input"]["transcription"] == {"model": "gpt-transcribe"}


@pytest.mark.parametrize(("options", "message"), [
    (TranscriptionOptions(model="gpt-realtime"),
     ("unknown transcription model 'gpt-realtime' (gpt-realtime is a conversation model: `realtalk run` uses"
      " it); choose one of gpt-transcribe, ")),
    (TranscriptionOptions(model="whisper-2"), "unknown transcription model 'whisper-2'; choose one of "),
    (TranscriptionOptions(language="English"), "language 'English': give an ISO-639-1 code such as 'en' or 'de'"),
    (TranscriptionOptions(model="gpt-4o-transcribe-diarize", prompt="x"),
     "gpt-4o-transcribe-diarize takes no prompt; drop it, or choose another model"),
    (TranscriptionOptions(model="gpt-realtime-whisper"),
     "gpt-realtime-whisper takes no turn detection: use turn detection none (and a WAV file)"),
    (TranscriptionOptions(turn_detection="semantic_vad", silence_duration_ms=300),
     "silence_duration_ms is a server_vad setting; it does nothing with semantic_vad"),
    (TranscriptionOptions(eagerness="high"), "eagerness is a semantic_vad setting; it does nothing with server_vad"),
    (TranscriptionOptions(threshold=1.5), "threshold 1.5: must be from 0 to 1"),
    (TranscriptionOptions(turn_detection="push"), "turn detection 'push': choose one of server_vad, semantic_vad, none"),
    (TranscriptionOptions(noise_reduction="loud"), "noise reduction 'loud': choose one of near_field, far_field"),
    (TranscriptionOptions(silence_duration_ms=-1), "silence_duration_ms -1: must be 0 or more"),
])
def test_what_the_server_would_refuse_is_one_line_before_connecting(options: TranscriptionOptions,
                                                                     message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        options.check()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_deprecated_model_gets_a_warning_and_the_current_one_none() -> None:
    assert TranscriptionOptions().deprecation is None
    assert TranscriptionOptions(model="whisper-1").deprecation == (
        "whisper-1 is deprecated (shutdown announced for 2027-02-26); gpt-transcribe is the current model")
    assert TranscriptionOptions(model="gpt-4o-transcribe-diarize").diarize


# -- the session ----------------------------------------------------------------------------


def test_deltas_stream_then_the_transcript_ends_the_segment() -> None:
    t = configured()
    assert feed(t, speech("started", "item_1", 120)) == [SpeechStarted("item_1", 120)]
    assert feed(t, speech("stopped", "item_1", 1800), committed("item_1")) == [SpeechStopped("item_1", 1800)]
    assert t.pending == 1
    assert feed(t, delta("item_1", "Hello")) == [TranscriptDelta("item_1", "Hello")]
    assert feed(t, delta("item_1", " world.")) == [TranscriptDelta("item_1", " world.")]
    [done] = feed(t, completed("item_1", "Hello world."))
    assert done == Transcript("item_1", "Hello world.", usage={"type": "duration", "seconds": 1.5})
    assert done.ok and t.pending == 0


def test_transcripts_come_out_in_the_order_spoken_whatever_order_they_finish() -> None:
    t = configured()
    assert feed(t, committed("item_a"), committed("item_b", "item_a")) == []
    # B streams and finishes first: held while A is under way.
    assert feed(t, delta("item_b", "Second"), completed("item_b", "Second.")) == []
    assert feed(t, delta("item_a", "First")) == [TranscriptDelta("item_a", "First")]
    actions = feed(t, completed("item_a", "First."))
    assert actions == [Transcript("item_a", "First.", usage={"type": "duration", "seconds": 1.5}),
                       Transcript("item_b", "Second.", usage={"type": "duration", "seconds": 1.5})]


def test_a_later_segment_under_way_streams_what_it_has_once_it_is_the_oldest() -> None:
    t = configured()
    feed(t, committed("item_a"), committed("item_b", "item_a"))
    assert feed(t, delta("item_b", "Sec"), delta("item_b", "ond")) == []
    actions = feed(t, completed("item_a", "First."))
    assert [type(a) for a in actions] == [Transcript, TranscriptDelta]
    assert actions[1] == TranscriptDelta("item_b", "Second")
    assert feed(t, delta("item_b", " part")) == [TranscriptDelta("item_b", " part")]


def test_diarized_segments_carry_speakers_and_end_in_the_transcript() -> None:
    t = configured(TranscriptionOptions(model="gpt-4o-transcribe-diarize"))
    feed(t, committed("item_1"))
    first = SpeakerSegment("item_1", "A", "Good morning.", 0.0, 1.2)
    assert feed(t, segment("item_1", "A", "Good morning.", 0.0, 1.2)) == [first]
    second = SpeakerSegment("item_1", "B", "Morning!", 1.4, 2.0)
    assert feed(t, segment("item_1", "B", "Morning!", 1.4, 2.0)) == [second]
    [done] = feed(t, completed("item_1", "Good morning. Morning!"))
    assert isinstance(done, Transcript) and done.segments == (first, second)


def test_a_failed_transcription_is_a_transcript_with_an_error_and_the_next_goes_on() -> None:
    t = configured()
    feed(t, committed("item_a"), committed("item_b", "item_a"), completed("item_b", "Still here."))
    actions = feed(t, failed("item_a"))
    assert actions[0] == Transcript("item_a", "", error="audio_unintelligible: Audio could not be transcribed.")
    assert isinstance(actions[0], Transcript) and not actions[0].ok
    assert isinstance(actions[1], Transcript) and actions[1].text == "Still here."


def test_languages_and_logprobs_of_the_completed_event_are_kept() -> None:
    t = configured(TranscriptionOptions(logprobs=True))
    feed(t, committed("item_1"))
    [done] = feed(t, completed("item_1", "Hallo.", languages=[{"code": "de"}],
                               logprobs=[{"token": "Hallo", "logprob": -0.01, "bytes": [72]}]))
    assert isinstance(done, Transcript)
    assert done.languages == ("de",) and done.logprobs == ({"token": "Hallo", "logprob": -0.01, "bytes": [72]},)


def test_a_refused_setup_is_fatal_and_says_why() -> None:
    t = Transcriber(TranscriptionOptions())
    setup = t.setup()
    t.receive(created())
    [action] = t.receive(error("Invalid value: 'gpt-transcribe'.", param="session.audio.input.transcription.model",
                               caused_by=setup["event_id"]))
    assert action == ServerError("the server refused the transcription session: invalid_value: Invalid value:"
                                 " 'gpt-transcribe'. (session.audio.input.transcription.model)", fatal=True)


def test_a_server_that_opened_a_realtime_session_is_named_in_the_refusal() -> None:
    t = Transcriber(TranscriptionOptions())
    t.setup()
    t.receive(created("realtime"))
    [action] = t.receive(error("Passing a transcription session update event to a realtime session is not allowed.",
                               param="session.type"))
    assert isinstance(action, ServerError) and action.fatal
    assert action.message.endswith("; it opened a realtime session, so it does not take transcription sessions"
                                   " (intent=transcription)")


def test_an_error_after_setup_is_shown_and_the_session_goes_on() -> None:
    t = configured()
    [action] = t.receive(error("Invalid 'audio'. Expected base64.", param="audio"))
    assert action == ServerError("invalid_value: Invalid 'audio'. Expected base64. (audio)")
    feed(t, committed("item_1"))
    assert feed(t, completed("item_1", "ok"))[0] == Transcript("item_1", "ok",
                                                               usage={"type": "duration", "seconds": 1.5})


def test_a_repeated_event_never_shows_a_segment_twice() -> None:
    t = configured()
    feed(t, committed("item_1"))
    assert len(feed(t, completed("item_1", "Once."))) == 1
    assert feed(t, completed("item_1", "Once."), delta("item_1", "again"), committed("item_1")) == []
    assert t.pending == 0


def test_unknown_events_and_events_without_an_item_are_ignored() -> None:
    t = configured()
    assert t.receive({"type": "rate_limits.updated", "rate_limits": []}) == []
    assert t.receive({"type": "conversation.item.input_audio_transcription.delta", "delta": "x"}) == []
    assert t.receive({"type": "input_audio_buffer.speech_started", "item_id": "item_1",
                      "audio_start_ms": "soon"}) == [SpeechStarted("item_1", 0)]


# -- the end of the input -------------------------------------------------------------------


def test_end_with_vad_a_barrier_then_the_last_transcripts() -> None:
    t = configured()
    feed(t, speech("started", "item_1", 0), speech("stopped", "item_1", 900), committed("item_1"))
    [barrier] = sent(t.finish())
    assert barrier["type"] == "session.update" and barrier["session"] == {"type": "transcription"}
    assert t.finish() == []  # once
    feed(t, updated())
    assert t.events_to_send() == []  # no open speech: nothing to commit
    assert not t.finished  # item_1 is still being transcribed
    feed(t, completed("item_1", "The end."))
    assert t.finished


def test_end_with_speech_still_open_commits_it_after_the_barrier() -> None:
    t = configured()
    feed(t, speech("started", "item_1", 0))
    t.finish()
    assert not t.finished
    feed(t, updated())
    [commit] = sent(t.events_to_send())
    assert commit["type"] == "input_audio_buffer.commit"
    feed(t, committed("item_1"))
    assert not t.finished
    feed(t, completed("item_1", "cut off"))
    assert t.finished


def test_end_without_turn_detection_commits_the_whole_input() -> None:
    t = configured(TranscriptionOptions(turn_detection="none"))
    [commit] = sent(t.finish())
    assert commit["type"] == "input_audio_buffer.commit"
    feed(t, committed("item_1"), delta("item_1", "All of it"))
    assert not t.finished
    feed(t, completed("item_1", "All of it."))
    assert t.finished


def test_an_empty_buffer_at_the_end_is_expected_not_shown() -> None:
    t = configured(TranscriptionOptions(turn_detection="none"))
    [commit] = t.finish()
    actions = t.receive(error("Error committing input audio buffer: buffer too small.",
                              code="input_audio_buffer_commit_empty", param=None, caused_by=commit["event_id"]))
    assert actions == [] and t.finished


def test_a_refused_barrier_still_ends_the_input() -> None:
    t = configured()
    [barrier] = t.finish()
    [action] = t.receive(error("Session update rejected.", caused_by=barrier["event_id"]))
    assert isinstance(action, ServerError) and not action.fatal
    assert t.finished


def test_when_the_connection_ends_everything_held_comes_out_in_order() -> None:
    t = configured()
    feed(t, committed("item_a"), committed("item_b", "item_a"), completed("item_b", "B."), delta("item_a", "Hal"))
    actions = t.abandon("the connection ended")
    assert actions == [Transcript("item_a", "Hal", error="the connection ended"),
                       Transcript("item_b", "B.", usage={"type": "duration", "seconds": 1.5})]
    assert t.pending == 0 and t.abandon("again") == []


def test_held_segments_are_bounded() -> None:
    t = configured()
    feed(t, committed("item_stuck"))
    for n in range(MAX_PENDING - 1):
        assert feed(t, committed(f"item_{n}"), completed(f"item_{n}", f"t{n}")) == []
    assert t.pending == MAX_PENDING
    # One more than the bound: the oldest is given up, and everything after it flows.
    actions = feed(t, committed("item_last"))
    assert actions[0] == Transcript("item_stuck", "", error=f"no transcript arrived before {MAX_PENDING} later"
                                                            " segments")
    assert len(actions) == MAX_PENDING and t.pending == 1
