"""Finding and loading plugins: one pluggy manager per runtime, no global state.

:func:`load_plugins` reads the ``realtalk`` entry-point group, applies the allow list
(``REALTALK_PLUGINS``, comma-separated distribution names; set but empty means none) and
the block list (``--no-plugin NAME``), registers each plugin module, checks its hooks
with ``check_pending()`` (a misspelled hook name gets a did-you-mean), and calls its
registration hooks, each with a callback bound to its distribution: ``register_tools``
(:class:`Registrar`), ``register_agents`` (:class:`AgentRegistrar`) and
``register_commands`` (:class:`CommandRegistrar`). A plugin that fails at any step is
recorded with its distribution name, version and reason, and the others keep working.
A name in the allow or block list that is no installed plugin distribution is a problem
too, listing the installed ones.

:meth:`PluginSet.observers` calls the ``observe_session`` hooks of a session that opens;
the listeners they return get every event, guarded (:class:`_Observer`): the per-event
path holds no pluggy call.

Each call builds a new manager and a new :class:`PluginSet`. Sessions opened by
:func:`realtalk.open_session` share one per process instead (:func:`shared_plugins`):
discovering entry points reads every installed distribution's metadata, which costs more
than the rest of opening a session. That PluginSet is loaded again when ``sys.path``, a
``site-packages`` directory on it (``pip install``), ``REALTALK_PLUGINS`` or the block list
changes;
:func:`refresh_plugins` forgets it explicitly (after editing a plugin's tools YAML).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .exceptions import PluginError, ToolDefinitionError

if TYPE_CHECKING:
    from .tools import Tool, ToolRegistry

# realtalk.tools (with yaml) is imported when a tool is registered, not with this module:
# `realtalk --help` loads plugins only for their commands. Equal to the constants of
# realtalk.tools (tests/test_plugins.py checks).
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_OUTPUT_CHARS = 16_000

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentRegistrar",
    "CommandRegistrar",
    "PluginAgent",
    "PluginCommand",
    "PluginInfo",
    "PluginSet",
    "Registrar",
    "SessionInfo",
    "load_plugins",
    "refresh_plugins",
    "shared_plugins",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "realtalk"
ALLOW_ENV = "REALTALK_PLUGINS"


@dataclass
class PluginInfo:
    """One discovered plugin.

    Attributes:
        distribution: Its distribution name (``realtalk-clock``).
        version: The distribution's version.
        entry_point: The entry-point name (by convention the module name).
        module: The module the entry point names.
        hooks: The hooks it implements.
        tools: Names of the tools it registered.
        agents: Names of the agents it registered (known once :meth:`PluginSet.agents`
            has read them).
        commands: Names of the ``realtalk`` subcommands it added.
        error: Why it failed to load or register, or None.
    """

    distribution: str
    version: str
    entry_point: str
    module: str
    hooks: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def origin(self) -> str:
        """``distribution version``."""
        return f"{self.distribution} {self.version}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": self.entry_point,
            "module": self.module,
            "hooks": self.hooks,
            "tools": self.tools,
            "agents": self.agents,
            "commands": self.commands,
            "error": self.error,
        }


class Registrar:
    """The ``register`` callback a plugin's ``register_tools`` hook receives.

    Bound to one distribution, so every tool it registers records where it came from.
    """

    def __init__(self, registry: ToolRegistry, info: PluginInfo, problems: list[PluginError]):
        self._registry = registry
        self._info = info
        self._problems = problems

    def __call__(
        self,
        name: str | Callable[..., Any],
        *,
        description: str | None = None,
        handler: Callable[..., Any] | str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        requires_approval: bool = False,
        cancellable: bool = True,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        still_working: Mapping[str, Any] | None = None,
        http: Mapping[str, Any] | None = None,
    ) -> None:
        """Register one tool defined in code: a typed function (``register(find_table)``,
        see :func:`realtalk.tool`), or a name with a description, schema and handler (or
        an HTTP request, ``http=``).

        Args:
            name: A typed function (its options come from ``@realtalk.tool(...)``), or
                the tool's name.
            description: What it does, for the model.
            handler: A callable or ``"module:function"``; may be async.
            parameters: JSON Schema of the arguments (default: no arguments).
            timeout_s: Seconds before a call is abandoned; None for no limit.
            requires_approval: Ask a person before each call.
            cancellable: Cancel a running call on barge-in.
            max_output_chars: The longest output sent to the model (default 16,000);
                a longer one is cut, in a JSON envelope that says so.
            still_working: ``{"after_s": 3, "say": "Still checking..."}`` or ``{"after_s":
                3, "generate": True}``: tell the user when a call runs that long.
            http: Instead of ``handler``, the request each call sends, as the ``http:``
                section of a tools YAML file (docs/http-tools.md).
        """
        try:
            if not isinstance(name, str):
                from .typedtools import typed_tool

                given = (description, handler, parameters, timeout_s, requires_approval, cancellable,
                         max_output_chars, still_working, http)
                if given != (None, None, None, DEFAULT_TIMEOUT_S, False, True, DEFAULT_MAX_OUTPUT_CHARS, None, None):
                    raise ToolDefinitionError(
                        f"register({getattr(name, '__name__', name)!r}, ...): a typed function takes its"
                        " options from @realtalk.tool(...), not from register()", plugin=self._info.origin.strip())
                tool = typed_tool(name, plugin=self._info.distribution, plugin_version=self._info.version)
                self._add(tool)
                return
            if description is None or (handler is None) == (http is None):
                raise ToolDefinitionError(f"tool {name!r}: register() needs description= and one of handler="
                                          " or http=", plugin=self._info.origin.strip())
            from .tools import make_tool

            if http is not None:
                from .httptools import http_handler

                handler = http_handler(name, http, parameters or {}, plugin=self._info.origin.strip())
            tool = make_tool(
                name, description, parameters or {"type": "object", "properties": {}}, handler,
                plugin=self._info.distribution, plugin_version=self._info.version,
                timeout_s=timeout_s, requires_approval=requires_approval, cancellable=cancellable,
                max_output_chars=max_output_chars, still_working=still_working,
            )
            if http is not None:
                from .httptools import as_http_tool

                tool = as_http_tool(tool)
        except PluginError as exc:
            self._problems.append(exc)
            return
        self._add(tool)

    def from_yaml(self, path: str | os.PathLike[str] | Any) -> None:
        """Register every tool in a tools YAML file (``importlib.resources`` paths work).

        A file with any invalid tool registers none of them; the problem is reported.
        """
        from .tools import load_tool_definitions

        try:
            tools = load_tool_definitions(
                str(path), plugin=self._info.distribution, plugin_version=self._info.version
            )
        except PluginError as exc:
            self._problems.append(exc)
            return
        for tool in tools:
            self._add(tool)

    def _add(self, tool: Tool) -> None:
        # A bad tool is reported and skipped; the plugin's other tools still count.
        try:
            self._registry.add(tool)
        except PluginError as exc:
            self._problems.append(exc)
            return
        self._info.tools.append(tool.name)


@dataclass(frozen=True)
class PluginAgent:
    """An agent a plugin registered.

    Attributes:
        spec: The agent (its ``file`` is the YAML file in the plugin's package, or None
            for a :func:`realtalk.Agent`).
        info: The plugin that registered it.
    """

    spec: Any  # an AgentSpec: realtalk.agents imports jsonschema, loaded only when needed
    info: PluginInfo


class AgentRegistrar:
    """The ``register`` callback a plugin's ``register_agents`` hook receives.

    ``register(path)`` takes an agent YAML file (a ``str``, ``Path`` or
    ``importlib.resources`` path), read when the plugin's agents are first looked up;
    ``register(agent)`` takes a :func:`realtalk.Agent`.
    """

    def __init__(self, info: PluginInfo, pending: list[tuple[PluginInfo, object]]) -> None:
        self._info = info
        self._pending = pending

    def __call__(self, agent: object) -> None:
        """Register one agent: a YAML file of your package, or a ``realtalk.Agent(...)``."""
        self._pending.append((self._info, agent))


@dataclass(frozen=True)
class PluginCommand:
    """A ``realtalk`` subcommand a plugin added.

    Attributes:
        name: The subcommand (``realtalk NAME``).
        help: One line for ``realtalk --help``.
        configure: Adds its arguments to its ``argparse`` parser, or None.
        run: Carries it out with the parsed arguments; returns the exit code (None: 0).
        info: The plugin that added it.
    """

    name: str
    help: str
    configure: Callable[[Any], None] | None
    run: Callable[[Any], int | None]
    info: PluginInfo


BUILTIN_COMMANDS = frozenset({"check", "plugins", "tools", "run", "devices", "emulator", "new", "install",
                              "uninstall", "serve", "transcribe"})
"""The ``realtalk`` subcommands of core, which no plugin may take
(``tests/test_hooks.py`` keeps it equal to the parser's)."""
_COMMAND_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


class CommandRegistrar:
    """The ``register`` callback a plugin's ``register_commands`` hook receives."""

    def __init__(self, info: PluginInfo, commands: dict[str, PluginCommand], problems: list[PluginError]) -> None:
        self._info = info
        self._commands = commands
        self._problems = problems

    def __call__(self, name: str, *, help: str, run: Callable[[Any], int | None],
                 configure: Callable[[Any], None] | None = None) -> None:
        """Add ``realtalk NAME``.

        Args:
            name: The subcommand: lowercase letters, digits and ``-``, starting with a letter.
            help: One line, shown by ``realtalk --help``.
            run: Called with the parsed ``argparse.Namespace``; returns the exit code.
            configure: Called with the command's ``argparse`` parser to add its arguments.
        """
        origin = self._info.origin.strip()
        if not isinstance(name, str) or not _COMMAND_NAME.match(name):
            problem = f"invalid command name {name!r}: use lowercase letters, digits and '-', starting with a letter"
        elif name in BUILTIN_COMMANDS:
            problem = f"command {name!r} clashes with the built-in command 'realtalk {name}'; not added"
        elif name in self._commands:
            problem = (f"command {name!r} is already added by {self._commands[name].info.origin.strip()};"
                       " not added")
        elif not callable(run) or (configure is not None and not callable(configure)):
            problem = f"command {name!r}: run= (and configure=, if given) must be callables"
        else:
            self._commands[name] = PluginCommand(name, str(help), configure, run, self._info)
            self._info.commands.append(name)
            return
        self._problems.append(PluginError(problem, plugin=origin))


@dataclass(frozen=True)
class SessionInfo:
    """What an ``observe_session`` hook is told about a session that opens.

    Attributes:
        agent: The starting agent's name.
        agents: Every agent of its graph (those it may hand off to), in order.
        url: The server's URL, credentials shown as ``***``.
        model: The model (or Azure deployment) it runs on.
    """

    agent: str
    agents: tuple[str, ...]
    url: str
    model: str


class _Observer:
    """A plugin's session listener, guarded: the first exception it raises is reported
    once (through ``report``), and it gets no more events of that session."""

    __slots__ = ("_listener", "_origin", "_report", "failed")

    def __init__(self, listener: Callable[[Any], None], origin: str, report: Callable[[str], None]) -> None:
        self._listener = listener
        self._origin = origin
        self._report = report
        self.failed = False

    def __call__(self, event: Any) -> None:
        if self.failed:
            return
        try:
            self._listener(event)
        except Exception as exc:  # a plugin's bug must not break the session
            self.failed = True
            log.debug("session observer of %s failed", self._origin, exc_info=True)
            self._report(f"plugin {self._origin}: session observer failed on {event.type}:"
                         f" {type(exc).__name__}: {exc}; it gets no more events of this session")


@dataclass
class PluginSet:
    """Everything one runtime loaded.

    Attributes:
        manager: The pluggy manager of this runtime.
        plugins: Every discovered plugin, loaded or not.
        registry: Every tool registered.
        problems: Plugin and tool errors, one clear line each.
        commands: The ``realtalk`` subcommands plugins added, by name.
        command_problems: Commands that could not be added (also in ``problems``).
    """

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]
    registry: ToolRegistry
    problems: list[PluginError]
    commands: dict[str, PluginCommand] = field(default_factory=dict)
    command_problems: list[PluginError] = field(default_factory=list)
    _loaded: list[tuple[PluginInfo, object]] = field(default_factory=list, repr=False)
    _pending_agents: list[tuple[PluginInfo, object]] = field(default_factory=list, repr=False)
    _agents: dict[str, PluginAgent] | None = field(default=None, repr=False)
    _clashes: dict[str, str] = field(default_factory=dict, repr=False)

    def agents(self) -> dict[str, PluginAgent]:
        """The agents plugins registered, by name (their YAML files are read on the first call).

        A file that cannot be read, and a name two plugins register, is a problem (in
        :attr:`problems`); the clashing name maps to neither.
        """
        if self._agents is None:
            self._agents = {}
            for info, given in self._pending_agents:
                spec = self._read_agent(info, given)
                if spec is None:
                    continue
                if spec.name in self._clashes:
                    self._clashes[spec.name] += f" and {info.origin.strip()}"
                    continue
                other = self._agents.get(spec.name)
                if other is not None and other.info is not info:
                    del self._agents[spec.name]
                    self._clashes[spec.name] = f"{other.info.origin.strip()} and {info.origin.strip()}"
                    continue
                self._agents[spec.name] = PluginAgent(spec, info)
                info.agents.append(spec.name)
            for name, who in self._clashes.items():
                self.problems.append(PluginError(
                    f"agent {name!r} is registered by {who}; neither runs by that name"
                    " (block one with --no-plugin, or run its file by path)"))
        return self._agents

    def agent(self, name: str) -> PluginAgent:
        """The plugin agent called ``name``.

        Raises:
            ConfigError: No plugin registers it (the message lists those that exist,
                with a did-you-mean), or two do.
        """
        from .exceptions import ConfigError
        from .yamlfile import did_you_mean

        agents = self.agents()
        if name in agents:
            found = agents[name]
            return PluginAgent(_with_targets(found.spec, found.info, agents, set()), found.info)
        if name in self._clashes:
            raise ConfigError(f"agent {name!r} is registered by {self._clashes[name]}: block one with"
                              " --no-plugin NAME, or run the agent file by its path")
        known = ", ".join(f"{n} ({a.info.origin.strip()})" for n, a in sorted(agents.items())) or "none"
        raise ConfigError(f"{name}: no such file or directory, and no plugin registers an agent"
                          f" {name!r}{did_you_mean(name, agents)}; plugin agents: {known}")

    def _read_agent(self, info: PluginInfo, given: object) -> Any:
        from .agents import AgentSpec, load_agent
        from .exceptions import ConfigError

        if isinstance(given, AgentSpec):
            return given
        if isinstance(given, (str, os.PathLike)) or hasattr(given, "read_text"):
            try:
                return load_agent(str(given))
            except ConfigError as exc:
                self.problems.append(PluginError(f"register_agents: {exc}", plugin=info.origin.strip()))
                return None
        self.problems.append(PluginError(
            f"register_agents: register() takes an agent file path or a realtalk.Agent(...), not"
            f" {type(given).__name__}", plugin=info.origin.strip()))
        return None

    def observers(self, session: SessionInfo, report: Callable[[str], None]) -> list[Callable[[Any], None]]:
        """Call every ``observe_session`` hook once for ``session``; the listeners they return.

        Each listener is guarded: its first exception is given to ``report`` as one line
        (plugin, version, event kind, exception) and it gets no more events. A hook that
        raises is reported the same way; the session opens anyway.
        """
        observers: list[Callable[[Any], None]] = []
        impls = self.manager.hook.observe_session.get_hookimpls()
        if not impls:
            return observers
        origins = {id(plugin): info.origin.strip() for info, plugin in self._loaded}
        for impl in impls:
            origin = origins.get(id(impl.plugin), impl.plugin_name)
            try:
                listener = impl.function(session=session)
            except Exception as exc:  # a plugin's bug must not stop the session
                log.debug("observe_session of %s failed", origin, exc_info=True)
                report(f"plugin {origin}: observe_session failed: {type(exc).__name__}: {exc}")
                continue
            if listener is None:
                continue
            if not callable(listener):
                report(f"plugin {origin}: observe_session returned {type(listener).__name__},"
                       " not a callable or None; it observes nothing")
                continue
            observers.append(_Observer(listener, origin, report))
        return observers


