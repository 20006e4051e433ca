"""Emulator scenarios: what the emulated model answers, turn by turn.

A scenario is YAML (or an equivalent dict)::

    name: concierge
    turns:
      - user: what time                 # case-insensitive substring of the user's text
        reply:
          - say: Let me check.
          - call: get_time
            arguments: {timezone: UTC}
          - say: "It is {output}."       # runs in the response after the tool output
      - user: /^(hi|hello)\\b/          # /regex/ (Python syntax, case-insensitive)
        reply: Hello!                    # a string is one `say` step
      - greeting: true                   # a response.create with no new user input
        reply: Welcome!                  # (the agent speaks first)
      - audio: true                      # the next speech segment (committed audio)
        transcript: I would like a room  # sent as the input transcription, when enabled
        reply:
          - handoff: billing             # = call transfer_to_billing with {}

Reply steps run in order. Consecutive ``call``/``handoff`` steps form one response with
parallel calls; a ``say`` after a call starts the *next* response, which the emulator
only produces once the client has sent the calls' ``function_call_output`` items and
``response.create`` (as the real server does). ``{output}`` in a ``say`` is replaced by
the text of the latest ``function_call_output`` (``{output.time}``: one field of it, when
it is a JSON object), so a test can prove the tool result
reached the "model".

The rest of GA (see ``docs/emulator.md``): each ``say`` is its own message, so a reply
``[{say: ...}, {call: ...}]`` is a response with a preamble before its call; a
``fail: MESSAGE`` (or ``{message, code, type}``) step ends the response ``failed``, an
``incomplete: max_output_tokens | content_filter`` step ends it ``incomplete``;
``out_of_band: TEXT`` turns answer ``response.create`` with ``conversation: "none"``
(never used up); ``idle: true`` turns answer the idle timeout's response; audio turns
may carry ``transcription_error: MESSAGE`` and ``speakers: [{A: TEXT}, ...]``.
``mcp_call: TOOL`` with ``server_label: LABEL`` (and ``arguments``) calls a tool of a
hosted MCP server of the session, run by the emulator itself (see ``docs/emulator.md``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError, ScenarioError
from ..yamlfile import YamlDocument, json_path, load_yaml

__all__ = [
    "Scenario",
    "Step",
    "Turn",
    "check_scenario_file",
    "load_scenario",
    "render_say",
]

_TURN_KEYS = {
    "user",
    "audio",
    "greeting",
    "idle",
    "out_of_band",
    "transcript",
    "transcription_error",
    "speakers",
    "reply",
}
_STEP_KEYS = {"say", "call", "arguments", "handoff", "fail", "incomplete", "mcp_call", "server_label"}
_INCOMPLETE_REASONS = ("max_output_tokens", "content_filter")
_CALL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


_OUTPUT_FIELD = re.compile(r"\{output((?:\.[A-Za-z0-9_]+)*)\}")


def render_say(text: str, output: str) -> str:
    """Fill ``{output}`` (the latest tool output) and ``{output.key.sub}`` (a field of it,
    when the output is a JSON object) into a ``say`` text. A missing field renders as
    ``{output.key}`` unchanged, so a scenario mistake stays visible in the transcript."""

    def field(match: re.Match[str]) -> str:
        path = match.group(1)
        if not path:
            return output
        try:
            value: Any = json.loads(output)
        except ValueError:
            return match.group(0)
        for key in path[1:].split("."):
            if not isinstance(value, dict) or key not in value:
                return match.group(0)
            value = value[key]
        return value if isinstance(value, str) else json.dumps(value)

    return _OUTPUT_FIELD.sub(field, text)


@dataclass(frozen=True)
class Step:
    """One reply step.

    Attributes:
        kind: ``"say"``, ``"call"`` (a handoff is a call to ``transfer_to_<agent>``),
            ``"fail"`` (the response ends ``failed``), ``"incomplete"`` (it ends
            ``incomplete``) or ``"mcp_call"`` (the "model" calls a tool of a hosted MCP
            server, which the emulator runs itself, in the same response).
        text: What to say (``say``; ``{output}`` is replaced at run time), the error
            message (``fail``), or the MCP server's label (``mcp_call``).
        name: The function or MCP tool to call (``call``, ``mcp_call``).
        arguments: The arguments as the JSON string that is streamed (``call``,
            ``mcp_call``).
        code: The error code (``fail``) or the reason (``incomplete``:
            ``max_output_tokens`` or ``content_filter``).
        error_type: The error's ``type`` (``fail`` only).
    """

    kind: str
    text: str = ""
    name: str = ""
    arguments: str = ""
    code: str = ""
    error_type: str = ""


@dataclass(frozen=True)
class Turn:
    """One scenario turn.

    Attributes:
        user: What the user's text must contain, or a compiled regex; for an
            ``out_of_band`` turn, what the out-of-band request's instructions or input
            must contain; ``None`` for the other kinds.
        audio: True when the turn matches the next speech segment instead of text.
        greeting: True when the turn answers a ``response.create`` with no new user input.
        transcript: The input transcription to report for an audio turn.
        segments: The reply, split into responses (each a list of steps).
        line: The line of the turn in its file, when loaded from one.
        idle: True when the turn answers the response the idle timeout
            (``idle_timeout_ms``) starts.
        out_of_band: True when the turn answers out-of-band responses
            (``conversation: "none"``) instead of a conversation turn; such turns are
            never used up and never move the script on.
        transcription_error: For an audio turn: the input transcription fails with this
            message (``conversation.item.input_audio_transcription.failed``).
        speakers: For an audio turn: the diarized segments as (speaker, text) pairs,
            sent as ``...input_audio_transcription.segment`` events by the diarizing
            transcription model.
    """

    user: str | re.Pattern[str] | None
    audio: bool
    transcript: str | None
    segments: tuple[tuple[Step, ...], ...]
    line: int | None = None
    greeting: bool = False
    idle: bool = False
    out_of_band: bool = False
    transcription_error: str | None = None
    speakers: tuple[tuple[str, str], ...] = ()

    def matches_text(self, text: str) -> bool:
        """Whether this text turn matches the user's ``text``."""
        if self.user is None:
            return False
        if isinstance(self.user, re.Pattern):
            return self.user.search(text) is not None
        return self.user.lower() in text.lower()


