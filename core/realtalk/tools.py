"""Tools: plain data, checked once at registration, their arguments checked on every call.

A :class:`Tool` is what a plugin registers and what the model may call. The
:class:`ToolRegistry` holds every installed tool and refuses a second tool with a name
already taken (naming both plugins, and remembering the conflict so that an agent using
that name can be refused). :func:`validate_arguments` checks the model's raw
``arguments`` string against the exact schema that was sent in ``session.update``, and
:func:`realtalk.toolcalls.run_tool` executes a handler. Every outcome of a call, good or bad, becomes a
string for ``function_call_output``: failures belong to the model, not to the session.

This module is plain data and checks (no asyncio: the sans-I/O core imports it). jsonschema
is imported when a schema is first checked, and each distinct schema is checked and compiled
once per process (:func:`schema_problem`, :meth:`Tool.validator`), however many tools,
agents and sessions share it.
Execution lives in :mod:`realtalk.toolcalls` and is contained: sync handlers run on realtalk's own bounded pool of daemon
threads (:class:`ToolThreads`), never the event loop's default executor; an async
handler's synchronous steps are timed, so one that blocks the loop is named; the
output is capped at ``max_output_chars``; and whatever a handler raises (even
``SystemExit``) or returns (even an object whose ``__str__`` raises) becomes an output.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .exceptions import ToolDefinitionError
from .yamlfile import did_you_mean, json_path, load_yaml

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

    from .httptools import HttpCall

__all__ = [
    "ArgumentCheck",
    "ArgumentProblems",
    "StillWorking",
    "Tool",
    "ToolContext",
    "ToolFailed",
    "ToolOutcome",
    "ToolRegistry",
    "cap_output",
    "format_output",
    "load_tool_definitions",
    "make_tool",
    "schema_problem",
    "signature_problem",
    "validate_arguments",
    "where_defined",
]

log = logging.getLogger(__name__)

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_DESCRIPTION = 1024
DEFAULT_TIMEOUT_S = 30.0
# About 4,000 tokens: an eighth of a 32k-token realtime context. A tool output is part of
# the conversation, sent again whenever a session is re-seeded after a reconnect, and
# spoken about by a voice model that cannot read a page of text aloud anyway; a larger
# output crowds out the instructions and the conversation itself.
DEFAULT_MAX_OUTPUT_CHARS = 16_000
MIN_MAX_OUTPUT_CHARS = 100  # room for the truncation envelope and some of the output
_TOOL_KEYS = {
    "name", "description", "parameters", "handler", "timeout_s", "requires_approval", "cancellable",
    "max_output_chars", "still_working", "http",
}


@dataclass(frozen=True)
class StillWorking:
    """What the agent says when a call of the tool runs long (no dead air).

    Attributes:
        after_s: Seconds the call must have run.
        say: A fixed line (spoken through an out-of-band response in audio sessions,
            shown in text ones), or None.
        generate: Let the model word the line itself, from the conversation, through an
            out-of-band response.
    """

    after_s: float
    say: str | None = None
    generate: bool = False

    @classmethod
    def parse(cls, value: object) -> StillWorking | None:
        """Build from the ``still_working`` option (a mapping, or None).

        Raises:
            ValueError: One line saying what is wrong with it.
        """
        if value is None or isinstance(value, StillWorking):
            return value
        problem = _still_working_problem(value)
        if problem is not None:
            raise ValueError(problem)
        assert isinstance(value, Mapping)
        return cls(float(value["after_s"]), value.get("say"), bool(value.get("generate", False)))


def _still_working_problem(value: object) -> str | None:
    """What is wrong with a ``still_working`` mapping (one line), or None."""
    if not isinstance(value, Mapping):
        return f"still_working must be a mapping like {{after_s: 3, say: ...}}, got {value!r}"
    unknown = sorted(set(value) - {"after_s", "say", "generate"})
    if unknown:
        return f"still_working has an unknown key {unknown[0]!r}; it takes after_s, say, generate"
    after = value.get("after_s")
    if not isinstance(after, (int, float)) or isinstance(after, bool) or after <= 0:
        return f"still_working.after_s must be a positive number of seconds, got {after!r}"
    say, generate = value.get("say"), value.get("generate", False)
    if say is not None and (not isinstance(say, str) or not say.strip()):
        return f"still_working.say must be a non-empty string, got {say!r}"
    if not isinstance(generate, bool):
        return f"still_working.generate must be true or false, got {generate!r}"
    if (say is None) == (not generate):
        return "still_working needs exactly one of say: <a line> or generate: true"
    return None


@dataclass(frozen=True)
class ToolContext:
    """What a handler that declares a ``context`` parameter receives with each call.

    Attributes:
        call_id: The model's ``call_id`` for this call.
        tool: The tool's name.
        agent: The name of the agent that made the call.
    """

    call_id: str
    tool: str
    agent: str


@dataclass(frozen=True, eq=False)
class Tool:
    """One tool the model can call.

    Attributes:
        name: Unique name, ``^[a-zA-Z0-9_-]{1,64}$``.
        description: What the tool does, for the model (at most 1024 characters).
        parameters: The JSON Schema of the arguments; its root is an object.
        handler: Called with the arguments as keywords (and ``context`` if it asks for
            it); may be async. None for handoff tools, which the runtime performs itself.
        plugin: Distribution that registered the tool (``realtalk-clock``), or
            ``"agents"`` for generated handoff tools.
        plugin_version: That distribution's version.
        handler_path: ``module:function`` of the handler, for humans.
        timeout_s: Seconds before a call is abandoned (None: no limit).
        requires_approval: Ask a person before each call.
        cancellable: Cancel a running call when the user barges in.
        handoff_to: For ``transfer_to_<agent>`` tools, the target agent's name.
        max_output_chars: Longer outputs are cut to fit, in a JSON envelope that says so.
        still_working: Tell the user the call is still running once it runs this long.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: Callable[..., Any] | None
    plugin: str
    plugin_version: str = ""
    handler_path: str = ""
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    requires_approval: bool = False
    cancellable: bool = True
    handoff_to: str | None = None
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    still_working: StillWorking | None = None
    _wants_context: bool = field(default=False, repr=False)
    # Typed tools (realtalk.typedtools): turns checked JSON arguments into the handler's
    # declared types, raising ArgumentProblems; None for tools whose handler takes JSON.
    _prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, repr=False)
    # A jsonschema Draft202012Validator, built on the first call (typed Any: the annotations
    # of a public dataclass must resolve without importing jsonschema).
    _validator: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Refuse a tool the API would refuse (or that could never be called).

        Raises:
            ToolDefinitionError: One line naming the tool and what is wrong with it.
        """
        problem = _definition_problem(self.name, self.description, self.parameters, self.timeout_s,
                                      self.max_output_chars)
        if problem is None and self._wants_context and "context" in self.parameters.get("properties", {}):
            problem = "a parameter named 'context' clashes with the handler's context argument"
        if problem is not None:
            raise ToolDefinitionError(problem if problem.startswith("invalid tool name") else
                                      f"tool {self.name!r}: {problem}", plugin=self.origin)

    def validator(self) -> Any:
        """The ``jsonschema`` Draft 2020-12 validator of ``parameters``: built on the first
        call (shared by every tool with the same schema), reused on every later one."""
        if self._validator is None:
            object.__setattr__(self, "_validator", _compiled(self.parameters))
        return self._validator

    @property
    def origin(self) -> str:
        """``distribution version``, for messages."""
        return f"{self.plugin} {self.plugin_version}".strip()

    def definition(self) -> dict[str, Any]:
        """The tool as sent in ``session.update``'s ``tools`` list."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