def _with_targets(spec: Any, info: PluginInfo, agents: dict[str, PluginAgent], seen: set[str]) -> Any:
    """A ``realtalk.Agent`` whose handoffs by name reach the other agents of its plugin
    (an agent file finds them beside it)."""
    from dataclasses import replace

    if spec.file is not None:
        return spec
    seen = seen | {spec.name}
    handoffs = []
    for handoff in spec.handoffs:
        other = agents.get(handoff.agent)
        if handoff.target is None and other is not None and other.info is info and handoff.agent not in seen:
            handoff = replace(handoff, target=_with_targets(other.spec, info, agents, seen))
        handoffs.append(handoff)
    return replace(spec, handoffs=tuple(handoffs))


def _allow_list(allow: Iterable[str] | None) -> set[str] | None:
    if allow is not None:
        return {_norm(a) for a in allow}
    env = os.environ.get(ALLOW_ENV)
    if env is None:
        return None
    return {_norm(a) for a in env.split(",") if a.strip()}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def unknown_names(names: Iterable[str], installed: Iterable[str], *, given_as: str) -> list[str]:
    """One line per name in ``names`` that is no installed plugin distribution.

    Args:
        names: Distribution names a user gave.
        installed: The installed plugin distributions.
        given_as: Where they were given (``--no-plugin``, ``REALTALK_PLUGINS``).
    """
    known = sorted(set(installed))
    norms = {_norm(k) for k in known}
    unknown = [name for name in dict.fromkeys(n.strip() for n in names) if name and _norm(name) not in norms]
    if not unknown:
        return []
    from .yamlfile import did_you_mean  # (imports yaml)

    return [f"{given_as}: no installed plugin distribution {name!r}{did_you_mean(name, known)};"
            f" installed: {', '.join(known) or 'none'}" for name in unknown]


