"""Type checks for server events, at the boundary where they enter the runtime.

A server (or a proxy in front of it) can send a well-formed JSON object whose fields have
the wrong JSON types: ``"error": "boom"``, ``"delta": 42``, ``"session": null``. The rest of
realtalk reads those fields assuming the GA types, so :func:`check_server_event` runs on
every received event first and makes that assumption true:

* Every server event type the runtime acts on has a table of the fields it reads, with
  their expected JSON types, nested (``response.output[].content[]``,
  ``session.tools[]``, ``item.content[]``, ``error.*``, ``response.usage.*``...). The
  types follow the GA API (``openai.types.realtime``).
* A mistyped *optional* field is removed (from a copy) with a one-line warning, as if the
  server had not sent it. A mistyped element of an array is removed from the array.
* A mistyped or missing *required* field (one without which the event means nothing, such
  as ``delta`` of a delta event or ``call_id`` of ``response.function_call_arguments.done``)
  makes its container unusable: an optional container is removed, and at the top the whole
  event is dropped (``None`` is returned).
* Unknown event types and unknown fields pass through untouched; values are not checked
  beyond their JSON type (an ``item.type`` nobody knows is still a string).

Beta event names (``response.text.delta``, ``conversation.item.created``...) are checked
with the table of their GA equivalent, so the check can run before
:func:`~realtalk.protocol.events.normalize_server_event`.

Nothing here performs I/O, raises, or mutates its input; an event with nothing wrong is
returned as the very same object, without a copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .events import BETA_TO_GA_SERVER_EVENTS

__all__ = ["CHECKED_EVENT_TYPES", "check_server_event", "delta_ok"]


# -- field specs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """What one field must be.

    Attributes:
        kinds: Accepted JSON types: ``string``, ``integer``, ``number``, ``boolean``,
            ``object``, ``array``.
        required: Whether its container means nothing without it (then a missing or
            mistyped value makes the container unusable).
        nullable: Whether ``null`` is accepted.
        fields: For objects, the members that are checked (others pass through).
        items: For arrays, what each element must be.
    """

    kinds: tuple[str, ...]
    required: bool = False
    nullable: bool = False
    fields: Mapping[str, _Field] | None = None
    items: _Field | None = None


def _str(*, required: bool = False, null: bool = False) -> _Field:
    return _Field(("string",), required, null)


def _int(*, required: bool = False, null: bool = False) -> _Field:
    return _Field(("integer",), required, null)


def _num(*, required: bool = False, null: bool = False) -> _Field:
    return _Field(("number",), required, null)


def _bool(*, required: bool = False, null: bool = False) -> _Field:
    return _Field(("boolean",), required, null)


def _obj(
    fields: Mapping[str, _Field] | None = None, *, required: bool = False, null: bool = False
) -> _Field:
    return _Field(("object",), required, null, fields=fields or None)


def _arr(items: _Field, *, required: bool = False, null: bool = False) -> _Field:
    return _Field(("array",), required, null, items=items)


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_ARTICLE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
}


# -- the tables ---------------------------------------------------------------------------------
# Only what the runtime reads (protocol/client.py, protocol/conversation.py, protocol/arbiter.py,
# audio/bridge.py, cli/console.py) is listed; the types are the GA ones. Required means the
# event is meaningless without it; ``session``, ``response`` and ``error`` are not: a bare
# session.created still starts a session, a bare response.done still ends a response.

_CONTENT_PART = _obj({
    "type": _str(),
    "text": _str(null=True),
    "transcript": _str(null=True),
    "audio": _str(null=True),
    "image_url": _str(null=True),
    "detail": _str(null=True),
})
_ITEM_FIELDS: dict[str, _Field] = {
    "id": _str(null=True),
    "type": _str(),
    "role": _str(),
    "status": _str(),
    "call_id": _str(null=True),
    "name": _str(),
    "arguments": _str(),
    "output": _str(null=True),  # null in a hosted MCP call (mcp_call) until it is done
    "content": _arr(_CONTENT_PART, null=True),
}
_ITEM = _obj(_ITEM_FIELDS)
_AUDIO_FORMAT = _Field(("object", "string"), nullable=True)  # GA object, beta string
_TURN_DETECTION = _obj({"create_response": _bool()}, null=True)
_SESSION = _obj(
    {
        "expires_at": _num(null=True),
        "instructions": _str(null=True),
        "tools": _arr(_obj({"type": _str(), "name": _str()}), null=True),
        "audio": _obj(
            {
                "input": _obj({"format": _AUDIO_FORMAT, "turn_detection": _TURN_DETECTION}, null=True),
                "output": _obj({"format": _AUDIO_FORMAT}, null=True),
            },
            null=True,
        ),
        # Beta sessions keep these at the top.
        "output_audio_format": _AUDIO_FORMAT,
        "turn_detection": _TURN_DETECTION,
    },
)
_USAGE = _obj(
    {
        "input_tokens": _int(),
        "output_tokens": _int(),
        "total_tokens": _int(),
        "input_token_details": _obj(null=True),
        "output_token_details": _obj(null=True),
    },
    null=True,
)
_RESPONSE = _obj(
    {
        "id": _str(null=True),
        "status": _str(null=True),
        "status_details": _obj({"type": _str(null=True), "reason": _str(null=True),
                                "error": _obj(null=True)}, null=True),
        "usage": _USAGE,
        "metadata": _obj(null=True),
        "output": _arr(_ITEM, null=True),
    },
)
_ERROR = _obj(
    {
        "type": _str(),
        "code": _str(null=True),
        "message": _str(),
        "param": _str(null=True),
        "event_id": _str(null=True),
    },
)

_IDS = {"item_id": _str(), "response_id": _str()}
_DELTA = {"delta": _str(required=True), **_IDS}
_ITEM_EVENT = {"item": _obj(_ITEM_FIELDS, required=True), "previous_item_id": _str(null=True)}
_OUTPUT_ITEM_EVENT = {
    "item": _obj(_ITEM_FIELDS, required=True),
    "response_id": _str(),
    "output_index": _int(),
}

_EVENTS: dict[str, dict[str, _Field]] = {
    "session.created": {"session": _SESSION},
    "session.updated": {"session": _SESSION},
    "conversation.item.added": _ITEM_EVENT,
    "conversation.item.done": _ITEM_EVENT,
    "conversation.item.retrieved": _ITEM_EVENT,
    "conversation.item.created": _ITEM_EVENT,  # beta, and older GA servers
    "conversation.item.truncated": {
        "item_id": _str(required=True),
        "audio_end_ms": _int(required=True),
        "content_index": _int(),
    },
    "conversation.item.deleted": {"item_id": _str(required=True)},
    "conversation.item.input_audio_transcription.completed": {
        "item_id": _str(),
        "transcript": _str(required=True),
    },
    "response.created": {"response": _RESPONSE},
    "response.done": {"response": _RESPONSE},
    "response.output_item.added": _OUTPUT_ITEM_EVENT,
    "response.output_item.done": _OUTPUT_ITEM_EVENT,
    "response.function_call_arguments.delta": {"call_id": _str(required=True), **_DELTA},
    "response.function_call_arguments.done": {
        "call_id": _str(required=True),
        "arguments": _str(required=True),
        "name": _str(),
        **_IDS,
    },
    "response.output_audio.delta": _DELTA,
    "response.output_audio.done": _IDS,
    "response.output_text.delta": _DELTA,
    "response.output_text.done": {"text": _str(), **_IDS},
    "response.output_audio_transcript.delta": _DELTA,
    "response.output_audio_transcript.done": {"transcript": _str(), **_IDS},
    "input_audio_buffer.speech_started": {"item_id": _str(), "audio_start_ms": _int()},
    "input_audio_buffer.speech_stopped": {"item_id": _str(), "audio_end_ms": _int()},
    "input_audio_buffer.committed": {"item_id": _str(), "previous_item_id": _str(null=True)},
    "input_audio_buffer.cleared": {},
    "error": {"error": _ERROR},
}
_TABLE: dict[str, _Field] = {
    name: _obj({"event_id": _str(), **fields}) for name, fields in _EVENTS.items()
}
for _beta, _ga in BETA_TO_GA_SERVER_EVENTS.items():
    _TABLE[_beta] = _TABLE[_ga]

CHECKED_EVENT_TYPES: frozenset[str] = frozenset(_TABLE)
"""Server event types whose fields are checked (GA names and their beta equivalents)."""


# -- checking -----------------------------------------------------------------------------------


class _Unusable:
    """A value that failed a required check; ``reason`` says where and why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)) and not _finite(value):
        return "a number out of range"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _expected(spec: _Field) -> str:
    names = [_ARTICLE[k] for k in spec.kinds] + (["null"] if spec.nullable else [])
    return " or ".join(names)


