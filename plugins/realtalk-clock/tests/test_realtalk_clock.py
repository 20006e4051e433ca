"""realtalk-clock, loaded the way users get it: through its entry point."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from realtalk.plugins import load_plugins
from realtalk.tools import Tool, ToolContext, run_tool, validate_arguments

CTX = ToolContext(call_id="call_1", tool="clock", agent="test")


@pytest.fixture(scope="module")
def tools() -> dict[str, Tool]:
    plugins = load_plugins(allow=["realtalk-clock"])
    assert plugins.problems == []
    assert [p.distribution for p in plugins.plugins] == ["realtalk-clock"]
    return {t.name: t for t in plugins.registry}


async def call(tool: Tool, raw: str) -> Any:
    check = validate_arguments(tool, raw)
    assert check.ok, check.error
    outcome = await run_tool(tool, check.arguments or {}, CTX)
    return outcome.status, json.loads(outcome.output)


def test_found_through_entry_point(tools: dict[str, Tool]) -> None:
    assert set(tools) == {"get_time", "convert_time", "time_until"}
    assert all(t.plugin == "realtalk-clock" for t in tools.values())


async def test_get_time_in_a_zone(tools: dict[str, Tool]) -> None:
    status, result = await call(tools["get_time"], '{"timezone": "Asia/Tokyo"}')
    assert status == "ok" and result["utc_offset"] == "+09:00"
    reported = datetime.fromisoformat(result["iso"])
    assert abs(reported - datetime.now(timezone.utc)) < timedelta(seconds=5)


async def test_get_time_unknown_zone_is_an_error_for_the_model(tools: dict[str, Tool]) -> None:
    status, result = await call(tools["get_time"], '{"timezone": "Mars/Olympus"}')
    assert status == "error"
    assert "unknown IANA time zone 'Mars/Olympus'" in result["error"]


async def test_convert_time_across_zones(tools: dict[str, Tool]) -> None:
    raw = '{"time": "2026-07-01T15:30", "from_timezone": "Europe/London", "to_timezone": "Asia/Tokyo"}'
    status, result = await call(tools["convert_time"], raw)
    assert status == "ok"
    assert result["from"]["utc_offset"] == "+01:00"  # British Summer Time
    assert result["to"]["date"] == "2026-07-01" and result["to"]["time"] == "23:30"


async def test_convert_time_handles_date_line(tools: dict[str, Tool]) -> None:
    raw = '{"time": "2026-01-10T20:00", "from_timezone": "America/Los_Angeles", "to_timezone": "Pacific/Auckland"}'
    _, result = await call(tools["convert_time"], raw)
    assert (result["to"]["date"], result["to"]["time"]) == ("2026-01-11", "17:00")


def test_convert_time_rejects_bad_time_format(tools: dict[str, Tool]) -> None:
    check = validate_arguments(tools["convert_time"], '{"time": "half past three", "from_timezone": "UTC", "to_timezone": "UTC"}')
    assert check.error and '"path": "$.time"' in check.error


async def test_time_until_future_and_past(tools: dict[str, Tool]) -> None:
    soon = (datetime.now(timezone.utc) + timedelta(hours=2, minutes=30, seconds=20)).isoformat()
    _, result = await call(tools["time_until"], json.dumps({"moment": soon}))
    assert result["in_past"] is False and result["spoken"] == "in 2 hours, 30 minutes"
    _, past = await call(tools["time_until"], '{"moment": "2000-01-01T00:00", "timezone": "Europe/Lisbon"}')
    assert past["in_past"] is True and past["spoken"].endswith(" ago")


async def test_time_until_bad_moment(tools: dict[str, Tool]) -> None:
    status, result = await call(tools["time_until"], '{"moment": "tomorrow"}')
    assert status == "error" and "is not an ISO 8601 date and time" in result["error"]


# --- through a whole conversation, with the realtalk testing kit ---------------------------

from realtalk.testing import converse

AGENT = {"name": "clockbot", "instructions": "Tell the time.", "tools": ["get_time", "time_until"]}


def test_the_model_gets_the_time_through_the_emulator(emulator: Any) -> None:
    emulator.use({"turns": [{"user": "tokyo", "reply": [
        {"call": "get_time", "arguments": {"timezone": "Asia/Tokyo"}},
        {"say": "In Tokyo: {output}"}]}]})
    result = converse(AGENT, ["What time is it in Tokyo?"], emulator)
    [call] = result.calls("get_time")
    assert call.status == "ok" and json.loads(call.output or "")["utc_offset"] == "+09:00"
    assert result.transcript[0] == ("user", "What time is it in Tokyo?")
    assert result.transcript[1][0] == "clockbot" and '"utc_offset": "+09:00"' in result.transcript[1][1]
    assert result.server_errors == []


def test_a_bad_zone_reaches_the_model_as_an_error(emulator: Any) -> None:
    emulator.use({"turns": [{"user": "mars", "reply": [
        {"call": "get_time", "arguments": {"timezone": "Mars/Olympus"}}, {"say": "{output}"}]}]})
    result = converse(AGENT, ["Time on Mars?"], emulator)
    assert result.calls("get_time")[0].status == "error"
    assert "unknown IANA time zone" in result.turns[0].text
