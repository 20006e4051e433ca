"""Every hook a realtalk plugin can implement.

Plugins are found through the ``realtalk`` entry-point group and implement these hooks
with ``@realtalk.hookimpl``. Hooks are synchronous and are used for registration only:
tool handlers themselves may be async and run inside the session's event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .plugins import Registrar

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