@dataclass(frozen=True)
class Scenario:
    """A parsed, validated scenario.

    Attributes:
        name: The scenario's name (defaults to the file stem).
        turns: The turns, in order.
        fallback: The reply to input that no turn matches; ``{input}`` is the user's text.
    """

    name: str
    turns: tuple[Turn, ...] = ()
    fallback: str = "[emulator] no scenario turn matches: {input}"
    source: str | None = field(default=None, compare=False)


class _Doc:
    """Error location helper over a YamlDocument or a plain dict."""

    def __init__(self, doc: YamlDocument | None) -> None:
        self.doc = doc

    def error(self, message: str, parts: Sequence[object]) -> ScenarioError:
        if self.doc is None:
            return ScenarioError(message, json_path=json_path(parts))
        err = self.doc.error(message, parts, cls=ScenarioError)
        assert isinstance(err, ScenarioError)
        return err

    def line(self, parts: Sequence[object]) -> int | None:
        return None if self.doc is None else self.doc.line_of(parts)


def _parse_step(raw: Any, parts: tuple[object, ...], loc: _Doc) -> Step:
    if isinstance(raw, str):
        return Step("say", text=raw)
    if not isinstance(raw, dict):
        raise loc.error("a reply step must be a mapping such as {say: TEXT} or {call: NAME}", parts)
    unknown = sorted(set(raw) - _STEP_KEYS, key=str)
    if unknown:
        raise loc.error(
            f"unknown key {unknown[0]!r} in a reply step (allowed: say, call, arguments, "
            "handoff, fail, incomplete, mcp_call, server_label)",
            parts + (unknown[0],),
        )
    actions = [k for k in ("say", "call", "handoff", "fail", "incomplete", "mcp_call") if k in raw]
    if len(actions) != 1:
        raise loc.error(
            "a reply step needs exactly one of say, call, handoff, fail, incomplete or mcp_call",
            parts,
        )
    action = actions[0]
    if "arguments" in raw and action not in ("call", "mcp_call"):
        raise loc.error("'arguments' belongs to a 'call' or 'mcp_call' step", parts + ("arguments",))
    if "server_label" in raw and action != "mcp_call":
        raise loc.error("'server_label' belongs to an 'mcp_call' step", parts + ("server_label",))
    value = raw[action]
    if action == "say":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise loc.error("'say' must be text", parts + ("say",))
        return Step("say", text=str(value))
    if action == "fail":
        return _parse_fail(value, parts + ("fail",), loc)
    if action == "incomplete":
        if value not in _INCOMPLETE_REASONS:
            raise loc.error(
                "'incomplete' must be max_output_tokens or content_filter", parts + (action,)
            )
        return Step("incomplete", code=value)
    if not isinstance(value, str) or not _CALL_NAME.match(value):
        raise loc.error(
            f"'{action}' must be a name of 1-64 letters, digits, '_' or '-'", parts + (action,)
        )
    if action == "handoff":
        name = f"transfer_to_{value}"
        if len(name) > 64:
            raise loc.error("handoff target too long for a function name", parts + (action,))
        return Step("call", name=name, arguments="{}")
    arguments = raw.get("arguments", {})
    if isinstance(arguments, str):
        text = arguments  # sent verbatim, so tests can send invalid JSON on purpose
    elif isinstance(arguments, dict):
        text = json.dumps(arguments, separators=(",", ":"))
    else:
        raise loc.error(
            "'arguments' must be a mapping, or a string sent verbatim", parts + ("arguments",)
        )
    if action == "mcp_call":
        label = raw.get("server_label")
        if not isinstance(label, str) or not label:
            raise loc.error(
                "an 'mcp_call' step needs 'server_label': the label of a hosted MCP tool "
                "of the session",
                parts,
            )
        return Step("mcp_call", text=label, name=value, arguments=text)
    return Step("call", name=value, arguments=text)


