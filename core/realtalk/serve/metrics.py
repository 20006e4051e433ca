"""Prometheus metrics of ``realtalk serve``: sessions, turns, latency, tools, errors, tokens, cost.

:class:`Metrics` holds its own ``CollectorRegistry`` (never the global one, so two servers
in one process, or a test, do not share counters). The hub counts sessions with
:meth:`~Metrics.session_started` and :meth:`~Metrics.session_ended`, and hands every
:class:`~realtalk.results.SessionEvent` of every session to :meth:`~Metrics.observe`;
``GET /metrics`` answers :meth:`~Metrics.render`.

Label values are bounded: agent, tool and model names are those given when the metrics
are made (the loaded agents, their tools, their models); any other name, which a model
or a caller could make up, is counted as ``other``. Session kinds, outcomes, error
kinds and statuses come from fixed lists.

Each process has its own registry: with ``--workers N`` each worker counts its own
sessions, and a scrape sees whichever worker answers it. When ``PROMETHEUS_MULTIPROC_DIR``
names a directory before the server starts, prometheus_client's multiprocess mode is on:
every worker writes its values there and :meth:`~Metrics.render` sums them all (see
docs/serve.md, "Usage, cost and metrics").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..pricing import KINDS, PRICES, Price, estimate, tokens_by_kind
from ..results import ErrorEvent, Reconnected, SessionEvent, ToolFinished, TurnDone

__all__ = [
    "ERROR_KINDS",
    "LATENCY_BUCKETS",
    "OTHER",
    "OUTCOMES",
    "SESSION_KINDS",
    "Metrics",
]

OTHER = "other"
"""The label value of a name that is not one of the known ones."""
SESSION_KINDS = ("browser", "phone")
"""Where a caller is: the page, or a phone call."""
OUTCOMES = ("completed", "refused", "max_session", "draining", "error", "disconnected")
"""How a session ended: the caller said bye (or hung up), it was refused, it ran out of
time, the server drained it, it failed, or the connection dropped."""
ERROR_KINDS = ("server", "fatal", "tool", "client", "internal")
"""``server``: an error the Realtime server reported; ``fatal``: a session failed;
``tool``: a tool call failed or timed out; ``client``: a bad message from a page or phone;
``internal``: a bug of the server."""
TURN_STATUSES = ("completed", "failed", "incomplete", "cancelled")
TOOL_STATUSES = ("ok", "invalid_arguments", "error", "timeout", "cancelled", "refused", "unknown_tool")

LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
"""Seconds from the end of the user's turn to the first reply delta: voice wants < 1 s."""
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The server's metrics, in a registry of their own.

    Args:
        agents: Agent names that are labels of their own (others count as ``other``).
        tools: Tool names that are labels of their own.
        models: Model (or deployment) names that are labels of their own, besides those of
            ``prices``.
        prices: The price table the cost is estimated with.
    """

    def __init__(self, *, agents: Iterable[str] = (), tools: Iterable[str] = (), models: Iterable[str] = (),
                 prices: Mapping[str, Price | None] = PRICES) -> None:
        self.agents = frozenset(agents)
        self.tools = frozenset(tools)
        self.models = frozenset(models) | frozenset(prices)
        self.prices = prices
        # prometheus_client decides once, when imported, from PROMETHEUS_MULTIPROC_DIR.
        self.multiprocess = values.ValueClass is not values.MutexValue
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.active_sessions = Gauge("realtalk_active_sessions", "Sessions running now.", ["kind"], registry=reg,
                                     multiprocess_mode="livesum")
        self.sessions = Counter("realtalk_sessions", "Sessions ended, by kind and outcome.",
                                ["kind", "outcome"], registry=reg)
        self.turns = Counter("realtalk_turns", "Turns done, by agent and status.", ["agent", "status"], registry=reg)
        self.turn_latency = Histogram(
            "realtalk_turn_latency_seconds", "From the end of the user's turn to the first reply delta.",
            ["agent"], buckets=LATENCY_BUCKETS, registry=reg)
        self.turn_duration = Histogram(
            "realtalk_turn_duration_seconds", "From the end of the user's turn to the session being idle.",
            ["agent"], buckets=DURATION_BUCKETS, registry=reg)
        self.tool_duration = Histogram("realtalk_tool_duration_seconds", "Wall time of tool calls.", ["tool"],
                                       buckets=TOOL_BUCKETS, registry=reg)
        self.tool_calls = Counter("realtalk_tool_calls", "Tool calls, by tool and status.", ["tool", "status"],
                                  registry=reg)
        self.errors = Counter("realtalk_errors", "Errors, by kind.", ["kind"], registry=reg)
        self.reconnects = Counter("realtalk_reconnects", "Connections to the Realtime server replaced.",
                                  registry=reg)
        self.tokens = Counter("realtalk_tokens", "Tokens used, by model and kind (input_cached_*: billed"
                              " at the cached price, not also in input_*).", ["model", "kind"], registry=reg)
        self.cost = Counter("realtalk_cost_usd", "Estimated cost in USD from the price table (docs/usage.md);"
                            " models without a known price add nothing.", ["model"], registry=reg)
        self.unpriced_tokens = Counter("realtalk_unpriced_tokens", "Tokens no price was known for, by model.",
                                       ["model"], registry=reg)
        # Known label sets start at 0, so that a rate or an alert has a series from the start.
        for kind in SESSION_KINDS:
            self.active_sessions.labels(kind)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)

    # -- sessions ---------------------------------------------------------------------------

    def session_started(self, kind: str) -> None:
        """A session of ``kind`` (``browser`` or ``phone``) started."""
        self.active_sessions.labels(_one_of(kind, SESSION_KINDS, "session kind")).inc()

    def session_ended(self, kind: str, outcome: str) -> None:
        """A session started with :meth:`session_started` ended with ``outcome`` (:data:`OUTCOMES`)."""
        kind = _one_of(kind, SESSION_KINDS, "session kind")
        self.active_sessions.labels(kind).dec()
        self.sessions.labels(kind, _one_of(outcome, OUTCOMES, "outcome")).inc()

    def refused(self, kind: str) -> None:
        """A caller was refused before any session started (counted as an ended session)."""
        self.sessions.labels(_one_of(kind, SESSION_KINDS, "session kind"), "refused").inc()

    def error(self, kind: str) -> None:
        """Count an error of ``kind`` (:data:`ERROR_KINDS`) that is no session event."""
        self.errors.labels(_one_of(kind, ERROR_KINDS, "error kind")).inc()

    # -- events -----------------------------------------------------------------------------

    def observe(self, event: SessionEvent, model: str) -> None:
        """Count one event of a session talking to ``model``."""
        if isinstance(event, TurnDone):
            agent = self._label(event.agent, self.agents)
            status = event.status if event.status in TURN_STATUSES else OTHER
            self.turns.labels(agent, status).inc()
            if event.first_delta_ms is not None:
                self.turn_latency.labels(agent).observe(event.first_delta_ms / 1000)
            if event.done_ms is not None:
                self.turn_duration.labels(agent).observe(event.done_ms / 1000)
            for usage in event.usage:
                self._usage(usage, model)
        elif isinstance(event, ToolFinished):
            tool = self._label(event.name, self.tools)
            self.tool_duration.labels(tool).observe(event.duration_s)
            self.tool_calls.labels(tool, event.status if event.status in TOOL_STATUSES else OTHER).inc()
            if event.status in ("error", "timeout"):
                self.errors.labels("tool").inc()
        elif isinstance(event, ErrorEvent):
            self.errors.labels("fatal" if event.fatal else "server").inc()
        elif isinstance(event, Reconnected):
            self.reconnects.inc()

    def _usage(self, usage: Mapping[str, object], model: str) -> None:
        label = self._label(model, self.models)
        tokens = tokens_by_kind(usage)
        for kind in KINDS:
            if tokens[kind]:
                self.tokens.labels(label, kind).inc(tokens[kind])
        cost = estimate(tokens, model, self.prices)
        if cost is None:
            self.unpriced_tokens.labels(label).inc(sum(tokens.values()))
        else:
            self.cost.labels(label).inc(cost)

    @staticmethod
    def _label(name: str, known: frozenset[str]) -> str:
        return name if name in known else OTHER

    # -- exposition -------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type (in
        multiprocess mode, the sum of every process's values)."""
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client has no hints here
        return generate_latest(registry), CONTENT_TYPE_LATEST


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(allowed)}")
    return value
