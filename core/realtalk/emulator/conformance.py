"""Validate Realtime events against the official ``openai`` SDK's GA types. Test-only.

``openai`` is a test dependency, not a runtime one, so it is imported inside the
functions, on first use; importing this module costs nothing. Use it in tests to check
every event an emulator (or any server or client) produced::

    from realtalk.emulator.conformance import server_event_problems

    assert server_event_problems(emu.server_events()) == []

The SDK's unions are re-wrapped as real discriminated unions (see the protocol
reference, section 9), so a bad event gives one precise error instead of ~160.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any

__all__ = ["client_event_problems", "server_event_problems"]


@cache
def _adapter(side: str) -> Any:
    from typing import Annotated, Union, get_args

    from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
    from pydantic import Field, TypeAdapter

    alias = RealtimeServerEvent if side == "server" else RealtimeClientEvent
    members = get_args(get_args(alias)[0])  # Annotated[Union[...], PropertyInfo] -> members
    union = Union[members]  # type: ignore[valid-type]  # noqa: UP007  (a runtime tuple)
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


def _problems(side: str, events: Iterable[dict[str, Any]]) -> list[str]:
    from pydantic import ValidationError

    adapter = _adapter(side)
    problems = []
    for event in events:
        try:
            adapter.validate_python(event)
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
            )
            problems.append(f"{event.get('type')}: {detail} in {json.dumps(event)[:300]}")
    return problems


def server_event_problems(events: Iterable[dict[str, Any]]) -> list[str]:
    """Check server events against ``openai.types.realtime.RealtimeServerEvent``.

    Returns:
        One line per invalid event (empty when all are valid).
    """
    return _problems("server", events)


def client_event_problems(events: Iterable[dict[str, Any]]) -> list[str]:
    """Check client events against ``openai.types.realtime.RealtimeClientEvent``.

    Returns:
        One line per invalid event (empty when all are valid).
    """
    return _problems("client", events)
