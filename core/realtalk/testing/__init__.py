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
        result.assert_called("get_time")

Which agent runs: ``converse(agents, texts, emulator, agent=None)`` where ``agents`` is an
agent file, a directory of agent files, or one agent as a mapping, and ``agent`` names
the agent to start with (needed when ``agents`` holds several). ``agent`` alone may be
given instead of ``agents``: ``converse(agent="agents/billing.yaml", texts=[...])``.

Without an emulator, :func:`converse` starts its own with the scenario beside the agent
file (``AGENT.scenario.yaml``), as ``realtalk run --emulator`` does.

The emulator runs on its own event loop in a background thread, so the fixture works
in plain (sync) tests and in ``async def`` ones alike (the pytest plugin runs
``async def`` tests that use the fixture; no pytest-asyncio setting is needed).
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard

import yaml

from ..exceptions import ConfigError, ScenarioError
from ..results import AssistantDone, SessionEvent, ToolCallRecord, TurnResult, UserText

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..agents import AgentSpec

__all__ = ["ConverseResult", "ThreadedEmulator", "aconverse", "converse"]

AgentSource: TypeAlias = "str | Path | Mapping[str, Any] | AgentSpec"
"""An agent file, a directory of agent files, one agent as a mapping, or a ``realtalk.Agent``."""

ScenarioSource = str | Path | Mapping[str, Any]
"""A scenario file or mapping (see ``docs/emulator.md``)."""

_WAIT_S = 30.0  # bound on starting, stopping or reconfiguring the emulator thread


def _check_scenario_file(scenario: object) -> None:
    """A missing scenario file is one line that says where it was looked for."""
    if isinstance(scenario, (str, Path)) and not Path(scenario).is_file():
        where = Path(scenario).resolve()
        raise ScenarioError(f"scenario file {str(scenario)!r} not found (looked for {where})")


