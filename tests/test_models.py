"""realtalk.models against the official openai package's types (the conformance oracle):
the default model is a current one, and every model, effort and voice the types list is
known here, so a new one in the package is noticed."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from realtalk.agents import agent_schema
from realtalk.models import (
    BUILTIN_VOICES,
    DEFAULT_MODEL,
    REALTIME_MODELS,
    REASONING_EFFORTS,
    REASONING_MODELS,
    TRANSCRIPTION_MODELS,
    takes_reasoning,
    transcription_option_problem,
)


def literal_values(annotation: Any) -> set[str]:
    """Every string of the Literal types inside ``annotation`` (a Union, Optional...)."""
    if get_origin(annotation) is Literal:
        return {v for v in get_args(annotation) if isinstance(v, str)}
    return {v for arg in get_args(annotation) for v in literal_values(arg)}


def sdk_realtime_models() -> set[str]:
    from openai.types.realtime import RealtimeSessionCreateRequest

    return literal_values(RealtimeSessionCreateRequest.model_fields["model"].annotation)


def sdk_deprecated_models() -> set[str]:
    """The model ids the ``Deprecated values:`` part of the field's docstring names."""
    from openai.types.realtime import realtime_session_create_request

    source = inspect.getsource(realtime_session_create_request)
    deprecated = source.split("Deprecated values:", 1)[1].split('"""', 1)[0]
    return set(re.findall(r'"([^"]+)"', deprecated))


def test_the_default_model_is_current_in_the_openai_types() -> None:
    assert DEFAULT_MODEL in sdk_realtime_models()
    deprecated = sdk_deprecated_models()
    assert "gpt-realtime" in deprecated  # the parse found the list
    assert DEFAULT_MODEL not in deprecated
    assert agent_schema()["properties"]["model"]["default"] == DEFAULT_MODEL


def test_every_realtime_model_of_the_openai_types_is_known() -> None:
    assert sdk_realtime_models() == REALTIME_MODELS
    assert REASONING_MODELS <= REALTIME_MODELS


def test_reasoning_efforts_and_voices_match_the_openai_types() -> None:
    from openai.types.realtime.realtime_audio_config_output import RealtimeAudioConfigOutput
    from openai.types.realtime.realtime_reasoning_effort import RealtimeReasoningEffort

    assert set(get_args(RealtimeReasoningEffort)) == set(REASONING_EFFORTS)
    assert literal_values(RealtimeAudioConfigOutput.model_fields["voice"].annotation) == set(BUILTIN_VOICES)
    schema = agent_schema()
    assert schema["properties"]["reasoning"]["properties"]["effort"]["enum"] == list(REASONING_EFFORTS)
    assert schema["properties"]["voice"]["oneOf"][0]["enum"] == list(BUILTIN_VOICES)


def test_transcription_models_and_options_match_the_openai_types() -> None:
    from openai.types.realtime.audio_transcription import AudioTranscription

    fields = AudioTranscription.model_fields
    assert literal_values(fields["model"].annotation) == TRANSCRIPTION_MODELS
    schema = agent_schema()["properties"]["input_audio_transcription"]["oneOf"][1]
    assert set(schema["properties"]) == set(fields)
    assert schema["properties"]["delay"]["enum"] == sorted(literal_values(fields["delay"].annotation),
                                                           key=REASONING_EFFORTS.index)


@pytest.mark.parametrize(("model", "takes"), [
    ("gpt-realtime-2.1", True), ("gpt-realtime-2.1-mini", True), ("gpt-realtime-2", True),
    ("gpt-realtime", False), ("gpt-realtime-2025-08-28", False), ("gpt-realtime-mini", False),
    ("my-azure-deployment", None),
])
def test_which_models_take_reasoning(model: str, takes: bool | None) -> None:
    assert takes_reasoning(model) is takes


def test_transcription_options_per_model() -> None:
    assert transcription_option_problem("gpt-realtime-whisper", "delay") is None
    assert transcription_option_problem("whisper-1", "delay") == (
        "'delay' is taken only by gpt-realtime-whisper, not by whisper-1")
    assert transcription_option_problem("gpt-transcribe", "keywords") is None
    assert transcription_option_problem("gpt-realtime-whisper", "prompt") == (
        "'prompt' is not taken by gpt-realtime-whisper")
    assert transcription_option_problem("gpt-4o-transcribe", "language") is None
    assert transcription_option_problem("my-deployment", "delay") is None


def test_deprecated_models_match_the_openai_types() -> None:
    from realtalk.models import DEPRECATED_MODELS

    assert set(DEPRECATED_MODELS) == sdk_deprecated_models()


def test_check_warns_about_a_deprecated_model(tmp_path: Path) -> None:
    from realtalk.agents import load_agents

    path = tmp_path / "a.yaml"
    path.write_text("instructions: x\nmodel: gpt-realtime-mini\n")
    graph = load_agents([path])
    assert graph.problems == [] and [str(w) for w in graph.warnings] == [
        (f"{path}:2: $.model: model gpt-realtime-mini is deprecated (shutdown announced for 2027-01-20);"
        " the current one is gpt-realtime-2.1")]
    path.write_text("instructions: x\nmodel: gpt-realtime-2.1-mini\n")
    assert load_agents([path]).warnings == []


def test_the_agent_schemas_new_keys_mirror_the_openai_types() -> None:
    from openai.types.realtime import RealtimeSessionCreateRequest
    from openai.types.realtime.noise_reduction_type import NoiseReductionType
    from openai.types.realtime.realtime_audio_config_output import VoiceID
    from openai.types.realtime.realtime_tracing_config import TracingConfiguration
    from openai.types.responses.response_prompt import ResponsePrompt

    keys = agent_schema()["properties"]
    session = RealtimeSessionCreateRequest.model_fields
    assert keys["include"]["items"]["enum"] == sorted(literal_values(session["include"].annotation))
    assert set(keys["tracing"]["oneOf"][1]["properties"]) == set(TracingConfiguration.model_fields)
    assert set(keys["prompt"]["properties"]) == set(ResponsePrompt.model_fields)
    assert set(keys["voice"]["oneOf"][1]["properties"]) == set(VoiceID.model_fields)
    assert set(keys["noise_reduction"]["enum"]) == set(get_args(NoiseReductionType)) | {"none", None}
    assert keys["tool_choice"]["oneOf"][0]["enum"] == ["auto", "none", "required"]
