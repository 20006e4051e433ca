"""``reasoning`` (effort): refused with a clear ``error`` on models that do not take it
(``gpt-realtime``, ``-mini``, ``-1.5``), accepted on the ``gpt-realtime-2`` family."""

from __future__ import annotations

from typing import Any

import pytest

REASONING = {"type": "realtime", "reasoning": {"effort": "low"}}


@pytest.mark.parametrize("model", ["gpt-realtime", "gpt-realtime-mini", "gpt-realtime-1.5"])
async def test_reasoning_refused(make_emulator: Any, open_client: Any, model: str) -> None:
    emu = await make_emulator()
    async with open_client(emu, f"?model={model}") as client:
        await client.send({"type": "session.update", "session": REASONING, "event_id": "r1"})
        error = (await client.until("error"))[-1]["error"]
        assert error["code"] == "unsupported_parameter"
        assert error["param"] == "session.reasoning"
        assert model in error["message"] and error["event_id"] == "r1"
        await client.send({"type": "response.create",
                           "response": {"reasoning": {"effort": "high"}}})
        error = (await client.until("error"))[-1]["error"]
        assert (error["code"], error["param"]) == ("unsupported_parameter", "response.reasoning")
        # The refused update changed nothing: the session goes on without reasoning.
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        session = (await client.until("session.updated"))[-1]["session"]
        assert "reasoning" not in session


@pytest.mark.parametrize("model", ["gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini"])
async def test_reasoning_accepted(make_emulator: Any, open_client: Any, model: str) -> None:
    emu = await make_emulator({"turns": [{"user": "hi", "reply": "Hello."}]})
    async with open_client(emu, f"?model={model}") as client:
        await client.send({"type": "session.update", "session": REASONING})
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["reasoning"] == {"effort": "low"}
        await client.user_text("hi")
        await client.send({"type": "response.create",
                           "response": {"reasoning": {"effort": "xhigh"}}})
        events = await client.until("response.done")
    assert not [e for e in events if e["type"] == "error"]
    assert events[-1]["response"]["status"] == "completed"


async def test_unknown_effort_is_invalid_value(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator()
    async with open_client(emu, "?model=gpt-realtime-2") as client:
        await client.send({"type": "session.update",
                           "session": {"type": "realtime", "reasoning": {"effort": "max"}}})
        error = (await client.until("error"))[-1]["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "session.reasoning.effort")


async def test_unknown_effort_in_a_response_is_invalid_value(
    make_emulator: Any, open_client: Any
) -> None:
    emu = await make_emulator()
    async with open_client(emu, "?model=gpt-realtime-2") as client:
        await client.send({"type": "response.create",
                           "response": {"reasoning": {"effort": "max"}}})
        error = (await client.until("error"))[-1]["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "response.reasoning.effort")
