"""results: typed session events, their JSON form and how they are built."""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import typing
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk import (
    Connected,
    ErrorEvent,
    HandoffDone,
    SessionEvent,
    SessionWarning,
    ToolFinished,
    TurnDone,
    session_event,
)
from realtalk.cli.console import ConsoleRenderer
from realtalk.pricing import KINDS, Price

CORE = Path(__file__).resolve().parent.parent / "core" / "realtalk"

# The keys of each `--json` line: scripts read them, so a change here is a visible one.
WIRE = {
    "connected": ["type", "agent", "url"],
    "reconnected": ["type", "reason", "items", "attempt"],
    "user.text": ["type", "text"],
    "user.transcript": ["type", "text"],
    "assistant.delta": ["type", "agent", "delta"],
    "assistant.done": ["type", "agent", "text"],
    "tool.started": ["type", "call_id", "name", "arguments", "agent"],
    "tool.finished": ["type", "call_id", "name", "status", "output", "duration_s", "agent", "note"],
    "handoff": ["type", "source", "target", "call_id"],
    "turn.done": ["type", "agent", "text", "interrupted", "first_delta_ms", "done_ms", "usage",
                  "status", "status_reason"],
    "interrupted": ["type", "item_id", "played_ms", "dropped_ms", "action", "latency_ms"],
    "input.timeout": ["type", "item_id", "audio_start_ms", "audio_end_ms"],
    "tool.still_working": ["type", "call_id", "name", "after_s", "say"],
    "mcp.tools_listed": ["type", "server_label", "tools", "error"],
    "warning": ["type", "message"],
    "error": ["type", "message", "code", "fatal"],
}


def event_classes() -> list[type[Any]]:
    return list(typing.get_args(SessionEvent))


def sample(cls: type[Any]) -> Any:
    values = {"int": 1, "float": 1.5, "bool": True, "str": "x"}
    fields = {f.name: values.get(str(f.type).split(" |")[0], "x") for f in dataclasses.fields(cls)}
    if cls is TurnDone:
        fields["usage"] = [{"input_tokens": 3, "output_tokens": 4}]
    return cls(**fields)


def test_every_kind_has_one_exported_frozen_class_and_a_pinned_wire() -> None:
    classes = event_classes()
    assert sorted(cls.type for cls in classes) == sorted(WIRE)
    for cls in classes:
        assert getattr(realtalk, cls.__name__) is cls
        event = sample(cls)
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.type = "other"
        assert list(event.as_dict()) == WIRE[cls.type], cls.type


@pytest.mark.parametrize("cls", event_classes(), ids=lambda cls: cls.type)
def test_json_lines_print_as_dict(cls: type[Any]) -> None:
    out = io.StringIO()
    event = sample(cls)
    ConsoleRenderer(out, json_lines=True)(event)
    expected = json.loads(json.dumps(event.as_dict()))
    if cls is TurnDone:  # and the turn's tokens by kind; no model, no cost
        expected.update(tokens={**dict.fromkeys(KINDS, 0), "input_text": 3, "output_text": 4}, cost_usd=None)
    assert json.loads(out.getvalue()) == expected


def test_session_event_builds_the_class_of_the_kind() -> None:
    event = session_event("tool.finished", call_id="c1", name="get_time", status="ok", output="{}",
                          duration_s=0.25, agent="concierge", note=None)
    assert event == ToolFinished("c1", "get_time", "ok", "{}", 0.25, "concierge")
    assert event.type == "tool.finished" and event.as_dict()["name"] == "get_time"
    # Both ways an error is reported build one class; code and fatal are optional.
    assert session_event("error", message="gone", fatal=True) == ErrorEvent("gone", None, True)
    assert session_event("handoff", source="a", target="b") == HandoffDone("a", "b", None)


def test_session_event_refuses_unknown_kinds_and_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown session event kind 'tool\.done'; known: .*tool\.finished"):
        session_event("tool.done", name="x")
    with pytest.raises(TypeError, match=r"session event 'warning' has no field 'text'; its fields: message"):
        session_event("warning", text="hi")
    with pytest.raises(TypeError, match=r"session event 'connected': .*'url'.*; its fields: agent, url"):
        session_event("connected", agent="a")


def test_turn_done_keeps_a_snapshot_of_usage() -> None:
    usage = [{"input_tokens": 1}]
    event = session_event("turn.done", agent="a", text="t", usage=usage)
    usage.append({"input_tokens": 2})
    assert event.usage == ({"input_tokens": 1},)


def test_console_prose_one_line_per_event() -> None:
    out = io.StringIO()
    console = ConsoleRenderer(out)
    for event in (Connected(agent="a", url="ws://u:p@h/x?api-key=k"), SessionWarning("careful"),
                  ErrorEvent("broken", code="server_error"),
                  TurnDone("a", "t", first_delta_ms=12.4, usage=({"input_tokens": 3, "output_tokens": 4},),
                           status="failed", status_reason="server_error: boom")):
        console(event)
    assert out.getvalue().splitlines() == [
        "· connected to ws://***@h/x?api-key=*** as a",
        "! careful",
        "! broken",
        "  · first delta 12 ms, tokens 3 in (0 audio, 3 text, 0 cached) / 4 out",
        "  ✗ turn failed: server_error: boom",
    ]