def _parse_fail(value: Any, parts: tuple[object, ...], loc: _Doc) -> Step:
    # `fail: MESSAGE`, or `fail: {message, code, type}` for the response's error.
    if isinstance(value, str) and value:
        return Step("fail", text=value, code="server_error", error_type="server_error")
    if not isinstance(value, dict):
        raise loc.error("'fail' must be a message, or a mapping with 'message'", parts)
    unknown = sorted(set(value) - {"message", "code", "type"}, key=str)
    if unknown:
        raise loc.error(
            f"unknown key {unknown[0]!r} in 'fail' (allowed: message, code, type)",
            parts + (unknown[0],),
        )
    for key in ("message", "code", "type"):
        if key in value and (not isinstance(value[key], str) or not value[key]):
            raise loc.error(f"'{key}' must be non-empty text", parts + (key,))
    if "message" not in value:
        raise loc.error("'fail' needs a 'message'", parts)
    return Step(
        "fail",
        text=value["message"],
        code=value.get("code", "server_error"),
        error_type=value.get("type", "server_error"),
    )


def _segments(steps: list[Step]) -> tuple[tuple[Step, ...], ...]:
    # A response ends after its calls: text that follows a call needs the tool output.
    segments: list[list[Step]] = [[]]
    for step in steps:
        current = segments[-1]
        if step.kind == "say" and current and current[-1].kind == "call":
            segments.append([step])
        else:
            current.append(step)
    return tuple(tuple(s) for s in segments if s)


def _pattern(text: Any, key: str, parts: tuple[object, ...], loc: _Doc) -> str | re.Pattern[str]:
    # TEXT (a case-insensitive substring) or /regex/.
    if not isinstance(text, str) or not text:
        raise loc.error(f"'{key}' must be non-empty text or /regex/", parts + (key,))
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        try:
            return re.compile(text[1:-1], re.IGNORECASE)
        except re.error as exc:
            raise loc.error(f"invalid regex: {exc}", parts + (key,)) from None
    return text


def _speakers(raw: Any, parts: tuple[object, ...], loc: _Doc) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not raw:
        raise loc.error("'speakers' must be a non-empty list of {SPEAKER: TEXT}", parts)
    found = []
    for n, entry in enumerate(raw):
        if (
            not isinstance(entry, dict)
            or len(entry) != 1
            or not all(isinstance(v, str) and v for v in entry.values())
            or not all(isinstance(k, str) and k for k in entry)
        ):
            raise loc.error("each speaker segment must be {SPEAKER: TEXT}", parts + (n,))
        [(speaker, text)] = entry.items()
        found.append((speaker, text))
    return tuple(found)


