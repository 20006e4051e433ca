"""The GA session configuration: defaults, strict validation of ``session.update``, merging.

The real server is strict where the SDK models are lenient: an unknown key is
``unknown_parameter``, a wrong type ``invalid_type``, a value out of its set
``invalid_value``, a number out of range ``integer_below_min_value`` (and friends), and any
single error discards the whole update. This module reproduces that with a small
validator tree so the messages name the exact parameter (``session.audio.input.format.rate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..models import BUILTIN_VOICES, REASONING_EFFORTS
from ..protocol import vocab
from .transcripts import LOGPROBS_INCLUDE

__all__ = [
    "SessionUpdateError",
    "default_session",
    "default_transcription_session",
    "merge_session",
    "supports_reasoning",
    "validate_max_output_tokens",
    "validate_reasoning",
    "validate_session_update",
    "validate_transcription_update",
]

VOICES = BUILTIN_VOICES

# The live server's defaults (silence_duration_ms 200, not the documented 500).
SERVER_VAD_DEFAULTS = vocab.LIVE_SERVER_VAD_DEFAULTS
SEMANTIC_VAD_DEFAULTS = vocab.SEMANTIC_VAD_DEFAULTS


class SessionUpdateError(Exception):
    """One invalid field; carries the error code, message and parameter path."""

    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def default_session(model: str, expires_at: int) -> dict[str, Any]:
    """The full session a new connection starts with (GA shape, server_vad defaults)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": vocab.new_id("sess", 10),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "You are a helpful, witty, and friendly AI.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
    }


def default_transcription_session(expires_at: int) -> dict[str, Any]:
    """The full session a transcription connection (``?intent=transcription``) starts with."""
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": vocab.new_id("sess", 10),
        "expires_at": expires_at,
        "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe", "language": None, "prompt": ""},
                "noise_reduction": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            }
        },
    }


REASONING_MODEL_PREFIX = "gpt-realtime-2"
"""Models whose name starts with this take ``reasoning`` (``gpt-realtime-2``,
``gpt-realtime-2.1``, ``gpt-realtime-2.1-mini`` and their snapshots); the openai types
document reasoning as "for reasoning-capable Realtime models such as gpt-realtime-2"."""


def supports_reasoning(model: str) -> bool:
    """Whether ``model`` takes ``reasoning`` (effort), as the live server decides it."""
    return model.startswith(REASONING_MODEL_PREFIX)


def reasoning_error(model: str, param: str) -> SessionUpdateError:
    """The error for ``reasoning`` sent with a model that does not take it."""
    return SessionUpdateError(
        "unsupported_parameter",
        f"Unsupported parameter: '{param}' is not supported with the '{model}' model "
        f"(reasoning is for {REASONING_MODEL_PREFIX} models).",
        param,
    )


# -- validator tree -----------------------------------------------------------------
# A validator takes (value, param path) and returns the normalised value or raises.

Validator = Callable[[Any, str], Any]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_error(param: str, expected: str, value: Any) -> SessionUpdateError:
    return SessionUpdateError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param,
    )