def make_tool(
    name: str,
    description: str,
    parameters: Mapping[str, Any],
    handler: Callable[..., Any] | str | None,
    *,
    plugin: str,
    plugin_version: str = "",
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    requires_approval: bool = False,
    cancellable: bool = True,
    handoff_to: str | None = None,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    still_working: StillWorking | Mapping[str, Any] | None = None,
) -> Tool:
    """Build a Tool after checking everything a registration must check.

    Args:
        name: The tool's name.
        description: Its description for the model.
        parameters: JSON Schema (Draft 2020-12) of the arguments; root must be an object.
        handler: A callable, or ``"module:function"`` to import now.
        plugin: The registering distribution's name.
        plugin_version: Its version.
        timeout_s: Seconds before a call is abandoned; None for no limit.
        requires_approval: Ask before each call.
        cancellable: Cancel on barge-in.
        handoff_to: Target agent for generated handoff tools.
        max_output_chars: The longest output sent to the model; at least 100.
        prepare: For typed tools: converts checked arguments into the handler's types.
        still_working: ``{after_s: 3, say: "Still checking..."}`` or ``{after_s: 3,
            generate: true}``: what to tell the user when a call runs that long.

    Raises:
        ToolDefinitionError: The name, description, schema, options or handler are invalid,
            or the handler's signature does not take the schema's properties
            (:func:`signature_problem`).
    """
    origin = f"{plugin} {plugin_version}".strip()

    def fail(message: str) -> ToolDefinitionError:
        return ToolDefinitionError(f"tool {name!r}: {message}", plugin=origin)

    # Checked before the handler is imported: a bad definition is named first.
    problem = _definition_problem(name, description, parameters, timeout_s, max_output_chars)
    if problem is not None:
        raise ToolDefinitionError(problem, plugin=origin) if problem.startswith("invalid tool name") \
            else fail(problem)
    try:
        still = StillWorking.parse(still_working)
    except ValueError as exc:
        raise fail(str(exc)) from None
    handler_path = ""
    if isinstance(handler, str):
        handler_path = handler
        handler = _resolve_handler(handler, fail)
    elif handler is not None:
        if not callable(handler):
            raise fail(f"handler {handler!r} is not callable")
        handler_path = f"{getattr(handler, '__module__', '?')}:{getattr(handler, '__qualname__', '?')}"
    wants_context = handler is not None and _accepts_context(handler)
    if wants_context and "context" in parameters.get("properties", {}):
        raise fail("a parameter named 'context' clashes with the handler's context argument")
    if handler is not None:
        mismatch = signature_problem(handler, parameters)
        if mismatch is not None:
            raise fail(f"handler {handler_path} ({where_defined(handler)}) {mismatch}")
    return Tool(
        name=name,
        description=description,
        parameters=parameters,
        handler=handler,
        plugin=plugin,
        plugin_version=plugin_version,
        handler_path=handler_path,
        timeout_s=float(timeout_s) if timeout_s is not None else None,
        requires_approval=bool(requires_approval),
        cancellable=bool(cancellable),
        handoff_to=handoff_to,
        max_output_chars=max_output_chars,
        still_working=still,
        _wants_context=wants_context,
        _prepare=prepare,
    )