def installed_distributions() -> list[str]:
    """The distributions that have an entry point in the ``realtalk`` group."""
    return sorted({ep.dist.name for ep in _entry_points() if ep.dist is not None})


def load_plugins(
    *, allow: Iterable[str] | None = None, block: Iterable[str] = (), extra: Iterable[object] = ()
) -> PluginSet:
    """Discover, register and run the registration hooks of every allowed plugin.

    Args:
        allow: Distribution names to load (default: ``REALTALK_PLUGINS`` if set, else all).
        block: Distribution names never to load.
        extra: Plugin objects to register in-process (tests, embedding applications),
            recorded as distribution ``<module name>``; and typed tool functions
            (:func:`realtalk.tool`), gathered into one such plugin per module.

    Returns:
        The PluginSet; failures are in ``problems``, never raised.
    """
    from .tools import ToolRegistry
    from .toolsources import ToolSourceRegistrar

    manager, infos, loaded, problems = _load(allow, block, extra)
    registry = ToolRegistry()
    commands: dict[str, PluginCommand] = {}
    command_problems: list[PluginError] = []
    agents: list[tuple[PluginInfo, object]] = []
    for info, plugin in loaded:
        _call(manager, "register_tools", plugin, info, Registrar(registry, info, problems), problems)
        _call(manager, "register_agents", plugin, info, AgentRegistrar(info, agents), problems)
        _call(manager, "register_commands", plugin, info, CommandRegistrar(info, commands, command_problems),
              problems)
        _call(manager, "register_tool_sources", plugin, info, ToolSourceRegistrar(registry.sources, info.origin),
              problems)
    problems += command_problems
    return PluginSet(manager=manager, plugins=infos, registry=registry, problems=problems,
                     commands=commands, command_problems=command_problems, _loaded=loaded,
                     _pending_agents=agents)


