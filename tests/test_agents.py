from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import pytest
from realtalk.agents import AgentGraph, load_agent, load_agents
from realtalk.exceptions import ConfigError
from realtalk.tools import ToolRegistry, make_tool

MINIMAL = "instructions: Be helpful.\n"


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    for name in ("get_time", "convert_time"):
        reg.add(make_tool(name, f"{name} tool", {"type": "object", "properties": {}}, print,
                          plugin="realtalk-clock", plugin_version="0.1.0"))
    return reg


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path, registry: ToolRegistry | None = None) -> list[str]:
    return [str(p) for p in load_agents([path], registry).problems]


def only_problem(path: Path, registry: ToolRegistry | None = None) -> str:
    problems = problems_of(path, registry)
    assert len(problems) == 1, problems
    return problems[0]


# --- loading and mapping -----------------------------------------------------------------


def test_minimal_agent_gets_defaults(tmp_path: Path) -> None:
    agent = load_agent(write(tmp_path, "helper.yaml", MINIMAL))
    assert agent.name == "helper"
    assert agent.model == "gpt-realtime-2.1" and agent.voice == "marin"
    assert agent.output_modalities == ("audio",)
    assert agent.turn_detection == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
        "silence_duration_ms": 500, "create_response": True, "interrupt_response": True,
    }


def test_seed_vocabulary_maps_to_ga(tmp_path: Path) -> None:
    agent = load_agent(write(tmp_path, "a.yaml", """
        instructions: x
        modalities: [text, audio]
        turn_detection: {type: semantic_vad, eagerness: high}
        input_audio_transcription: {model: gpt-4o-mini-transcribe, language: en}
        audio_format: g711_ulaw
    """))
    assert agent.output_modalities == ("audio",)
    assert agent.notes and "output_modalities [audio]" in agent.notes[0]
    assert agent.turn_detection == {"type": "semantic_vad", "eagerness": "high",
                                    "create_response": True, "interrupt_response": True}
    assert agent.input_transcription == {"model": "gpt-4o-mini-transcribe", "language": "en"}
    assert agent.audio_format == "audio/pcmu"


def test_text_modality_and_push_to_talk(tmp_path: Path) -> None:
    agent = load_agent(write(tmp_path, "a.yaml", "instructions: x\nmodalities: [text]\nturn_detection: none\n"))
    assert agent.text_only and agent.turn_detection is None


def test_tool_overrides_apply_per_agent(tmp_path: Path, registry: ToolRegistry) -> None:
    path = write(tmp_path, "a.yaml", """
        instructions: x
        tools:
          - get_time
          - {name: convert_time, timeout_s: 2, requires_approval: true}
    """)
    graph = load_agents([path], registry)
    assert graph.problems == []
    tools = graph.tools_for(graph.get("a"), registry)
    assert [t.name for t in tools] == ["get_time", "convert_time"]
    assert tools[1].timeout_s == 2 and tools[1].requires_approval
    assert registry.get("convert_time").timeout_s == 30  # type: ignore[union-attr]


def test_handoff_generates_transfer_tool_from_sibling_file(tmp_path: Path) -> None:
    front = write(tmp_path, "front.yaml", "instructions: x\nhandoffs: [billing]\n")
    write(tmp_path, "billing.yaml", "instructions: y\ndescription: Invoices and charges\n")
    graph = load_agents([front])
    assert graph.problems == [] and graph.roots == ["front"]
    assert set(graph.agents) == {"front", "billing"}
    [tool] = graph.tools_for(graph.get("front"), ToolRegistry())
    assert tool.name == "transfer_to_billing" and tool.handoff_to == "billing"
    assert tool.description == "Invoices and charges"


def test_directory_is_a_graph_and_scenarios_are_not_agents(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "instructions: x\nhandoffs: [{agent: b, description: The B desk}]\n")
    write(tmp_path, "b.yaml", "instructions: y\n")
    write(tmp_path, "a.scenario.yaml", "turns: []\n")
    graph = load_agents([tmp_path])
    assert graph.problems == [] and graph.roots == ["a", "b"]
    assert graph.tools_for(graph.get("a"), ToolRegistry())[0].description == "The B desk"


