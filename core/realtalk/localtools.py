"""Tools beside an agent: tool files loaded as in-process plugins, without packaging one.

A tool file is either a tools YAML (the format plugins ship, read by
:meth:`realtalk.plugins.Registrar.from_yaml`) or a Python module whose
``@realtalk.tool`` functions (and ``register_tools`` hook, if it has one) become tools.
An agent names its files in ``tool_files:`` (relative to the agent file); ``--tools PATH``
and ``tool_files=`` give more to every agent. :func:`load_graph` reads the agents, loads
their tool files with the installed plugins, and checks the tools each agent lists against
all of them, so ``check``, ``run``, the emulator, the testing kit and the Python API see the
same tools. A local tool is scoped like a plugin's: only agents that list it may call it,
and a name a plugin already registered is ambiguous (:meth:`ToolRegistry.ambiguous`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigError, PluginError
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .agents import AgentGraph
    from .plugins import PluginSet, Registrar
    from .toolsources import McpServerSpec

__all__ = ["ToolFile", "load_graph"]

_LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.*)$", re.DOTALL)


class ToolFile:
    """One tool file as a plugin: its tools are registered under its path (their origin).

    Raises:
        ConfigError: The file does not exist, is neither ``.yaml``/``.yml`` nor ``.py``, or
            (a Python module) raises while it is imported.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(os.path.normpath(path))  # agents/x/../weather.tools.yaml: agents/weather.tools.yaml
        self.__name__ = str(self.path)  # the "distribution" its tools come from
        if not self.path.is_file():
            raise ConfigError("no such tool file", file=self.path)
        self.module: Any = None
        self.mcp_servers: tuple[McpServerSpec, ...] = ()
        if self.path.suffix in (".yaml", ".yml"):
            self.mcp_servers = _servers_in(self.path)
        if self.path.suffix == ".py":
            self.module = _import(self.path)
        elif self.path.suffix not in (".yaml", ".yml"):
            raise ConfigError("a tool file is a tools YAML (.yaml, .yml) or a Python module (.py)",
                              file=self.path)

    @hookimpl
    def register_tools(self, register: Registrar) -> None:
        """Register the file's tools."""
        if self.module is None:
            # Handlers are ``module:function``, imported with the file's folder on the path,
            # so a handlers.py beside the tools YAML needs no package.
            folder = str(self.path.parent.resolve())
            sys.path.insert(0, folder)
            try:
                register.from_yaml(self.path)
            finally:
                sys.path.remove(folder)
            return
        hook = getattr(self.module, "register_tools", None)
        if callable(hook):
            hook(register=register)
        for function in typed_functions(self.module):
            register(function)


def _servers_in(path: Path) -> tuple[McpServerSpec, ...]:
    """The ``mcp_servers:`` of a tools YAML (its other problems are the registrar's)."""
    from .agents import mcp_servers_in
    from .yamlfile import load_yaml

    try:
        doc = load_yaml(path)
    except ConfigError:
        return ()  # reported when its tools are registered
    return mcp_servers_in(doc)


def typed_functions(module: Any) -> list[Callable[..., Any]]:
    """The ``@realtalk.tool`` functions defined in ``module``, in source order."""
    from .typedtools import is_typed_tool

    found = [v for v in vars(module).values()
             if is_typed_tool(v) and getattr(v, "__module__", None) == module.__name__]
    return sorted(found, key=lambda f: getattr(getattr(f, "__code__", None), "co_firstlineno", 0))


def _import(path: Path) -> Any:
    """Import a Python tool file once per process, under a name unique to its location."""
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    name = f"realtalk_tools_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError("cannot import this file as a Python module", file=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and pydantic look it up
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - importing runs the user's code, which may raise anything
        del sys.modules[name]
        line = _line_in(exc, resolved)
        raise ConfigError(f"importing it failed: {type(exc).__name__}: {exc}", file=path, line=line) from None
    return module