def _type_ok(value: Any, spec: _Field) -> bool:
    if value is None:
        return spec.nullable
    if isinstance(value, bool):
        return "boolean" in spec.kinds
    if spec.kinds == ("number",) and isinstance(value, (int, float)):
        # Python's json accepts NaN, Infinity and integers no float can hold; the
        # runtime does float arithmetic with these (session expiry).
        return _finite(value)
    return any(isinstance(value, _PY_TYPES[k]) for k in spec.kinds)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check(value: Any, spec: _Field, path: str, warnings: list[str]) -> Any:
    """Return ``value`` itself if it is fine, a cleaned copy, or an :class:`_Unusable`."""
    if not _type_ok(value, spec):
        return _Unusable(f"{path} is {_describe(value)}, expected {_expected(spec)}")
    if spec.fields is not None and isinstance(value, dict):
        return _check_object(value, spec.fields, path, warnings)
    if spec.items is not None and isinstance(value, list):
        return _check_array(value, spec.items, path, warnings)
    return value


def _check_object(
    obj: dict[str, Any], fields: Mapping[str, _Field], path: str, warnings: list[str]
) -> Any:
    out: dict[str, Any] | None = None
    for name, spec in fields.items():
        if name not in obj:
            if spec.required:
                return _Unusable(f"{path}.{name} is missing")
            continue
        value = obj[name]
        if spec.fields is None and spec.items is None and _type_ok(value, spec):
            continue  # the common case: a scalar of the right type, no path to build
        checked = _check(value, spec, f"{path}.{name}", warnings)
        if checked is value:
            continue
        if isinstance(checked, _Unusable):
            if spec.required:
                return checked
            warnings.append(_dropped(checked, f"{path}.{name}"))
            if out is None:
                out = dict(obj)
            del out[name]
        else:
            if out is None:
                out = dict(obj)
            out[name] = checked
    return obj if out is None else out


