"""Testing kit for agent and plugin authors: conversations against the emulator.

With ``pip install realtalk[test]`` the pytest plugin (entry point ``pytest11``) gives you
an ``emulator`` fixture; :func:`converse` runs an agent against it and returns what
happened, so a plugin's test is a few lines::

    from realtalk.testing import converse

    def test_get_time(emulator):
        emulator.use({"turns": [{"user": "time", "reply": [
            {"call": "get_time", "arguments": {"timezone": "Asia/Tokyo"}},
            {"say": "It is {output}"}]}]})
        result = converse({"instructions": "Tell the time.", "tools": ["get_time"]},
                          ["What time is it?"], emulator)
        assert result.calls("get_time")[0].status == "ok"

The emulator runs on its own event loop in a background thread, so the fixture works
in plain (sync) tests and in async ones alike.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..results import AssistantDone, SessionEvent, ToolCallRecord, TurnResult, UserText

__all__ = ["ConverseResult", "ThreadedEmulator", "aconverse", "converse"]


class ThreadedEmulator:
    """An :class:`~realtalk.emulator.Emulator` served from a background thread.

    Args:
        scenario: A scenario path or mapping (see ``docs/emulator.md``), or None.
        **options: Emulator options (``fast`` defaults to True here).
    """

    def __init__(self, scenario: str | Path | Mapping[str, Any] | None = None, **options: Any) -> None:
        from ..emulator import Emulator

        options.setdefault("fast", True)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="realtalk-emulator", daemon=True)
        self._thread.start()
        self.emulator = Emulator(scenario, **options)
        self._call(self.emulator.start())

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    @property
    def url(self) -> str:
        """The Realtime endpoint to connect to."""
        return self.emulator.url

    def use(self, scenario: str | Path | Mapping[str, Any]) -> None:
        """Replace the scenario and start it from its first turn."""
        self.emulator.use(scenario)

    def client_events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Client events the emulator received (all connections)."""
        return self.emulator.client_events(type)

    def server_events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Server events the emulator sent (all connections)."""
        return self.emulator.server_events(type)

    def errors(self) -> list[dict[str, Any]]:
        """``error`` objects the emulator sent."""
        return self.emulator.errors()

    def close(self) -> None:
        """Stop the emulator and its thread."""
        try:
            self._call(self.emulator.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


@dataclass
class ConverseResult:
    """What happened in :func:`converse`.

    Attributes:
        turns: One result per user text.
        events: Every session event, in order, with a :class:`~realtalk.results.UserText`
            before each turn.
        server_errors: ``error`` objects the emulator sent (should be empty).
    """

    turns: list[TurnResult] = field(default_factory=list)
    events: list[SessionEvent] = field(default_factory=list)
    server_errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of every turn, in order."""
        return [call for turn in self.turns for call in turn.tool_calls]

    def calls(self, name: str) -> list[ToolCallRecord]:
        """The calls of one tool."""
        return [call for call in self.tool_calls if call.name == name]

    @property
    def transcript(self) -> list[tuple[str, str]]:
        """``(speaker, text)`` lines: ``user`` or the agent's name."""
        lines: list[tuple[str, str]] = []
        for event in self.events:
            if isinstance(event, UserText):
                lines.append(("user", event.text))
            elif isinstance(event, AssistantDone) and event.text:
                lines.append((event.agent, event.text))
        return lines


def _agent_file(agent: str | Path | Mapping[str, Any], directory: Path) -> Path:
    if isinstance(agent, Mapping):
        data = dict(agent)
        path = directory / f"{data.get('name', 'agent')}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path
    return Path(agent)


async def aconverse(
    agent: str | Path | Mapping[str, Any],
    texts: Sequence[str],
    emulator: ThreadedEmulator | Any,
    *,
    timeout: float = 30.0,
    **options: Any,
) -> ConverseResult:
    """Run ``agent`` through ``texts`` against ``emulator``; async form of :func:`converse`."""
    from ..runner import open_session

    result = ConverseResult()
    with tempfile.TemporaryDirectory(prefix="realtalk-test-") as tmp:
        path = _agent_file(agent, Path(tmp))
        options.setdefault("text_only", True)
        async with open_session(path, url=emulator.url, api_key=options.pop("api_key", "test"),
                                **options) as session:
            session.on(result.events.append)
            for text in texts:
                result.events.append(UserText(text))
                result.turns.append(await session.ask(text, timeout))
    result.server_errors = emulator.errors()
    return result


def converse(
    agent: str | Path | Mapping[str, Any],
    texts: Sequence[str],
    emulator: ThreadedEmulator | Any,
    **options: Any,
) -> ConverseResult:
    """Run ``agent`` (a YAML path, or a mapping with the same keys) through ``texts``.

    Each text is one user turn; the call returns when every turn is over (tools run,
    handoffs done, replies complete). Installed plugins provide the tools, exactly as in
    ``realtalk run``.

    Args:
        agent: Agent file or mapping.
        texts: User turns.
        emulator: The ``emulator`` fixture (or any object with ``url`` and ``errors()``).
        **options: As for :func:`realtalk.runner.open_session` (``approve``, ``agent``...).
    """
    return asyncio.run(aconverse(agent, texts, emulator, **options))
