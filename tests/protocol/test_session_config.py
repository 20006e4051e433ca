"""session.update built from agents: checked against the official openai types (the
conformance oracle) and against the OpenAPI spec's GA session schema, key by key.

The spec's schemas live in ``spec/openai-realtime-session-update.json``: an unchanged
excerpt of OpenAI's OpenAPI document (MIT), with its source and version noted inside.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Union, get_args

import pytest
from realtalk.agents import AgentSpec, load_agents
from realtalk.emulator.conformance import client_event_problems
from realtalk.plugins import load_plugins
from realtalk.protocol.session_config import build_session_update
from realtalk.tools import make_tool

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path(__file__).with_name("spec") / "openai-realtime-session-update.json"


def _discriminated(alias: Any) -> Any:
    from pydantic import Field, TypeAdapter

    members = get_args(get_args(alias)[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # type: ignore[valid-type]  # noqa: UP007


@lru_cache(maxsize=1)
def beta_client() -> Any:
    from openai.types.beta.realtime import RealtimeClientEvent

    return _discriminated(RealtimeClientEvent)


@lru_cache(maxsize=1)
def schemas() -> dict[str, Any]:
    """The spec's ``components.schemas`` excerpt."""
    with SPEC.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data["schemas"]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = schemas()[name]
    return schema


