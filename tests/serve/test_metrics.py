"""realtalk.serve.metrics: events of real sessions in, Prometheus text out, parsed back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONCIERGE = ROOT / "agents" / "concierge.yaml"


@pytest.fixture
def metrics_module(require: Any) -> Any:
    try:
        from realtalk.serve import metrics
    except ImportError as exc:  # prometheus-client missing: the serve extra is not installed
        require(False, f"realtalk[serve] ({exc})")
    return metrics


def samples(metrics: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``metrics.render()``, parsed by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_real_session_is_counted(metrics_module: Any) -> None:
    from realtalk.pricing import UsageTotals
    from realtalk.results import SessionEvent, TurnDone
    from realtalk.runner import open_session

    metrics = metrics_module.Metrics(agents=["concierge", "billing"], tools=["get_time"])
    events: list[SessionEvent] = []
    metrics.session_started("browser")
    assert value(samples(metrics), "realtalk_active_sessions", kind="browser") == 1
    async with open_session(CONCIERGE, emulator=True, listeners=[events.append]) as session:
        model = session.profile.model
        session.on(lambda event: metrics.observe(event, model))
        await session.ask("What time is it in Tokyo?", 30)
        await session.ask("A question about my bill", 30)
    metrics.session_ended("browser", "completed")
    assert model == "gpt-realtime-2.1"

    found = samples(metrics)
    assert value(found, "realtalk_active_sessions", kind="browser") == 0
    assert value(found, "realtalk_sessions_total", kind="browser", outcome="completed") == 1
    assert value(found, "realtalk_turns_total", agent="concierge", status="completed") == 1
    assert value(found, "realtalk_turns_total", agent="billing", status="completed") == 1
    assert value(found, "realtalk_turn_latency_seconds_count", agent="concierge") == 1
    assert value(found, "realtalk_turn_latency_seconds_bucket", agent="concierge", le="5.0") == 1
    assert value(found, "realtalk_turn_duration_seconds_count", agent="billing") == 1
    assert value(found, "realtalk_tool_duration_seconds_count", tool="get_time") == 1
    assert value(found, "realtalk_tool_calls_total", tool="get_time", status="ok") == 1
    assert value(found, "realtalk_errors_total", kind="server") == 0
    # Tokens and cost agree with the turns' own usage, priced by realtalk.pricing.
    totals = UsageTotals(model)
    for event in events:
        if isinstance(event, TurnDone):
            totals.add_all(event.usage)
    assert totals.responses >= 2 and totals.cost_usd is not None and totals.cost_usd > 0
    for kind, count in totals.tokens.items():
        assert value(found, "realtalk_tokens_total", model="gpt-realtime-2.1", kind=kind) == count
    assert value(found, "realtalk_cost_usd_total", model="gpt-realtime-2.1") == pytest.approx(totals.cost_usd)


def test_names_not_loaded_are_other(metrics_module: Any) -> None:
    from realtalk.results import ToolFinished, TurnDone

    metrics = metrics_module.Metrics(agents=["desk"], tools=["get_time"])
    for name in ("made_up_1", "made_up_2", "get_time"):
        metrics.observe(ToolFinished("c1", name, "unknown_tool" if "made" in name else "ok", "{}", 0.01, "desk"),
                        "gpt-realtime")
    metrics.observe(TurnDone("intruder", "", first_delta_ms=300.0, status="weird"), "a-model-nobody-loaded")
    usage = {"input_tokens": 1000, "output_tokens": 10}
    metrics.observe(TurnDone("desk", "", usage=(usage,)), "a-model-nobody-loaded")
    found = samples(metrics)
    assert value(found, "realtalk_tool_calls_total", tool="other", status="unknown_tool") == 2
    assert value(found, "realtalk_tool_calls_total", tool="get_time", status="ok") == 1
    assert value(found, "realtalk_turns_total", agent="other", status="other") == 1
    assert value(found, "realtalk_tokens_total", model="other", kind="input_text") == 1000
    assert value(found, "realtalk_unpriced_tokens_total", model="other") == 1010
    assert value(found, "realtalk_cost_usd_total", model="other") == 0
    labels = {dict(key[1]).get(label) for key in found for label in ("agent", "tool", "model")}
    assert labels - {None} == {"desk", "get_time", "other"}


def test_errors_reconnects_and_failed_tools(metrics_module: Any) -> None:
    from realtalk.results import ErrorEvent, Reconnected, ToolFinished

    metrics = metrics_module.Metrics(tools=["slow"])
    metrics.observe(ErrorEvent("server said no", code="server_error"), "gpt-realtime")
    metrics.observe(ErrorEvent("gone", fatal=True), "gpt-realtime")
    metrics.observe(Reconnected("connection closed (1006)", 4, 1), "gpt-realtime")
    metrics.observe(ToolFinished("c2", "slow", "timeout", "{}", 5.0, "desk"), "gpt-realtime")
    metrics.error("client")
    found = samples(metrics)
    assert value(found, "realtalk_errors_total", kind="server") == 1
    assert value(found, "realtalk_errors_total", kind="fatal") == 1
    assert value(found, "realtalk_errors_total", kind="tool") == 1
    assert value(found, "realtalk_errors_total", kind="client") == 1
    assert value(found, "realtalk_reconnects_total") == 1
    assert value(found, "realtalk_tool_duration_seconds_sum", tool="slow") == 5.0


def test_sessions_by_kind_and_outcome(metrics_module: Any) -> None:
    metrics = metrics_module.Metrics()
    metrics.session_started("phone")
    metrics.session_started("phone")
    metrics.session_ended("phone", "max_session")
    metrics.refused("browser")
    found = samples(metrics)
    assert value(found, "realtalk_active_sessions", kind="phone") == 1
    assert value(found, "realtalk_sessions_total", kind="phone", outcome="max_session") == 1
    assert value(found, "realtalk_sessions_total", kind="browser", outcome="refused") == 1


def test_fixed_label_lists_refuse_other_values(metrics_module: Any) -> None:
    metrics = metrics_module.Metrics()
    with pytest.raises(ValueError, match=r"^unknown session kind 'fax'; known: browser, phone$"):
        metrics.session_started("fax")
    with pytest.raises(ValueError, match=r"^unknown outcome 'meh'; known: completed, refused, "):
        metrics.session_ended("browser", "meh")
    with pytest.raises(ValueError, match=r"^unknown error kind 'oops'; known: server, "):
        metrics.error("oops")


def test_each_metrics_has_its_own_registry(metrics_module: Any) -> None:
    from prometheus_client import REGISTRY

    first, second = metrics_module.Metrics(), metrics_module.Metrics()
    first.session_started("browser")
    assert value(samples(first), "realtalk_active_sessions", kind="browser") == 1
    assert value(samples(second), "realtalk_active_sessions", kind="browser") == 0
    assert REGISTRY.get_sample_value("realtalk_active_sessions", {"kind": "browser"}) is None


WORKER = """
import sys
from realtalk.results import ToolFinished, TurnDone
from realtalk.serve.metrics import Metrics