def _check_array(items: list[Any], spec: _Field, path: str, warnings: list[str]) -> list[Any]:
    out: list[Any] | None = None
    for index, value in enumerate(items):
        where = f"{path}[{index}]"
        checked = _check(value, spec, where, warnings)
        if checked is value:
            if out is not None:
                out.append(value)
            continue
        if out is None:
            out = list(items[:index])
        if isinstance(checked, _Unusable):
            warnings.append(_dropped(checked, where))
        else:
            out.append(checked)
    return items if out is None else out


def _dropped(failure: _Unusable, where: str) -> str:
    if failure.reason.startswith(where + " "):
        return f"{failure.reason}; ignored"
    return f"{failure.reason}; {where} ignored"


# -- the fast acceptance check ------------------------------------------------------------------
# Almost every event is fine, and interpreting the tables above for one costs ~30 us (160 us
# profiled; 0.5 of 7.9 s in the 150-session profile). So each table is compiled once into a
# predicate that only answers "is everything well typed?", with exact type() lookups in
# precomputed sets and no paths, copies or messages. When it says yes the event is returned
# as is; when it says no (or is unsure: a subclass of dict or str, say) the interpreter
# above runs and produces the cleaned copy and the warnings, so what is rejected, and how,
# is decided by the interpreter alone. The predicate must only never say yes where the
# interpreter would change something: tests/protocol/test_validate.py compares the two.