def _parse_turn(raw: Any, parts: tuple[object, ...], loc: _Doc) -> Turn:
    if not isinstance(raw, dict):
        raise loc.error("a turn must be a mapping with 'user' (or 'audio') and 'reply'", parts)
    for flag in ("audio", "greeting", "idle"):
        if not isinstance(raw.get(flag, False), bool):
            raise loc.error(f"'{flag}' must be true or false", parts + (flag,))
    unknown = sorted(set(raw) - _TURN_KEYS, key=str)
    if unknown:
        raise loc.error(
            f"unknown key {unknown[0]!r} in a turn (allowed: {', '.join(sorted(_TURN_KEYS))})",
            parts + (unknown[0],),
        )
    audio = raw.get("audio", False)
    greeting = raw.get("greeting", False)
    idle = raw.get("idle", False)
    kinds = [audio, greeting, idle, "user" in raw, "out_of_band" in raw]
    if kinds.count(True) != 1:
        raise loc.error(
            "a turn needs exactly one of 'user: TEXT', 'audio: true', 'greeting: true', "
            "'idle: true' or 'out_of_band: TEXT'",
            parts,
        )
    user: str | re.Pattern[str] | None = None
    for key in ("user", "out_of_band"):
        if key in raw:
            user = _pattern(raw[key], key, parts, loc)
    for key in ("transcript", "transcription_error"):
        value = raw.get(key)
        if value is not None and (not audio or not isinstance(value, str)):
            raise loc.error(f"'{key}' is text, and only for 'audio: true' turns", parts + (key,))
    speakers: tuple[tuple[str, str], ...] = ()
    if "speakers" in raw:
        if not audio:
            raise loc.error("'speakers' is only for 'audio: true' turns", parts + ("speakers",))
        speakers = _speakers(raw["speakers"], parts + ("speakers",), loc)
    if "reply" not in raw:
        raise loc.error("a turn needs a 'reply'", parts)
    reply = raw["reply"]
    reply_list = [reply] if isinstance(reply, (str, dict)) else reply
    if not isinstance(reply_list, list) or not reply_list:
        raise loc.error(
            "'reply' must be text, a step, or a non-empty list of steps", parts + ("reply",)
        )
    steps = [
        _parse_step(
            step, parts + ("reply", i) if isinstance(reply, list) else parts + ("reply",), loc
        )
        for i, step in enumerate(reply_list)
    ]
    segments = _segments(steps)
    if "out_of_band" in raw and len(segments) > 1:
        raise loc.error(
            "an out-of-band reply is one response: no 'say' after a 'call'", parts + ("reply",)
        )
    return Turn(
        user=user,
        audio=audio,
        transcript=raw.get("transcript"),
        segments=segments,
        line=loc.line(parts),
        greeting=greeting,
        idle=idle,
        out_of_band="out_of_band" in raw,
        transcription_error=raw.get("transcription_error"),
        speakers=speakers,
    )


def _parse(data: Any, loc: _Doc, default_name: str) -> Scenario:
    if not isinstance(data, dict):
        raise loc.error("a scenario must be a mapping with a 'turns' list", ())
    unknown = sorted(set(data) - {"name", "turns", "fallback", "description"}, key=str)
    if unknown:
        raise loc.error(
            f"unknown key {unknown[0]!r} (allowed: name, description, turns, fallback)",
            (unknown[0],),
        )
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise loc.error("'name' must be non-empty text", ("name",))
    fallback = data.get("fallback", Scenario.fallback)
    if not isinstance(fallback, str):
        raise loc.error("'fallback' must be text", ("fallback",))
    turns = data.get("turns", [])
    if not isinstance(turns, list):
        raise loc.error("'turns' must be a list", ("turns",))
    parsed = tuple(_parse_turn(t, ("turns", i), loc) for i, t in enumerate(turns))
    return Scenario(
        name=name, turns=parsed, fallback=fallback, source=str(loc.doc.file) if loc.doc else None
    )


def load_scenario(source: str | Path | Mapping[str, Any] | Scenario | None) -> Scenario:
    """Load and validate a scenario.

    Args:
        source: A path to a YAML file, an already-parsed mapping, a Scenario, or None
            (an empty scenario: every input gets the fallback reply).

    Raises:
        ScenarioError: The file cannot be read or parsed, or is not a valid scenario; the
            message names the file, line and JSON path.
    """
    if source is None:
        return Scenario(name="empty")
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return _parse(dict(source), _Doc(None), "scenario")
    path = Path(source)
    try:
        doc = load_yaml(path)
    except ScenarioError:
        raise
    except ConfigError as exc:
        raise ScenarioError(
            exc.message, file=exc.file, line=exc.line, json_path=exc.json_path
        ) from None
    stem = path.name.removesuffix(".yaml").removesuffix(".yml").removesuffix(".scenario")
    return _parse(doc.data, _Doc(doc), stem)


def check_scenario_file(path: str | Path) -> list[ScenarioError]:
    """Validate a ``*.scenario.yaml`` file for ``realtalk check``.

    Returns:
        The problems found (empty when the file is valid). Validation stops at the first
        problem, so the list has at most one entry.
    """
    try:
        load_scenario(Path(path))
    except ScenarioError as exc:
        return [exc]
    return []