metrics = Metrics(agents=["desk"], tools=["get_time"])
assert metrics.multiprocess
metrics.session_started("browser")
metrics.observe(TurnDone("desk", "hi", first_delta_ms=300.0, usage=({"input_tokens": 100, "output_tokens": 10},)),
                "gpt-realtime")
metrics.observe(ToolFinished("c1", "get_time", "ok", "{}", 0.02, "desk"), "gpt-realtime")
if sys.argv[1] == "render":
    sys.stdout.write(metrics.render()[0].decode())
"""


def test_multiprocess_mode_sums_every_worker(metrics_module: Any, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from prometheus_client.parser import text_string_to_metric_families

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def worker(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", WORKER, mode], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker("count")
    worker("count")
    text = worker("render")  # a third worker answers the scrape: the sum of all three
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(text) for s in family.samples}
    assert value(found, "realtalk_turns_total", agent="desk", status="completed") == 3
    assert value(found, "realtalk_active_sessions", kind="browser") == 3
    assert value(found, "realtalk_turn_latency_seconds_count", agent="desk") == 3
    assert value(found, "realtalk_tool_calls_total", tool="get_time", status="ok") == 3
    assert value(found, "realtalk_tokens_total", model="gpt-realtime", kind="input_text") == 300
    assert value(found, "realtalk_cost_usd_total", model="gpt-realtime") == pytest.approx(3 * (400 + 160) / 1e6)
    # Without the variable (this process), each Metrics renders only its own registry.
    assert not metrics_module.Metrics().multiprocess