def undefined_keys(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Keys in ``value`` that ``schema`` (OpenAPI 3.1) does not define."""
    schema = _resolve(schema)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return min((undefined_keys(value, b, path) for b in schema[combinator]), key=len)
    if "allOf" in schema:
        merged: dict[str, Any] = {"properties": {}}
        for part in schema["allOf"]:
            merged["properties"].update(_resolve(part).get("properties", {}))
        schema = merged
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties is None:
            return []  # a free-form object, such as a tool's JSON Schema
        missing = []
        for key, item in value.items():
            if key in properties:
                missing += undefined_keys(item, properties[key], f"{path}.{key}")
            elif not schema.get("additionalProperties"):
                missing.append(f"{path}.{key}")
        return missing
    if isinstance(value, list) and "items" in schema:
        return [k for i, item in enumerate(value) for k in undefined_keys(item, schema["items"], f"{path}[{i}]")]
    return []


def example_updates(profile: str = "ga") -> list[dict[str, Any]]:
    from realtalk.localtools import ToolFile

    tool_files = [ToolFile(f) for f in sorted((ROOT / "agents").glob("*.tools.yaml"))]  # agents' tool_files:
    plugins = load_plugins(allow=["realtalk-clock"], extra=tool_files)
    graph = load_agents([ROOT / "agents"], plugins.registry)
    assert graph.problems == []
    return [build_session_update(agent, graph.tools_for(agent, plugins.registry), profile=profile)  # type: ignore[arg-type]
            for agent in graph.agents.values()]


def variety() -> list[AgentSpec]:
    return [
        AgentSpec(name="t", instructions="x", output_modalities=("text",), turn_detection=None),
        AgentSpec(name="s", instructions="x", speed=1.2, noise_reduction="far_field", max_output_tokens="inf",
                  turn_detection={"type": "semantic_vad", "eagerness": "low", "create_response": True,
                                  "interrupt_response": False},
                  input_transcription={"model": "whisper-1", "language": "en", "prompt": "hotel"},
                  audio_format="audio/pcma", tool_choice="required",
                  truncation={"type": "retention_ratio", "retention_ratio": 0.5,
                              "token_limits": {"post_instructions": 4000}}),
        AgentSpec(name="n", instructions="x", model="gpt-realtime-2.1", voice="voice_1234", reasoning_effort="xhigh",
                  parallel_tool_calls=True, tool_choice={"type": "function", "name": "echo"},
                  prompt={"id": "pmpt_1", "version": "3", "variables": {
                      "city": "Lisbon", "note": {"type": "input_text", "text": "hi"},
                      "logo": {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}}},
                  tracing={"workflow_name": "desk", "group_id": "g1", "metadata": {"site": "lisbon"}},
                  include=("item.input_audio_transcription.logprobs",),
                  input_transcription={"model": "gpt-transcribe", "language": "en", "languages": ["en", "pt"],
                                       "keywords": ["Aurora"]},
                  turn_detection={"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                  "silence_duration_ms": 500, "idle_timeout_ms": 8000}),
        AgentSpec(name="w", instructions="x", model="gpt-realtime-2.1-mini", tracing="auto",
                  input_transcription={"model": "gpt-realtime-whisper", "delay": "high"}),
    ]


TOOL = make_tool("echo", "Echo", {"type": "object", "properties": {"x": {"type": "string"}}}, print, plugin="p")


def test_example_agents_validate_against_openai_ga_types() -> None:
    updates = example_updates()
    assert len(updates) >= 2
    assert client_event_problems(updates) == []
    for event in updates:
        assert event["session"]["type"] == "realtime"
        assert all(t["type"] == "function" for t in event["session"]["tools"])


def test_example_agents_use_no_key_the_spec_does_not_define() -> None:
    schema = schemas()["RealtimeClientEventSessionUpdate"]
    for event in example_updates():
        assert undefined_keys(event, schema) == []


def test_key_check_catches_an_undefined_key() -> None:
    schema = schemas()["RealtimeClientEventSessionUpdate"]
    event = example_updates()[0]
    event["session"]["voice"] = "marin"  # beta placement: the SDK types accept it, the server does not
    event["session"]["audio"]["output"]["pitch"] = 2
    assert sorted(undefined_keys(event, schema)) == ["$.session.audio.output.pitch", "$.session.voice"]


@pytest.mark.parametrize("agent", variety(), ids=lambda a: a.name)
def test_all_agent_settings_map_to_valid_ga(agent: AgentSpec) -> None:
    event = build_session_update(agent, [TOOL], event_id="evt_1")
    assert client_event_problems([event]) == []
    schema = schemas()["RealtimeClientEventSessionUpdate"]
    assert undefined_keys(event, schema) == []
    assert event["event_id"] == "evt_1"


def test_push_to_talk_and_text_only_shape() -> None:
    session = build_session_update(variety()[0], [])["session"]
    assert session["output_modalities"] == ["text"]
    assert session["audio"]["input"]["turn_detection"] is None
    assert session["tools"] == []


def test_voice_can_be_left_out_once_audio_exists() -> None:
    session = build_session_update(variety()[1], [], include_voice=False)["session"]
    assert "voice" not in session["audio"]["output"]
    assert session["audio"]["output"]["format"] == {"type": "audio/pcma"}


@pytest.mark.parametrize("agent", [a for a in variety() if a.prompt is None], ids=lambda a: a.name)
def test_beta_profile_validates_against_openai_beta_types(agent: AgentSpec) -> None:
    event = build_session_update(agent, [TOOL], profile="beta")
    model = beta_client().validate_python(event)
    assert model.session.modalities == (["text"] if agent.text_only else ["text", "audio"])
    assert "type" not in event["session"]


def test_formats_come_from_the_vocabulary() -> None:
    from realtalk.protocol import session_config, vocab

    assert session_config.Profile is vocab.Dialect
    assert session_config.format_object("audio/pcm") == {"type": "audio/pcm", "rate": 24000}
    assert session_config.format_object("audio/pcmu") == {"type": "audio/pcmu"}
    with pytest.raises(ValueError, match="unknown audio format 'audio/opus'"):
        session_config.format_object("audio/opus")
    session = build_session_update(variety()[1], [], profile="beta")["session"]
    assert session["input_audio_format"] == session["output_audio_format"] == "g711_alaw"


def test_new_ga_settings_are_placed_as_the_spec_says() -> None:
    session = build_session_update(variety()[2], [TOOL])["session"]
    assert session["audio"]["output"]["voice"] == {"id": "voice_1234"}
    assert session["reasoning"] == {"effort": "xhigh"}
    assert session["parallel_tool_calls"] is True
    assert session["tool_choice"] == {"type": "function", "name": "echo"}
    assert session["prompt"]["id"] == "pmpt_1" and session["prompt"]["variables"]["city"] == "Lisbon"
    assert session["tracing"]["workflow_name"] == "desk"
    assert session["include"] == ["item.input_audio_transcription.logprobs"]
    assert session["audio"]["input"]["transcription"]["keywords"] == ["Aurora"]
    assert session["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 8000


def test_what_an_agent_leaves_out_does_not_linger_after_a_handoff() -> None:
    # A reasoning model gets the spec's default effort, and prompt is turned off, so that
    # an earlier agent's reasoning effort or prompt does not survive the server's merge.
    session = build_session_update(AgentSpec(name="a", instructions="x"), [])["session"]
    assert session["reasoning"] == {"effort": "low"} and session["prompt"] is None
    assert "parallel_tool_calls" not in session and "tracing" not in session and "include" not in session
    older = build_session_update(AgentSpec(name="a", instructions="x", model="gpt-realtime"), [])["session"]
    assert "reasoning" not in older and older["audio"]["output"]["voice"] == "marin"


def test_beta_drops_what_only_tunes_the_server() -> None:
    agent = variety()[3]
    session = build_session_update(agent, [TOOL], profile="beta")["session"]
    assert session["input_audio_transcription"] == {"model": "gpt-realtime-whisper"}
    assert session["tracing"] == "auto"
    assert not {"reasoning", "parallel_tool_calls", "include", "prompt"} & set(session)


@pytest.mark.parametrize(("changes", "message"), [
    ({"prompt": {"id": "pmpt_1"}}, r"^the beta protocol cannot carry prompt \(agent 'w'\): drop --beta or the prompt key$"),
    ({"tool_choice": {"type": "function", "name": "echo"}},
     r"^the beta protocol cannot force a function with tool_choice \(agent 'w'\): drop --beta or use auto,"),
])
def test_beta_refuses_what_would_change_the_agent(changes: dict[str, Any], message: str) -> None:
    from dataclasses import replace

    from realtalk.exceptions import ConfigError

    with pytest.raises(ConfigError, match=message):
        build_session_update(replace(variety()[3], **changes), [TOOL], profile="beta")