_EXACT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),  # also checked with _finite
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}

# (name, required, accepted exact types, extra check of a non-null value or None)
_Entry = tuple[str, bool, frozenset[type], Callable[[Any], bool] | None]


def _accepts(spec: _Field) -> tuple[frozenset[type], Callable[[Any], bool] | None]:
    """The exact types ``spec`` accepts, and what else a non-null value must pass."""
    types = {t for kind in spec.kinds for t in _EXACT_TYPES[kind]}
    if spec.nullable:
        types.add(type(None))
    extra: Callable[[Any], bool] | None = None
    if spec.fields is not None:
        extra = _compile_object(spec.fields)
    elif spec.items is not None:
        extra = _compile_array(spec.items)
    elif spec.kinds == ("number",):
        extra = _finite
    return frozenset(types), extra


def _compile_object(fields: Mapping[str, _Field]) -> Callable[[Any], bool]:
    entries: tuple[_Entry, ...] = tuple(
        (name, spec.required, *_accepts(spec)) for name, spec in fields.items())

    def object_ok(obj: Any) -> bool:
        if type(obj) is not dict:
            return False
        for name, required, types, extra in entries:
            if name not in obj:
                if required:
                    return False
                continue
            value = obj[name]
            if type(value) not in types or (extra is not None and value is not None
                                            and not extra(value)):
                return False
        return True

    return object_ok


def _compile_array(items: _Field) -> Callable[[Any], bool]:
    types, extra = _accepts(items)

    def array_ok(values: Any) -> bool:
        for value in values:
            if type(value) not in types or (extra is not None and value is not None
                                            and not extra(value)):
                return False
        return True

    return array_ok


_ALL_OK: dict[str, Callable[[Any], bool]] = {
    name: _compile_object(spec.fields) for name, spec in _TABLE.items() if spec.fields is not None
}


# Events checked by the _DELTA spec alone (GA and beta names): delta_ok() is that check.
_DELTA_TYPES = frozenset(
    name for name in _TABLE if _EVENTS.get(BETA_TO_GA_SERVER_EVENTS.get(name, name)) is _DELTA
)


def delta_ok(event: dict[str, Any]) -> bool:
    """A delta event whose checked fields are all well typed (what ``_DELTA`` asks)."""
    item_id, response_id = event.get("item_id", ""), event.get("response_id", "")
    return (type(event.get("delta")) is str and type(item_id) is str
            and type(response_id) is str)


def check_server_event(event: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """Check the JSON types of the fields the runtime reads from one server event.

    Args:
        event: A decoded server event, exactly as received (either dialect).

    Returns:
        ``(event, [])`` when nothing is wrong (the same object, not a copy); ``(copy,
        warnings)`` when mistyped optional fields were removed; ``(None, warnings)`` when a
        required field is missing or mistyped and the event must be ignored. Each warning is
        one line naming the event and the JSON path, e.g. ``server event response.done
        evt_1: $.response.usage is a string, expected an object; ignored``. The caller must
        log or show the warnings, and process the returned event (if any) instead of the
        original.
    """
    etype = event.get("type") if isinstance(event, dict) else None
    if etype in _DELTA_TYPES and delta_ok(event):
        return event, []  # the hot path: thousands of deltas per response, all well typed
    spec = _TABLE.get(etype) if isinstance(etype, str) else None
    if spec is None or spec.fields is None:
        return event, []
    if _ALL_OK[etype](event):  # type: ignore[index]  # (etype is a str: spec was found)
        return event, []  # the common case, without interpreting the table
    problems: list[str] = []
    checked = _check_object(event, spec.fields, "$", problems)
    if not problems and not isinstance(checked, _Unusable):
        return checked, []
    eid = event.get("event_id")
    head = f"server event {etype}" + (f" {eid}" if isinstance(eid, str) and eid else "")
    warnings = [f"{head}: {p}" for p in problems]
    if isinstance(checked, _Unusable):
        warnings.append(f"{head}: {checked.reason}; event ignored")
        return None, warnings
    return checked, warnings
