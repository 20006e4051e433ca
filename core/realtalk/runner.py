"""Running an agent: from a YAML path and a few options to a live :class:`Session`.

This is what ``realtalk run`` and the testing kit call::

    turns = await run_agent("agents/concierge.yaml", ["What time is it in Tokyo?"], emulator=True)
    print(turns[0].text, turns[0].tool_calls)

:func:`open_session` loads plugins and the agent graph, starts a built-in emulator when
asked (with ``AGENT.scenario.yaml`` from beside the agent file), picks the connection
profile, and yields a started session. :func:`stream_audio_file` feeds a WAV file through
it as a user would speak.

Sessions in one process share their plugins (:func:`realtalk.plugins.shared_plugins`),
unless ``extra_plugins`` are given: call :func:`realtalk.plugins.refresh_plugins` to load
them again after changing a plugin in place.

A ``path`` that does not exist and is an agent's name is an agent a plugin registered
(``register_agents``): an existing file or directory always wins. Every session opened
here gets the plugins' ``observe_session`` listeners.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .agents import AgentGraph, AgentSpec
from .exceptions import ConfigError
from .localtools import load_graph
from .plugins import PluginSet, SessionInfo
from .profiles import ConnectionProfile
from .protocol.vocab import SERVER_VAD_DEFAULTS
from .results import Approver, TurnResult
from .session import Session

__all__ = [
    "RunTarget", "load_target", "open_session", "resolve_agent", "run_agent", "run_on_model", "scenario_for",
    "stream_audio_file",
]


@dataclass
class RunTarget:
    """An agent graph ready to run.

    Attributes:
        graph: The agents.
        agent: Name of the agent to start with.
        plugins: The loaded plugins.
    """

    graph: AgentGraph
    agent: str
    plugins: PluginSet


def load_target(
    path: str | Path | AgentSpec, agent: str | None = None, *, block: Iterable[str] = (),
    extra: Iterable[object] = (), tool_files: Iterable[str | Path] = (),
) -> RunTarget:
    """Load plugins, tool files and the agent(s) at ``path``, and choose the starting agent.

    Plugins are the process's shared ones (:func:`realtalk.plugins.shared_plugins`), or
    loaded afresh when there are ``extra`` plugin objects or typed tool functions, tool
    files (``tool_files``, or an agent's ``tool_files:``) or typed functions in an
    :func:`~realtalk.agents.Agent`.

    Raises:
        ConfigError: The agents or their tool files have problems (one problem is one
            line; several are listed one per line, sorted by file and line), or the
            starting agent is ambiguous or unknown.
    """
    path = resolve_agent(path, block)
    graph, plugins = load_graph([path], block=block, extra=extra, tool_files=tool_files)
    if len(graph.problems) == 1:
        raise graph.problems[0]
    if graph.problems:
        # Every problem at once, one per line (sorted by file and line), as check prints them.
        lines = "\n".join(str(p) for p in graph.problems)
        raise ConfigError(f"{len(graph.problems)} problems in {_shown(path)}:\n{lines}")
    _refuse_unset_env(graph)
    if not graph.roots:
        raise ConfigError(f"no agent files (*.yaml) in {path}")
    if agent is None:
        if len(graph.roots) != 1:
            raise ConfigError(
                f"{path} holds {len(graph.roots)} agents ({', '.join(graph.roots)}); choose one with --agent NAME")
        agent = graph.roots[0]
    graph.get(agent)
    return RunTarget(graph, agent, plugins)


def _refuse_unset_env(graph: AgentGraph) -> None:
    """An HTTP tool's unset environment variable, a warning for ``check``, stops a run
    before it connects (one line each, naming the variable and where it is used)."""
    from .httptools import UnsetEnv

    unset = [w for w in graph.warnings if isinstance(w, UnsetEnv)]
    if len(unset) == 1:
        raise unset[0]
    if unset:
        raise ConfigError("\n".join(str(u) for u in unset))


def resolve_agent(path: str | Path | AgentSpec, block: Iterable[str] = ()) -> str | Path | AgentSpec:
    """``path`` itself, or the agent a plugin registered under that name when no file or
    directory ``path`` exists (its YAML file, so that agents beside it are found).

    Raises:
        ConfigError: No plugin registers it either, or two do.
    """
    from .agents import AGENT_NAME
    from .plugins import shared_plugins

    if isinstance(path, AgentSpec) or Path(path).exists() or not AGENT_NAME.match(str(path)):
        return path
    spec: AgentSpec = shared_plugins(block=block).agent(str(path)).spec
    return spec.file if spec.file is not None else spec


def _shown(path: str | Path | AgentSpec) -> str:
    return f"agent {path.name!r}" if isinstance(path, AgentSpec) else str(path)


def scenario_for(agent_file: Path | None) -> Path | None:
    """``AGENT.scenario.yaml`` beside an agent file, if it exists."""
    if agent_file is None:
        return None
    candidate = agent_file.with_name(agent_file.stem + ".scenario.yaml")
    return candidate if candidate.exists() else None


def _no_scenario_warning(agent: AgentSpec) -> str:
    """What ``--emulator`` says when it finds no scenario for ``agent``."""
    if agent.file is None:
        looked = f"agent {agent.name!r} is defined in Python, so there is no scenario file beside it"
    else:
        looked = f"no scenario {agent.file.with_name(agent.file.stem + '.scenario.yaml')}"
    return (f"emulator: {looked}; every input gets the emulator's fallback reply"
            " (give one with --scenario FILE, or scenario=...)")


def make_profile(
    target: RunTarget,
    *,
    url: str | None = None,
    azure: bool = False,
    model: str | None = None,
    beta: bool = False,
    api_key: str | None = None,
) -> ConnectionProfile:
    """The connection profile for the options (OpenAI unless ``url`` or ``azure``)."""
    chosen = model or target.graph.get(target.agent).model
    if url is not None:
        # Never send an OpenAI key to an arbitrary server: custom URLs get their own variable.
        key = api_key or os.environ.get("REALTALK_API_KEY") or None
        return ConnectionProfile.url(url, api_key=key, model=chosen, beta=beta)
    if azure:
        return ConnectionProfile.azure(chosen, api_key=api_key, beta=beta)
    return ConnectionProfile.openai(chosen, api_key=api_key, beta=beta)


def run_on_model(target: RunTarget, model: str | None, *, overridden: bool) -> None:
    """Set every agent of the target's graph to the session's model (the profile's).

    The model is part of the URL, so every agent of a session runs on it; with the agents
    set to it, what their ``session.update`` sends fits it (a reasoning effort only to a
    model that takes one). Call it after :func:`make_profile`, with the profile's model.

    Args:
        target: The graph to run.
        model: The session's model; None leaves the agents as they are.
        overridden: The model was given instead of the agent's (``--model``), for messages.

    Raises:
        ConfigError: An agent sets ``reasoning`` or ``parallel_tool_calls`` and ``model``
            is one realtalk knows does not take them.
    """
    from .models import takes_reasoning

    if model is None:
        return
    chosen_by = "--model" if overridden else f"agent {target.agent!r}"
    graph = target.graph
    for name, spec in list(graph.agents.items()):
        if spec.model == model:
            continue
        if takes_reasoning(model) is False:
            for key, value in (("reasoning", spec.reasoning_effort), ("parallel_tool_calls", spec.parallel_tool_calls)):
                if value is not None:
                    raise ConfigError(f"agent {name!r} sets {key}, but the session runs on {model}"
                                      f" (chosen by {chosen_by}), which does not take it", file=spec.file)
        graph.agents[name] = replace(spec, model=model)


@contextlib.asynccontextmanager
async def open_session(
    path: str | Path | AgentSpec,
    *,
    agent: str | None = None,
    url: str | None = None,
    azure: bool = False,
    model: str | None = None,
    beta: bool = False,
    api_key: str | None = None,
    emulator: bool | Any = False,
    scenario: str | Path | dict[str, Any] | None = None,
    fast: bool = True,
    text_only: bool = False,
    approve: Approver | None = None,
    record: str | Path | None = None,
    record_audio: bool = False,
    output: Any | None = None,
    block_plugins: Iterable[str] = (),
    extra_plugins: Iterable[object] = (),
    tool_files: Iterable[str | Path] = (),
    listeners: Iterable[Any] = (),
    **session_options: Any,
) -> AsyncIterator[Session]:
    """Load, connect and configure; yield the started session; close everything after.

    Args:
        path: An agent file, a directory with ``agent`` naming the starting agent, or
            an agent defined in Python (:func:`realtalk.Agent`).
        agent: Starting agent when ``path`` holds several.
        url: Any server speaking the GA protocol (``ws://`` or ``wss://``).
        azure: Use Azure OpenAI (``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``).
        model: Model (or Azure deployment) instead of the agent's.
        beta: Speak the legacy beta protocol (only for servers that still do).
        api_key: Instead of the profile's environment variable.
        emulator: True to start a built-in emulator, or a running ``Emulator`` to use.
        scenario: The built-in emulator's scenario (a file, a mapping or a ``Scenario``);
            default ``AGENT.scenario.yaml`` beside the agent file. Without either, a
            warning is logged and every input gets the fallback reply.
        fast: Let the built-in emulator send audio without real-time pacing.
        text_only: Answer in text even if the agent speaks.
        approve: Decides ``requires_approval`` calls.
        record: Write every event to this JSONL file.
        record_audio: Keep audio payloads in the record.
        output: Where assistant audio goes (an ``OutputSink``).
        block_plugins: Plugin distributions not to load.
        extra_plugins: Plugin objects or typed tool functions to register in-process.
        tool_files: Tool files (tools YAML, or Python modules of typed tools) every agent
            may list tools from, as ``--tools``; each agent's ``tool_files:`` are added.
        listeners: Callables given every :class:`SessionEvent`, from the first.
        **session_options: Passed to :class:`Session`.
    """
    target = load_target(path, agent, block=block_plugins, extra=extra_plugins, tool_files=tool_files)
    async with contextlib.AsyncExitStack() as stack:
        if emulator is True:
            from .emulator import Emulator

            start = target.graph.get(target.agent)
            if scenario is None:
                scenario = scenario_for(start.file)
                if scenario is None:
                    logging.getLogger(__name__).warning(_no_scenario_warning(start))
            emu = Emulator(scenario=scenario, fast=fast)
            await stack.enter_async_context(emu)
            url = emu.url
        elif emulator:
            url = emulator.url
        profile = make_profile(target, url=url, azure=azure, model=model, beta=beta, api_key=api_key)
        run_on_model(target, profile.model, overridden=model is not None)
        recorder = None
        if record:
            from .recorder import Recorder

            try:
                recorder = Recorder(record, record_audio=record_audio, secrets=profile.secrets)
            except OSError as exc:
                raise ConfigError(f"cannot write the record: {exc.strerror or exc}", file=Path(record)) from None
        session = Session(target.graph, target.agent, target.plugins.registry, profile,
                          text_only=text_only, approve=approve, recorder=recorder, output=output,
                          **session_options)
        for listener in listeners:
            session.on(listener)
        start = target.graph.get(target.agent)
        info = SessionInfo(target.agent, tuple(target.graph.agents), profile.display_url, model or start.model)
        for observer in target.plugins.observers(info, session.warn):
            session.on(observer)
        # Closed however start() ends: a half-configured session still holds a socket.
        stack.push_async_callback(session.close)
        await session.start()
        yield session



async def run_agent(
    path: str | Path | AgentSpec, texts: Sequence[str], *, timeout: float = 120.0, **options: Any
) -> list[TurnResult]:
    """Run one turn per text and return the turns (text-only unless told otherwise).

    Args:
        path: The agent file, or an agent defined in Python (:func:`realtalk.Agent`).
        texts: What the user says, one turn each.
        timeout: Seconds per turn.
        **options: As for :func:`open_session`.
    """
    options.setdefault("text_only", True)
    async with open_session(path, **options) as session:
        return [await session.ask(text, timeout) for text in texts]


async def stream_audio_file(session: Session, path: str | Path, *, realtime: bool = True,
                            chunk_ms: int = 40, timeout: float = 120.0) -> list[TurnResult]:
    """Speak a WAV file into the session, then wait for the replies to finish.

    The file is resampled to 24 kHz and sent in ``chunk_ms`` chunks, at real-time pace
    unless ``realtime`` is false, followed by enough silence for server VAD to end the
    turn. With push-to-talk agents (``turn_detection: none``) the audio is committed and
    a response requested at the end.

    Returns:
        The turns that completed.
    """
    from .audio import WavFileSource

    agent = session.agent
    silence = 0
    if agent.turn_detection is not None:
        silence = int(agent.turn_detection.get("silence_duration_ms",
                                               SERVER_VAD_DEFAULTS["silence_duration_ms"])) + 700
    turns: list[TurnResult] = []
    source = WavFileSource(path, chunk_ms=chunk_ms, realtime=realtime, trailing_silence_ms=silence)
    async with source:
        async for chunk in source:
            await session.append_audio(chunk)
    if agent.turn_detection is None:
        await session.commit_audio()
    # Wait for every turn the audio started; server VAD answers on its own.
    while True:
        turn = await session.next_turn(timeout)
        if turn is None:
            break
        turns.append(turn)
    return turns