def load_commands(*, block: Iterable[str] = ()) -> tuple[dict[str, PluginCommand], list[PluginError]]:
    """The ``realtalk`` subcommands plugins add, and the problems of those that could not
    be added: only the ``register_commands`` hooks run (what ``realtalk --help`` needs;
    nor is :mod:`realtalk.tools` imported)."""
    manager, _, loaded, problems = _load(None, block, ())
    commands: dict[str, PluginCommand] = {}
    command_problems: list[PluginError] = []
    for info, plugin in loaded:
        _call(manager, "register_commands", plugin, info, CommandRegistrar(info, commands, command_problems),
              problems)
    return commands, command_problems


def _load(allow: Iterable[str] | None, block: Iterable[str], extra: Iterable[object]) -> tuple[
        pluggy.PluginManager, list[PluginInfo], list[tuple[PluginInfo, object]], list[PluginError]]:
    """A new manager with every allowed plugin registered: the manager, every plugin
    found, those registered (with their plugin objects), and the problems."""
    manager = pluggy.PluginManager("realtalk")
    manager.add_hookspecs(hookspecs)
    allowed = _allow_list(allow)
    blocked = {_norm(b) for b in block}
    problems: list[PluginError] = []
    infos: list[PluginInfo] = []
    loaded: list[tuple[PluginInfo, object]] = []
    extra = _functions_as_plugins(extra)
    entry_points = _entry_points()
    installed = [ep.dist.name for ep in entry_points if ep.dist is not None]
    if allow is None and os.environ.get(ALLOW_ENV) is not None:
        unknown = unknown_names(os.environ[ALLOW_ENV].split(","), installed, given_as=ALLOW_ENV)
    else:
        unknown = unknown_names(allow or (), installed, given_as="allowed")
    unknown += unknown_names(block, installed, given_as="blocked")
    problems += [PluginError(line) for line in unknown]

    for ep in entry_points:
        dist = ep.dist
        info = PluginInfo(
            distribution=dist.name if dist else ep.value,
            version=dist.version if dist else "?",
            entry_point=ep.name,
            module=ep.value,
        )
        if (allowed is not None and _norm(info.distribution) not in allowed) or (
            _norm(info.distribution) in blocked
        ):
            continue
        infos.append(info)
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - importing runs the plugin's code, which may raise anything
            info.error = f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}"
            problems.append(PluginError(info.error, plugin=info.origin))
            continue
        if _register(manager, plugin, info, problems):
            loaded.append((info, plugin))

    for plugin in extra:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        info = PluginInfo(distribution=name, version="", entry_point=name, module=name)
        infos.append(info)
        if _register(manager, plugin, info, problems):
            loaded.append((info, plugin))
    return manager, infos, loaded, problems


