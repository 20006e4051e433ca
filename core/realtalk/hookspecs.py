"""Every hook a realtalk plugin can implement.

Plugins are found through the ``realtalk`` entry-point group and implement these hooks
with ``@realtalk.hookimpl``. Hooks are synchronous and called by core at set moments:
``register_tools``, ``register_agents``, ``register_commands`` and ``register_tool_sources``
once per runtime, when
the plugin is loaded; ``observe_session`` once per session, when it opens. None is called
per event: the listener ``observe_session`` returns is (docs/plugins/hooks.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from .plugins import AgentRegistrar, CommandRegistrar, Registrar, SessionInfo
    from .results import SessionEvent
    from .toolsources import ToolSourceRegistrar

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("realtalk")
hookimpl = pluggy.HookimplMarker("realtalk")


@hookspec
def register_tools(register: Registrar) -> None:
    """Register the plugin's tools.

    Called once per runtime, right after the plugin is loaded, before any agent is
    checked or run. Call ``register(fn)`` with a typed function (see
    :func:`realtalk.tool`), ``register.from_yaml(path)`` with a tools YAML file shipped in
    your package, or ``register(name, description=..., parameters=..., handler=...)`` for
    one tool defined in code. Core records your distribution's name and version as each
    tool's origin.

    Args:
        register: The registration callback, bound to your distribution.

    Returns:
        Nothing; an exception here is reported with your distribution's name and
        version, and the other plugins keep working.
    """


@hookspec
def register_agents(register: AgentRegistrar) -> None:
    """Register the plugin's agents, runnable by name (``realtalk run NAME``).

    Called once per runtime, right after the plugin is loaded. Call ``register(path)``
    with an agent YAML file shipped in your package (``importlib.resources`` paths work;
    its handoff targets are found beside it, as for any agent file), or
    ``register(agent)`` with a :func:`realtalk.Agent`. Files are read only when an agent
    is looked up or listed, not at every start of ``realtalk``.

    Args:
        register: The registration callback, bound to your distribution.

    Returns:
        Nothing; a name another plugin registers too is reported naming both, and runs
        neither until one is uninstalled or blocked.
    """


@hookspec
def observe_session(session: SessionInfo) -> Callable[[SessionEvent], None] | None:
    """Watch a session: return a listener given each of its events, or None.

    Called once per session, when it opens (``realtalk run``, :func:`realtalk.open_session`,
    :func:`realtalk.run_agent`, the testing kit), before it connects. The listener is
    called with every :class:`~realtalk.results.SessionEvent`, in order, on the
    session's event loop: keep it quick (hand slow work to a queue or thread).

    Args:
        session: The starting agent, the agents it may hand off to, the server's URL
            (credentials shown as ``***``) and the model.

    Returns:
        A callable of one event, or None to leave this session alone. A listener that
        raises is reported once (a ``warning`` event naming your distribution, its
        version and the exception) and gets no more events of that session; the
        session carries on.
    """


@hookspec
def register_commands(register: CommandRegistrar) -> None:
    """Add subcommands to ``realtalk``.

    Called once per runtime, right after the plugin is loaded. The ``realtalk`` command
    loads plugins for its parser only when its command line names no built-in command
    (``realtalk``, ``realtalk --help``, a plugin's command), so that the built-in commands
    start no slower. Call
    ``register(name, help=..., configure=..., run=...)``: ``configure(parser)`` adds the
    command's arguments to its ``argparse`` parser, ``run(args)`` carries it out and
    returns the exit code (None means 0).

    Args:
        register: The registration callback, bound to your distribution.

    Returns:
        Nothing; a name a built-in command or another plugin already has is reported
        (one line naming your distribution) and not added.
    """


@hookspec
def register_tool_sources(register: ToolSourceRegistrar) -> None:
    """Provide tools that exist only while a session runs: MCP servers.

    Called once per runtime, right after the plugin is loaded. Call
    ``register("mcp", opener)``: ``await opener(spec, warn)`` starts one
    :class:`~realtalk.toolsources.McpServerSpec`'s server when a session that needs it
    starts, bounded by ``spec.startup_timeout_s``, and returns its tools and a bounded
    ``aclose`` (:class:`~realtalk.toolsources.OpenSource`); ``warn(message)`` publishes a
    session ``warning`` later (a server that crashed). The realtalk-mcp plugin does this
    (docs/mcp.md).

    Args:
        register: The registration callback.

    Returns:
        Nothing; a kind another plugin provides already is reported naming your
        distribution, and the first one keeps it.
    """