def test_example_agents_are_valid() -> None:
    from realtalk.plugins import load_plugins

    root = Path(__file__).resolve().parent.parent
    from realtalk.localtools import ToolFile

    tool_files = [ToolFile(f) for f in sorted((root / "agents").glob("*.tools.yaml"))]  # agents' tool_files:
    plugins = load_plugins(allow=["realtalk-clock"], extra=tool_files)
    graph = load_agents([root / "agents"], plugins.registry)
    assert graph.problems == [] and graph.warnings == []
    assert {"concierge", "billing"} <= set(graph.agents)


# --- bad input: one clear line with file, line and JSON path -------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nvoice: [marin\n")
    assert only_problem(path).startswith(f"{path}:3: YAML syntax error")


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nvoise: marin\n")
    assert only_problem(path) == f"{path}:2: $.voise: unknown key 'voise' (did you mean 'voice'?)"


def test_unknown_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nturn_detection:\n  type: server_vad\n  silence_ms: 5\n")
    assert only_problem(path) == (
        f"{path}:4: $.turn_detection.silence_ms: unknown key 'silence_ms'"
        " (did you mean 'silence_duration_ms'?)")


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: [a, b]\n")
    assert only_problem(path) == f"{path}:1: $.instructions: instructions must be a string, not a list"


def test_vad_threshold_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nturn_detection: {type: server_vad, threshold: 1.5}\n")
    assert only_problem(path) == (
        f"{path}:2: $.turn_detection.threshold: threshold is 1.5, out of range: must be between 0 and 1")


