"""Typed tools: a plain Python function becomes a tool, its schema derived from its hints.

::

    @realtalk.tool(timeout_s=10)
    def find_table(date: datetime.date, party_size: Annotated[int, Field(ge=1, le=20)]) -> list[str]:
        '''Free tables on a date.

        Args:
            date: The day of the reservation.
            party_size: How many people.
        '''

:func:`tool` only marks the function (it stays an ordinary function, callable as before)
and records its options; nothing is imported. :func:`typed_tool` turns it into a
:class:`~realtalk.tools.Tool` when a plugin registers it (``register(find_table)``) or a
session is given it (``extra_plugins=[find_table]``): pydantic (imported then, not with
realtalk) builds a model of the parameters, whose JSON Schema, with ``$ref`` inlined and
``title`` dropped, is the one sent in ``session.update``. On each call the arguments are
first checked against that schema (like any tool's), then converted by the model into the
declared types (``"2026-05-01"`` becomes a ``date``, a mapping a dataclass).

The description is the docstring's first paragraph; each parameter's description comes
from a Google-style ``Args:`` section or reST ``:param name:`` lines.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .exceptions import ToolDefinitionError
from .hookspecs import hookimpl
from .tools import (
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_TIMEOUT_S,
    ArgumentProblems,
    Tool,
    make_tool,
    where_defined,
)
from .yamlfile import json_path

if TYPE_CHECKING:
    from .plugins import Registrar

__all__ = ["FunctionTools", "ToolOptions", "is_typed_tool", "tool", "tool_name", "typed_tool"]

F = TypeVar("F", bound=Callable[..., Any])
MARK = "__realtalk_tool__"


@dataclass(frozen=True)
class ToolOptions:
    """What ``@realtalk.tool(...)`` was given; None means "derive it from the function"."""

    name: str | None = None
    description: str | None = None
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    requires_approval: bool = False
    cancellable: bool = True
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    still_working: Mapping[str, Any] | None = None


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    requires_approval: bool = False,
    cancellable: bool = True,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    still_working: Mapping[str, Any] | None = None,
) -> Callable[[F], F]: ...


def tool(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    requires_approval: bool = False,
    cancellable: bool = True,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    still_working: Mapping[str, Any] | None = None,
) -> Any:
    """Mark a function (sync or async) as a tool; use as ``@tool`` or ``@tool(...)``.

    The function is returned unchanged (still callable from your own code); its schema is
    derived when it is registered, and a problem is reported then, naming the tool.

    Args:
        fn: The function (when used as ``@tool`` without parentheses).
        name: The tool's name (default: the function's name).
        description: For the model (default: the docstring's first paragraph).
        timeout_s: Seconds before a call is abandoned; None for no limit.
        requires_approval: Ask a person before each call.
        cancellable: Cancel a running call when the user barges in.
        max_output_chars: The longest output sent to the model.
        still_working: ``{"after_s": 3, "say": "..."}`` or ``{"after_s": 3, "generate":
            True}``: tell the user when a call runs that long.
    """
    options = ToolOptions(name, description, timeout_s, requires_approval, cancellable, max_output_chars,
                          still_working)

    def mark(function: F) -> F:
        if not callable(function) or inspect.isclass(function):
            raise TypeError(f"@realtalk.tool decorates a function, not {function!r}")
        setattr(function, MARK, options)
        return function

    return mark if fn is None else mark(fn)


def is_typed_tool(value: object) -> bool:
    """True for a function marked with :func:`tool`."""
    return isinstance(getattr(value, MARK, None), ToolOptions)


def tool_name(fn: Callable[..., Any]) -> str:
    """The name ``fn`` registers under: ``@realtalk.tool(name=...)``, else its own."""
    options = getattr(fn, MARK, None)
    return getattr(options, "name", None) or str(getattr(fn, "__name__", ""))


def typed_tool(fn: Callable[..., Any], *, plugin: str, plugin_version: str = "") -> Tool:
    """The Tool for ``fn`` (marked with :func:`tool`, or a plain typed function: defaults).

    Raises:
        ToolDefinitionError: One line naming the tool, the parameter and the function's
            file and line: a parameter without a type hint, ``*args`` or ``**kwargs``, a
            type pydantic cannot describe, a recursive type, no description.
    """
    options = getattr(fn, MARK, None)
    if not isinstance(options, ToolOptions):
        options = ToolOptions()
    name = tool_name(fn)
    origin = f"{plugin} {plugin_version}".strip()
    where = where_defined(fn)

    def fail(message: str) -> ToolDefinitionError:
        return ToolDefinitionError(f"tool {name!r} ({where}): {message}", plugin=origin)

    summary, documented = parse_docstring(inspect.getdoc(fn) or "")
    description = options.description or summary
    if not description:
        raise fail("no description: give the function a docstring, or @realtalk.tool(description=...)")
    model = _arguments_model(fn, name, documented, fail)
    parameters = _clean_schema(model.model_json_schema(), fail)
    fields = tuple(model.model_fields)

    def prepare(arguments: dict[str, Any]) -> dict[str, Any]:
        from pydantic import ValidationError

        try:
            values = model.model_validate(arguments)
        except ValidationError as exc:
            raise ArgumentProblems([
                {"path": json_path(list(error["loc"])), "message": error["msg"]} for error in exc.errors()
            ]) from None
        return {field: getattr(values, field) for field in fields}

    return make_tool(
        name, description, parameters, fn, plugin=plugin, plugin_version=plugin_version,
        timeout_s=options.timeout_s, requires_approval=options.requires_approval,
        cancellable=options.cancellable, max_output_chars=options.max_output_chars, prepare=prepare,
        still_working=options.still_working,
    )


class FunctionTools:
    """A plugin made of typed functions given to a session directly (``extra_plugins=[fn]``).

    :func:`realtalk.plugins.load_plugins` makes one per module; it is recorded as the
    distribution named after that module (``__main__`` for a script).
    """

    def __init__(self, module: str) -> None:
        self.__name__ = module
        self.functions: list[Callable[..., Any]] = []

    @hookimpl
    def register_tools(self, register: Registrar) -> None:
        """Register each function as a typed tool."""
        for function in self.functions:
            register(function)


def _arguments_model(fn: Callable[..., Any], name: str, documented: dict[str, str],
                     fail: Callable[[str], ToolDefinitionError]) -> Any:
    """A pydantic model with one field per parameter of ``fn`` (``context`` aside)."""
    try:
        from pydantic import ConfigDict, Field, PydanticUserError, create_model
        from pydantic.fields import FieldInfo
    except ImportError:
        raise fail("typed tools need pydantic 2: pip install 'pydantic>=2.6'") from None
    import typing

    try:
        hints = typing.get_type_hints(fn, include_extras=True)
        signature = inspect.signature(fn)
    except (NameError, TypeError, ValueError) as exc:
        raise fail(f"cannot read the type hints: {type(exc).__name__}: {exc}") from None
    fields: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.name == "context":
            continue  # the ToolContext, passed by the runtime
        label = f"parameter {parameter.name!r}"
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise fail(f"{label}: *args and **kwargs cannot be described to the model; name each parameter")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise fail(f"{label} is positional-only; tools are called with keyword arguments")
        if parameter.name not in hints:
            raise fail(f"{label} has no type hint (such as 'str' or 'int')")
        annotation = hints[parameter.name]
        default = parameter.default
        info = default if isinstance(default, FieldInfo) else (
            Field() if default is parameter.empty else Field(default=default))
        if parameter.name in documented and not _described(annotation, info):
            info = FieldInfo.merge_field_infos(info, description=documented[parameter.name])
        fields[parameter.name] = (annotation, info)
    try:
        return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    except (PydanticUserError, TypeError, ValueError, NameError) as exc:
        raise fail(f"pydantic cannot describe the parameters: {_first_line(exc)}") from None


def _described(annotation: Any, info: Any) -> bool:
    """True when ``Field(description=...)`` already describes the parameter."""
    if info.description:
        return True
    return any(getattr(extra, "description", None) for extra in getattr(annotation, "__metadata__", ()))


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


# --- the schema as the Realtime API takes it: no $ref, no titles --------------------------

# Keys whose value maps names to schemas (a property named "title" is not a title).
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def _clean_schema(schema: dict[str, Any], fail: Callable[[str], ToolDefinitionError]) -> dict[str, Any]:
    """pydantic's schema with every ``$ref`` replaced by its definition and no ``title``."""
    definitions = schema.get("$defs", {})

    def clean(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [clean(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"].rsplit("/", 1)[-1]
            if ref in seen:
                raise fail(f"type {ref!r} refers to itself; the Realtime API takes no $ref, so it"
                           " cannot be inlined: use a non-recursive type")
            merged = {**definitions[ref], **{k: v for k, v in node.items() if k != "$ref"}}
            return clean(merged, (*seen, ref))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "$defs"):
                continue
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: clean(sub, seen) for name, sub in value.items()}
            else:
                out[key] = clean(value, seen)
        # As a person writes a schema: the type first, the description last.
        first = {"type": out.pop("type")} if "type" in out else {}
        last = {"description": out.pop("description")} if "description" in out else {}
        return {**first, **out, **last}

    cleaned: dict[str, Any] = clean(schema, ())
    # In the order a reader expects: what it is, then its parts.
    return {"type": "object", "properties": cleaned.pop("properties", {}),
            "required": cleaned.pop("required", []), **cleaned}


# --- docstrings: Google-style Args: and reST :param: ------------------------------------

_GOOGLE_ARGS = re.compile(r"^(Args|Arguments|Parameters|Params)\s*:\s*$")
_GOOGLE_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_REST_FIELD = re.compile(r"^:\w+")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph (lines joined by spaces) and each documented parameter's text.

    Reads Google-style sections (``Args:`` then ``name (type): text`` lines, continued
    by deeper-indented lines) and reST fields (``:param name: text`` or
    ``:param type name: text``, continued by indented lines).
    """
    lines = doc.expandtabs().splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _GOOGLE_SECTION.match(line.strip()) or _REST_FIELD.match(line.strip()):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    current: str | None = None
    in_args = False
    item_indent = -1
    for line in lines:
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        rest = _REST_PARAM.match(text)
        if rest:
            current, in_args = rest.group(1), False
            params[current] = rest.group(2).strip()
            item_indent = indent
            continue
        if _GOOGLE_ARGS.match(text):
            in_args, current, item_indent = True, None, -1
            continue
        if not text:
            continue
        if in_args and indent == 0 and _GOOGLE_SECTION.match(text):
            in_args, current = False, None
            continue
        if _REST_FIELD.match(text) or (not in_args and indent <= item_indent):
            current = None
            continue
        if in_args and (item_indent < 0 or indent <= item_indent):
            item = _GOOGLE_ITEM.match(text)
            if item:
                current, item_indent = item.group(1), indent
                params[current] = item.group(2).strip()
                continue
            in_args, current = False, None
            continue
        if current is not None and indent > item_indent:
            params[current] = f"{params[current]} {text}".strip()
    return " ".join(summary), params
