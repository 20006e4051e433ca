"""``response.done`` with ``status: failed`` and ``incomplete`` (scenario steps), and
``max_output_tokens`` honoured (``incomplete``, reason ``max_output_tokens``)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.realtime import ResponseDoneEvent
from realtalk.emulator import load_scenario
from realtalk.emulator.responses import AUDIO_MS_PER_TOKEN, CHARS_PER_TOKEN
from realtalk.exceptions import ScenarioError

SCENARIO: dict[str, Any] = {
    "turns": [
        {"user": "break", "reply": [{"say": "One moment."}, {"fail": "The model crashed."}]},
        {
            "user": "coded",
            "reply": {"fail": {"message": "Too busy.", "code": "rate_limit_exceeded",
                               "type": "rate_limit_error"}},
        },
        {"user": "rude", "reply": [{"say": "Well."}, {"incomplete": "content_filter"}]},
        {"user": "long", "reply": "one two three four five six seven eight nine ten"},
    ]
}


async def _text_turn(client: Any, text: str, **response: Any) -> dict[str, Any]:
    await client.user_text(text)
    await client.send({"type": "response.create", "response": {"output_modalities": ["text"], **response}})
    events = await client.until("response.done")
    done = events[-1]
    ResponseDoneEvent.model_validate(done)
    result: dict[str, Any] = done["response"]
    return result


async def test_failed_and_incomplete_steps(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        failed = await _text_turn(client, "break it")
        coded = await _text_turn(client, "coded")
        filtered = await _text_turn(client, "rude")
    assert failed["status"] == "failed"
    assert failed["status_details"] == {
        "type": "failed",
        "error": {"type": "server_error", "code": "server_error", "message": "The model crashed."},
    }
    assert failed["output"][0]["content"][0]["text"] == "One moment."  # what came before
    assert coded["status_details"]["error"] == {
        "type": "rate_limit_error", "code": "rate_limit_exceeded", "message": "Too busy."}
    assert coded["output"] == []
    assert filtered["status"] == "incomplete"
    assert filtered["status_details"] == {"type": "incomplete", "reason": "content_filter"}


async def test_max_output_tokens_cuts_the_reply(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        cut = await _text_turn(client, "long", max_output_tokens=5)
    assert cut["status"] == "incomplete"
    assert cut["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert cut["max_output_tokens"] == 5
    text = cut["output"][0]["content"][0]["text"]
    assert "one two three four five six seven eight nine ten".startswith(text)
    assert 0 < len(text) <= 5 * CHARS_PER_TOKEN
    assert cut["output"][0]["status"] == "incomplete"
    assert cut["usage"]["output_tokens"] <= 5


async def test_session_max_output_tokens_counts_audio(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        await client.send({"type": "session.update",
                           "session": {"type": "realtime", "max_output_tokens": 20}})
        await client.until("session.updated")
        await client.user_text("long")
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
    response = events[-1]["response"]
    assert response["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    usage = response["usage"]["output_token_details"]
    assert usage["text_tokens"] + usage["audio_tokens"] <= 20
    audio_ms = usage["audio_tokens"] * AUDIO_MS_PER_TOKEN
    assert 0 < audio_ms < 3000  # the whole reply is over 3 s


async def test_a_budget_large_enough_completes(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(SCENARIO)
    async with open_client(emu) as client:
        done = await _text_turn(client, "long", max_output_tokens=4096)
    assert done["status"] == "completed"
    assert done["usage"]["output_tokens"] <= 4096


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"incomplete": "tired"}, "'incomplete' must be max_output_tokens or content_filter"),
        ({"fail": {"code": "x"}}, "'fail' needs a 'message'"),
        ({"fail": {"message": "m", "why": "x"}}, "unknown key 'why' in 'fail'"),
        ({"fail": 3}, "'fail' must be a message, or a mapping with 'message'"),
        ({"fail": {"message": ""}}, "'message' must be non-empty text"),
    ],
)
def test_bad_status_steps(step: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario({"turns": [{"user": "x", "reply": [step]}]})