def _definition_problem(name: object, description: object, parameters: object, timeout_s: object,
                        max_output_chars: object) -> str | None:
    """What makes a tool definition invalid (one line), or None; for make_tool and Tool."""
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        return f"invalid tool name {name!r}: use 1-64 letters, digits, '_' or '-' (no spaces)"
    if not isinstance(description, str) or not description.strip():
        return "description is missing"
    if len(description) > MAX_DESCRIPTION:
        return (f"description is {len(description)} characters; the Realtime API allows at most"
                f" {MAX_DESCRIPTION}")
    if not isinstance(parameters, Mapping):
        return "parameters must be a JSON Schema mapping"
    problem = schema_problem(parameters)
    if problem is not None:
        return problem
    if parameters.get("type") != "object":
        return "the root of parameters must be {type: object} (the model sends an object)"
    if timeout_s is not None and (not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool)
                                  or timeout_s <= 0):
        return f"timeout_s must be a positive number, got {timeout_s!r}"
    if (not isinstance(max_output_chars, int) or isinstance(max_output_chars, bool)
            or max_output_chars < MIN_MAX_OUTPUT_CHARS):
        return (f"max_output_chars must be an integer of at least {MIN_MAX_OUTPUT_CHARS},"
                f" got {max_output_chars!r}")
    return None