# A GA response.done usage: audio and text in, some of each cached; audio and text out.
VOICE_USAGE = {
    "total_tokens": 821, "input_tokens": 789, "output_tokens": 32,
    "input_token_details": {"text_tokens": 313, "audio_tokens": 476, "image_tokens": 0, "cached_tokens": 640,
                            "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384, "image_tokens": 0}},
    "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
}


def test_console_shows_tokens_by_kind_cost_and_the_session_total() -> None:
    out = io.StringIO()
    console = ConsoleRenderer(out, model="gpt-realtime")
    console.summary()  # nothing before the first turn
    console(TurnDone("a", "t", first_delta_ms=310.0, done_ms=1200.0, usage=(VOICE_USAGE,)))
    console(TurnDone("a", "t", first_delta_ms=250.0, usage=(VOICE_USAGE, {"input_tokens": 10, "output_tokens": 5})))
    console.summary()
    assert out.getvalue().splitlines() == [
        "  · first delta 310 ms, done 1200 ms, tokens 789 in (476 audio, 313 text, 640 cached) / 32 out, ~$0.0050",
        "  · first delta 250 ms, tokens 799 in (476 audio, 323 text, 640 cached) / 37 out, ~$0.0052",
        "· session: 2 turns, tokens 1588 in (952 audio, 636 text, 1280 cached) / 69 out, ~$0.0102 (estimate)",
    ]
    assert console.turns == 2 and console.usage.tokens["input_cached_audio"] == 768


def test_console_json_turns_carry_tokens_and_cost_and_end_with_the_session() -> None:
    out = io.StringIO()
    console = ConsoleRenderer(out, json_lines=True, model="gpt-realtime-mini")
    console(TurnDone("a", "t", usage=(VOICE_USAGE,)))
    console.summary()
    turn, session = (json.loads(line) for line in out.getvalue().splitlines())
    assert turn["type"] == "turn.done" and turn["usage"] == [VOICE_USAGE]
    assert turn["tokens"] == {"input_text": 57, "input_audio": 92, "input_image": 0, "input_cached_text": 256,
                              "input_cached_audio": 384, "input_cached_image": 0, "output_text": 9,
                              "output_audio": 23}
    mini = (57 * 0.6 + 92 * 10 + 256 * 0.06 + 384 * 0.3 + 9 * 2.4 + 23 * 20) / 1_000_000
    assert turn["cost_usd"] == pytest.approx(mini)
    assert session == {"type": "session.usage", "model": "gpt-realtime-mini", "turns": 1,
                       "tokens": turn["tokens"], "cost_usd": turn["cost_usd"]}


def test_console_without_a_known_price_shows_tokens_only() -> None:
    out = io.StringIO()
    console = ConsoleRenderer(out, model="my-azure-deployment")
    console(TurnDone("a", "t", usage=({"input_tokens": 10, "output_tokens": 5},)))
    console.summary()
    assert out.getvalue().splitlines() == [
        "  · tokens 10 in (0 audio, 10 text, 0 cached) / 5 out",
        ("· session: 1 turn, tokens 10 in (0 audio, 10 text, 0 cached) / 5 out; no price known for model"
        " 'my-azure-deployment' (--prices FILE)"),
    ]
    # A price table of one's own (a price file's) prices it.
    priced = io.StringIO()
    table = {"my-azure-deployment": Price(input_text=1000.0, output_text=2000.0)}
    ConsoleRenderer(priced, model="my-azure-deployment", prices=table)(
        TurnDone("a", "t", usage=({"input_tokens": 10, "output_tokens": 5},)))
    assert priced.getvalue() == "  · tokens 10 in (0 audio, 10 text, 0 cached) / 5 out, ~$0.0200\n"


# --- what the session emits matches the classes ----------------------------------------


def emitted(source: str) -> list[tuple[str, set[str], int]]:
    """``(kind, fields, line)`` of each ``_emit("kind", f=...)`` and ``Emit("kind", {"f": ...})``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "_emit":
            found.append((node.args[0].value, {k.arg for k in node.keywords if k.arg}, node.lineno))
        elif name == "Emit" and len(node.args) > 1 and isinstance(node.args[1], ast.Dict):
            keys = {k.value for k in node.args[1].keys if isinstance(k, ast.Constant)}
            found.append((node.args[0].value, keys, node.lineno))
    return found


def mismatches(source: str) -> list[str]:
    fields = {cls.type: {f.name for f in dataclasses.fields(cls)} for cls in event_classes()}
    problems = []
    for kind, keys, line in emitted(source):
        if kind not in fields:
            problems.append(f"line {line}: unknown kind {kind!r}")
        elif keys - fields[kind]:
            problems.append(f"line {line}: {kind!r} has no field(s) {sorted(keys - fields[kind])}")
    return problems


def test_every_emitted_event_fits_its_class() -> None:
    sources = [p for p in (CORE / "session.py", CORE / "protocol" / "client.py") if p.exists()]
    assert sum(len(emitted(p.read_text(encoding="utf-8"))) for p in sources) >= 10
    for path in sources:
        assert mismatches(path.read_text(encoding="utf-8")) == [], path


def test_the_emit_check_can_fail() -> None:
    source = 'self._emit("warning", text="x")\nout = [Emit("tool.done", {"name": "x"})]\n'
    assert mismatches(source) == ["line 1: 'warning' has no field(s) ['text']", "line 2: unknown kind 'tool.done'"]