def _call(manager: pluggy.PluginManager, hook: str, plugin: object, info: PluginInfo, registrar: object,
          problems: list[PluginError]) -> None:
    """Call ``plugin``'s registration ``hook`` (if it has it) with ``registrar``; what it
    raises is a problem naming the plugin, and the other plugins keep working."""
    for impl in getattr(manager.hook, hook).get_hookimpls():
        if impl.plugin is not plugin:
            continue
        try:
            impl.function(register=registrar)
        except Exception as exc:  # a plugin's own bug must not stop the others
            info.error = f"{hook} failed: {type(exc).__name__}: {exc}"
            log.debug("%s of %s failed", hook, info.origin, exc_info=True)
            problems.append(PluginError(info.error, plugin=info.origin))


def _functions_as_plugins(extra: Iterable[object]) -> list[object]:
    """``extra`` with its functions (typed tools) gathered into one plugin per module."""
    extra = list(extra)
    if not extra:
        return []
    import inspect

    from .typedtools import FunctionTools

    plugins: list[object] = []
    by_module: dict[str, FunctionTools] = {}
    for item in extra:
        if inspect.isfunction(item) or inspect.ismethod(item):
            module = str(getattr(item, "__module__", None) or "__main__")
            if module not in by_module:
                by_module[module] = FunctionTools(module)
                plugins.append(by_module[module])
            by_module[module].functions.append(item)
        else:
            plugins.append(item)
    return plugins