def _line_in(exc: BaseException, file: Path) -> int | None:
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        return exc.lineno
    line = None
    for frame in inspect.getinnerframes(exc.__traceback__, context=0) if exc.__traceback__ else []:
        if Path(frame.filename) == file:
            line = frame.lineno
    return line


def _as_config_error(problem: PluginError, file: str) -> ConfigError:
    """A local tool file's plugin problem, located in that file (as ``check`` prints)."""
    located = _LOCATED.match(problem.message)
    if located and located["file"] == file:
        return ConfigError(located["message"], file=file, line=int(located["line"]))
    return ConfigError(problem.message, file=file)


def load_graph(
    paths: Iterable[str | Path | Any],
    *,
    block: Iterable[str] = (),
    extra: Iterable[object] = (),
    tool_files: Iterable[str | Path] = (),
) -> tuple[AgentGraph, PluginSet]:
    """Agents with every tool they may use: plugins, ``extra`` objects and tool files.

    Args:
        paths: Agent files, directories of them, or :class:`~realtalk.agents.AgentSpec`
            objects (``realtalk.Agent(...)``).
        block: Plugin distributions not to load.
        extra: Plugin objects or typed tool functions to register in-process.
        tool_files: Tool files for every agent (``--tools``), besides each agent's own.

    Returns:
        The graph, its tools checked (every problem in ``graph.problems``, tool files'
        included, sorted by file and line), and the plugins whose registry it was checked
        against. The plugins are the process's shared ones when there is nothing extra.
    """
    from .agents import load_agents
    from .plugins import load_plugins, shared_plugins
    from .toolsources import missing_plugin_problems

    shared = [Path(p) for p in tool_files]
    wanted = list(shared)
    graph = load_agents(paths, tool_files=shared)
    functions: list[object] = []
    for agent in graph.agents.values():
        functions += agent.tool_functions
        wanted += agent.tool_files
    wanted += [p for refs in graph._broken for p in refs.tool_files]
    files: dict[Path, ToolFile] = {}
    problems: list[ConfigError] = []
    for path in dict.fromkeys(wanted):
        try:
            files.setdefault(path.resolve(), ToolFile(path))
        except ConfigError as exc:
            problems.append(exc)
    local = list(files.values())
    _give_servers(graph, files, [p.resolve() for p in shared])
    extra = [*extra, *dict.fromkeys(functions), *local]
    plugins = load_plugins(block=block, extra=extra) if extra else shared_plugins(block=block)
    if local:
        names = {f.__name__ for f in local}
        ours = [p for p in plugins.problems if (p.plugin or "").strip() in names]
        plugins.problems[:] = [p for p in plugins.problems if p not in ours]
        problems += [_as_config_error(p, (p.plugin or "").strip()) for p in ours]
    graph.problems += problems
    graph.check_tools(plugins.registry)
    graph.problems += missing_plugin_problems(graph, plugins.registry)
    graph.warnings += _unset_env(graph, plugins)
    return graph, plugins


def _unset_env(graph: AgentGraph, plugins: PluginSet) -> list[ConfigError]:
    """The unset environment variables the HTTP tools the agents use need (a warning for
    ``check``; :func:`realtalk.runner.load_target` refuses to run with them)."""
    from .httptools import unset_env

    used = [plugins.registry.get(use.name) for agent in graph.agents.values() for use in agent.tools]
    return list(unset_env(dict.fromkeys(t for t in used if t is not None)))


def _give_servers(graph: AgentGraph, files: dict[Path, ToolFile], shared: list[Path]) -> None:
    """Add the MCP servers of an agent's tool files (its own, then ``--tools``) to it."""
    from dataclasses import replace

    for name, agent in list(graph.agents.items()):
        paths = [*(p.resolve() for p in agent.tool_files), *shared]
        extra = [s for p in dict.fromkeys(paths) if p in files for s in files[p].mcp_servers]
        if extra:
            graph.agents[name] = replace(agent, mcp_servers=tuple(dict.fromkeys([*agent.mcp_servers, *extra])))