# --- schemas: checked and compiled once per distinct schema ------------------------------

# Keyed by the schema's canonical JSON: equal schemas (every handoff tool's, a tool copied
# with per-agent overrides, the same plugin loaded for each session) share one entry.
_CHECKED: dict[str, str | None] = {}
_COMPILED: dict[str, Any] = {}
_CACHE_LIMIT = 1024  # distinct schemas; past it the caches start over (a bound, not a tuning)


def _schema_key(schema: Mapping[str, Any]) -> str | None:
    try:
        return json.dumps(schema, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON data (mixed key types, objects): not cached
        return None


_T = TypeVar("_T")


def _remember(cache: dict[str, _T], key: str | None, value: _T) -> _T:
    if key is not None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = value
    return value


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not a valid JSON Schema (Draft 2020-12), in one line, or None.

    The first check of a schema imports jsonschema and validates it against the
    meta-schema; the verdict is remembered, so an equal schema is not checked again, and
    a good one is kept on disk (:mod:`realtalk.cache`) for later processes.
    """
    key = _schema_key(schema)
    if key is not None and key in _CHECKED:
        return _CHECKED[key]
    from . import cache  # good verdicts of earlier runs, on disk: then jsonschema is not imported

    lasting = cache.verdict_key("tool-schema", dict(schema), decided_by=(__file__,))
    if lasting is not None and cache.known_good(lasting):
        return _remember(_CHECKED, key, None)
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as exc:
        problem: str | None = (f"parameters is not a valid JSON Schema at"
                               f" {json_path(list(exc.absolute_path))}: {exc.message}")
    else:
        problem = None
        if lasting is not None:
            cache.remember_good(lasting)
    return _remember(_CHECKED, key, problem)


# The ``format`` values checked in arguments: those jsonschema checks with the standard
# library alone. A fixed list, so that installing jsonschema's optional packages
# (rfc3339-validator...) does not change which arguments a tool accepts.
CHECKED_FORMATS = ("date", "email", "idn-email", "ipv4", "ipv6", "regex", "uuid")


def _compiled(schema: Mapping[str, Any]) -> Any:
    """A validator of ``schema`` (already checked), shared by every equal schema."""
    key = _schema_key(schema)
    if key is not None and key in _COMPILED:
        return _COMPILED[key]
    from jsonschema import Draft202012Validator, FormatChecker

    validator = Draft202012Validator(dict(schema), format_checker=FormatChecker(CHECKED_FORMATS))
    return _remember(_COMPILED, key, validator)


def _resolve_handler(path: str, fail: Callable[[str], ToolDefinitionError]) -> Callable[..., Any]:
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise fail(f"handler {path!r} must look like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - importing runs the module's code, which may raise anything
        raise fail(f"handler {path!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise fail(f"handler {path!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise fail(f"handler {path!r} is not callable")
    return target  # type: ignore[no-any-return]


def _accepts_context(handler: Callable[..., Any]) -> bool:
    try:
        return "context" in inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False


def signature_problem(handler: Callable[..., Any], parameters: Mapping[str, Any]) -> str | None:
    """Why ``handler`` cannot be called with the arguments ``parameters`` describes, or None.

    Every property of the schema must be a keyword the handler takes (``**kwargs`` takes
    any), and every parameter the handler requires must be a property of the schema
    (``context`` aside). Builtins written in C (``print``) are not checked: their
    signatures are often incomplete. Checked at registration, so ``realtalk plugins`` and
    ``realtalk check`` report a renamed parameter, not the first call.
    """
    if inspect.isbuiltin(handler):
        return None
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return None
    keywords = [p.name for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "context"]
    any_keyword = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    properties = parameters.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    if not any_keyword:
        for name in properties:
            if name not in keywords:
                return (f"takes no parameter {name!r}, a property of the schema{did_you_mean(name, keywords)};"
                        f" its parameters: {', '.join(keywords) or 'none'}")
    for parameter in signature.parameters.values():
        if parameter.default is not parameter.empty or parameter.name == "context":
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY:
            return f"requires positional-only parameter {parameter.name!r}; tools are called with keywords"
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY) \
                and parameter.name not in properties:
            return (f"requires parameter {parameter.name!r}, which the schema does not define"
                    f"{did_you_mean(parameter.name, list(properties))}; schema properties:"
                    f" {', '.join(properties) or 'none'}")
    return None


def where_defined(function: Callable[..., Any]) -> str:
    """``path/to/file.py:12`` where a function is defined, or its module when unknown."""
    target = inspect.unwrap(function)
    code = getattr(target, "__code__", None)
    try:
        file = inspect.getsourcefile(target)
    except TypeError:
        file = None
    if file is None or code is None:
        return str(getattr(function, "__module__", "?"))
    return f"{file}:{code.co_firstlineno}"


def load_tool_definitions(
    path: str | Path, *, plugin: str, plugin_version: str = ""
) -> list[Tool]:
    """Read a plugin's tools YAML file and build its tools.

    The file holds ``tools:``, a list of mappings with ``name``, ``description``,
    ``parameters``, ``handler`` (``module:function``) and optional ``timeout_s``,
    ``requires_approval``, ``cancellable``, ``max_output_chars`` and ``still_working``.

    Raises:
        ToolDefinitionError: The file or one of its tools is invalid (with file and line).
    """
    from .exceptions import ConfigError

    origin = f"{plugin} {plugin_version}".strip()
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        raise ToolDefinitionError(str(exc), plugin=origin) from None
    if isinstance(doc.data, dict) and "mcp_servers" in doc.data and "tools" not in doc.data:
        return []  # a file of MCP servers only (realtalk.toolsources reads them)
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get("tools"), list):
        raise ToolDefinitionError(
            f"{doc.file}:{doc.line_of(())}: expected a mapping with a 'tools' list", plugin=origin
        )
    tools = []
    for index, entry in enumerate(doc.data["tools"]):
        where = f"{doc.file}:{doc.line_of(('tools', index))}"
        if not isinstance(entry, dict):
            raise ToolDefinitionError(f"{where}: each tool must be a mapping", plugin=origin)
        unknown = sorted(set(entry) - _TOOL_KEYS)
        if unknown:
            hint = did_you_mean(unknown[0], _TOOL_KEYS)
            raise ToolDefinitionError(
                f"{doc.file}:{doc.line_of(('tools', index, unknown[0]))}: unknown key"
                f" {unknown[0]!r}{hint}",
                plugin=origin,
            )
        missing = [k for k in ("name", "description") if k not in entry]
        if "handler" not in entry and "http" not in entry:  # Python, or an HTTP request
            missing.append("handler (or http)")
        if missing:
            raise ToolDefinitionError(f"{where}: missing {', '.join(missing)}", plugin=origin)
        if "handler" in entry and "http" in entry:
            raise ToolDefinitionError(f"{doc.file}:{doc.line_of(('tools', index, 'http'))}: a tool has"
                                      " handler: or http:, not both", plugin=origin)
        parameters = entry.get("parameters", {"type": "object", "properties": {}})
        handler = entry.get("handler")
        http = _http_call(entry, parameters, doc, index, origin) if "http" in entry else None
        if http is not None:
            handler = http.call
        try:
            tools.append(
                make_tool(
                    entry["name"],
                    entry["description"],
                    parameters,
                    handler,
                    plugin=plugin,
                    plugin_version=plugin_version,
                    timeout_s=entry.get("timeout_s", DEFAULT_TIMEOUT_S),
                    requires_approval=entry.get("requires_approval", False),
                    cancellable=entry.get("cancellable", True),
                    max_output_chars=entry.get("max_output_chars", DEFAULT_MAX_OUTPUT_CHARS),
                    still_working=entry.get("still_working"),
                )
            )
        except ToolDefinitionError as exc:
            raise ToolDefinitionError(f"{where}: {exc.message}", plugin=origin) from None
        if http is not None:  # shown by `realtalk tools`: the templates, never a value
            from .httptools import as_http_tool

            tools[-1] = as_http_tool(tools[-1])
    return tools


def _http_call(entry: dict[str, Any], parameters: Any, doc: Any, index: int, origin: str) -> HttpCall:
    """The handler of a tool with an ``http:`` section (:mod:`realtalk.httptools`), checked."""
    from .httptools import HttpCall, SpecProblem, parse_spec, with_location

    def line(path: tuple[object, ...]) -> int | None:
        return doc.line_of(("tools", index, "http", *path))  # type: ignore[no-any-return]

    try:
        spec = parse_spec(entry["http"], parameters if isinstance(parameters, Mapping) else {})
    except SpecProblem as problem:
        raise ToolDefinitionError(f"{doc.file}:{line(problem.path)}: tool {entry['name']!r}: {problem.message}",
                                  plugin=origin) from None
    return HttpCall(with_location(spec, doc.file, line))


class ToolRegistry:
    """Every installed tool by name. A name can be taken only once.

    When a second distribution registers a taken name, the first keeps it, but the
    conflict is remembered (:meth:`conflicts`): an agent that uses such a name is refused,
    since nobody can tell which of the two tools it means.
    """

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._conflicts: dict[str, list[Tool]] = {}
        # Openers of tool sources by kind ("mcp"), from plugins' register_tool_sources.
        self.sources: dict[str, Any] = {}
        # A session's overlay only: each MCP server's tools (realtalk.toolsources).
        self._source_tools: dict[Any, list[Tool]] = {}

    def with_sources(self, tools: Mapping[Any, list[Tool]]) -> ToolRegistry:
        """A copy of this registry that also holds each server's tools (keyed by its
        :class:`~realtalk.toolsources.McpServerSpec`), for one session: this one is not changed."""
        overlay = ToolRegistry()
        overlay._tools, overlay._conflicts, overlay.sources = self._tools, self._conflicts, self.sources
        overlay._source_tools = {**self._source_tools, **tools}
        return overlay

    def source_tools(self, server: Any) -> list[Tool]:
        """The tools of one started server (empty unless this is a session's overlay)."""
        return self._source_tools.get(server, [])

    def add(self, tool: Tool) -> None:
        """Add a tool.

        Raises:
            ToolDefinitionError: The name is taken; the message names both plugins.
        """
        existing = self._tools.get(tool.name)
        if existing is not None:
            claimants = self._conflicts.get(tool.name, [existing])
            if all(t.plugin != tool.plugin for t in claimants):
                self._conflicts[tool.name] = [*claimants, tool]
            raise ToolDefinitionError(
                f"tool name {tool.name!r} is already registered by {existing.origin};"
                f" rename one of them or uninstall/block a plugin (--no-plugin {tool.plugin})",
                plugin=tool.origin,
            )
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or None."""
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        """All tool names, sorted."""
        return sorted(self._tools)

    def conflicts(self, name: str) -> list[str]:
        """The origins (``distribution version``) of every distribution that registered
        ``name``, in registration order, when more than one did; else ``[]``."""
        return [t.origin for t in self._conflicts.get(name, [])]

    def ambiguous(self, name: str) -> str:
        """The message for a tool name that several distributions registered."""
        claimants = self._conflicts.get(name, [])
        origins = ", ".join(t.origin for t in claimants[:-1]) + f" and {claimants[-1].origin}"
        leave_out = " or ".join(f"--no-plugin {t.plugin}" for t in reversed(claimants))
        return (
            f"tool {name!r} is ambiguous: it is registered by {origins}; leave all but one"
            f" out with {leave_out}, or list the plugins to load in REALTALK_PLUGINS"
        )

    def suggest(self, name: str) -> str:
        """A ``(did you mean ...?)`` hint for a misspelled tool name, or ``""``."""
        return did_you_mean(name, self._tools)

    def unknown(self, name: str) -> str:
        """The message for a tool name nobody registered: a hint and what is installed."""
        return f"unknown tool {name!r}{self.suggest(name)}; available: {self.describe_available()}"

    def describe_available(self) -> str:
        """``get_time (realtalk-clock), ...`` for error messages."""
        if not self._tools:
            return "no tools are installed (pip install a realtalk-* plugin)"
        return ", ".join(f"{t.name} ({t.plugin})" for t in self)


# --- argument validation -----------------------------------------------------------------


class ArgumentProblems(ValueError):
    """Arguments a typed tool cannot convert to its handler's types (see ``Tool._prepare``).

    Attributes:
        problems: ``{"path": "$.date", "message": "..."}`` for each problem.
    """

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class ArgumentCheck:
    """The result of :func:`validate_arguments`: either ``arguments`` or ``error``.

    Attributes:
        arguments: The parsed arguments when valid (JSON values).
        error: A JSON text for ``function_call_output`` telling the model what was wrong.
        values: The handler's keyword arguments when valid: ``arguments`` converted to
            the declared types for a typed tool (a ``date``, a dataclass), else
            ``arguments`` itself.
    """

    arguments: dict[str, Any] | None
    error: str | None
    values: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the arguments are valid."""
        return self.error is None


def validate_arguments(tool: Tool, raw: str) -> ArgumentCheck:
    """Parse the model's ``arguments`` string and check it against the tool's schema.

    Lenient where it is safe: an empty string means ``{}``, and a JSON string that
    itself holds a JSON object (double-encoded) is unwrapped. Everything else must match
    the schema exactly, ``format`` included (the formats in ``CHECKED_FORMATS``). A
    typed tool's arguments are then converted to its handler's types; a value that
    cannot be converted is reported like a schema error.

    Returns:
        ArgumentCheck with the arguments, or with an error text that names the failing
        JSON path and repeats the schema, so the model can call again correctly.
    """
    text = raw.strip() if isinstance(raw, str) else raw
    if text == "":
        value: Any = {}
    else:
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            return ArgumentCheck(None, _argument_error(
                tool, [{"path": "$", "message": f"arguments are not valid JSON: {exc}"}]
            ))
        if isinstance(value, str):
            try:
                inner = json.loads(value)
            except json.JSONDecodeError:
                inner = None
            if isinstance(inner, dict):
                value = inner
    if not isinstance(value, dict):
        return ArgumentCheck(None, _argument_error(
            tool, [{"path": "$", "message": f"arguments must be a JSON object, got {type(value).__name__}"}]
        ))
    validator = tool.validator()
    errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        return ArgumentCheck(None, _argument_error(tool, [_describe(e) for e in errors[:5]]))
    if tool._prepare is None:
        return ArgumentCheck(value, None, value)
    try:
        values = tool._prepare(value)
    except ArgumentProblems as problems:
        return ArgumentCheck(None, _argument_error(tool, problems.problems[:5]))
    return ArgumentCheck(value, None, values)


def _describe(error: ValidationError) -> dict[str, str]:
    return {"path": json_path(list(error.absolute_path)), "message": error.message}


def _argument_error(tool: Tool, problems: list[dict[str, str]]) -> str:
    return json.dumps({
        "error": f"invalid arguments for {tool.name}",
        "problems": problems,
        "expected_schema": tool.parameters,
        "hint": f"Call {tool.name} again with arguments that match expected_schema.",
    }, ensure_ascii=False)


# --- outcomes ----------------------------------------------------------------------------



@dataclass(frozen=True)
class ToolOutcome:
    """What came of one call.

    Attributes:
        output: The string for ``function_call_output``.
        status: ``ok``, ``invalid_arguments``, ``error``, ``timeout``, ``cancelled``,
            ``refused`` (approval denied) or ``unknown_tool``.
        duration_s: Wall time of the call.
        note: A warning for the person running the session, naming the tool, or None:
            the handler overran its timeout and its thread still runs, blocked the event
            loop, ignored cancellation, or its output was cut to ``max_output_chars``.
    """

    output: str
    status: Literal["ok", "invalid_arguments", "error", "timeout", "cancelled", "refused", "unknown_tool"]
    duration_s: float = 0.0
    note: str | None = None


def format_output(result: Any) -> str:
    """Turn a handler's return value into the output string sent to the model.

    Strings pass through; None becomes ``{"ok": true}``; anything JSON can encode
    (dicts, lists, numbers) becomes JSON; other objects use ``str()``.

    Raises:
        Exception: Whatever the value's own ``__str__`` raises; :func:`run_tool`
            reports that as the tool's error.
    """
    if isinstance(result, str):
        return str.__str__(result)  # a plain str, whatever subclass the handler returned
    if result is None:
        return '{"ok": true}'
    try:
        return json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # keys JSON cannot encode, circular references
        return str(result)


def cap_output(output: str, limit: int) -> str:
    """``output`` if it has at most ``limit`` characters, else a JSON envelope that does.

    The envelope, ``{"truncated": true, "original_chars": N, "output": "<first K
    characters>"}``, is valid JSON whatever was cut, and tells the model it saw only
    the beginning. ``limit`` must be at least ``MIN_MAX_OUTPUT_CHARS``.
    """
    if len(output) <= limit:
        return output

    def envelope(keep: int) -> str:
        return json.dumps(
            {"truncated": True, "original_chars": len(output), "output": output[:keep]},
            ensure_ascii=False,
        )

    # Escaping (quotes, control characters) can make the envelope longer than its text:
    # try the common case, then search for the longest prefix that fits.
    low, high = 0, limit - len(envelope(0))
    if len(envelope(high)) <= limit:
        return envelope(high)
    while low < high:
        middle = (low + high + 1) // 2
        if len(envelope(middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return envelope(low)


class ToolFailed(Exception):
    """Raised by a handler to fail its call with ``output`` as the model's text, exactly.

    The call's status is ``error`` (shown as failed on the console, in ``--json`` and the
    turn's results), and the output is sent as it is, without the ``TOOL failed:
    TYPE:`` prefix an unexpected exception gets: for failures the tool itself explains,
    such as an HTTP tool's ``{"error": "HTTP 404 Not Found", "status": 404, ...}``.
    """

    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = str(output)


def build_validators_soon(tools: Iterable[Tool]) -> None:
    """Build the argument validators of ``tools`` in a daemon thread, now.

    The first validator of a process imports jsonschema (about 70 ms on a small machine);
    built on the event loop at the first tool call, that would stall audio and every other
    task mid-conversation. A session starts this before it connects, so the import runs
    beside the connection's own wait. A call that comes first simply builds its own (the
    import lock makes it wait for the thread's import, never longer than doing it itself).
    """
    import threading

    pending = [tool for tool in tools if tool._validator is None]
    if not pending:
        return

    def build() -> None:
        for tool in pending:
            try:
                tool.validator()
            except Exception:
                log.debug("building the validator of %s failed", tool.name, exc_info=True)

    threading.Thread(target=build, name="realtalk-validators", daemon=True).start()


def error_output(message: str) -> str:
    """An error text for the model, as JSON."""
    return json.dumps({"error": message}, ensure_ascii=False)


def __getattr__(name: str) -> Any:
    # run_tool and the thread pool moved to realtalk.toolcalls (they need asyncio);
    # imports from here keep working without loading asyncio for the data types.
    if name in ("run_tool", "ToolThreads", "ToolThreadsBusy", "default_threads"):
        from . import toolcalls

        return getattr(toolcalls, name)
    raise AttributeError(f"module 'realtalk.tools' has no attribute {name!r}")

