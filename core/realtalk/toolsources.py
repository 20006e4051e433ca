"""Tool sources: tools that exist only while a session runs (MCP servers).

An agent (or a tools file it loads) lists MCP servers under ``mcp_servers:``. Core reads
and checks that list (:class:`McpServerSpec`, :func:`server_problems`) and owns the
lifecycle; a plugin (``realtalk-mcp``) owns the protocol: it registers an *opener* for
the kind ``"mcp"`` through the ``register_tool_sources`` hook, and core calls it for each
server when a session starts (:func:`open_sources`), before the first
``session.update``. An opener returns an :class:`OpenSource`: the server's tools, as
ordinary :class:`~realtalk.tools.Tool` objects whose handlers call the server, and a
bounded ``aclose``.

The rules:

- Servers are per session: every server any agent of the graph lists is opened at
  session start (so a handoff finds its tools), each bounded by its
  ``startup_timeout_s``, and closed, bounded, when the session closes.
- The shared plugin registry is never changed: the session gets an overlay
  (:meth:`~realtalk.tools.ToolRegistry.with_sources`) that knows which server's tools
  each agent may call; an agent that does not list a server never sees its tools.
- A server tool whose name another tool of the same agent has is an error suggesting
  ``prefix``.
- Without a plugin for ``"mcp"``, agents with servers are refused with one line
  (:data:`MCP_PLUGIN_MISSING`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .envrefs import reference_problem, unset_names
from .exceptions import ConfigError
from .tools import DEFAULT_TIMEOUT_S, StillWorking

if TYPE_CHECKING:
    from .agents import AgentGraph
    from .tools import Tool, ToolRegistry

__all__ = [
    "MCP_PLUGIN_MISSING", "McpServerSpec", "McpToolOptions", "OpenSource", "SourceSet", "ToolSourceOpener",
    "ToolSourceRegistrar", "open_sources", "parse_servers", "probe_sources", "server_problems",
]

log = logging.getLogger(__name__)

MCP_PLUGIN_MISSING = "MCP servers need the realtalk-mcp plugin: pip install realtalk-mcp"
DEFAULT_STARTUP_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
"""How long closing all of a session's servers may take, together."""
_STARTUP_MARGIN_S = 2.0  # core's backstop beyond an opener's own startup bound

Problem = tuple[list[object], str]


@dataclass(frozen=True)
class McpToolOptions:
    """Per-tool settings of one MCP tool (None: the server's default)."""

    requires_approval: bool | None = None
    timeout_s: float | None = None
    cancellable: bool | None = None
    still_working: StillWorking | None = None
    no_timeout: bool = False  # ``timeout_s: null`` given: no limit


