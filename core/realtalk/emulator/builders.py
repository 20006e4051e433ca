"""Client events: the accepted types, their fields, and validation of conversation items.

Pure functions and constants, shared by the server protocol (:mod:`.protocol`) and its tests.
"""

from __future__ import annotations

from typing import Any

from ..protocol.vocab import EVENT_ID_MAX, ITEM_ID_MAX, new_id

__all__ = [
    "EVENT_FIELDS",
    "RESPONSE_KEYS",
    "SUPPORTED_TYPES",
    "ClientError",
    "check_event_id",
    "duplicate_item",
    "validate_item",
]

# The live GA WebSocket server's own list, quoted in its invalid_value error.
SUPPORTED_TYPES = (
    "session.update",
    "session.close",
    "input_audio_buffer.append",
    "session.input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
)
# What a transcription session (``?intent=transcription``) takes; the others are answered
# with ``invalid_value``.
TRANSCRIPTION_SESSION_EVENTS = frozenset(
    t for t in SUPPORTED_TYPES if not t.startswith(("conversation.", "response."))
)
# Allowed top-level fields and the required ones, per client event type.
EVENT_FIELDS: dict[str, tuple[set[str], tuple[str, ...]]] = {
    "session.update": ({"session"}, ("session",)),
    "session.close": (set(), ()),
    "input_audio_buffer.append": ({"audio"}, ("audio",)),
    "session.input_audio_buffer.append": ({"audio"}, ("audio",)),
    "input_audio_buffer.commit": (set(), ()),
    "input_audio_buffer.clear": (set(), ()),
    "conversation.item.create": ({"item", "previous_item_id"}, ("item",)),
    "conversation.item.truncate": (
        {"item_id", "content_index", "audio_end_ms"},
        ("item_id", "content_index", "audio_end_ms"),
    ),
    "conversation.item.delete": ({"item_id"}, ("item_id",)),
    "conversation.item.retrieve": ({"item_id"}, ("item_id",)),
    "response.create": ({"response"}, ()),
    "response.cancel": ({"response_id"}, ()),
}
RESPONSE_KEYS = {
    "output_modalities",
    "instructions",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "audio",
    "conversation",
    "input",
    "metadata",
    "prompt",
    "reasoning",
    "parallel_tool_calls",
}


