"""The sessions of one server process: who is admitted, and a live :class:`Session` each.

The transports (the browser WebSocket in :mod:`realtalk.serve.app`, phone calls in
:mod:`realtalk.serve.twilio`) only move data; the hub holds what they share:

- the agents, loaded and checked once at start-up (a bad agents directory stops the
  server before it listens);
- the access policy (:mod:`realtalk.serve.access`): tokens, origins, capacity, drain;
- one emulator for the whole process with ``--emulator``;
- for each admitted caller, a started session built as ``realtalk run`` builds one
  (plugins' observers, a record per session with ``--record-dir``), ended after
  ``max_session_s`` and on drain, counted in the metrics, logged with its session id.

A transport passes ``on_end``: the hub calls it with a ``closing`` code and reason
(``max_session``, ``draining``) when the session must end, and the transport says
goodbye and leaves the session's context. Without ``on_end`` the hub cancels the task
that entered the context.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..plugins import SessionInfo
from ..pricing import PRICES, Price
from ..results import Approver, Listener
from ..runner import RunTarget, load_target, make_profile, resolve_agent, run_on_model, scenario_for
from ..session import Session
from ..waits import within
from . import logs
from .access import AccessPolicy, Admission, Refused, TokenMinter
from .config import ServeConfig
from .metrics import Metrics

if TYPE_CHECKING:
    from ..agents import AgentGraph
    from ..audio.remote import RemoteSink
    from ..emulator import Emulator

__all__ = ["Admission", "OnEnd", "Refused", "SessionHub"]

log = logging.getLogger(__name__)

OnEnd = Callable[[str, str], Awaitable[None]]
"""``on_end(code, reason)``: the transport ends its session (``closing``, then close)."""
END_GRACE_S = 5.0
"""How long a transport has, after ``on_end``, to leave the session before it is cancelled."""
KEPT_EMULATOR_CONNECTIONS = 1000
"""Connection records the ``--emulator`` keeps: a server up for days stays bounded."""


@dataclass(eq=False)
class _Live:
    admission: Admission
    task: asyncio.Task[Any] | None
    on_end: OnEnd | None
    ending: str | None = None
    outcome: str = "disconnected"
    left: asyncio.Event = field(default_factory=asyncio.Event)


class SessionHub:
    """Admits callers and runs their sessions.

    Args:
        config: What the server was asked to do (checked here).
        clock: Seconds since the epoch, for minted tokens (tests pass their own).

    Raises:
        ConfigError: The config or the agents have a problem (one line, or one per problem).

    Attributes:
        config: The config.
        agents: Agents a caller may pick: the agent files asked for first, then the
            agents they hand off to.
        default_agent: The agent of ``/ws`` without ``?agent=``.
        policy: The access policy (counts the active sessions).
        metrics: The Prometheus metrics (:mod:`realtalk.serve.metrics`).
        draining: True once :meth:`drain` began: no new session is admitted.
    """

    def __init__(self, config: ServeConfig, *, clock: Callable[[], float] = time.time) -> None:
        config.check()
        self.config = config
        agent = config.agent
        if agent is None:  # the first agent file, unless the directory has problems (reported below)
            from ..localtools import load_graph

            graph, _ = load_graph([resolve_agent(config.agents)])
            agent = graph.roots[0] if graph.roots and not graph.problems else None
        self.target: RunTarget = load_target(config.agents, agent)
        graph = self.target.graph
        self.default_agent = self.target.agent
        self.agents = [*graph.roots, *(name for name in graph.agents if name not in graph.roots)]
        minter = TokenMinter(config.token_secret, config.token_ttl_s, clock) if config.token_secret else None
        self.policy = AccessPolicy(tokens=config.tokens, minter=minter, allow_origins=config.allow_origins,
                                   max_sessions=config.max_sessions, max_per_client=config.max_per_client)
        self.prices = _prices(config)
        self.metrics = _metrics(self, self.prices)
        self.draining = False
        self.emulator: Emulator | None = None
        self._graphs: dict[str | None, AgentGraph] = {None: graph}
        self._live: dict[str, _Live] = {}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        """The Realtime endpoint sessions connect to (None: OpenAI or Azure)."""
        if self.emulator is not None:
            return self.emulator.url
        return self.config.emulator_url or self.config.url

    async def start(self) -> None:
        """Start the process's emulator, with ``--emulator`` (and no ``emulator_url``).

        Raises:
            ScenarioError: The scenario is invalid.
            OSError: The emulator cannot listen.
        """
        if not self.config.emulator or self.config.emulator_url or self.emulator is not None:
            return
        scenario = self.config.scenario or scenario_for(self.target.graph.get(self.default_agent).file)
        if scenario is None:
            log.warning("emulator: no scenario beside agent %r; every input gets the fallback reply"
                        " (give one with --scenario FILE)", self.default_agent)
        from ..emulator import Emulator

        # Callers are strangers: each plays the script from its start (the greeting, then
        # the turns it matches); the records of the last few callers are kept.
        emulator = Emulator(scenario, fast=self.config.emulator_fast, per_connection=True,
                            max_connections=KEPT_EMULATOR_CONNECTIONS)
        await emulator.start()
        self.emulator = emulator

    async def stop(self) -> None:
        """Stop the emulator (after :meth:`drain`)."""
        if self.emulator is not None:
            await self.emulator.stop()
            self.emulator = None

    @property
    def active(self) -> int:
        """Sessions admitted and not yet ended."""
        return len(self.policy.active)

    # -- admission ----------------------------------------------------------------------

    def admit(self, *, client: str, token: str | None, origin: str | None, kind: str,
              host: str | None = None) -> Admission:
        """Admit a caller (a slot until its session ends, or :meth:`release`).

        Raises:
            Refused: Draining, a bad origin or token, or no capacity left.
        """
        try:
            return self.policy.admit(client=client, token=token, origin=origin, host=host, kind=kind,
                                     draining=self.draining)
        except Refused as exc:
            log.info("refused %s caller from %s: %s (%s)", kind, client, exc.code, exc.reason)
            self.refused(kind)
            raise

    def refused(self, kind: str) -> None:
        """Count a caller refused by the transport (an unknown agent) or by :meth:`admit`."""
        self.metrics.refused(kind)

    def outcome(self, admission: Admission, outcome: str) -> None:
        """Say how the session ended (``completed``: the caller said bye or hung up);
        by default ``disconnected``, or why the hub ended it, or ``error``."""
        live = self._live.get(admission.session_id)
        if live is not None and live.ending is None:
            live.outcome = outcome

    def model_of(self, agent: str) -> str:
        """The model sessions of ``agent`` use (``--model``, or the agent's)."""
        return self.config.model or self.target.graph.get(agent).model

    def release(self, admission: Admission) -> None:
        """Free a slot whose session never started (idempotent)."""
        self.policy.release(admission)
        self._changed.set()

    def agent_or_refuse(self, name: str | None) -> str:
        """``name`` (or the default agent) if a caller may pick it.

        Raises:
            Refused: 404 for an agent that is not in the graph.
        """
        if name is None or name == "":
            return self.default_agent
        if name not in self.agents:
            shown = "".join(c if c.isprintable() else "?" for c in name[:60])
            raise Refused(404, "unknown_agent", f"no agent {shown!r} here; agents: {', '.join(self.agents)}")
        return name

    # -- sessions -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(self, admission: Admission, agent: str, *, output: RemoteSink,
                      approve: Approver | None = None, listeners: Iterable[Listener] = (),
                      audio_format: str | None = None, on_end: OnEnd | None = None) -> AsyncIterator[Session]:
        """A started session for an admitted caller; closed, released and counted when left.

        Args:
            admission: From :meth:`admit`.
            agent: The agent to start with (one of :attr:`agents`).
            output: Where the assistant's audio goes (the caller's player).
            approve: Decides ``requires_approval`` calls (the caller is asked).
            listeners: Given every session event, from the first.
            audio_format: ``audio/pcmu`` or ``audio/pcma`` makes every agent use it (phones).
            on_end: Called with ``(code, reason)`` when the hub ends the session.

        Raises:
            ConfigError: ``agent`` or ``audio_format`` is not valid.
            RealtalkError: The session could not start (the model server refused it...).
        """
        context = logs.session_id.set(admission.session_id)
        live = _Live(admission, asyncio.current_task(), on_end)
        self._live[admission.session_id] = live
        timer: asyncio.TimerHandle | None = None
        try:
            graph = self._graph(audio_format)
            target = RunTarget(graph, agent, self.target.plugins)
            start = graph.get(agent)
            profile = make_profile(target, url=self.url, azure=self.config.azure, model=self.config.model)
            run_on_model(target, profile.model, overridden=self.config.model is not None)
            recorder = None
            if self.config.record_dir is not None:
                from ..recorder import Recorder

                path = self.config.record_dir / f"{admission.session_id}.jsonl"
                try:
                    recorder = Recorder(path, secrets=profile.secrets)
                except OSError as exc:
                    raise ConfigError(f"cannot write the record {path}: {exc.strerror or exc}") from None
            session = Session(graph, agent, self.target.plugins.registry, profile, approve=approve,
                              recorder=recorder, output=output)
            for listener in listeners:
                session.on(listener)
            model = self.config.model or start.model
            metrics = self.metrics
            session.on(lambda event: metrics.observe(event, model))
            metrics.session_started(admission.kind)
            info = SessionInfo(agent, tuple(graph.agents), profile.display_url, model)
            for observer in self.target.plugins.observers(info, session.warn):
                session.on(observer)
            timer = asyncio.get_running_loop().call_later(
                self.config.max_session_s, self._end, live, "max_session",
                f"the session reached its maximum length of {self.config.max_session_s:g} s")
            try:
                await session.start()
                log.info("session started: %s caller from %s, agent %s", admission.kind, admission.client, agent)
                yield session
            except BaseException:
                live.outcome = "error" if live.ending is None else live.outcome
                raise
            finally:
                await session.close()
                outcome = live.ending or ("error" if session.failure is not None else live.outcome)
                self.metrics.session_ended(admission.kind, outcome)
                log.info("session ended: %s", outcome)
        finally:
            if timer is not None:
                timer.cancel()
            self._live.pop(admission.session_id, None)
            self.policy.release(admission)
            live.left.set()
            self._changed.set()
            logs.session_id.reset(context)

    def _graph(self, audio_format: str | None) -> AgentGraph:
        """The graph, with every agent using ``audio_format`` when given."""
        if audio_format not in self._graphs:
            from ..protocol.vocab import audio_format as parse_format

            try:
                fmt = parse_format(audio_format or "").name
            except ValueError as exc:
                raise ConfigError(f"audio_format: {exc}") from None
            base = self._graphs[None]
            agents = {name: dataclasses.replace(spec, audio_format=fmt) for name, spec in base.agents.items()}
            self._graphs[audio_format] = dataclasses.replace(base, agents=agents)
        return self._graphs[audio_format]

    def _end(self, live: _Live, code: str, reason: str) -> None:
        """Ask the session's transport to end it (once), and cancel it if it does not."""
        if live.ending is not None or live.left.is_set():
            return
        live.ending = code
        task = asyncio.create_task(self._ending(live, code, reason), name=f"realtalk-end-{code}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ending(self, live: _Live, code: str, reason: str) -> None:
        token = logs.session_id.set(live.admission.session_id)
        try:
            log.info("ending the session: %s", reason)
            if live.on_end is not None:
                with contextlib.suppress(Exception, asyncio.TimeoutError):
                    await within(live.on_end(code, reason), END_GRACE_S)
                with contextlib.suppress(asyncio.TimeoutError):
                    await within(live.left.wait(), END_GRACE_S)
            if not live.left.is_set() and live.task is not None:
                live.task.cancel()
        finally:
            logs.session_id.reset(token)

    # -- drain --------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> None:
        """Admit no one; let sessions end on their own for ``timeout_s``; then end the rest
        (``closing`` ``draining``) and wait for them (bounded)."""
        if not self.draining or self._live:
            log.info("draining: %d session(s) active, waiting up to %g s", len(self._live), timeout_s)
        self.draining = True
        await self._until_empty(timeout_s)
        for live in list(self._live.values()):
            self._end(live, "draining", "the server is shutting down")
        await self._until_empty(2 * END_GRACE_S + 1)
        if self._live:
            log.warning("drain: %d session(s) did not end", len(self._live))

    async def _until_empty(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._live:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await within(self._changed.wait(), left)
        return True



def _prices(config: ServeConfig) -> Mapping[str, Price | None]:
    """The price table: the built-in one, or the config's."""
    return PRICES if config.prices is None else config.prices


def _metrics(hub: SessionHub, prices: Mapping[str, Price | None]) -> Metrics:
    """The process's metrics, labelled with the hub's agents, tools and models."""
    graph, registry = hub.target.graph, hub.target.plugins.registry
    tools: set[str] = set()
    for spec in graph.agents.values():
        with contextlib.suppress(ConfigError):
            tools.update(tool.name for tool in graph.tools_for(spec, registry))
    models = {hub.config.model or spec.model for spec in graph.agents.values()}
    return Metrics(agents=hub.agents, tools=sorted(tools), models=sorted(models), prices=prices)