@dataclass(frozen=True)
class McpServerSpec:
    """One MCP server as declared (plain data; ``${NAME}`` references not expanded).

    Attributes:
        name: The server's name, its tools' origin (``mcp:NAME``).
        command: Program to start over stdio, or None for an HTTP server.
        args: Its arguments.
        env: Environment variables added to the server's (values may hold ``${NAME}``).
        cwd: Its working directory (resolved against the declaring file's folder).
        url: Streamable HTTP endpoint, or None for a stdio server.
        headers: HTTP headers (values may hold ``${NAME}``).
        allowed_tools: Only these tools (the server's names), or None for all.
        prefix: Prepended to each tool's name.
        startup_timeout_s: Bound on starting the server and listing its tools.
        timeout_s: Default per-call timeout (None: no limit).
        tools: Per-tool settings, by the server's tool name.
        file: The file that declares it (None: Python).
        line: Its line there.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    allowed_tools: tuple[str, ...] | None = None
    prefix: str = ""
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    tools: tuple[tuple[str, McpToolOptions], ...] = ()
    file: Path | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)

    @property
    def transport(self) -> str:
        """``stdio`` or ``http``."""
        return "stdio" if self.command is not None else "http"

    @property
    def plugin(self) -> str:
        """The origin its tools carry (``mcp:NAME``)."""
        return f"mcp:{self.name}"

    @property
    def where(self) -> str:
        """``file:line: `` of its declaration, or ``""``."""
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}: " if self.line else f"{self.file}: "

    def describe(self) -> str:
        """``mcp server 'files' (python server.py)``, for messages (no header or env values)."""
        target = " ".join([self.command or "", *self.args]) if self.command is not None else self.url
        return f"mcp server {self.name!r} ({target})"

    def options(self, tool: str) -> McpToolOptions:
        """The per-tool settings of ``tool`` (the server's name)."""
        return dict(self.tools).get(tool, McpToolOptions())


def server_problems(value: object) -> list[Problem]:
    """What the JSON Schema cannot say about an ``mcp_servers`` list: ``command`` or
    ``url`` (exactly one), keys of the other transport, ``${NAME}`` syntax, duplicate
    names, per-tool settings. Each problem is (path under the list, message)."""
    if not isinstance(value, list):
        return []
    found: list[Problem] = []
    seen: set[str] = set()
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        if isinstance(name, str):
            if name in seen:
                found.append(([index, "name"], f"two MCP servers are named {name!r}; give each its own name"))
            seen.add(name)
        found += [([index, *parts], message) for parts, message in
                  [*_transport_problems(entry), *_reference_problems(entry), *_tool_problems(entry)]]
    return found


def _transport_problems(entry: dict[str, Any]) -> list[Problem]:
    has_command, has_url = "command" in entry, "url" in entry
    if has_command == has_url:
        return [([], "an MCP server needs either command (stdio) or url (streamable HTTP), not "
                     + ("both" if has_command else "neither"))]
    kind = "a stdio server (command)" if has_command else "an HTTP server (url)"
    others = ("headers",) if has_command else ("args", "env", "cwd")
    return [([key], f"{key} does not apply to {kind}") for key in others if key in entry]


def _reference_problems(entry: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    for key in ("env", "headers"):
        values = entry.get(key)
        for name, text in (values.items() if isinstance(values, dict) else ()):
            problem = reference_problem(text) if isinstance(text, str) else None
            if problem is not None:
                found.append(([key, name], problem))
    return found


def _tool_problems(entry: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    tools, allowed = entry.get("tools"), entry.get("allowed_tools")
    for tool, options in (tools.items() if isinstance(tools, dict) else ()):
        if isinstance(allowed, list) and tool not in allowed:
            found.append((["tools", tool], f"tool {tool!r} is not in allowed_tools"))
        still = options.get("still_working") if isinstance(options, dict) else None
        if still is not None:
            try:
                StillWorking.parse(still)
            except ValueError as exc:
                found.append((["tools", tool, "still_working"], str(exc)))
    return found


def parse_servers(value: Sequence[Mapping[str, Any]], *, file: Path | None = None,
                  line_of: Callable[[Sequence[object]], int | None] | None = None,
                  parts: Sequence[object] = ("mcp_servers",)) -> tuple[McpServerSpec, ...]:
    """Build the specs of a checked ``mcp_servers`` list (:func:`server_problems` and the
    schema passed). ``cwd`` is resolved against ``file``'s folder."""
    specs = []
    for index, entry in enumerate(value):
        tools = []
        for tool, options in (entry.get("tools") or {}).items():
            tools.append((tool, McpToolOptions(
                requires_approval=options.get("requires_approval"),
                timeout_s=options.get("timeout_s"),
                cancellable=options.get("cancellable"),
                still_working=StillWorking.parse(options.get("still_working")),
                no_timeout="timeout_s" in options and options["timeout_s"] is None,
            )))
        cwd = entry.get("cwd")
        if cwd is not None and file is not None:
            cwd = str(file.parent / cwd)
        allowed = entry.get("allowed_tools")
        specs.append(McpServerSpec(
            name=entry["name"],
            command=entry.get("command"),
            args=tuple(entry.get("args", ())),
            env=tuple((entry.get("env") or {}).items()),
            cwd=cwd,
            url=entry.get("url"),
            headers=tuple((entry.get("headers") or {}).items()),
            allowed_tools=None if allowed is None else tuple(allowed),
            prefix=entry.get("prefix", ""),
            startup_timeout_s=float(entry.get("startup_timeout_s", DEFAULT_STARTUP_TIMEOUT_S)),
            timeout_s=entry.get("timeout_s", DEFAULT_TIMEOUT_S),
            tools=tuple(tools),
            file=file,
            line=line_of([*parts, index]) if line_of is not None else None,
        ))
    return tuple(specs)


def plain_servers(value: Iterable[McpServerSpec | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``mcp_servers=`` given to :func:`realtalk.Agent` as the mappings a file holds."""
    out: list[dict[str, Any]] = []
    for entry in value:
        if isinstance(entry, McpServerSpec):
            data: dict[str, Any] = {"name": entry.name}
            for key in ("command", "cwd", "url"):
                if getattr(entry, key) is not None:
                    data[key] = getattr(entry, key)
            for key, pairs in (("env", entry.env), ("headers", entry.headers)):
                if pairs:
                    data[key] = dict(pairs)
            if entry.args:
                data["args"] = list(entry.args)
            if entry.allowed_tools is not None:
                data["allowed_tools"] = list(entry.allowed_tools)
            if entry.prefix:
                data["prefix"] = entry.prefix
            data["startup_timeout_s"] = entry.startup_timeout_s
            data["timeout_s"] = entry.timeout_s
            if entry.tools:
                data["tools"] = {name: _plain_options(o) for name, o in entry.tools}
            out.append(data)
        else:
            out.append(dict(entry))
    return out


def _plain_options(options: McpToolOptions) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in (("requires_approval", options.requires_approval),
                                              ("timeout_s", options.timeout_s),
                                              ("cancellable", options.cancellable)) if v is not None}
    if options.no_timeout:
        data["timeout_s"] = None
    if options.still_working is not None:
        still = options.still_working
        data["still_working"] = {"after_s": still.after_s, **({"say": still.say} if still.say else {}),
                                 **({"generate": True} if still.generate else {})}
    return data


# -- the extension point --------------------------------------------------------------


class OpenSource(Protocol):
    """A started tool source (one MCP server), as an opener returns it."""

    @property
    def tools(self) -> Sequence[Tool]:
        """Its tools, built with :func:`~realtalk.tools.make_tool` (handlers call the server)."""

    @property
    def warnings(self) -> Sequence[str]:
        """What was left out while listing (a tool with an invalid schema), one line each."""

    async def aclose(self) -> None:
        """Stop the server (bounded; idempotent)."""


ToolSourceOpener = Callable[[McpServerSpec, Callable[[str], None]], Awaitable[OpenSource]]
"""``opener(spec, warn)``: start one server and list its tools, bounded by
``spec.startup_timeout_s``; ``warn(message)`` reports later trouble (a crash) as a session
``warning``. Raises an exception with a one-line message when the server cannot start."""


class ToolSourceRegistrar:
    """The callback a ``register_tool_sources`` hook gets: ``register(kind, opener)``."""

    def __init__(self, sources: dict[str, ToolSourceOpener], origin: str) -> None:
        self._sources = sources
        self._origin = origin

    def __call__(self, kind: str, opener: ToolSourceOpener) -> None:
        """Provide the opener of ``kind`` (``"mcp"``); the first plugin to register a kind keeps it.

        Raises:
            ValueError: Another plugin provides ``kind`` already.
        """
        if kind in self._sources:
            raise ValueError(f"tool source {kind!r} is provided by another plugin already")
        self._sources[kind] = opener


# -- the lifecycle --------------------------------------------------------------------


def servers_of(graph: AgentGraph, start: str | None = None) -> list[McpServerSpec]:
    """Every server the agents reachable from ``start`` list (all agents' when None),
    once each, in order. A directory of agents served by ``realtalk serve`` starts, per
    caller, only the servers of the agent the caller talks to and its handoff targets."""
    return list(dict.fromkeys(s for a in graph.reachable(start) for s in a.mcp_servers))


def missing_plugin_problems(graph: AgentGraph, registry: ToolRegistry) -> list[ConfigError]:
    """One problem per agent with servers when no plugin opens ``"mcp"``."""
    if "mcp" in registry.sources:
        return []
    return [ConfigError(MCP_PLUGIN_MISSING, file=a.file, line=a.mcp_servers[0].line if a.file else None)
            for a in graph.agents.values() if a.mcp_servers]


@dataclass
class SourceSet:
    """The servers one session opened, and the registry overlay that holds their tools."""

    registry: ToolRegistry
    opened: list[OpenSource]
    warnings: list[str]
    specs: list[McpServerSpec] = field(default_factory=list)  # the servers started, in order

    def join(self, later: SourceSet) -> None:
        """Take in the servers started later (``Session.switch_agent`` to an agent whose
        servers were not reachable from the first one); ``later`` was built on ours."""
        self.registry = later.registry
        self.opened += later.opened
        self.specs += later.specs
        self.warnings += later.warnings

    async def aclose(self) -> None:
        """Close every server, together, within :data:`CLOSE_TIMEOUT_S` (idempotent)."""
        import asyncio  # here: the data types above are reached from the sans-I/O protocol

        opened, self.opened = self.opened, []
        if not opened:
            return
        tasks = [asyncio.ensure_future(s.aclose()) for s in opened]
        done, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("closing a tool source failed", exc_info=task.exception())


async def open_sources(graph: AgentGraph, registry: ToolRegistry, warn: Callable[[str], None], *,
                       start: str | None = None, skip: Sequence[McpServerSpec] = ()) -> SourceSet | None:
    """Start the servers the agents reachable from ``start`` list (every agent's when
    None), except those in ``skip`` (already started), and build the session's registry.

    Returns:
        None when no agent lists a server; else the opened servers and the overlay.

    Raises:
        ConfigError: No plugin opens MCP servers, a server could not start (naming it
            and where it is declared), or one of its tools collides with another tool of
            an agent (suggesting ``prefix``). Servers already started are closed first.
    """
    import asyncio

    specs = [spec for spec in servers_of(graph, start) if spec not in skip]
    if not specs:
        return None
    opener = registry.sources.get("mcp")
    if opener is None:
        raise ConfigError(MCP_PLUGIN_MISSING)
    tasks = [asyncio.ensure_future(_open_one(opener, spec, warn)) for spec in specs]
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:  # cancelled (Ctrl-C): every server started so far is closed
        for task in tasks:
            task.cancel()
        await _close_started(tasks, registry)
        raise
    opened = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    sources = SourceSet(registry, opened, [], list(specs))
    if failed:
        await sources.aclose()
        raise failed[0]
    by_server: dict[McpServerSpec, list[Tool]] = {}
    for spec, source in zip(specs, opened):
        by_server[spec] = list(source.tools)
        sources.warnings += [spec.where + w for w in source.warnings]
    sources.registry = registry.with_sources(by_server)
    try:
        for agent in graph.reachable(start):
            graph.tools_for(agent, sources.registry)  # collisions, before anything connects
    except ConfigError:
        await sources.aclose()
        raise
    return sources


async def _open_one(opener: ToolSourceOpener, spec: McpServerSpec, warn: Callable[[str], None]) -> OpenSource:
    import asyncio

    from .waits import within

    bound = spec.startup_timeout_s + _STARTUP_MARGIN_S
    try:
        return await within(opener(spec, warn), bound)
    except asyncio.TimeoutError:
        raise ConfigError(f"{spec.describe()} did not start within {spec.startup_timeout_s:g} s"
                          " (startup_timeout_s)", file=spec.file, line=spec.line) from None
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - an opener's failure is one line naming the server
        raise ConfigError(f"{spec.describe()} could not start: {exc}", file=spec.file, line=spec.line) from None


async def _close_started(tasks: Sequence[Any], registry: ToolRegistry) -> None:
    """Close the servers whose start finished despite the cancellation (bounded)."""
    import asyncio

    with contextlib.suppress(BaseException):
        await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
    started = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
    await SourceSet(registry, started, []).aclose()


def probe_sources(graph: AgentGraph, registry: ToolRegistry,
                  note: Callable[[str], None]) -> tuple[ToolRegistry, list[ConfigError], list[str]]:
    """Start the graph's servers once, list their tools and stop them (``realtalk check``
    and ``realtalk tools --agent``), each bounded by its ``startup_timeout_s``.

    Args:
        note: Told, before anything starts, which servers are started and for how long.

    Returns:
        The registry with their tools (``registry`` itself when there is nothing to start
        or no plugin to start it), the problems (a server that did not start, a name
        collision), and the warnings (tools left out).
    """
    import asyncio

    specs = servers_of(graph)
    if not specs or "mcp" not in registry.sources:
        return registry, [], []
    unset = [line for spec in specs for line in unset_references(spec)]
    if unset:  # they would not start: say what is missing instead
        return registry, [], [*unset, "MCP servers not started to check their tools: set the variables above"]
    for spec in specs:
        note(f"starting MCP server {spec.name!r} to list its tools (at most {spec.startup_timeout_s:g} s)")

    async def probe() -> tuple[ToolRegistry, list[ConfigError], list[str]]:
        later: list[str] = []
        try:
            sources = await open_sources(graph, registry, later.append)
        except ConfigError as exc:
            return registry, [exc], later
        assert sources is not None
        await sources.aclose()
        return sources.registry, [], [*sources.warnings, *later]

    return asyncio.run(probe())


def unset_references(spec: McpServerSpec, environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per ``${NAME}`` (without a default) of ``env``/``headers`` that is unset."""
    return [f"{spec.where}{spec.describe()}: {key}.{name} uses ${{{var}}}, which is not set"
            for key, pairs in (("env", spec.env), ("headers", spec.headers)) for name, text in pairs
            for var in unset_names(text, environ)]


def source_tools(graph: AgentGraph, registry: ToolRegistry) -> list[Tool]:
    """Every tool of the graph's started servers (a registry :func:`probe_sources` returned)."""
    return [t for spec in servers_of(graph) for t in registry.source_tools(spec)]