def _register(
    manager: pluggy.PluginManager, plugin: object, info: PluginInfo, problems: list[PluginError]
) -> bool:
    try:
        if manager.is_registered(plugin):
            raise ValueError("the same module is registered by another entry point")
        manager.register(plugin, name=info.entry_point)
        manager.check_pending()
    except (ValueError, pluggy.PluginValidationError) as exc:
        unknown = _unknown_hooks(manager, plugin)
        if manager.is_registered(plugin):
            manager.unregister(plugin)
        info.error = f"cannot register: {unknown or exc}"
        problems.append(PluginError(info.error, plugin=info.origin))
        return False
    info.hooks = sorted(
        caller.name for caller in manager.get_hookcallers(plugin) or []
    )
    return True


def _unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> str | None:
    """``unknown hook 'register_tool' (did you mean 'register_tools'?); hooks: ...``, or
    None when every hook of ``plugin`` is known (the problem was something else)."""
    from .yamlfile import did_you_mean

    known = sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "realtalk_spec"))
    lines = []
    for caller in manager.get_hookcallers(plugin) or []:
        if caller.name not in known:
            lines.append(f"unknown hook {caller.name!r}{did_you_mean(caller.name, known)}")
    if not lines:
        return None
    return "; ".join(lines) + f"; the hooks are: {', '.join(known)}"


