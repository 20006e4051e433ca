"""The GA events the emulator sends and accepts (as the coverage table reads them from
the code): every name is a real GA event type of the openai package, and what is left
out is what the docs say is not emulated."""

from __future__ import annotations

from typing import Any, get_args

from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from realtalk.emulator.builders import SUPPORTED_TYPES
from realtalk.emulator.coverage import emulator_accepts, emulator_sends


def _types(alias: Any) -> set[str]:
    members = get_args(get_args(alias)[0])
    return {get_args(m.model_fields["type"].annotation)[0] for m in members}


def test_emitted_server_events_are_ga_server_events() -> None:
    ga = _types(RealtimeServerEvent)
    sent = emulator_sends()
    assert sent <= ga
    not_sent = ga - sent
    # What is left is what the docs say is not emulated.
    assert not_sent == {
        "conversation.created",
        "conversation.item.created",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "input_audio_buffer.dtmf_event_received",
    }


def test_accepted_client_events() -> None:
    ga = _types(RealtimeClientEvent)
    accepted = emulator_accepts() & ga  # session.close and the translation-style append are not GA
    assert accepted <= ga
    assert ga - accepted == {"output_audio_buffer.clear"}
    assert accepted <= set(SUPPORTED_TYPES)  # what the server dispatches


async def test_output_audio_buffer_clear_is_refused(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator()
    async with open_client(emu) as client:
        await client.send({"type": "output_audio_buffer.clear"})
        error = (await client.until("error"))[-1]["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "type")
