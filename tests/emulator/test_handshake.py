"""Handshake: the real server upgrades first, then sends one error and closes."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from realtalk.emulator import Emulator
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def _refusal(url: str, **kwargs: Any) -> tuple[dict[str, Any], int | None, str | None]:
    async with connect(url, **kwargs) as ws:
        event = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code is not None
        return event, ws.close_code, ws.close_reason


async def test_missing_model(emu: Emulator) -> None:
    event, code, reason = await _refusal(emu.url)
    assert event["type"] == "error"
    assert event["error"]["code"] == "missing_model"
    assert (code, reason) == (4000, "invalid_request_error.missing_model")
    assert emu.connections[0].handshake_error == "missing_model"


async def test_wrong_key(make_emulator: Any) -> None:
    emu = await make_emulator(api_key="right")
    event, code, reason = await _refusal(
        emu.url + "?model=gpt-realtime",
        additional_headers={"Authorization": "Bearer wrong-key-123"},
    )
    assert event["error"]["code"] == "invalid_api_key"
    assert "wrong-key-123" not in event["error"]["message"]  # the key is masked
    assert (code, reason) == (3000, "invalid_request_error.invalid_api_key")


async def test_no_auth_when_key_set(make_emulator: Any) -> None:
    emu = await make_emulator(api_key="right")
    event, code, reason = await _refusal(emu.url + "?model=gpt-realtime")
    assert event["error"]["code"] is None
    assert event["error"]["message"] == "Missing bearer or basic authentication in header"
    assert (code, reason) == (3000, "invalid_request_error")


@pytest.mark.parametrize("how", ["bearer", "azure-header", "azure-query"])
async def test_right_key_accepted(make_emulator: Any, how: str) -> None:
    emu = await make_emulator(api_key="right")
    url, headers = emu.url + "?model=gpt-realtime", {}
    if how == "bearer":
        headers = {"Authorization": "Bearer right"}
    elif how == "azure-header":
        headers = {"api-key": "right"}
        url = url.replace("/v1/realtime", "/openai/v1/realtime")
    else:
        url += "&api-key=right"
    async with connect(url, additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"


async def test_beta_header_refused(emu: Emulator) -> None:
    event, code, reason = await _refusal(
        emu.url + "?model=gpt-realtime", additional_headers={"OpenAI-Beta": "realtime=v1"}
    )
    assert event["error"]["code"] == "beta_api_shape_disabled"
    assert (code, reason) == (4000, "invalid_request_error.beta_api_shape_disabled")


async def test_unknown_path_is_404(emu: Emulator) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(emu.url.replace("/v1/realtime", "/v2/nope") + "?model=m"):
            pass
    assert info.value.response.status_code == 404


async def test_session_created_defaults(emu: Emulator, open_client: Any) -> None:
    before = time.time()
    async with open_client(emu, "?model=gpt-realtime-2") as client:
        session = emu.connections[0].server_events("session.created")[0]["session"]
        assert client.received[0]["session"] == session
    assert session["type"] == "realtime"
    assert session["object"] == "realtime.session"
    assert session["id"].startswith("sess_")
    assert session["model"] == "gpt-realtime-2"
    assert session["output_modalities"] == ["audio"]
    assert abs(session["expires_at"] - (before + 3600)) < 5
    detection = session["audio"]["input"]["turn_detection"]
    assert detection == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["voice"] == "alloy"


async def test_serve_forever_until_cancelled(emu: Emulator, open_client: Any) -> None:
    import asyncio

    task = asyncio.create_task(emu.serve_forever())
    async with open_client(emu) as client:
        assert client.received[0]["type"] == "session.created"
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(OSError):
        async with connect(emu.url + "?model=m", open_timeout=2):
            pass


@pytest.mark.parametrize(("sent", "accepted"), [("clé-ü-1", True), ("clé-ü-2", False), ("ascii", False)])
async def test_keys_compare_as_bytes_even_non_ascii(make_emulator: Any, sent: str, accepted: bool) -> None:
    # The comparison is constant-time (hmac.compare_digest), which refuses non-ASCII str:
    # a non-ASCII key must be compared, not crash the handshake.
    emu = await make_emulator(api_key="clé-ü-1")
    url = emu.url + "?model=gpt-realtime&api-key=" + quote(sent)
    async with connect(url) as ws:
        event = json.loads(await ws.recv())
    if accepted:
        assert event["type"] == "session.created"
    else:
        assert event["error"]["code"] == "invalid_api_key"
    assert emu.connections[0].handshake_error == (None if accepted else "invalid_api_key")
