"""realtalk-clock: time tools for realtalk agents, declared in tools.yaml."""

from __future__ import annotations

from importlib.resources import files

import realtalk


@realtalk.hookimpl
def register_tools(register: realtalk.Registrar) -> None:
    """Register get_time, convert_time and time_until."""
    register.from_yaml(files(__name__).joinpath("tools.yaml"))