class ClientError(Exception):
    """A client event was invalid; the session answers with an ``error`` and goes on."""

    def __init__(self, code: str | None, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def _too_long(param: str, value: str, limit: int) -> ClientError:
    """The live server's error for a string over its maximum length."""
    return ClientError(
        "string_above_max_length",
        f"Invalid '{param}': string too long. Expected a string with maximum length "
        f"{limit}, but got a string with length {len(value)} instead.",
        param,
    )


def check_event_id(event: dict[str, Any]) -> None:
    """Refuse a client ``event_id`` longer than the live server takes (512 characters).

    Raises:
        ClientError: ``string_above_max_length`` with param ``event_id``.
    """
    event_id = event.get("event_id")
    if isinstance(event_id, str) and len(event_id) > EVENT_ID_MAX:
        raise _too_long("event_id", event_id, EVENT_ID_MAX)


def duplicate_item(item_id: str) -> ClientError:
    """The live server's error for ``conversation.item.create`` with an id already in the
    conversation (LiveKit, replaying history, takes this code as success)."""
    return ClientError(
        "item_create_duplicate_item_id",
        f"Error adding item: an item with id '{item_id}' already exists.",
    )


_ITEM_FIELDS = {
    "message": {"id", "type", "object", "status", "role", "content"},
    "function_call": {"id", "type", "object", "status", "call_id", "name", "arguments"},
    "function_call_output": {"id", "type", "object", "status", "call_id", "output"},
    "mcp_approval_response": {"id", "type", "object", "approval_request_id", "approve", "reason"},
}
_PART_FIELDS = {"type", "text", "audio", "transcript", "image_url", "detail"}
_CONTENT_TYPES = {
    "user": {"input_text", "input_audio", "input_image"},
    "system": {"input_text"},
    "assistant": {"output_text", "output_audio"},
}


def validate_item(item: Any) -> dict[str, Any]:
    """Check a client item the way the live server does; return it completed (id, status).

    Raises:
        ClientError: The item is not an object, has an unknown type, role or field, lacks
            a required field, has a wrong type, or an ``id`` over 32 characters.
    """
    if not isinstance(item, dict):
        raise ClientError("invalid_type", "Invalid type for 'item': expected an object.", "item")
    kind = item.get("type")
    if kind is None:
        raise ClientError(
            "missing_required_parameter", "Missing required parameter: 'item.type'.", "item.type"
        )
    if not isinstance(kind, str) or kind not in _ITEM_FIELDS:
        raise ClientError(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: "
            "'message', 'function_call', 'function_call_output' and 'mcp_approval_response'.",
            "item.type",
        )
    for key in item:
        if key not in _ITEM_FIELDS[kind]:
            raise ClientError(
                "unknown_parameter", f"Unknown parameter: 'item.{key}'.", f"item.{key}"
            )
    required = {
        "message": ("role", "content"),
        "function_call": ("name", "arguments"),
        "function_call_output": ("call_id", "output"),
        "mcp_approval_response": ("approval_request_id", "approve"),
    }[kind]
    for key in required:
        if key not in item:
            raise ClientError(
                "missing_required_parameter",
                f"Missing required parameter: 'item.{key}'.",
                f"item.{key}",
            )
    if kind == "mcp_approval_response" and not isinstance(item["approve"], bool):
        raise ClientError(
            "invalid_type", "Invalid type for 'item.approve': expected a boolean.", "item.approve"
        )
    for key in ("id", "call_id", "name", "arguments", "output", "approval_request_id", "reason"):
        if key in item and not isinstance(item[key], str):
            raise ClientError(
                "invalid_type", f"Invalid type for 'item.{key}': expected a string.", f"item.{key}"
            )
    if len(item.get("id") or "") > ITEM_ID_MAX:
        raise _too_long("item.id", item["id"], ITEM_ID_MAX)
    out = {
        **item,
        "id": item.get("id") or new_id("item"),
        "object": "realtime.item",
    }
    if kind != "mcp_approval_response":  # the GA item has no status
        out["status"] = "completed"
    if kind == "message":
        role = item["role"]
        if not isinstance(role, str) or role not in _CONTENT_TYPES:
            raise ClientError(
                "invalid_value",
                f"Invalid value: '{role}'. Supported values are: 'user', 'system' and 'assistant'.",
                "item.role",
            )
        if not isinstance(item["content"], list):
            raise ClientError(
                "invalid_type",
                "Invalid type for 'item.content': expected an array.",
                "item.content",
            )
        for n, part in enumerate(item["content"]):
            param = f"item.content[{n}]"
            if not isinstance(part, dict) or part.get("type") not in _CONTENT_TYPES[role]:
                allowed = " and ".join(f"'{t}'" for t in sorted(_CONTENT_TYPES[role]))
                raise ClientError(
                    "invalid_value",
                    f"Invalid value for '{param}.type'. Supported values are: {allowed}.",
                    f"{param}.type",
                )
            for key, value in part.items():
                if key not in _PART_FIELDS:
                    raise ClientError(
                        "unknown_parameter",
                        f"Unknown parameter: '{param}.{key}'.",
                        f"{param}.{key}",
                    )
                if key != "detail" and value is not None and not isinstance(value, str):
                    raise ClientError(
                        "invalid_type",
                        f"Invalid type for '{param}.{key}': expected a string.",
                        f"{param}.{key}",
                    )
            if part.get("detail") not in (None, "auto", "low", "high"):
                raise ClientError(
                    "invalid_value",
                    f"Invalid value for '{param}.detail'. "
                    "Supported values are: 'auto', 'low' and 'high'.",
                    f"{param}.detail",
                )
            if part["type"] in ("input_text", "output_text") and not isinstance(
                part.get("text"), str
            ):
                raise ClientError(
                    "missing_required_parameter",
                    f"Missing required parameter: '{param}.text'.",
                    f"{param}.text",
                )
            if part["type"] == "output_audio" and not part.get("transcript"):
                raise ClientError(
                    "missing_required_parameter",
                    f"Missing required parameter: '{param}.text'.",
                    f"{param}.text",
                )
        out["content"] = [dict(p) for p in item["content"]]
    if kind == "function_call" and "call_id" not in out:
        out["call_id"] = new_id("call", 8)
    return out