def _values_text(values: tuple[Any, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _enum(*values: Any) -> Validator:
    def check(value: Any, param: str) -> Any:
        if value not in values or isinstance(value, bool) != any(
            isinstance(v, bool) for v in values
        ):
            raise SessionUpdateError(
                "invalid_value",
                f"Invalid value: '{value}'. Supported values are: {_values_text(values)}.",
                param,
            )
        return value

    return check


def _string(max_length: int | None = None) -> Validator:
    def check(value: Any, param: str) -> Any:
        if not isinstance(value, str):
            raise _type_error(param, "a string", value)
        if max_length is not None and len(value) > max_length:
            raise SessionUpdateError(
                "string_above_max_length",
                f"Invalid '{param}': string too long. Expected a string with maximum length "
                f"{max_length}, but got a string with length {len(value)} instead.",
                param,
            )
        return value

    return check


def _boolean(value: Any, param: str) -> Any:
    if not isinstance(value, bool):
        raise _type_error(param, "a boolean", value)
    return value


def _number(lo: float | None, hi: float | None, integer: bool) -> Validator:
    word = "integer" if integer else "decimal"

    def check(value: Any, param: str) -> Any:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            raise _type_error(param, "an integer" if integer else "a decimal", value)
        if lo is not None and value < lo:
            raise SessionUpdateError(
                f"{word}_below_min_value",
                f"Invalid '{param}': {word} below minimum value. Expected a value >= {lo}, "
                f"but got {value} instead.",
                param,
            )
        if hi is not None and value > hi:
            raise SessionUpdateError(
                f"{word}_above_max_value",
                f"Invalid '{param}': {word} above maximum value. Expected a value <= {hi}, "
                f"but got {value} instead.",
                param,
            )
        return value

    return check


def _nullable(inner: Validator) -> Validator:
    def check(value: Any, param: str) -> Any:
        return None if value is None else inner(value, param)

    return check


def _array(inner: Validator) -> Validator:
    def check(value: Any, param: str) -> Any:
        if not isinstance(value, list):
            raise _type_error(param, "an array", value)
        return [inner(item, f"{param}[{i}]") for i, item in enumerate(value)]

    return check


def _object(
    fields: Mapping[str, Validator], required: tuple[str, ...] = (), open_: bool = False
) -> Validator:
    def check(value: Any, param: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(param, "an object", value)
        for key in value:
            if key not in fields and not open_:
                raise SessionUpdateError(
                    "unknown_parameter", f"Unknown parameter: '{param}.{key}'.", f"{param}.{key}"
                )
        for key in required:
            if key not in value:
                raise SessionUpdateError(
                    "missing_required_parameter",
                    f"Missing required parameter: '{param}.{key}'.",
                    f"{param}.{key}",
                )
        return {k: (fields[k](v, f"{param}.{k}") if k in fields else v) for k, v in value.items()}

    return check


def _tagged(tags: Mapping[str, Validator]) -> Validator:
    def check(value: Any, param: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(param, "an object", value)
        if "type" not in value:
            raise SessionUpdateError(
                "missing_required_parameter",
                f"Missing required parameter: '{param}.type'.",
                f"{param}.type",
            )
        _enum(*tags)(value["type"], f"{param}.type")
        return tags[value["type"]](value, param)

    return check


def _any_of(string_values: tuple[str, ...], obj: Validator) -> Validator:
    def check(value: Any, param: str) -> Any:
        if isinstance(value, str):
            return _enum(*string_values)(value, param)
        return obj(value, param)

    return check


_TYPE_FIELD: Validator = lambda value, param: value

_FORMAT = _tagged(
    {
        "audio/pcm": _object({"type": _TYPE_FIELD, "rate": _number(24000, 24000, True)}),
        "audio/pcmu": _object({"type": _TYPE_FIELD}),
        "audio/pcma": _object({"type": _TYPE_FIELD}),
    }
)
_TURN_DETECTION = _nullable(
    _tagged(
        {
            "server_vad": _object(
                {
                    "type": _TYPE_FIELD,
                    "threshold": _number(0.0, 1.0, False),
                    "prefix_padding_ms": _number(0, None, True),
                    "silence_duration_ms": _number(0, None, True),
                    "idle_timeout_ms": _nullable(_number(5000, 30000, True)),
                    "create_response": _boolean,
                    "interrupt_response": _boolean,
                }
            ),
            "semantic_vad": _object(
                {
                    "type": _TYPE_FIELD,
                    "eagerness": _enum("low", "medium", "high", "auto"),
                    "create_response": _boolean,
                    "interrupt_response": _boolean,
                }
            ),
        }
    )
)
_TRANSCRIPTION = _nullable(
    _object(
        {
            "model": _string(),
            "language": _string(),
            "languages": _array(_string()),
            "prompt": _string(),
            "keywords": _array(_string()),
            "delay": _enum("minimal", "low", "medium", "high", "xhigh"),
        }
    )
)
_NOISE = _nullable(
    _object(
        {
            "type": _enum("near_field", "far_field"),
            "strength": _number(0.0, 1.0, False),
        }
    )
)


def _voice(value: Any, param: str) -> Any:
    if isinstance(value, dict):
        return _object({"id": _string()}, required=("id",))(value, param)
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)
    if value.startswith("voice_"):
        return value  # a custom voice id
    return _enum(*VOICES)(value, param)


_FUNCTION_TOOL = _object(
    {
        "type": _TYPE_FIELD,
        "name": _string(64),
        "description": _string(1024),
        "parameters": _object({}, open_=True),
    },
    required=("name",),
)
_MCP_FILTER = _object({"tool_names": _array(_string()), "read_only": _boolean})


def _allowed_tools(value: Any, param: str) -> Any:
    if isinstance(value, list):
        return _array(_string())(value, param)
    return _nullable(_MCP_FILTER)(value, param)


def _headers(value: Any, param: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _type_error(param, "an object", value)
    return {k: _string()(v, f"{param}.{k}") for k, v in value.items()}


# A hosted MCP tool, field by field as the GA type (openai.types.realtime's Mcp) has them.
_MCP_TOOL = _object(
    {
        "type": _TYPE_FIELD,
        "server_label": _string(),
        "server_url": _nullable(_string()),
        "connector_id": _nullable(_string()),
        "server_description": _nullable(_string()),
        "authorization": _nullable(_string()),
        "headers": _headers,
        "allowed_tools": _allowed_tools,
        "require_approval": _nullable(
            _any_of(("always", "never"), _object({"always": _MCP_FILTER, "never": _MCP_FILTER}))
        ),
        "allowed_callers": _nullable(_array(_enum("direct", "programmatic"))),
        "defer_loading": _nullable(_boolean),
        "tunnel_id": _nullable(_string()),
    },
    required=("server_label",),
)
_TOOL = _tagged({"function": _FUNCTION_TOOL, "mcp": _MCP_TOOL})
_TOOL_CHOICE = _any_of(
    ("none", "auto", "required"),
    _tagged(
        {
            "function": _object({"type": _TYPE_FIELD, "name": _string()}, required=("name",)),
            "mcp": _object({"type": _TYPE_FIELD, "server_label": _string(), "name": _string()}),
        }
    ),
)
_MAX_TOKENS: Validator = lambda value, param: (
    _enum("inf")(value, param) if isinstance(value, str) else _number(1, 4096, True)(value, param)
)

_REASONING = _object({"effort": _enum(*REASONING_EFFORTS)})

# session.audio.input, the same in a realtime and a transcription session.
_AUDIO_INPUT = _object(
    {
        "format": _FORMAT,
        "transcription": _TRANSCRIPTION,
        "noise_reduction": _NOISE,
        "turn_detection": _TURN_DETECTION,
    }
)

_SESSION = _object(
    {
        "type": _enum("realtime"),
        "model": _string(),
        "output_modalities": _array(_enum("text", "audio")),
        "instructions": _string(),
        "tools": _array(_TOOL),
        "tool_choice": _TOOL_CHOICE,
        "max_output_tokens": _MAX_TOKENS,
        "tracing": _nullable(
            _any_of(
                ("auto",),
                _object(
                    {
                        "workflow_name": _string(),
                        "group_id": _string(),
                        "metadata": _object({}, open_=True),
                    }
                ),
            )
        ),
        "truncation": _any_of(
            ("auto", "disabled"),
            _object(
                {
                    "type": _enum("retention_ratio"),
                    "retention_ratio": _number(0.0, 1.0, False),
                    "token_limits": _object({"post_instructions": _number(0, None, True)}),
                }
            ),
        ),
        "prompt": _nullable(
            _object(
                {
                    "id": _string(),
                    "version": _nullable(_string()),
                    "variables": _object({}, open_=True),
                },
                required=("id",),
            )
        ),
        "include": _nullable(_array(_enum(LOGPROBS_INCLUDE))),
        "parallel_tool_calls": _boolean,
        "reasoning": _REASONING,
        "audio": _object(
            {
                "input": _AUDIO_INPUT,
                "output": _object(
                    {
                        "format": _FORMAT,
                        "voice": _voice,
                        "speed": _number(0.25, 1.5, False),
                    }
                ),
            }
        ),
    },
    required=("type",),
)


def validate_reasoning(value: Any, param: str) -> dict[str, Any]:
    """Check a ``reasoning`` object (``{effort: minimal | low | medium | high | xhigh}``).

    Raises:
        SessionUpdateError: It is not one.
    """
    result: dict[str, Any] = _REASONING(value, param)
    return result


def validate_max_output_tokens(value: Any, param: str) -> int | str:
    """Check a ``max_output_tokens`` (1..4096 or ``"inf"``).

    Raises:
        SessionUpdateError: It is neither.
    """
    result: int | str = _MAX_TOKENS(value, param)
    return result


_TRANSCRIPTION_SESSION = _object(
    {
        "type": _enum("transcription"),
        "include": _nullable(_array(_enum(LOGPROBS_INCLUDE))),
        "audio": _object({"input": _AUDIO_INPUT}),
    },
    required=("type",),
)


def validate_transcription_update(session: Any) -> dict[str, Any]:
    """Validate the ``session`` of a ``session.update`` in a transcription session.

    Raises:
        SessionUpdateError: The first invalid field; the caller discards the whole update.
    """
    if isinstance(session, dict) and session.get("type") == "realtime":
        raise SessionUpdateError(
            "invalid_value",
            "Passing a realtime session update event to a transcription session is not "
            "allowed.",
            "session.type",
        )
    result: dict[str, Any] = _TRANSCRIPTION_SESSION(session, "session")
    return result


def validate_session_update(session: Any) -> dict[str, Any]:
    """Validate the ``session`` of a ``session.update``.

    Raises:
        SessionUpdateError: The first invalid field; the caller discards the whole update.
    """
    if session is not None and isinstance(session, dict) and session.get("type") == "transcription":
        raise SessionUpdateError(
            "invalid_value",
            "Passing a transcription session update event to a realtime session is not allowed.",
            "session.type",
        )
    result: dict[str, Any] = _SESSION(session, "session")
    modalities = result.get("output_modalities")
    if modalities is not None and len(modalities) != 1:
        raise SessionUpdateError(
            "invalid_value",
            "Invalid value for 'session.output_modalities': exactly one of 'text' or 'audio' "
            "is supported.",
            "session.output_modalities",
        )
    return result


def _fill(value: Any, defaults: Mapping[str, Any]) -> Any:
    return value if value is None else {**defaults, **value}


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Apply a validated partial update: present fields change, absent ones stay.

    ``audio``, ``audio.input`` and ``audio.output`` merge key by key; a new
    ``turn_detection`` object replaces the old one, with its type's defaults filled in.
    """
    merged = vocab.json_copy(current)
    for key, value in update.items():
        if key == "audio":
            for side in ("input", "output"):
                for sub_key, sub_value in value.get(side, {}).items():
                    if sub_key == "turn_detection" and sub_value is not None:
                        base = (
                            SERVER_VAD_DEFAULTS
                            if sub_value["type"] == "server_vad"
                            else SEMANTIC_VAD_DEFAULTS
                        )
                        sub_value = _fill(sub_value, base)
                    merged["audio"][side][sub_key] = vocab.json_copy(sub_value)
        elif key == "model":
            continue  # fixed at creation, as on the real server
        else:
            merged[key] = vocab.json_copy(value)
    return merged