# --- discovery: importlib.metadata's entry points, kept on disk ---------------------------

_ENTRY_POINTS_FILE = "entry-points.json"
_ENTRY_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
_SETTLED_NS = 2_000_000_000  # a folder changed in the last 2 s may change again unseen (same mtime)


@dataclass(frozen=True)
class _Dist:
    name: str
    version: str


@dataclass(frozen=True)
class _EntryPoint:
    """An entry point, as ``importlib.metadata`` describes it (name, value, dist, load)."""

    name: str
    value: str
    dist: _Dist | None

    def load(self) -> Any:
        """Import the module the value names and return it, or the attribute it names."""
        match = _ENTRY_VALUE.match(self.value)
        if match is None:
            raise ValueError(f"malformed entry point value {self.value!r}")
        target: Any = importlib.import_module(match["module"])
        for attr in filter(None, (match["attr"] or "").split(".")):
            target = getattr(target, attr)
        return target


def _entry_points() -> list[_EntryPoint]:
    """The ``realtalk`` entry points, sorted so that the order (and so "who registered a
    name first") is reproducible.

    Finding them reads every installed distribution's metadata and imports
    ``importlib.metadata`` (with ``email``): the list is kept on disk (:mod:`realtalk.cache`),
    keyed by ``sys.path``, the modification time of each folder on it (installing or
    removing a distribution changes its folder) and of each ``entry_points.txt`` listed.
    """
    from . import cache

    folders: list[list[Any]] = [[entry, _mtime_ns(entry or ".")] for entry in sys.path]
    data = cache.read_json(_ENTRY_POINTS_FILE)
    kept = data.get("sets") if isinstance(data, dict) and data.get("format") == 1 else None
    kept = [k for k in kept if isinstance(k, dict)] if isinstance(kept, list) else []
    for known in kept:
        try:
            if known["folders"] == folders and all(_mtime_ns(f) == t for f, t in known["files"]):
                return [_EntryPoint(name, value, None if dist is None else _Dist(dist, version))
                        for dist, version, name, value in known["entry_points"]]
        except (KeyError, TypeError, ValueError):
            continue
    found, files = _discover()
    settled = time.time_ns() - _SETTLED_NS
    stamps: list[int] = [t for _, t in folders] + [t for _, t in files or []]
    if files is not None and all(t < settled for t in stamps):
        rows = [[ep.dist and ep.dist.name, ep.dist.version if ep.dist else "", ep.name, ep.value] for ep in found]
        kept = [k for k in kept if k.get("folders") != folders][-7:]  # other environments, bounded
        cache.write_json(_ENTRY_POINTS_FILE, {"format": 1, "sets": [
            *kept, {"folders": folders, "files": files, "entry_points": rows}]})
    return found


