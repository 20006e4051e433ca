"""Finding and loading plugins: one pluggy manager per runtime, no global state.

:func:`load_plugins` reads the ``realtalk`` entry-point group, applies the allow list
(``REALTALK_PLUGINS``, comma-separated distribution names; set but empty means none) and
the block list (``--no-plugin NAME``), registers each plugin module, checks its hooks
with ``check_pending()``, and calls its ``register_tools`` hook with a
:class:`Registrar` bound to its distribution. A plugin that fails at any step is
recorded with its distribution name, version and reason, and the others keep working.

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
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .exceptions import PluginError, ToolDefinitionError
from .tools import (
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_TIMEOUT_S,
    Tool,
    ToolRegistry,
    load_tool_definitions,
    make_tool,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginSet",
    "Registrar",
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
        error: Why it failed to load or register, or None.
    """

    distribution: str
    version: str
    entry_point: str
    module: str
    hooks: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
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
    ) -> None:
        """Register one tool defined in code: a typed function (``register(find_table)``,
        see :func:`realtalk.tool`), or a name with a description, schema and handler.

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
        """
        try:
            if not isinstance(name, str):
                from .typedtools import typed_tool

                given = (description, handler, parameters, timeout_s, requires_approval, cancellable,
                         max_output_chars)
                if given != (None, None, None, DEFAULT_TIMEOUT_S, False, True, DEFAULT_MAX_OUTPUT_CHARS):
                    raise ToolDefinitionError(
                        f"register({getattr(name, '__name__', name)!r}, ...): a typed function takes its"
                        " options from @realtalk.tool(...), not from register()", plugin=self._info.origin.strip())
                tool = typed_tool(name, plugin=self._info.distribution, plugin_version=self._info.version)
                self._add(tool)
                return
            if description is None or handler is None:
                raise ToolDefinitionError(f"tool {name!r}: register() needs description= and handler=",
                                          plugin=self._info.origin.strip())
            tool = make_tool(
                name, description, parameters or {"type": "object", "properties": {}}, handler,
                plugin=self._info.distribution, plugin_version=self._info.version,
                timeout_s=timeout_s, requires_approval=requires_approval, cancellable=cancellable,
                max_output_chars=max_output_chars,
            )
        except PluginError as exc:
            self._problems.append(exc)
            return
        self._add(tool)

    def from_yaml(self, path: str | Path | Any) -> None:
        """Register every tool in a tools YAML file (``importlib.resources`` paths work).

        A file with any invalid tool registers none of them; the problem is reported.
        """
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


@dataclass
class PluginSet:
    """Everything one runtime loaded.

    Attributes:
        manager: The pluggy manager of this runtime.
        plugins: Every discovered plugin, loaded or not.
        registry: Every tool registered.
        problems: Plugin and tool errors, one clear line each.
    """

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]
    registry: ToolRegistry
    problems: list[PluginError]


def _allow_list(allow: Iterable[str] | None) -> set[str] | None:
    if allow is not None:
        return {_norm(a) for a in allow}
    env = os.environ.get(ALLOW_ENV)
    if env is None:
        return None
    return {_norm(a) for a in env.split(",") if a.strip()}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


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
    manager = pluggy.PluginManager("realtalk")
    manager.add_hookspecs(hookspecs)
    allowed = _allow_list(allow)
    blocked = {_norm(b) for b in block}
    registry = ToolRegistry()
    problems: list[PluginError] = []
    infos: list[PluginInfo] = []
    loaded: list[tuple[PluginInfo, object]] = []
    extra = _functions_as_plugins(extra)

    for ep in _entry_points():
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

    for info, plugin in loaded:
        for impl in manager.hook.register_tools.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                impl.function(register=Registrar(registry, info, problems))
            except Exception as exc:  # a plugin's own bug must not stop the others
                info.error = f"register_tools failed: {type(exc).__name__}: {exc}"
                log.debug("register_tools of %s failed", info.origin, exc_info=True)
                problems.append(PluginError(info.error, plugin=info.origin))
    return PluginSet(manager=manager, plugins=infos, registry=registry, problems=problems)


def _functions_as_plugins(extra: Iterable[object]) -> list[object]:
    """``extra`` with its functions (typed tools) gathered into one plugin per module."""
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
        if manager.is_registered(plugin):
            manager.unregister(plugin)
        info.error = f"cannot register: {exc}"
        problems.append(PluginError(info.error, plugin=info.origin))
        return False
    info.hooks = sorted(
        caller.name for caller in manager.get_hookcallers(plugin) or []
    )
    return True


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