class ThreadedEmulator:
    """An :class:`~realtalk.emulator.Emulator` served from a background thread.

    Usable from sync and async code alike; ``with ThreadedEmulator(...) as emulator:``
    stops it at the end (the pytest fixture does that for you).

    Args:
        scenario: A scenario path or mapping (see ``docs/emulator.md``), or None
            (every input gets the fallback reply until :meth:`use` gives one).
        **options: Emulator options (``fast`` defaults to True here).

    Raises:
        ScenarioError: The scenario file is missing or invalid.
    """

    def __init__(self, scenario: ScenarioSource | None = None, **options: Any) -> None:
        from ..emulator import Emulator

        _check_scenario_file(scenario)
        options.setdefault("fast", True)
        self.emulator = Emulator(scenario, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="realtalk-emulator", daemon=True)
        self._thread.start()
        try:
            self._call(self.emulator.start())
        except BaseException:
            self._stop_thread()
            raise

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=_WAIT_S)

    @property
    def url(self) -> str:
        """The Realtime endpoint to connect to."""
        return self.emulator.url

    @property
    def scenario(self) -> Any:
        """The current :class:`~realtalk.emulator.Scenario`."""
        return self.emulator.scenario

    def use(self, scenario: ScenarioSource) -> None:
        """Replace the scenario and start it from its first turn.

        Raises:
            ScenarioError: The scenario file is missing or invalid.
        """
        _check_scenario_file(scenario)

        async def replace() -> None:  # on the emulator's own thread, between its events
            self.emulator.use(scenario)

        self._call(replace())

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
            self._stop_thread()

    def _stop_thread(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_WAIT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- what happened ---------------------------------------------------------------------


def _cut(text: str | None, limit: int = 300) -> str:
    text = "" if text is None else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(text: str | None, limit: int = 200) -> str:
    return repr(_cut(text, limit))


@dataclass
class ConverseResult:
    """What happened in :func:`converse`.

    Attributes:
        greeting: The agent's greeting turn, if it has a ``greeting`` (else None).
        turns: One result per user text.
        texts: The user texts, one per turn.
        events: Every session event, in order, with a :class:`~realtalk.results.UserText`
            before each turn.
        server_errors: ``error`` objects the emulator sent during the conversation
            (should be empty).
        unmatched: User texts no scenario turn matched (they got the emulator's fallback
            reply).
    """

    greeting: TurnResult | None = None
    turns: list[TurnResult] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    events: list[SessionEvent] = field(default_factory=list)
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

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

    # -- assertions with messages that say what was expected, what happened and where --

    def _where(self, index: int) -> str:
        user = self.texts[index] if index < len(self.texts) else "?"
        return f"turns[{index}] (user: {_short(user, 60)})"

    def _call_line(self, call: ToolCallRecord) -> str:
        index = next(i for i, turn in enumerate(self.turns) if any(c is call for c in turn.tool_calls))
        return (f"{call.name}({call.arguments}) in {self._where(index)} by agent {call.agent!r}: "
                f"status {call.status!r}, output {_cut(call.output)}")

    def _problems(self) -> list[str]:
        problems = [f"{self._where(i)}: no scenario turn matches, the emulator gave its fallback "
                    f"reply {_short(turn.text, 80)}"
                    for i, turn in enumerate(self.turns) if self.texts[i] in self.unmatched]
        problems += [f"{self._where(i)}: the turn ended {turn.status!r}: {turn.status_reason}"
                     for i, turn in enumerate(self.turns) if not turn.ok]
        problems += [self._call_line(call) for call in self.tool_calls if call.status != "ok"]
        problems += [f"the emulator sent an error: {json.dumps(error)}" for error in self.server_errors]
        return problems

    def assert_ok(self) -> None:
        """Every turn matched the scenario and completed, every tool call was ``ok``,
        and the emulator sent no error.

        Raises:
            AssertionError: One line per problem.
        """
        problems = self._problems()
        if problems:
            raise AssertionError("the conversation had problems:\n  " + "\n  ".join(problems))

    def assert_called(self, name: str, *, status: str = "ok", **arguments: Any) -> ToolCallRecord:
        """The first call of tool ``name`` with this ``status`` (and these arguments).

        ``arguments`` are compared with the call's JSON arguments, key by key: keys not
        given are not checked.

        Raises:
            AssertionError: No such call; the message lists the calls that were made.
        """
        wanted = f"a call of {name}" + (f" with {json.dumps(arguments)}" if arguments else "")
        for call in self.calls(name):
            if call.status == status and _has_arguments(call, arguments):
                return call
        made = [self._call_line(call) for call in self.tool_calls]
        replies = [f"{self._where(i)} -> {_short(turn.text, 80)}" for i, turn in enumerate(self.turns)]
        raise AssertionError(
            f"expected {wanted} with status {status!r}; "
            + ("calls made:\n  " + "\n  ".join(made) if made else "no tool was called; the replies:\n  "
               + "\n  ".join(replies or ["(no turns)"]))
            + _hint(self.unmatched)
        )

    def assert_said(self, expected: str | re.Pattern[str], *, turn: int = -1) -> str:
        """The reply of ``turns[turn]`` (default: the last) contains ``expected`` (a
        substring, or a compiled regular expression searched for); returns the reply.

        Raises:
            AssertionError: It does not; the message quotes the reply.
        """
        if not self.turns:
            raise AssertionError(f"expected a reply containing {_pattern(expected)}; there were no turns")
        try:
            reply = self.turns[turn].text
        except IndexError:
            raise AssertionError(f"turns[{turn}] does not exist: there were {len(self.turns)} turn(s)") from None
        found = expected.search(reply) if isinstance(expected, re.Pattern) else expected in reply
        if not found:
            index = turn % len(self.turns)
            raise AssertionError(
                f"expected the reply to {self._where(index)} to contain {_pattern(expected)}; "
                f"it was {_short(reply)}" + _hint(self.unmatched if self.texts[index] in self.unmatched else [])
            )
        return reply


def _has_arguments(call: ToolCallRecord, expected: Mapping[str, Any]) -> bool:
    if not expected:
        return True
    try:
        actual = json.loads(call.arguments)
    except ValueError:
        return False
    return isinstance(actual, dict) and all(k in actual and actual[k] == v for k, v in expected.items())


def _pattern(expected: str | re.Pattern[str]) -> str:
    return f"/{expected.pattern}/" if isinstance(expected, re.Pattern) else repr(expected)


def _hint(unmatched: Sequence[str]) -> str:
    if not unmatched:
        return ""
    texts = ", ".join(_short(t, 60) for t in unmatched)
    return f"\n(no scenario turn matches {texts}: check the scenario's `user:` patterns)"


# --- running a conversation ------------------------------------------------------------


def _choose(agents: AgentSource | None, agent: AgentSource | None) -> tuple[AgentSource, str | None]:
    """``(where the agents are, name of the starting agent or None)`` from the two arguments."""
    if agents is None:
        if agent is None:
            raise TypeError("converse() needs an agent: converse('agents/desk.yaml', texts, emulator), "
                            "or converse('agents', texts, emulator, agent='desk')")
        return agent, None
    if agent is None or isinstance(agent, str) and not _looks_like_a_path(agent):
        return agents, agent
    raise TypeError(f"converse() got two agents: {_short(str(agents), 60)} and agent={_short(str(agent), 60)}; "
                    "with a directory, agent= is the name of one agent in it")


def _is_agent(value: object) -> TypeGuard[AgentSpec]:
    """An agent defined in Python (``realtalk.Agent``); agents.py is loaded only when needed."""
    from ..agents import AgentSpec

    return isinstance(value, AgentSpec)


def _shown(source: AgentSource) -> str:
    """How error messages name the agent the user passed."""
    if _is_agent(source):
        return f"realtalk.Agent {source.name!r}"
    return "the agent mapping" if isinstance(source, Mapping) else str(source)


def _looks_like_a_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith((".yaml", ".yml"))


def _agent_path(source: AgentSource, directory: Path) -> Path | AgentSpec:
    if _is_agent(source):  # realtalk.Agent(...): nothing to write
        return source
    if isinstance(source, Mapping):
        data = dict(source)
        path = directory / f"{data.get('name', 'agent')}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path
    if isinstance(source, str) and not Path(source).exists():
        from ..runner import resolve_agent  # an agent a plugin registers, by name

        found = resolve_agent(source)
        return Path(found) if isinstance(found, (str, Path)) else found
    if isinstance(source, (str, Path)):
        return Path(source)
    raise TypeError(f"an agent is a file, a directory, a mapping or a realtalk.Agent, not {type(source).__name__}")


def _starting_agent(path: Path, name: str | None, shown: str) -> tuple[str, Path | None]:
    """The starting agent's name and file, checked with the kit's own one-line errors.

    Problems inside the agent files are left to :func:`~realtalk.runner.open_session`,
    which reports them with file and line.
    """
    from ..agents import load_agents

    if not path.exists():
        raise ConfigError(f"agent file or directory {shown!r} not found (looked for {path.resolve()})")
    graph = load_agents([path])
    if graph.problems:
        raise graph.problems[0]
    if not graph.roots:
        raise ConfigError(f"no agents in directory {shown!r}: it holds no agent files (*.yaml)")
    if name is None:
        if len(graph.roots) > 1:
            raise ConfigError(f"{shown!r} holds {len(graph.roots)} agents ({', '.join(graph.roots)}); "
                              f"choose one with agent={graph.roots[0]!r}")
        name = graph.roots[0]
    if name not in graph.agents:
        raise ConfigError(f"no agent named {name!r} in {shown!r}; its agents: {', '.join(graph.agents)}")
    return name, graph.agents[name].file


def _unmatched(emulator: Any, texts: Sequence[str], turns: Sequence[TurnResult]) -> list[str]:
    scenario = getattr(emulator, "scenario", None)
    fallback = getattr(scenario, "fallback", None)
    if not isinstance(fallback, str) or "{input}" not in fallback:
        return []
    before, after = fallback.split("{input}", 1)
    if not before and not after:
        return []
    return [text for text, turn in zip(texts, turns) if turn.text.startswith(before) and turn.text.endswith(after)]


async def _run(result: ConverseResult, path: Path | AgentSpec, source: AgentSource, name: str | None,
               emulator: Any, scenario: ScenarioSource | None, timeout: float, greet: bool,
               options: dict[str, Any]) -> None:
    from ..emulator import Emulator
    from ..runner import open_session, scenario_for

    shown = _shown(source)
    if isinstance(path, Path):
        name, file = _starting_agent(path, name, shown)
    else:  # realtalk.Agent(...), checked when it was made
        if name is not None and name != path.name:
            raise ConfigError(f"agent={name!r} names no agent of realtalk.Agent {path.name!r}; leave it out")
        name, file = path.name, path.file
    own: Emulator | None = None
    if emulator is None:
        scenario = scenario if scenario is not None else scenario_for(file)
        if scenario is None:
            beside = "" if file is None or isinstance(source, Mapping) else \
                f", or write {file.with_name(file.stem + '.scenario.yaml')}"
            raise ScenarioError(f"no scenario for {shown!r}: pass the emulator fixture or scenario={beside}")
        _check_scenario_file(scenario)
        own = emulator = Emulator(scenario, fast=True)
        await own.start()
    elif scenario is not None:
        emulator.use(scenario)
    errors_before = len(emulator.errors())
    options.setdefault("text_only", True)
    options.setdefault("api_key", "test")
    options["listeners"] = [result.events.append, *options.get("listeners", ())]  # from the greeting on
    try:
        async with open_session(path, agent=name, url=emulator.url, **options) as session:
            if greet:
                result.greeting = await session.greet(timeout)
            for text in result.texts:
                result.turns.append(await session.ask(text, timeout))
    finally:
        result.server_errors = emulator.errors()[errors_before:]
        result.unmatched = _unmatched(emulator, result.texts, result.turns)
        if own is not None:
            await own.stop()


async def aconverse(
    agents: AgentSource | None = None,
    texts: str | Sequence[str] = (),
    emulator: ThreadedEmulator | Any | None = None,
    *,
    agent: AgentSource | None = None,
    scenario: ScenarioSource | None = None,
    timeout: float = 30.0,
    greet: bool = True,
    **options: Any,
) -> ConverseResult:
    """Run an agent through ``texts``; the ``async`` form of :func:`converse` (same arguments)."""
    if "url" in options:
        raise TypeError("converse() runs against an emulator: pass emulator=, not url=")
    source, name = _choose(agents, agent)
    shown = _shown(source)
    texts = [texts] if isinstance(texts, str) else list(texts)
    result = ConverseResult(texts=texts)
    with tempfile.TemporaryDirectory(prefix="realtalk-test-") as tmp:
        path = _agent_path(source, Path(tmp))
        try:
            await _run(result, path, source, name, emulator, scenario, timeout, greet, options)
        except ConfigError as exc:
            if exc.file == str(path):  # a mapping: not the temporary file it was written to
                raise type(exc)(exc.message, file=shown, json_path=exc.json_path) from None
            raise
    return result


def converse(
    agents: AgentSource | None = None,
    texts: str | Sequence[str] = (),
    emulator: ThreadedEmulator | Any | None = None,
    *,
    agent: AgentSource | None = None,
    scenario: ScenarioSource | None = None,
    timeout: float = 30.0,
    greet: bool = True,
    **options: Any,
) -> ConverseResult:
    """Run an agent through ``texts`` against an emulator and return what happened.

    Each text is one user turn; the call returns when every turn is over (tools run,
    handoffs done, replies complete). Installed plugins provide the tools, exactly as in
    ``realtalk run``.

    Args:
        agents: An agent file, a directory of agent files, or one agent as a mapping
            (the keys of an agent file).
        texts: User turns (a single string is one turn).
        emulator: The ``emulator`` fixture (or any object with ``url`` and ``errors()``).
            None: start one for this call with ``scenario``.
        agent: The name of the agent to start with, when ``agents`` holds several; or,
            instead of ``agents``, the agent file or mapping itself.
        scenario: Give the emulator this scenario first. Default: the emulator's own; with
            no emulator, ``AGENT.scenario.yaml`` beside the agent file.
        timeout: Seconds each turn may take.
        greet: Let an agent with a ``greeting`` speak first, as ``realtalk run`` does
            (that turn is ``result.greeting``, not one of ``result.turns``).
        **options: As for :func:`realtalk.runner.open_session`: ``approve``,
            ``extra_plugins``, ``text_only`` (default True)...

    Raises:
        ConfigError: The agent is not found, or its file is invalid (one line).
        ScenarioError: The scenario is missing or invalid (one line).
        RuntimeError: Called inside a running event loop (use ``await aconverse(...)``).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(aconverse(agents, texts, emulator, agent=agent, scenario=scenario,
                                     timeout=timeout, greet=greet, **options))
    raise RuntimeError("converse() was called inside a running event loop: use `await aconverse(...)`, "
                       "which takes the same arguments")