def _discover() -> tuple[list[_EntryPoint], list[list[Any]] | None]:
    """The entry points from ``importlib.metadata``, and the ``[entry_points.txt, mtime]``
    of their distributions (None when one cannot be watched: then nothing is kept)."""
    import importlib.metadata

    found: list[_EntryPoint] = []
    files: list[list[Any]] | None = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        found.append(_EntryPoint(ep.name, ep.value, None if dist is None else _Dist(dist.name, dist.version)))
        folder = getattr(dist, "_path", None)  # a PathDistribution's .dist-info folder
        if dist is not None and folder is not None and files is not None:
            file = os.path.join(str(folder), "entry_points.txt")
            files.append([file, _mtime_ns(file)])
        else:
            files = None
    found.sort(key=lambda ep: (ep.dist.name if ep.dist else "", ep.name))
    return found, files


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


# --- one PluginSet per process, for sessions --------------------------------------------

_SHARED: dict[tuple[object, ...], PluginSet] = {}


def shared_plugins(*, block: Iterable[str] = ()) -> PluginSet:
    """``load_plugins(block=block)``, loaded once and reused by every later call.

    A PluginSet is not changed once loaded (its registry holds frozen tools), so sessions
    can share it. It is loaded again when what discovery depends on changes: ``sys.path``,
    the modification time of a ``site-packages`` (or ``dist-packages``) directory on it
    (``pip install`` and ``pip uninstall`` change it), ``REALTALK_PLUGINS`` or ``block``.
    Call :func:`refresh_plugins` after changing a plugin in place (editing its tools YAML)
    or installing one elsewhere (``pip install --target`` into a directory on the path).

    Args:
        block: Distribution names never to load.
    """
    key = (os.environ.get(ALLOW_ENV), frozenset(_norm(b) for b in block), _path_stamp())
    plugins = _SHARED.get(key)
    if plugins is None:
        plugins = load_plugins(block=block)
        if len(_SHARED) >= 8:  # stale keys from earlier sys.path states
            _SHARED.clear()
        _SHARED[key] = plugins
    return plugins


def refresh_plugins() -> None:
    """Forget the shared PluginSet: the next session discovers and loads plugins again."""
    _SHARED.clear()


def _path_stamp() -> tuple[tuple[str, int], ...]:
    # Only install directories: the script's directory or the working directory (also on
    # sys.path) change whenever a file is written there.
    stamp = []
    for entry in sys.path:
        mtime = 0
        if entry.rstrip("/\\").endswith(("site-packages", "dist-packages")):
            try:
                mtime = os.stat(entry).st_mtime_ns
            except OSError:
                mtime = -1
        stamp.append((entry, mtime))
    return tuple(stamp)