def test_negative_silence_duration(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nturn_detection:\n  type: server_vad\n  silence_duration_ms: -5\n")
    assert "silence_duration_ms is -5, out of range: must be between 0 and 10000" in only_problem(path)
    assert only_problem(path).startswith(f"{path}:4: ")


def test_unknown_voice(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nvoice: nova\n")
    assert only_problem(path).startswith(f"{path}:2: $.voice: 'nova' is not a valid voice; use one of: alloy,")


def test_unknown_modality(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nmodalities: [audio, video]\n")
    assert only_problem(path).startswith(f"{path}:2: $.modalities[1]: 'video' is not a valid modalities")


def test_unknown_turn_detection_type(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nturn_detection: server\n")
    assert "'server' is not a valid turn_detection; use one of: server_vad, semantic_vad, none" in only_problem(path)


def test_setting_that_does_not_apply_to_the_vad_type(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nturn_detection: {type: semantic_vad, threshold: 0.4}\n")
    assert "'threshold' does not apply to turn_detection type semantic_vad" in only_problem(path)


def test_missing_instructions(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "voice: marin\n")
    assert only_problem(path) == f"{path}:1: missing required key 'instructions'"


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "")
    assert only_problem(path) == f"{path}:1: the file is empty; an agent needs at least 'instructions'"


def test_non_mapping_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "- just\n- a list\n")
    assert only_problem(path) == f"{path}:1: an agent file must be a mapping of keys, not a list"


def test_duplicate_key(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nvoice: marin\nvoice: cedar\n")
    assert only_problem(path) == f"{path}:3: $.voice: duplicate key 'voice' (first on line 2)"


def test_unknown_tool_lists_available(tmp_path: Path, registry: ToolRegistry) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\ntools:\n  - get_tme\n")
    assert only_problem(path, registry) == (
        f"{path}:3: unknown tool 'get_tme' (did you mean 'get_time'?); available:"
        " convert_time (realtalk-clock), get_time (realtalk-clock)")


def test_unknown_handoff_target(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nhandoffs:\n  - biling\n")
    write(tmp_path, "billing.yaml", "instructions: y\n")
    message = only_problem(path)
    assert message.startswith(f"{path}:3: unknown handoff target 'biling' (did you mean 'billing'?)")


def test_handoff_to_itself(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nhandoffs: [a]\n")
    assert only_problem(path) == f"{path}:2: agent 'a' hands off to itself"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert only_problem(path) == f"{path}: no such file or directory"


def test_load_agent_raises_first_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"a\.yaml:2: \$\.voice"):
        load_agent(write(tmp_path, "a.yaml", "instructions: x\nvoice: 7\n"))


def test_graph_get_unknown_agent() -> None:
    with pytest.raises(ConfigError, match="unknown agent 'x'; known agents: none"):
        AgentGraph().get("x")


# --- voice lock --------------------------------------------------------------------------


def test_different_voices_warn_without_policy(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "instructions: x\nvoice: marin\nhandoffs: [b]\n")
    write(tmp_path, "b.yaml", "instructions: y\nvoice: cedar\n")
    graph = load_agents([tmp_path])
    assert graph.problems == []
    [warning] = graph.warnings
    assert "changes the voice (marin -> cedar)" in str(warning)
    assert "voice_policy: keep or reconnect in b.yaml" in str(warning)


def test_declared_voice_policy_silences_the_warning(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "instructions: x\nvoice: marin\nhandoffs: [b]\n")
    write(tmp_path, "b.yaml", "instructions: y\nvoice: cedar\nvoice_policy: reconnect\n")
    graph = load_agents([tmp_path])
    assert graph.warnings == [] and graph.get("b").voice_policy == "reconnect"


def test_truncation_maps_to_ga(tmp_path: Path) -> None:
    agent = load_agent(write(tmp_path, "a.yaml", "instructions: x\ntruncation: {retention_ratio: 0.8, post_instructions_tokens: 8000}\n"))
    assert agent.truncation == {"type": "retention_ratio", "retention_ratio": 0.8,
                                "token_limits": {"post_instructions": 8000}}
    assert load_agent(write(tmp_path, "b.yaml", "instructions: x\ntruncation: disabled\n")).truncation == "disabled"
    assert load_agent(write(tmp_path, "c.yaml", MINIMAL)).truncation == "auto"


def test_truncation_ratio_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\ntruncation: {retention_ratio: 1.5}\n")
    assert "retention_ratio is 1.5, out of range: must be between 0 and 1" in only_problem(path)


def test_unrelated_siblings_are_never_read(tmp_path: Path) -> None:
    # A FIFO blocks whoever opens it for reading: if loading the agent read the unrelated
    # sibling, the load would not finish until the test writes to it.
    a = write(tmp_path, "a.yaml", "instructions: x\nhandoffs: [b]\n")
    write(tmp_path, "b.yaml", MINIMAL)
    fifo = tmp_path / "unrelated.yaml"
    os.mkfifo(fifo)
    result: list[AgentGraph] = []
    worker = threading.Thread(target=lambda: result.append(load_agents([a])), daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():
        fifo.write_text("instructions: y\n")  # unblock it
        worker.join()
        pytest.fail("loading a.yaml read unrelated.yaml")
    [graph] = result
    assert list(graph.agents) == ["a", "b"] and graph.problems == []


def test_handoff_target_named_inside_another_file_is_still_found(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "instructions: x\nhandoffs: [billing]\n")
    write(tmp_path, "billing.yaml", "name: accounts\ninstructions: y\n")
    write(tmp_path, "desk.yaml", "name: billing\ninstructions: z\n")
    graph = load_agents([a])
    assert graph.problems == [] and graph.agents["billing"].file == tmp_path / "desk.yaml"


def test_check_of_a_directory_bounds_each_file(tmp_path: Path) -> None:
    levels = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'] + [
        f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 8)]
    write(tmp_path, "bomb.yaml", "instructions: x\n" + "\n".join(levels) + "\n")
    write(tmp_path, "deep.yaml", "instructions: x\nd: " + "[" * 200 + "]" * 200 + "\n")
    write(tmp_path, "good.yaml", MINIMAL)
    graph = load_agents([tmp_path])
    assert [str(p) for p in graph.problems] == [
        (f"{tmp_path / 'bomb.yaml'}:7: the document expands to more than 100000 values"
         " (aliases repeated inside aliases?); realtalk refuses it"),
        f"{tmp_path / 'deep.yaml'}:2: nested more than 64 levels deep",
    ]
    assert list(graph.agents) == ["good"]
    # Running the good agent beside them does not even open them.
    assert load_agents([tmp_path / "good.yaml"]).problems == []


# --- agent names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a b", "x" * 53, "", "tr.ansfer"])
def test_an_agent_spec_with_an_invalid_name_cannot_be_built(name: str, tmp_path: Path) -> None:
    from realtalk.agents import AgentSpec

    with pytest.raises(ConfigError) as info:
        AgentSpec(name=name, instructions="x", file=tmp_path / "a.yaml")
    assert str(info.value) == (f"{tmp_path / 'a.yaml'}: invalid agent name {name!r}: use 1-52 letters,"
                               " digits, '_' or '-' (it becomes the tool name transfer_to_<name>)")
    assert AgentSpec(name="x" * 52, instructions="x").name == "x" * 52


def test_a_file_name_that_is_no_agent_name_needs_a_name_key(tmp_path: Path) -> None:
    path = write(tmp_path, "my agent.yaml", MINIMAL)
    with pytest.raises(ConfigError, match=r"my agent\.yaml:1: the agent is named after its file, 'my agent', .*"
                                          r"rename the file or set 'name:'$"):
        load_agent(path)
    graph = load_agents([path])
    assert len(graph.problems) == 1 and graph.agents == {}
    write(tmp_path, "my agent.yaml", "name: mine\n" + MINIMAL)
    assert load_agent(path).name == "mine"


# --- one pass: every problem of every file at once -----------------------------------------


def test_every_unknown_key_is_reported_with_its_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nvoise: marin\ntool: [get_time]\n")
    assert problems_of(path) == [
        f"{path}:2: $.voise: unknown key 'voise' (did you mean 'voice'?)",
        f"{path}:3: $.tool: unknown key 'tool' (did you mean 'tools'?)",
    ]


def test_tools_and_handoffs_are_checked_even_when_keys_are_wrong(tmp_path: Path, registry: ToolRegistry) -> None:
    path = write(tmp_path, "a.yaml", """\
        instructions: x
        tools: [get_tme, {name: convert_time}]
        voise: marin
        handoffs: [{agent: bling}]
        speed: 9
        """)
    problems = problems_of(path, registry)
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:{n}" for n in (2, 3, 4, 5)]
    assert "unknown tool 'get_tme' (did you mean 'get_time'?)" in problems[0]
    assert "unknown key 'voise'" in problems[1]
    assert "unknown handoff target 'bling'" in problems[2]
    assert "speed is 9, out of range" in problems[3]


def test_problems_are_sorted_by_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", "instructions: y\nspeed: 9\nvoise: x\n")
    write(tmp_path, "a.yaml", "instructions: x\n\n\nhandoffs: [nobody]\nvoise: x\n")
    located = [p.split(": ", 1)[0] for p in problems_of(tmp_path)]
    assert located == [f"{tmp_path / 'a.yaml'}:4", f"{tmp_path / 'a.yaml'}:5",
                       f"{tmp_path / 'b.yaml'}:2", f"{tmp_path / 'b.yaml'}:3"]


def test_a_handoff_to_a_broken_file_points_at_it_instead_of_calling_it_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nhandoffs: [b]\n")
    write(tmp_path, "b.yaml", "instructions: y\nspeed: 9\n")
    assert only_problem(path) == (
        f"{path}:2: handoff target 'b' has problems in {tmp_path / 'b.yaml'}:"
        f" run realtalk check {tmp_path / 'b.yaml'}")
    # Checked together, b's own problem is the one reported.
    assert problems_of(tmp_path) == [(f"{tmp_path / 'b.yaml'}:2: $.speed: speed is 9, out of range:"
                                      " must be between 0.25 and 1.5")]


@pytest.mark.parametrize(("value", "shown"), [("5000", "5000"), ("0", "0"), ("lots", "'lots'")])
def test_a_number_or_constant_names_both(tmp_path: Path, value: str, shown: str) -> None:
    path = write(tmp_path, "a.yaml", f"instructions: x\nmax_output_tokens: {value}\n")
    assert only_problem(path) == (
        f"{path}:2: $.max_output_tokens: max_output_tokens is {shown}; use 1–4096 or 'inf'")


# --- current models and their settings ----------------------------------------------------


def test_new_settings_map_to_the_spec(tmp_path: Path) -> None:
    agent = load_agent(write(tmp_path, "a.yaml", """
        instructions: x
        model: gpt-realtime-2.1
        voice: {id: voice_1234}
        reasoning: {effort: high}
        parallel_tool_calls: true
        tool_choice: {type: function, name: get_time}
        tools: [get_time]
        prompt:
          id: pmpt_123
          version: "4"
          variables: {city: Lisbon, logo: {type: input_image, image_url: "https://example.com/a.png"}}
        tracing: {workflow_name: front desk, metadata: {site: lisbon}}
        include: [item.input_audio_transcription.logprobs]
        input_audio_transcription: {model: gpt-transcribe, languages: [en, pt-BR], keywords: [Aurora]}
        noise_reduction: none
        turn_detection: {type: server_vad, idle_timeout_ms: 8000}
    """))
    assert agent.voice == "voice_1234"
    assert agent.reasoning_effort == "high" and agent.parallel_tool_calls is True
    assert agent.tool_choice == {"type": "function", "name": "get_time"}
    assert agent.prompt == {"id": "pmpt_123", "version": "4", "variables": {
        "city": "Lisbon", "logo": {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}}}
    assert agent.tracing == {"workflow_name": "front desk", "metadata": {"site": "lisbon"}}
    assert agent.include == ("item.input_audio_transcription.logprobs",)
    assert agent.input_transcription == {"model": "gpt-transcribe", "languages": ["en", "pt-BR"], "keywords": ["Aurora"]}
    assert agent.noise_reduction is None
    assert agent.turn_detection is not None and agent.turn_detection["idle_timeout_ms"] == 8000


def test_a_prompt_version_may_be_a_number(tmp_path: Path) -> None:
    agent = load_agent(write(tmp_path, "a.yaml", "instructions: x\nprompt: {id: pmpt_1, version: 3}\n"))
    assert agent.prompt == {"id": "pmpt_1", "version": "3"}
    path = write(tmp_path, "b.yaml", "instructions: x\nprompt: {id: pmpt_1, version: 0}\n")
    assert only_problem(path) == f"{path}:2: $.prompt.version: version is 0, out of range: must be at least 1"


def test_a_handoff_tool_may_be_forced(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nhandoffs: [b]\ntool_choice: {type: function, name: transfer_to_b}\n")
    write(tmp_path, "b.yaml", MINIMAL)
    assert problems_of(path) == []


@pytest.mark.parametrize(("text", "line", "message"), [
    ("model: gpt-realtime\nreasoning: {effort: low}\n", 3,
     ("$.reasoning: reasoning needs a reasoning model (gpt-realtime-2, gpt-realtime-2.1, gpt-realtime-2.1-mini);"
     " gpt-realtime does not take it")),
    ("model: gpt-realtime-mini\nparallel_tool_calls: false\n", 3,
     ("$.parallel_tool_calls: parallel_tool_calls needs a reasoning model (gpt-realtime-2, gpt-realtime-2.1,"
     " gpt-realtime-2.1-mini); gpt-realtime-mini does not take it")),
    ("reasoning: {effort: huge}\n", 2,
     "$.reasoning.effort: 'huge' is not a valid effort; use one of: minimal, low, medium, high, xhigh"),
    ("reasoning: high\n", 2, "$.reasoning: reasoning must be a mapping, not a string"),
    ("tools: [get_time]\ntool_choice: {type: function, name: get_tme}\n", 3,
     ("$.tool_choice.name: tool_choice names 'get_tme', which is not one of the agent's tools"
     " (did you mean 'get_time'?); its tools: get_time")),
    ("tool_choice: required\n", 2, "$.tool_choice: tool_choice is 'required', but the agent has no tools or handoffs"),
    ("tool_choice: sometimes\n", 2,
     "$.tool_choice: 'sometimes' is not a valid tool_choice; use one of: auto, none, required"),
    ("tools: [get_time]\ntool_choice: {type: mcp, name: get_time}\n", 3, "$.tool_choice.type: type must be 'function'"),
    ("voice: {name: mine}\n", 2, "$.voice.name: unknown key 'name'; valid keys: id"),
    ("noise_reduction: loud\n", 2,
     "$.noise_reduction: 'loud' is not a valid noise_reduction; use one of: near_field, far_field, none, null"),
    ("tracing: always\n", 2, "$.tracing: tracing must be 'auto'"),
    ("tracing: {workflow: x}\n", 2, "$.tracing.workflow: unknown key 'workflow' (did you mean 'workflow_name'?)"),
    ("include: [logprobs]\ninput_audio_transcription: {model: gpt-4o-transcribe}\n", 2,
     "$.include[0]: 'logprobs' is not a valid include; use one of: item.input_audio_transcription.logprobs"),
    ("include: [item.input_audio_transcription.logprobs]\n", 2,
     ("$.include: include item.input_audio_transcription.logprobs needs input_audio_transcription"
     " (it adds logprobs to its transcripts)")),
    ("input_audio_transcription: {model: whisper-1, delay: low}\n", 2,
     "$.input_audio_transcription.delay: 'delay' is taken only by gpt-realtime-whisper, not by whisper-1"),
    ("input_audio_transcription: {model: gpt-4o-transcribe, keywords: [Aurora]}\n", 2,
     ("$.input_audio_transcription.keywords: 'keywords' is taken only by gpt-live-transcribe, gpt-transcribe,"
     " not by gpt-4o-transcribe")),
    ("input_audio_transcription: {model: gpt-realtime-whisper, prompt: hotel}\n", 2,
     "$.input_audio_transcription.prompt: 'prompt' is not taken by gpt-realtime-whisper"),
    ("input_audio_transcription: {model: gpt-transcribe, languages: [english]}\n", 2,
     "$.input_audio_transcription.languages[0]: languages: 'english' is not an ISO-639-1 code such as 'en' or 'pt-BR'"),
    ("input_audio_transcription: {model: gpt-realtime-whisper, delay: soon}\n", 2,
     "$.input_audio_transcription.delay: 'soon' is not a valid delay; use one of: minimal, low, medium, high, xhigh"),
    ("prompt: {version: '2'}\n", 2, "$.prompt: missing required key 'id'"),
    ("prompt: {id: p, variables: {n: 3}}\n", 2, "$.prompt.variables.n: n must be a string, not an integer"),
    ("prompt: {id: p, variables: {n: {type: input_text}}}\n", 2, "$.prompt.variables.n: missing required key 'text'"),
    ("turn_detection: {type: semantic_vad, idle_timeout_ms: 6000}\n", 2,
     "$.turn_detection.idle_timeout_ms: 'idle_timeout_ms' does not apply to turn_detection type semantic_vad"),
    ("turn_detection: {type: server_vad, idle_timeout_ms: 1000}\n", 2,
     "$.turn_detection.idle_timeout_ms: idle_timeout_ms is 1000, out of range: must be between 5000 and 30000"),
])
def test_new_settings_refused_with_one_line(tmp_path: Path, registry: ToolRegistry, text: str, line: int,
                                            message: str) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\n" + text)
    assert only_problem(path, registry) == f"{path}:{line}: {message}"


def test_reasoning_on_a_model_realtalk_does_not_know_is_passed_through(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\nmodel: my-azure-deployment\nreasoning: {effort: low}\n")
    assert problems_of(path) == [] and load_agent(path).reasoning_effort == "low"


def test_a_handoff_may_not_change_tracing(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "instructions: x\ntracing: auto\nhandoffs: [b]\n")
    write(tmp_path, "b.yaml", "instructions: y\ntracing: {workflow_name: billing}\n")
    assert only_problem(path) == (
        f"{path}:3: handoff to 'b' changes tracing (\"auto\" -> {{\"workflow_name\": \"billing\"}}), which the API"
        " cannot change once a session traces; give both agents the same tracing")
    write(tmp_path, "b.yaml", "instructions: y\ntracing: auto\n")
    assert problems_of(path) == []


def test_python_agents_take_the_new_keys() -> None:
    from realtalk import Agent

    agent = Agent(name="desk", instructions="x", voice={"id": "voice_9"}, reasoning={"effort": "minimal"},
                  parallel_tool_calls=False, prompt={"id": "pmpt_1"}, tracing="auto", tools=["get_time"],
                  tool_choice={"type": "function", "name": "get_time"},
                  input_audio_transcription={"model": "gpt-4o-transcribe"},
                  include=["item.input_audio_transcription.logprobs"])
    assert (agent.voice, agent.reasoning_effort, agent.parallel_tool_calls) == ("voice_9", "minimal", False)
    assert agent.prompt == {"id": "pmpt_1"} and agent.tracing == "auto"
    with pytest.raises(ConfigError, match=r"^agent 'desk': \$\.reasoning: reasoning needs a reasoning model"):
        Agent(name="desk", instructions="x", model="gpt-realtime", reasoning={"effort": "low"})


def test_still_working_is_overridden_per_agent(tmp_path: Path, registry: ToolRegistry) -> None:
    from realtalk.agents import Agent
    from realtalk.tools import StillWorking

    path = write(tmp_path, "a.yaml", """
        instructions: x
        tools:
          - {name: get_time, still_working: {after_s: 2, say: Still looking...}}
          - {name: convert_time, still_working: {after_s: 0.5, generate: true}}
    """)
    graph = load_agents([path], registry)
    assert graph.problems == []
    tools = graph.tools_for(graph.get("a"), registry)
    assert tools[0].still_working == StillWorking(2.0, "Still looking...", False)
    assert tools[1].still_working == StillWorking(0.5, None, True)
    assert registry.get("get_time").still_working is None  # type: ignore[union-attr]
    # The same override from Python goes through the same checks.
    spec = Agent(name="b", instructions="x", tools=[graph.get("a").tools[0]])
    assert spec.tools[0].still_working == StillWorking(2.0, "Still looking...", False)


@pytest.mark.parametrize(("value", "message"), [
    ("{after_s: -1, say: x}", "still_working.after_s must be a positive number of seconds, got -1"),
    ("{after_s: 2}", "still_working needs exactly one of say: <a line> or generate: true"),
    ("{after_s: 2, say: x, generate: true}", "still_working needs exactly one of say"),
    ("{after_s: 2, say: '  '}", "still_working.say must be a non-empty string"),
    ("{after_s: 2, sya: x}", "still_working has an unknown key 'sya'"),
    ("3", "still_working must be a mapping, not an integer"),
])
def test_a_bad_still_working_override_is_one_line_with_its_place(tmp_path: Path, value: str,
                                                                 message: str) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(f"instructions: x\ntools:\n  - get_time\n  - name: convert_time\n    still_working: {value}\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}:5: $.tools[1].still_working: ") and message in problem
    assert "\n" not in problem
