"""``realtalk serve``: agents for browsers and phones, over realtalk's own small protocol.

Each caller connection gets its own :class:`~realtalk.session.Session` on the server,
with tools, approvals (asked on the caller's side), handoffs, reconnects and records as
in ``realtalk run``. The modules:

- :mod:`~realtalk.serve.config`: :class:`ServeConfig`, what the server was asked to do;
- :mod:`~realtalk.serve.access`: who may start a session (tokens, origins, capacity);
- :mod:`~realtalk.serve.caller`: the browser protocol ``realtalk.v1``, sans-I/O;
- :mod:`~realtalk.serve.hub`: :class:`SessionHub`, the sessions of one process;
- :mod:`~realtalk.serve.app`: :func:`create_app`, the Starlette application;
- :mod:`~realtalk.serve.twilio`: phone calls; :mod:`~realtalk.serve.metrics`: Prometheus;
- :mod:`~realtalk.serve.logs`: JSON log lines with the session id.

Needs the ``serve`` extra (``pip install 'realtalk[serve]'``): Starlette, uvicorn and
prometheus-client. This package imports none of them until :func:`create_app` is used.
See docs/serve.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServeConfig

if TYPE_CHECKING:
    from .hub import SessionHub

__all__ = ["ServeConfig", "SessionHub", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "SessionHub":
        from .hub import SessionHub

        return SessionHub
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
