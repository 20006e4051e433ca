"""Agents: YAML files validated before anything connects.

:func:`load_agents` reads agent files (or directories of them) into an
:class:`AgentGraph`: every :class:`AgentSpec`, plus every problem found, one
:class:`~realtalk.exceptions.ConfigError` per problem with file, line and JSON path.
Validation has three layers: YAML syntax, the packaged JSON Schema
(``schemas/agent.schema.json``), and the graph (handoff targets exist, tools are
installed, voices agree or a policy says what to do).

The seed vocabulary of the files (``modalities``, ``voice``, ``turn_detection``,
``input_audio_transcription``) is normalised here; :mod:`realtalk.protocol.session_config`
maps an AgentSpec to the GA ``session.update`` event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .agentsettings import setting_problems, tracing_problems
from .exceptions import ConfigError
from .models import DEFAULT_MODEL, deprecation
from .protocol.vocab import SEMANTIC_VAD_DEFAULTS, SERVER_VAD_DEFAULTS, audio_format, json_copy
from .tools import StillWorking, Tool, ToolRegistry, make_tool
from .toolsources import McpServerSpec, parse_servers, plain_servers, server_problems
from .yamlfile import YamlDocument, did_you_mean, json_path, load_yaml, read_text

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

__all__ = [
    "Agent",
    "AgentGraph",
    "AgentSpec",
    "Handoff",
    "ToolUse",
    "agent_schema",
    "load_agent",
    "load_agents",
]

DEFAULT_VOICE = "marin"

# As in the schema: the name becomes the tool name transfer_to_<name> (at most 64).
AGENT_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,52}$")


@lru_cache(maxsize=1)
def agent_schema() -> dict[str, Any]:
    """The packaged JSON Schema of an agent file."""
    text = resources.files("realtalk").joinpath("schemas/agent.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    # jsonschema is imported when the first agent file is checked, not with the module.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(agent_schema())


def _schema_errors(data: Any) -> list[ValidationError]:
    """The agent schema's errors in ``data``. A document that passed before (the same data,
    schema file, agents.py and jsonschema: :mod:`realtalk.cache`) is not checked again,
    and jsonschema is then not imported; one that fails is checked every time."""
    from . import cache

    schema_file = str(Path(__file__).parent / "schemas" / "agent.schema.json")
    key = cache.verdict_key("agent", data, decided_by=(__file__, schema_file))
    if key is not None and cache.known_good(key):
        return []
    errors = list(_validator().iter_errors(data))
    if not errors and key is not None:
        cache.remember_good(key)
    return errors


@dataclass(frozen=True)
class ToolUse:
    """A tool an agent lists, with its per-agent overrides (None: keep the plugin's)."""

    name: str
    timeout_s: float | None = None
    requires_approval: bool | None = None
    cancellable: bool | None = None
    line: int | None = None
    still_working: StillWorking | None = None


@dataclass(frozen=True)
class Handoff:
    """A handoff an agent can make: the ``transfer_to_<agent>`` tool."""

    agent: str
    description: str | None = None
    line: int | None = None
    # The agent itself, when it was given as an object (``Agent(handoffs=[billing])``).
    target: AgentSpec | None = field(default=None, compare=False, repr=False)

    @property
    def tool_name(self) -> str:
        """The generated tool's name."""
        return f"transfer_to_{self.agent}"


@dataclass(frozen=True)
class AgentSpec:
    """One validated agent, normalised.

    Attributes:
        name: Unique within its graph.
        instructions: System instructions.
        description: One line for other agents' handoff tools.
        greeting: What the agent says first (session start, or a handoff reaching it).
        model: Realtime model or Azure deployment.
        voice: Output voice: a built-in voice's name, or a custom voice's id (any
            other string, sent as ``{"id": ...}``).
        voice_policy: ``keep``, ``reconnect`` or None (undeclared) when a handoff
            would change a locked voice.
        speed: Voice speed, or None for the server default.
        output_modalities: GA ``["audio"]`` or ``["text"]``.
        audio_format: GA format type: ``audio/pcm``, ``audio/pcmu`` or ``audio/pcma``.
        turn_detection: GA ``audio.input.turn_detection`` (None: push-to-talk).
        input_transcription: GA ``audio.input.transcription``, or None.
        noise_reduction: ``near_field``, ``far_field`` or None.
        max_output_tokens: An int, ``"inf"``, or None for the server default.
        truncation: GA ``truncation``: ``auto``, ``disabled`` or a retention-ratio object.
        tool_choice: ``auto``, ``none``, ``required``, or ``{"type": "function",
            "name": ...}`` forcing one of its tools.
        reasoning_effort: ``reasoning.effort`` of a reasoning model, or None.
        parallel_tool_calls: Whether the model may call several tools at once; None
            for the server default.
        prompt: GA ``prompt``: a reusable prompt's ``id``, ``version`` and ``variables``.
        tracing: GA ``tracing``: ``auto``, a configuration object, or None (off).
        include: GA ``include`` (``item.input_audio_transcription.logprobs``).
        hosted_mcp: Remote MCP servers the Realtime API calls itself (``hosted_mcp:``):
            each the GA ``mcp`` tool's fields (``server_label``, ``server_url`` or
            ``connector_id``, ``allowed_tools``, ``require_approval``, ``headers``,
            ``authorization``, ``server_description``), with ``${NAME}`` references
            not yet read from the environment (see :mod:`realtalk.hostedmcp`).
        tools: The tools it lists.
        handoffs: The agents it can hand off to.
        tool_files: Tool files beside it (``tool_files:``, relative to its file), whose
            tools it may list.
        tool_functions: Typed tool functions given to :func:`Agent` (``tools=[fn]``).
        mcp_servers: MCP servers whose tools it may call (its own ``mcp_servers:``, then
            those of the tool files it loads); see docs/mcp.md.
        file: The YAML file it came from (None for an agent defined in Python).
        notes: Things worth telling the user about how the file was read.
    """

    name: str
    instructions: str
    description: str = ""
    greeting: str | None = None
    model: str = DEFAULT_MODEL
    voice: str = DEFAULT_VOICE
    voice_policy: str | None = None
    speed: float | None = None
    output_modalities: tuple[str, ...] = ("audio",)
    audio_format: str = "audio/pcm"
    turn_detection: dict[str, Any] | None = field(
        default_factory=lambda: dict(SERVER_VAD_DEFAULTS)
    )
    input_transcription: dict[str, Any] | None = None
    noise_reduction: str | None = None
    max_output_tokens: int | str | None = None
    truncation: str | dict[str, Any] = "auto"
    tool_choice: str | dict[str, Any] = "auto"
    reasoning_effort: str | None = None
    parallel_tool_calls: bool | None = None
    prompt: dict[str, Any] | None = None
    tracing: str | dict[str, Any] | None = None
    include: tuple[str, ...] = ()
    hosted_mcp: tuple[dict[str, Any], ...] = ()
    tools: tuple[ToolUse, ...] = ()
    handoffs: tuple[Handoff, ...] = ()
    tool_files: tuple[Path, ...] = ()
    tool_functions: tuple[Callable[..., Any], ...] = ()
    mcp_servers: tuple[McpServerSpec, ...] = ()
    file: Path | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a name that other agents could not hand off to.

        Raises:
            ConfigError: One line with the name and, when known, the file.
        """
        if not isinstance(self.name, str) or not AGENT_NAME.match(self.name):
            raise ConfigError(f"invalid agent name {self.name!r}: use 1-52 letters, digits, '_' or '-'"
                              " (it becomes the tool name transfer_to_<name>)", file=self.file)

    @property
    def text_only(self) -> bool:
        """True when the agent answers in text, not audio."""
        return self.output_modalities == ("text",)


def greeting_response(agent: AgentSpec) -> dict[str, Any] | None:
    """The ``response.create`` body that makes ``agent`` greet, or None without a greeting."""
    if agent.greeting is None:
        return None
    return {"instructions": f"{agent.instructions}\n\nStart by greeting the user with: {agent.greeting}"}


# --- reading one file --------------------------------------------------------------------


def _friendly(error: ValidationError) -> list[tuple[list[object], str]]:
    """Messages a person can act on, and where each applies: one per unknown key, else one."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        parts = list(error.absolute_path)
        out: list[tuple[list[object], str]] = []
        for key in sorted((k for k in error.instance if k not in allowed), key=str):
            hint = did_you_mean(str(key), allowed, cutoff=0.5) or f"; valid keys: {', '.join(allowed)}"
            out.append((parts + [key], f"unknown key {key!r}{hint}"))
        return out
    return [_friendly_one(error)]


def _alternatives(branches: list[dict[str, Any]]) -> str | None:
    """``1–4096 or 'inf'`` for oneOf/anyOf branches that are each a number range, a
    constant or a list of constants; None when a branch is anything else."""
    described = []
    for branch in branches:
        if "const" in branch and len(branch) == 1:
            described.append(repr(branch["const"]))
        elif "enum" in branch and len(branch) == 1:
            described.append(" or ".join("null" if c is None else repr(c) for c in branch["enum"]))
        elif branch.get("type") in ("integer", "number") and set(branch) <= {"type", "minimum", "maximum"}:
            low, high = branch.get("minimum"), branch.get("maximum")
            if low is not None and high is not None:
                described.append(f"{low}–{high}")
            elif low is not None:
                described.append(f"{_article(branch['type'])} of at least {low}")
            elif high is not None:
                described.append(f"{_article(branch['type'])} of at most {high}")
            else:
                described.append(_article(branch["type"]))
        else:
            return None
    return " or ".join(described)


def _friendly_one(error: ValidationError) -> tuple[list[object], str]:
    if error.validator in ("oneOf", "anyOf") and error.context:
        from jsonschema.exceptions import best_match

        # A choice among numbers and constants ("1-4096 or 'inf'") is named whole: the
        # branch that "fits" a wrong number best would only name its constant.
        choices = _alternatives(error.validator_value)
        if choices is not None and not isinstance(error.instance, (dict, list)):
            parts = list(error.absolute_path)
            name = next((p for p in reversed(parts) if isinstance(p, str)), "value")
            return parts, f"{name} is {error.instance!r}; use {choices}"

        # Report the branch that fits the value's kind, not "not valid under any schema".
        fitting = [e for e in error.context if not _wrong_branch(e)]
        error = best_match(fitting or error.context)
    parts = list(error.absolute_path)
    field_name = next((p for p in reversed(parts) if isinstance(p, str)), "value")
    value = error.instance
    if error.validator == "additionalProperties":  # inside a oneOf branch: the first key
        return _friendly(error)[0] if isinstance(value, dict) else (parts, error.message)
    if error.validator == "enum":
        choices = ", ".join("null" if c is None else str(c) for c in error.validator_value)
        return parts, f"{value!r} is not a valid {field_name}; use one of: {choices}"
    if error.validator == "const":
        return parts, f"{field_name} must be {error.validator_value!r}"
    if error.validator == "type":
        want = error.validator_value
        return parts, f"{field_name} must be {_article(want)}, not {_kind(value)}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        rng = _range_of(error.schema)
        return parts, f"{field_name} is {value!r}, out of range: {rng}"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "a key"
        return parts, f"missing required key {missing!r}"
    if error.message.startswith("False schema"):
        kind, key = _misplaced_turn_key(error)
        return parts + [key], f"{key!r} does not apply to turn_detection type {kind}"
    if error.validator == "pattern" and "language" in parts:
        return parts, f"language {value!r} is not an ISO-639-1 code such as 'en' or 'pt-BR'"
    if error.validator == "pattern" and "languages" in parts:
        return parts, f"languages: {value!r} is not an ISO-639-1 code such as 'en' or 'pt-BR'"
    if error.validator == "pattern" and str(error.validator_value).startswith("^https?://"):
        return parts, f"{field_name} {value!r} is not an http:// or https:// URL"
    if error.validator == "pattern":
        longest = re.search(r"\{1,(\d+)\}", str(error.validator_value))
        return parts, (f"{field_name} {value!r} is invalid: use 1-{longest[1] if longest else 52}"
                       " letters, digits, '_' or '-'")
    if error.validator in ("minItems", "minLength"):
        return parts, f"{field_name} must not be empty"
    if error.validator == "maxLength":
        return parts, f"{field_name} is {len(value)} characters; at most {error.validator_value}"
    if error.validator == "uniqueItems":
        return parts, f"{field_name} lists the same value twice"
    return parts, error.message


def _wrong_branch(error: ValidationError) -> bool:
    """True for a oneOf branch error that only says "this is the other kind of value"."""
    if error.relative_path:
        return False
    return error.validator == "type" or (
        error.validator in ("enum", "const") and isinstance(error.instance, (dict, list))
    )


def _misplaced_turn_key(error: ValidationError) -> tuple[str, str]:
    """For a "False schema" error in turn_detection: its type and the key not allowed."""
    node: Any = error
    while node is not None and not (isinstance(node.instance, dict) and "type" in node.instance):
        node = node.parent
    settings: dict[str, Any] = node.instance if node is not None else {}
    kind = str(settings.get("type", "?"))
    for rule in agent_schema()["$defs"]["turn_detection"]["allOf"]:
        if rule["if"]["properties"]["type"]["const"] == kind:
            forbidden = [k for k, v in rule["then"]["properties"].items() if v is False]
            present = [k for k in settings if k in forbidden]
            if present:
                return kind, present[0]
    return kind, "?"


def _range_of(schema: dict[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        return f"must be between {low} and {high}"
    if low is not None:
        return f"must be at least {low}" if "minimum" in schema else f"must be above {low}"
    return f"must be at most {high}"


def _article(json_type: object) -> str:
    names = {"string": "a string", "object": "a mapping", "array": "a list", "integer": "an integer",
             "number": "a number", "boolean": "true or false", "null": "null"}
    if isinstance(json_type, list):
        return " or ".join(names.get(str(t), str(t)) for t in json_type)
    return names.get(str(json_type), str(json_type))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def mcp_servers_in(doc: YamlDocument) -> tuple[McpServerSpec, ...]:
    """The ``mcp_servers:`` of a tools file (checked as an agent's are), or ``()``.

    Raises:
        ConfigError: Its first problem, located (``file:line: $.mcp_servers[0]...``).
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    if "mcp_servers" not in data:
        return ()
    errors = list(_validator().iter_errors({"instructions": "-", "mcp_servers": data["mcp_servers"]}))
    problems = [doc.error(message, parts) for error in errors for parts, message in _friendly(error)]
    problems += [doc.error(message, ["mcp_servers", *parts])
                 for parts, message in server_problems(data["mcp_servers"])]
    if problems:
        raise min(problems, key=lambda p: p.line or 0)
    return parse_servers(data["mcp_servers"], file=doc.file, line_of=doc.line_of)


def check_document(doc: YamlDocument) -> list[ConfigError]:
    """Every schema problem of one agent document, each located by line and JSON path."""
    if doc.data is None:
        return [ConfigError("the file is empty; an agent needs at least 'instructions'",
                            file=doc.file, line=1)]
    if not isinstance(doc.data, dict):
        return [doc.error(f"an agent file must be a mapping of keys, not {_kind(doc.data)}")]
    problems = []
    if "name" not in doc.data and not AGENT_NAME.match(doc.file.stem):
        problems.append(doc.error(
            f"the agent is named after its file, {doc.file.stem!r}, which is not a valid agent name"
            " (1-52 letters, digits, '_' or '-'): rename the file or set 'name:'"))
    for error in _schema_errors(doc.data):
        problems += [doc.error(message, parts) for parts, message in _friendly(error)]
    problems += [doc.error(message, parts) for parts, message in setting_problems(doc.data)]
    problems += [doc.error(message, ["mcp_servers", *parts])
                 for parts, message in server_problems(doc.data.get("mcp_servers"))]
    return sorted(problems, key=lambda p: (p.line or 0, p.json_path or ""))


def _build(doc: YamlDocument) -> AgentSpec:
    data: dict[str, Any] = doc.data
    notes = []
    modalities = data.get("modalities", ["audio"])
    if set(modalities) == {"text", "audio"}:
        notes.append("modalities [text, audio] is sent as GA output_modalities [audio]"
                     " (audio always comes with its transcript)")
    output = ("text",) if modalities == ["text"] else ("audio",)

    turn = data.get("turn_detection", "server_vad")
    if isinstance(turn, str):
        turn = {"type": turn}
    kind = turn["type"]
    turn_detection: dict[str, Any] | None
    if kind == "none":
        turn_detection = None
    else:
        # Filled in explicitly from the documented defaults, so that a handoff replaces the
        # previous agent's settings whole instead of inheriting them through the server's
        # partial merge.
        defaults = SERVER_VAD_DEFAULTS if kind == "server_vad" else SEMANTIC_VAD_DEFAULTS
        turn_detection = {**defaults, **turn}

    tools = []
    for index, entry in enumerate(data.get("tools", [])):
        line = doc.line_of(("tools", index))
        if isinstance(entry, str):
            tools.append(ToolUse(entry, line=line))
        else:
            tools.append(ToolUse(
                entry["name"], entry.get("timeout_s"), entry.get("requires_approval"),
                entry.get("cancellable"), line=line,
                still_working=StillWorking.parse(entry.get("still_working")),
            ))
    handoffs = []
    for index, entry in enumerate(data.get("handoffs", [])):
        line = doc.line_of(("handoffs", index))
        if isinstance(entry, str):
            handoffs.append(Handoff(entry, line=line))
        else:
            handoffs.append(Handoff(entry["agent"], entry.get("description"), line=line))

    return AgentSpec(
        name=data.get("name", doc.file.stem),
        instructions=data["instructions"],
        description=data.get("description", ""),
        greeting=data.get("greeting"),
        model=data.get("model", DEFAULT_MODEL),
        voice=_voice(data.get("voice", DEFAULT_VOICE)),
        voice_policy=data.get("voice_policy"),
        speed=data.get("speed"),
        output_modalities=output,
        audio_format=audio_format(data.get("audio_format", "pcm16")).name,
        turn_detection=turn_detection,
        input_transcription=data.get("input_audio_transcription"),
        noise_reduction=None if data.get("noise_reduction") == "none" else data.get("noise_reduction"),
        max_output_tokens=data.get("max_output_tokens"),
        truncation=_truncation(data.get("truncation", "auto")),
        tool_choice=data.get("tool_choice", "auto"),
        reasoning_effort=data["reasoning"]["effort"] if "reasoning" in data else None,
        parallel_tool_calls=data.get("parallel_tool_calls"),
        prompt=_prompt(data["prompt"]) if "prompt" in data else None,
        tracing=data.get("tracing"),
        include=tuple(data.get("include", ())),
        hosted_mcp=tuple(json_copy(entry) for entry in data.get("hosted_mcp", ())),
        tools=tuple(tools),
        handoffs=tuple(handoffs),
        tool_files=tuple(doc.file.parent / entry for entry in data.get("tool_files", [])),
        mcp_servers=parse_servers(data.get("mcp_servers", []), file=doc.file, line_of=doc.line_of),
        file=doc.file,
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class _Refs:
    """What a file with schema problems refers to, as far as it is well-formed: checked
    too, so that one run of ``check`` reports everything."""

    name: str
    file: Path
    tools: tuple[ToolUse, ...]
    handoffs: tuple[Handoff, ...]
    tool_files: tuple[Path, ...]


def _refs(doc: YamlDocument) -> _Refs:
    data = doc.data if isinstance(doc.data, dict) else {}
    name = data["name"] if isinstance(data.get("name"), str) else doc.file.stem
    tools: list[ToolUse] = []
    entries = data.get("tools")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict):
            entry = entry.get("name")
        if isinstance(entry, str) and entry:
            tools.append(ToolUse(entry, line=doc.line_of(("tools", index))))
    handoffs: list[Handoff] = []
    entries = data.get("handoffs")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict):
            entry = entry.get("agent")
        if isinstance(entry, str) and AGENT_NAME.match(entry):
            handoffs.append(Handoff(entry, line=doc.line_of(("handoffs", index))))
    entries = data.get("tool_files")
    files = tuple(doc.file.parent / e for e in (entries if isinstance(entries, list) else [])
                  if isinstance(e, str) and e)
    return _Refs(name, doc.file, tuple(tools), tuple(handoffs), files)


def _truncation(value: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(value, str):
        return value
    out: dict[str, Any] = {"type": "retention_ratio", "retention_ratio": value["retention_ratio"]}
    if "post_instructions_tokens" in value:
        out["token_limits"] = {"post_instructions": value["post_instructions_tokens"]}
    return out


def _voice(value: str | dict[str, Any]) -> str:
    """A built-in voice's name as it is; a custom voice ``{id: ...}`` as its id."""
    return value if isinstance(value, str) else str(value["id"])


def _prompt(value: dict[str, Any]) -> dict[str, Any]:
    """The GA ``prompt``: a version as a string, and an image variable without ``detail``
    gets the spec's ``auto``."""
    out = json_copy(value)
    if "version" in out:
        out["version"] = str(out["version"])
    for variable in (out.get("variables") or {}).values():
        if isinstance(variable, dict) and variable.get("type") == "input_image":
            variable.setdefault("detail", "auto")
    return out


def load_agent(path: str | Path) -> AgentSpec:
    """Load and validate one agent file on its own (no graph or tool checks).

    Raises:
        ConfigError: The first problem found, with file, line and JSON path.
    """
    doc, problems = _read_agent_file(Path(path))
    if problems:
        raise problems[0]
    return _build(doc)


def Agent(  # a constructor to its users: realtalk.Agent(name=..., ...)
    *,
    name: str,
    instructions: str,
    description: str | None = None,
    greeting: str | None = None,
    model: str | None = None,
    voice: str | Mapping[str, Any] | None = None,
    voice_policy: str | None = None,
    speed: float | None = None,
    modalities: Sequence[str] | None = None,
    audio_format: str | None = None,
    turn_detection: str | Mapping[str, Any] | None = None,
    input_audio_transcription: Mapping[str, Any] | None = None,
    noise_reduction: str | None = None,
    max_output_tokens: int | str | None = None,
    truncation: str | Mapping[str, Any] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    reasoning: Mapping[str, Any] | None = None,
    parallel_tool_calls: bool | None = None,
    prompt: Mapping[str, Any] | None = None,
    tracing: str | Mapping[str, Any] | None = None,
    include: Sequence[str] | None = None,
    hosted_mcp: Sequence[Mapping[str, Any]] | None = None,
    tools: Iterable[str | Mapping[str, Any] | ToolUse | Callable[..., Any]] = (),
    handoffs: Iterable[str | AgentSpec | Mapping[str, Any] | Handoff] = (),
    tool_files: Iterable[str | Path] = (),
    mcp_servers: Iterable[McpServerSpec | Mapping[str, Any]] = (),
) -> AgentSpec:
    """An agent defined in Python: the keys of an agent file, checked the same way.

    Accepted wherever an agent file is (``open_session``, ``run_agent``, the testing
    kit). A keyword left out (None) is a key left out of the file: its default applies.

    Args:
        name: The agent's name (1-52 letters, digits, ``_`` or ``-``).
        instructions: Its system instructions.
        tools: Tool names (as in the file: a name, or a mapping with per-agent options),
            and typed tool functions (``@realtalk.tool``), which are registered with it.
        handoffs: Agents it may hand off to: other ``Agent(...)`` objects (they come
            with it into the session), names, or ``{agent, description}`` mappings.
        tool_files: Tool files (relative to the working directory) whose tools it lists.
        hosted_mcp: Remote MCP servers the Realtime API calls itself, as the
            ``hosted_mcp:`` key of a file (see docs/hosted-mcp.md).
        mcp_servers: MCP servers whose tools it may call, as the mappings of an agent
            file's ``mcp_servers:`` (docs/mcp.md); ``cwd`` is relative to the working directory.
        **others: As the keys of an agent file (see docs/agents.md).

    Returns:
        The validated :class:`AgentSpec`.

    Raises:
        ConfigError: Every problem, one line each (``agent 'x': $.voice: ...``);
            unknown tools and handoff targets are checked when a session loads it.
    """
    data: dict[str, Any] = {k: v for k, v in {
        "name": name, "instructions": instructions, "description": description, "greeting": greeting,
        "model": model, "voice": _plain(voice), "voice_policy": voice_policy, "speed": speed,
        "modalities": list(modalities) if modalities is not None else None, "audio_format": audio_format,
        "turn_detection": dict(turn_detection) if isinstance(turn_detection, Mapping) else turn_detection,
        "input_audio_transcription": dict(input_audio_transcription)
        if input_audio_transcription is not None else None,
        "noise_reduction": noise_reduction, "max_output_tokens": max_output_tokens,
        "truncation": dict(truncation) if isinstance(truncation, Mapping) else truncation,
        "tool_choice": _plain(tool_choice), "reasoning": _plain(reasoning),
        "parallel_tool_calls": parallel_tool_calls, "prompt": _plain(prompt), "tracing": _plain(tracing),
        "include": list(include) if include is not None else None,
        "hosted_mcp": [_plain(entry) for entry in hosted_mcp] if hosted_mcp is not None else None,
    }.items() if v is not None}
    from .typedtools import tool_name  # here: nothing else of an agent file needs it

    functions: list[Callable[..., Any]] = []
    tool_entries: list[Any] = []
    entry: Any
    for entry in tools:
        if isinstance(entry, ToolUse):
            tool_entries.append({k: v for k, v in (("name", entry.name), ("timeout_s", entry.timeout_s),
                                                    ("requires_approval", entry.requires_approval),
                                                    ("cancellable", entry.cancellable),
                                                    ("still_working", _still_plain(entry.still_working)))
                                   if v is not None})
        elif isinstance(entry, Mapping):
            tool_entries.append(dict(entry))
        elif callable(entry) and not isinstance(entry, str):
            functions.append(entry)
            tool_entries.append(tool_name(entry))
        else:
            tool_entries.append(entry)
    targets: dict[str, AgentSpec] = {}
    handoff_entries: list[Any] = []
    for handoff in handoffs:
        entry = handoff
        if isinstance(entry, Handoff):
            entry = {"agent": entry.target or entry.agent, "description": entry.description}
        if isinstance(entry, Mapping):
            entry = {k: v for k, v in entry.items() if v is not None}
            if isinstance(entry.get("agent"), AgentSpec):
                targets[entry["agent"].name] = entry["agent"]
                entry["agent"] = entry["agent"].name
        elif isinstance(entry, AgentSpec):
            targets[entry.name] = entry
            entry = entry.name
        handoff_entries.append(entry)
    if tool_entries:
        data["tools"] = tool_entries
    if handoff_entries:
        data["handoffs"] = handoff_entries
    files = [str(f) for f in tool_files]
    if files:
        data["tool_files"] = files
    servers = plain_servers(mcp_servers)
    if servers:
        data["mcp_servers"] = servers
    doc = YamlDocument(data, Path("."), {})
    problems = check_document(doc)
    if problems:
        who = f"agent {name!r}" if isinstance(name, str) else "Agent(...)"
        lines = [f"{who}: {p.json_path}: {p.message}" if p.json_path not in (None, "$") else f"{who}: {p.message}"
                 for p in problems]
        raise ConfigError(lines[0] if len(lines) == 1 else f"{len(lines)} problems:\n" + "\n".join(lines))
    spec = _build(doc)
    return replace(
        spec, file=None, tool_functions=tuple(functions),
        mcp_servers=tuple(replace(m, file=None, line=None) for m in spec.mcp_servers),
        tool_files=tuple(Path(f) for f in files),
        handoffs=tuple(replace(h, line=None, target=targets.get(h.agent)) for h in spec.handoffs),
        tools=tuple(replace(t, line=None) for t in spec.tools),
    )


def _plain(value: Any) -> Any:
    """A mapping given to :func:`Agent` as a plain dict (as YAML would give it)."""
    return json_copy(dict(value)) if isinstance(value, Mapping) else value


def _still_plain(still: StillWorking | None) -> dict[str, Any] | None:
    """A :class:`ToolUse`'s ``still_working`` as the mapping an agent file holds."""
    if still is None:
        return None
    return {"after_s": still.after_s, "say": still.say} if still.say is not None else \
        {"after_s": still.after_s, "generate": True}


# Agent files that passed their checks, by path and exact text: a process that opens many
# sessions parses and schema-checks each file once. Keyed by the text, read each time,
# so an edited file is read again (a modification time can miss a quick same-size edit).
_VALID_DOCS: dict[tuple[Path, str], YamlDocument] = {}


def _read_agent_file(file: Path) -> tuple[YamlDocument, list[ConfigError]]:
    """The document of one agent file and its schema problems.

    Raises:
        ConfigError: The file cannot be read or is not valid YAML.
    """
    text = read_text(file)
    known = _VALID_DOCS.get((file, text))
    if known is not None:
        # A copy: specs built from it hold its mappings, and a caller may change those.
        return YamlDocument(json_copy(known.data), known.file, dict(known.lines)), []
    doc = load_yaml(file, text)
    problems = check_document(doc)
    if not problems:
        if len(_VALID_DOCS) >= 256:
            _VALID_DOCS.clear()
        _VALID_DOCS[(file, text)] = YamlDocument(json_copy(doc.data), doc.file, dict(doc.lines))
    return doc, problems


# --- the graph ---------------------------------------------------------------------------


@dataclass
class AgentGraph:
    """Agents that can hand off to each other, and what is wrong with them.

    Attributes:
        agents: By name, in file order.
        problems: Errors; an agent with errors is not in ``agents``.
        warnings: Things that work but deserve attention.
        roots: Names of the agents from the files asked for, in order (the others were
            loaded from beside them because a handoff names them).
    """

    agents: dict[str, AgentSpec] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    problems: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)
    # Agents whose files have schema problems: (name, file, tools, handoffs) as far as
    # they could be read, so that their tools and handoffs are checked in the same run.
    _broken: list[_Refs] = field(default_factory=list, repr=False, init=False)

    def get(self, name: str) -> AgentSpec:
        """The agent called ``name``.

        Raises:
            ConfigError: No such agent; the message lists the known ones.
        """
        if name not in self.agents:
            raise ConfigError(
                f"unknown agent {name!r}; known agents: {', '.join(self.agents) or 'none'}"
            )
        return self.agents[name]

    def reachable(self, start: str | None = None) -> list[AgentSpec]:
        """``start`` and every agent its handoffs can reach, ``start`` first (every agent
        when ``start`` is None): the agents one session can talk as."""
        if start is None:
            return list(self.agents.values())
        found: dict[str, AgentSpec] = {}
        todo = [start]
        while todo:
            name = todo.pop(0)
            if name in found or name not in self.agents:
                continue
            found[name] = self.agents[name]
            todo += [h.agent for h in found[name].handoffs]
        return list(found.values())

    def tools_for(self, agent: AgentSpec, registry: ToolRegistry) -> list[Tool]:
        """The tools the agent may call: its listed tools with its overrides, then one
        ``transfer_to_<agent>`` tool per handoff. Only these go into ``session.update``.

        Raises:
            ConfigError: A listed tool or handoff target is missing, or the tool's name
                is registered by more than one distribution (run ``check``).
        """
        tools: list[Tool] = []
        for use in agent.tools:
            tool = registry.get(use.name)
            if tool is None:
                raise ConfigError(registry.unknown(use.name), file=agent.file, line=use.line)
            if registry.conflicts(use.name):
                raise ConfigError(registry.ambiguous(use.name), file=agent.file, line=use.line)
            overrides: dict[str, Any] = {
                k: v for k, v in (("timeout_s", use.timeout_s),
                                  ("requires_approval", use.requires_approval),
                                  ("cancellable", use.cancellable),
                                  ("still_working", use.still_working)) if v is not None
            }
            if overrides:
                tool = replace(tool, **overrides)
            tools.append(tool)
        for handoff in agent.handoffs:
            target = self.get(handoff.agent)
            description = handoff.description or target.description or (
                f"Hand the conversation over to the {target.name} agent."
            )
            tools.append(make_tool(
                handoff.tool_name,
                description,
                {"type": "object", "properties": {}, "additionalProperties": False},
                None,
                plugin="agents",
                timeout_s=None,
                handoff_to=target.name,
            ))
        return tools + self._server_tools(agent, tools, registry)

    def _server_tools(self, agent: AgentSpec, listed: list[Tool], registry: ToolRegistry) -> list[Tool]:
        """The tools of the agent's started MCP servers (a session's registry overlay).

        Raises:
            ConfigError: One has the name of another tool of the agent; ``prefix`` helps.
        """
        names = {t.name: t.origin for t in listed}
        out: list[Tool] = []
        for server in agent.mcp_servers:
            for tool in registry.source_tools(server):
                if tool.name in names:
                    raise ConfigError(
                        f"tool {tool.name!r} of {server.describe()} has the name of a tool from"
                        f" {names[tool.name]}; set prefix: on the server (e.g. prefix: {server.name}_)",
                        file=server.file, line=server.line)
                names[tool.name] = tool.origin
                out.append(tool)
        return out

    def check_tools(self, registry: ToolRegistry) -> None:
        """Record a problem for every tool an agent lists that is not installed, or that
        more than one distribution registered (which one would run is anybody's guess)."""
        every: list[tuple[str, Path | None, tuple[ToolUse, ...], tuple[Handoff, ...]]] = [
            (a.name, a.file, a.tools, a.handoffs) for a in self.agents.values()]
        every += [(refs.name, refs.file, refs.tools, refs.handoffs) for refs in self._broken]
        for name, file, tools, handoffs in every:
            handoff_names = {h.tool_name for h in handoffs}
            who = _who(name, file)
            for use in tools:
                if use.name in handoff_names:
                    message = f"tool {use.name!r} clashes with a generated handoff tool"
                elif use.name not in registry:
                    message = registry.unknown(use.name)
                elif registry.conflicts(use.name):
                    message = registry.ambiguous(use.name)
                else:
                    continue
                self.problems.append(ConfigError(who + message, file=file, line=use.line))
        self.problems.sort(key=_where)


def _who(name: str, file: Path | None) -> str:
    """``agent 'x': `` before a message about an agent defined in Python (no file:line)."""
    return "" if file is not None else f"agent {name!r}: "


def _where(problem: ConfigError) -> tuple[str, int]:
    """Sort key of problems: by file, then line (problems without a file first)."""
    return (problem.file or "", problem.line or 0)


def _agent_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.glob("*.yaml") if not p.name.endswith(".scenario.yaml")) + \
            sorted(p for p in path.glob("*.yml") if not p.name.endswith(".scenario.yml"))
    return [path]


def load_agents(paths: Iterable[str | Path | AgentSpec], registry: ToolRegistry | None = None, *,
                tool_files: Iterable[Path] = ()) -> AgentGraph:
    """Load agent files and directories into one graph and check it.

    A single file's handoff targets are looked up among the agent files beside it, so
    ``realtalk run agents/concierge.yaml`` finds ``agents/billing.yaml``.

    Args:
        paths: Agent files, directories of them, or agents defined in Python
            (:func:`Agent`; the agents they hand off to come with them).
        registry: When given, every listed tool must be in it.
        tool_files: Tool files given for every agent (``--tools``): not agents, when
            they lie in a directory of agents.

    Returns:
        The graph; problems are collected in it, never raised.
    """
    tool_files = {Path(t).resolve() for t in tool_files}
    graph = AgentGraph()
    requested: list[Path] = []
    seen: set[Path] = set()
    given: list[AgentSpec] = []
    for raw in paths:
        if isinstance(raw, AgentSpec):
            given.append(raw)
            continue
        path = Path(raw)
        if not path.exists():
            graph.problems.append(ConfigError("no such file or directory", file=path))
            continue
        files = _agent_files(path)
        if path.is_dir():
            # Tool files an agent of the directory names (tool_files:) are not agents.
            named = {t.resolve() for f in files for t in _tool_files_named(f)} | set(tool_files)
            files = [f for f in files if f.resolve() not in named]
        for file in files:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                requested.append(file)
    # Siblings are parsed only when a handoff names an agent not found yet; their own
    # problems do not count, and a broken or hostile sibling costs nothing otherwise.
    siblings = _Siblings([f for d in sorted({f.parent for f in requested}) for f in _agent_files(d)
                          if f.resolve() not in seen])
    specs: dict[str, AgentSpec] = {}
    for file in requested:
        try:
            doc, problems = _read_agent_file(file)
        except ConfigError as exc:
            graph.problems.append(exc)
            continue
        if problems:
            graph.problems.extend(problems)
            graph._broken.append(_refs(doc))
            continue
        spec = _build(doc)
        if spec.name in specs:
            graph.problems.append(doc.error(
                f"agent name {spec.name!r} is already used by {specs[spec.name].file}", ["name"]))
            continue
        if (old := deprecation(spec.model)) is not None:
            graph.warnings.append(doc.error(old, ["model"]))
        from .hostedmcp import missing_env  # here: only hosted MCP tools need it

        for parts, message in missing_env(spec):
            graph.warnings.append(ConfigError(f"{json_path(parts)}: {message}", file=doc.file,
                                              line=doc.line_of(parts)))
        specs[spec.name] = spec
        graph.roots.append(spec.name)
    for spec in given:
        if spec.name in specs:
            graph.problems.append(ConfigError(f"agent name {spec.name!r} is used twice"))
            continue
        specs[spec.name] = spec
        graph.roots.append(spec.name)
    _close_over_handoffs(graph, specs, siblings)
    graph.agents = specs
    _check_voices(graph)
    graph.problems += tracing_problems(graph.agents.values())
    if registry is not None:
        graph.check_tools(registry)
    graph.problems.sort(key=_where)
    return graph


def _tool_files_named(file: Path) -> list[Path]:
    """The ``tool_files:`` of an agent file, read leniently (its problems come later)."""
    try:
        text = read_text(file)
        known = _VALID_DOCS.get((file, text))  # parsed and checked before: no YAML parse again
        data = known.data if known is not None else load_yaml(file, text).data
    except ConfigError:
        return []
    entries = data.get("tool_files") if isinstance(data, dict) else None
    return [file.parent / e for e in entries if isinstance(e, str) and e] if isinstance(entries, list) else []


class _Siblings:
    """Agent files beside the requested ones, each parsed the first time it may be needed."""

    def __init__(self, files: list[Path]) -> None:
        self._pending = sorted(files)
        self._specs: dict[str, AgentSpec] = {}
        self.broken: dict[str, Path] = {}  # agents whose sibling files have problems

    def _load(self, file: Path) -> None:
        self._pending.remove(file)
        try:
            doc, problems = _read_agent_file(file)
        except ConfigError:
            self.broken.setdefault(file.stem, file)
            return
        if problems:
            self.broken.setdefault(_refs(doc).name, file)
        else:
            spec = _build(doc)
            self._specs.setdefault(spec.name, spec)

    def find(self, name: str) -> AgentSpec | None:
        """The sibling agent called ``name``: the file of that stem first, then the others."""
        for file in sorted(self._pending, key=lambda f: f.stem != name):
            if name in self._specs:
                break
            self._load(file)
        return self._specs.get(name)

    def names(self) -> set[str]:
        """Every sibling agent's name (parses them all: for error messages)."""
        for file in list(self._pending):
            self._load(file)
        return set(self._specs)


def _close_over_handoffs(graph: AgentGraph, specs: dict[str, AgentSpec], siblings: _Siblings) -> None:
    broken = {refs.name for refs in graph._broken}
    queue: list[tuple[str, Path | None, tuple[Handoff, ...]]] = [
        (a.name, a.file, a.handoffs) for a in specs.values()]
    queue += [(refs.name, refs.file, refs.handoffs) for refs in graph._broken]
    while queue:
        name, file, handoffs = queue.pop()
        for handoff in handoffs:
            if handoff.agent == name:
                graph.problems.append(ConfigError(
                    f"agent {name!r} hands off to itself", file=file, line=handoff.line))
            elif handoff.agent in specs or handoff.agent in broken:
                continue  # a broken target's own problems are reported already
            elif handoff.target is not None:
                specs[handoff.agent] = handoff.target
                queue.append((handoff.agent, handoff.target.file, handoff.target.handoffs))
            elif (found := siblings.find(handoff.agent)) is not None:
                specs[handoff.agent] = found
                queue.append((found.name, found.file, found.handoffs))
            elif handoff.agent in siblings.broken:
                target = siblings.broken[handoff.agent]
                graph.problems.append(ConfigError(
                    f"handoff target {handoff.agent!r} has problems in {target}: run realtalk check {target}",
                    file=file, line=handoff.line))
            else:
                known = sorted(set(specs) | siblings.names())
                hint = did_you_mean(handoff.agent, known)
                where = f"in {file.parent}/" if file else "given (hand off to the Agent object itself)"
                graph.problems.append(ConfigError(
                    f"{_who(name, file)}unknown handoff target {handoff.agent!r}{hint}: no agent of that"
                    f" name {where} (known: {', '.join(known) or 'none'})",
                    file=file, line=handoff.line))


def _check_voices(graph: AgentGraph) -> None:
    voices = {a.voice for a in graph.agents.values() if not a.text_only}
    if len(voices) < 2:
        return
    for agent in graph.agents.values():
        for handoff in agent.handoffs:
            target = graph.agents.get(handoff.agent)
            if target is None or target.text_only or target.voice == agent.voice:
                continue
            if target.voice_policy is None:
                graph.warnings.append(ConfigError(
                    f"handoff to {target.name!r} changes the voice ({agent.voice} -> {target.voice}),"
                    " but the API locks the voice once audio exists; set voice_policy: keep or"
                    f" reconnect in {target.file.name if target.file else target.name}",
                    file=agent.file, line=handoff.line))

