"""``response.create``'s request, checked: its parameters and its own ``input`` items.

Pure functions shared by the server protocol (:mod:`.protocol`): they raise
:class:`.builders.ClientError` with the code and ``param`` the live server uses.
"""

from __future__ import annotations

from typing import Any

from .builders import ClientError, validate_item
from .config import (
    SessionUpdateError,
    reasoning_error,
    supports_reasoning,
    validate_max_output_tokens,
    validate_reasoning,
)

__all__ = ["check_response_params", "item_text", "response_input"]


def response_input(raw: Any, conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``response.input``: items (validated like ``conversation.item.create``'s) and
    ``item_reference``s to items of ``conversation``, resolved.

    Raises:
        ClientError: Not an array, an invalid item (``param`` ``response.input[N]...``),
            or a reference to an item the conversation does not hold.
    """
    if not isinstance(raw, list):
        raise ClientError(
            "invalid_type", "Invalid type for 'response.input': expected an array.",
            "response.input",
        )
    items = []
    for n, entry in enumerate(raw):
        where = f"response.input[{n}]"
        if isinstance(entry, dict) and entry.get("type") == "item_reference":
            if set(entry) - {"type", "id"} or not isinstance(entry.get("id"), str):
                raise ClientError(
                    "invalid_value",
                    f"Invalid '{where}': an item_reference is {{type, id}}.",
                    where,
                )
            found = next((i for i in conversation if i["id"] == entry["id"]), None)
            if found is None:
                raise ClientError(
                    "invalid_value", f"Item with item_id not found: {entry['id']}", f"{where}.id"
                )
            items.append(found)
            continue
        try:
            items.append(validate_item(entry))
        except ClientError as exc:
            param = (exc.param or "item").replace("item", where, 1)
            raise ClientError(exc.code, exc.message.replace("'item", f"'{where}"), param) from None
    return items


def item_text(item: dict[str, Any]) -> str:
    """The words of an item, for matching out-of-band turns: a message's text and
    transcripts, a function call's arguments, a tool output."""
    if item.get("type") == "message":
        return " ".join(
            str(c.get("text") or c.get("transcript") or "") for c in item.get("content", [])
        ).strip()
    return str(item.get("output") or item.get("arguments") or "")


def check_response_params(params: dict[str, Any], model: str) -> None:
    """Validate the ``response`` of a ``response.create`` (the fields the emulator
    acts on)."""
    metadata = params.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(v, str) for v in metadata.values())
    ):
        raise ClientError(
            "invalid_type",
            "Invalid 'response.metadata': expected an object of at most 16 string values.",
            "response.metadata",
        )
    modalities = params.get("output_modalities")
    if modalities is not None and modalities not in (["text"], ["audio"]):
        raise ClientError(
            "invalid_value",
            "Invalid 'response.output_modalities': expected ['text'] or ['audio'].",
            "response.output_modalities",
        )
    conversation = params.get("conversation", "auto")
    if conversation not in ("auto", "none"):
        raise ClientError(
            "invalid_value",
            f"Invalid value: '{conversation}'. Supported values are: 'auto' and 'none'.",
            "response.conversation",
        )
    instructions = params.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ClientError(
            "invalid_type",
            "Invalid type for 'response.instructions': expected a string.",
            "response.instructions",
        )
    try:
        if "max_output_tokens" in params:
            validate_max_output_tokens(params["max_output_tokens"], "response.max_output_tokens")
        if "reasoning" in params:
            validate_reasoning(params["reasoning"], "response.reasoning")
            if not supports_reasoning(model):
                raise reasoning_error(model, "response.reasoning")
    except SessionUpdateError as exc:
        raise ClientError(exc.code, exc.message, exc.param) from None
