"""Tests for realtalk.connection against a real WebSocket server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import math
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from realtalk.cli.console import ConsoleRenderer
from realtalk.connection import (
    Backoff,
    ConnectionClosed,
    ConnectionProfile,
    FrameTooLarge,
    RealtimeConnection,
    connect,
    redact_url,
)
from realtalk.exceptions import AuthenticationFailed, ConnectionFailed, ServerRejected
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

KEY = "sk-test-SECRET-0123456789abcdef"
FAST = Backoff(initial=0.001, max=0.004, rng=random.Random(7))

BIG = 5000  # bytes of padding in a frame meant to exceed a 1024-byte max_size
SESSION_CREATED = {"type": "session.created", "event_id": "event_1",
                   "session": {"type": "realtime", "id": "sess_1"}}


@dataclass
class Loopback:
    """A scripted Realtime-ish server: one behaviour per connection attempt."""

    behaviours: list[str]
    requests: list[Request] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    server: Server | None = None
    error_message: str = "Incorrect API key provided."
    compression: str | None = "deflate"

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def behaviour(self) -> str:
        index = len(self.requests) - 1
        return self.behaviours[min(index, len(self.behaviours) - 1)]

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        kind = self.behaviour()
        if kind.startswith("http"):
            status = int(kind[4:])
            return connection.respond(status, "nope\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        kind = self.behaviour()
        if kind == "ok":
            await ws.send(json.dumps(SESSION_CREATED))
            async for raw in ws:
                event = json.loads(raw)
                self.received.append(event)
                if event.get("type") == "bye":
                    await ws.close(1001, "Your session hit the maximum duration of 60 minutes.")
                elif event.get("type") == "revoke":
                    await ws.send(json.dumps({"type": "error", "event_id": "e", "error": {
                        "type": "invalid_request_error", "code": "invalid_api_key",
                        "message": "Key revoked.", "param": None, "event_id": None}}))
                    await ws.close(3000, "invalid_request_error.invalid_api_key")
        elif kind == "auth":
            await ws.send(json.dumps({"type": "error", "event_id": "e", "error": {
                "type": "invalid_request_error", "code": "invalid_api_key",
                "message": self.error_message, "param": None, "event_id": None}}))
            await ws.close(3000, "invalid_request_error.invalid_api_key")
        elif kind in ("beta", "model"):
            code = "beta_api_shape_disabled" if kind == "beta" else "invalid_model"
            await ws.send(json.dumps({"type": "error", "event_id": "e", "error": {
                "type": "invalid_request_error", "code": code,
                "message": "The Realtime Beta API is no longer supported." if kind == "beta"
                else "Model not found.", "param": None, "event_id": None}}))
            await ws.close(4000, f"invalid_request_error.{code}")
        elif kind == "soft_error":
            await ws.send(json.dumps({"type": "error", "event_id": "e", "error": {
                "type": "invalid_request_error", "code": "invalid_value", "message": "meh",
                "param": None, "event_id": None}}))
            await ws.send(json.dumps(SESSION_CREATED))
            await ws.wait_closed()
        elif kind == "noisy":
            await ws.send(json.dumps(SESSION_CREATED))
            await ws.send(b"\x00\x01")
            await ws.send("not json")
            await ws.send("[1, 2]")
            await ws.send(b'{"type": "x", "v": "\xff"}', text=True)  # a text frame, not UTF-8
            await ws.send("[" * 5000 + "]" * 5000)  # nested deeper than either parser goes
            await ws.send(json.dumps({"type": "rate_limits.updated"}))
            # What orjson refuses but the stdlib took (NaN, a lone surrogate) still arrives;
            # an integer beyond 64 bits arrives as a float.
            await ws.send('{"type": "odd", "nan": NaN, "s": "\\ud800"}')
            await ws.send('{"type": "big", "big": 1' + "0" * 30 + "}")
            await ws.wait_closed()
        elif kind == "hangup":
            await ws.close(1011, "internal")
        elif kind == "big":
            await ws.send(json.dumps(SESSION_CREATED))
            await ws.send(json.dumps({"type": "response.output_audio.delta", "delta": "A" * BIG}))
            await ws.wait_closed()
        elif kind == "big_first":
            await ws.send(json.dumps({"type": "session.created", "pad": "A" * BIG}))
            await ws.wait_closed()


@pytest.fixture
async def loopback() -> AsyncIterator[Callable[..., Any]]:
    servers: list[Server] = []

    async def start(*behaviours: str, **kwargs: Any) -> Loopback:
        lb = Loopback(list(behaviours), **kwargs)
        lb.server = await serve(lb.handler, "127.0.0.1", 0, process_request=lb.process_request,
                                compression=lb.compression)
        servers.append(lb.server)
        return lb

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def header(request: Request, name: str) -> str | None:
    headers: Headers = request.headers
    return headers.get(name)


# -- profiles -----------------------------------------------------------------------------------


def test_openai_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    profile = ConnectionProfile.openai("gpt-realtime")
    assert profile.ws_url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert profile.headers() == {"Authorization": f"Bearer {KEY}"}
    assert profile.dialect == "ga" and profile.api_key == KEY
    assert KEY not in repr(profile)
    beta = ConnectionProfile.openai("gpt-realtime", api_key="k-explicit-123", beta=True)
    assert beta.headers()["OpenAI-Beta"] == "realtime=v1" and beta.dialect == "beta"


def test_missing_keys_name_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(AuthenticationFailed, match="set OPENAI_API_KEY") as info:
        ConnectionProfile.openai("gpt-realtime")
    assert "\n" not in str(info.value)
    with pytest.raises(ConnectionFailed, match="set AZURE_OPENAI_ENDPOINT"):
        ConnectionProfile.azure("dep")
    with pytest.raises(AuthenticationFailed, match="set AZURE_OPENAI_API_KEY"):
        ConnectionProfile.azure("dep", endpoint="https://res.openai.azure.com")


@pytest.mark.parametrize("endpoint", ["https://res.openai.azure.com",
                                      "https://res.openai.azure.com/",
                                      "https://res.openai.azure.com/openai/v1/"])
def test_azure_profile_ga_url(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    profile = ConnectionProfile.azure("my-realtime", endpoint=endpoint)
    assert profile.ws_url == "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime"
    assert profile.headers() == {"api-key": KEY}


def test_azure_beta_uses_preview_endpoint() -> None:
    profile = ConnectionProfile.azure("dep", endpoint="https://r.openai.azure.com", api_key=KEY,
                                      beta=True)
    assert profile.ws_url == ("wss://r.openai.azure.com/openai/realtime"
                              "?api-version=2025-04-01-preview&deployment=dep")


def test_url_profile_adds_model_only_if_missing() -> None:
    assert ConnectionProfile.url("ws://h:1/v1/realtime", model="m").ws_url == (
        "ws://h:1/v1/realtime?model=m")
    assert ConnectionProfile.url("http://h:1/x?model=a", model="b").ws_url == "ws://h:1/x?model=a"
    plain = ConnectionProfile.url("ws://h:1/")
    assert plain.headers() == {} and plain.auth == "none"
    with pytest.raises(ConnectionFailed, match="not a WebSocket URL"):
        ConnectionProfile.url("ftp://h/x")


def test_backoff_is_exponential_capped_and_deterministic() -> None:
    fixed = Backoff(initial=0.5, max=4.0, factor=2.0, jitter=False)
    assert [fixed.delay(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    a = Backoff(initial=1.0, max=8.0, rng=random.Random(3))
    b = Backoff(initial=1.0, max=8.0, rng=random.Random(3))
    da = [a.delay(i) for i in range(10)]
    assert da == [b.delay(i) for i in range(10)]
    assert all(0.0 <= d <= a.cap(i) for i, d in enumerate(da))
    assert len(set(da)) > 1


# -- connect ------------------------------------------------------------------------------------


async def test_connect_success_send_recv_close(loopback: Callable[..., Any]) -> None:
    lb = await loopback("ok")
    conn = await connect(ConnectionProfile.url(lb.url, model="gpt-realtime"), retries=0)
    assert isinstance(conn, RealtimeConnection) and conn.attempts == 1
    assert await conn.recv() == SESSION_CREATED
    await conn.send({"type": "response.create", "event_id": "evt_1"})
    await conn.send({"type": "bye"})
    with pytest.raises(ConnectionClosed) as info:
        await conn.recv()
    assert info.value.code == 1001 and "maximum duration" in info.value.reason
    assert conn.close_info is not None and conn.close_info.by_server
    assert lb.received[0] == {"type": "response.create", "event_id": "evt_1"}
    assert lb.requests[0].path == "/v1/realtime?model=gpt-realtime"
    assert header(lb.requests[0], "OpenAI-Beta") is None
    with pytest.raises(ConnectionClosed):
        await conn.send({"type": "x"})


async def test_async_iteration_ends_on_close(loopback: Callable[..., Any]) -> None:
    lb = await loopback("ok")
    conn = await connect(ConnectionProfile.url(lb.url), retries=0)
    await conn.send({"type": "bye"})
    events = [event async for event in conn]
    assert events == [SESSION_CREATED]
    assert conn.close_info is not None and conn.close_info.code == 1001


async def test_close_by_us(loopback: Callable[..., Any]) -> None:
    lb = await loopback("ok")
    conn = await connect(ConnectionProfile.url(lb.url), retries=0)
    await conn.close()
    await conn.close()  # idempotent
    assert conn.close_info is not None and conn.close_info.by_server is False


async def test_429_twice_then_success(loopback: Callable[..., Any]) -> None:
    lb = await loopback("http429", "http429", "ok")
    conn = await connect(ConnectionProfile.url(lb.url), retries=4, backoff=FAST)
    assert conn.attempts == 3 and len(lb.requests) == 3
    assert (await conn.recv())["type"] == "session.created"
    await conn.close()


async def test_5xx_is_retried(loopback: Callable[..., Any]) -> None:
    lb = await loopback("http503", "ok")
    conn = await connect(ConnectionProfile.url(lb.url), retries=2, backoff=FAST)
    assert conn.attempts == 2
    await conn.close()


async def test_429_forever_gives_a_clear_error_with_attempt_count(
    loopback: Callable[..., Any],
) -> None:
    lb = await loopback("http429")
    profile = ConnectionProfile.url(lb.url, api_key=KEY)
    with pytest.raises(ConnectionFailed) as info:
        await connect(profile, retries=2, backoff=FAST)
    assert type(info.value) is ConnectionFailed
    assert "after 3 attempts" in str(info.value) and "429" in str(info.value)
    assert len(lb.requests) == 3
    assert KEY not in str(info.value)


async def test_http_401_is_authentication_failed_without_retry(
    loopback: Callable[..., Any],
) -> None:
    lb = await loopback("http401")
    with pytest.raises(AuthenticationFailed, match="HTTP 401"):
        await connect(ConnectionProfile.url(lb.url, api_key=KEY), retries=3, backoff=FAST)
    assert len(lb.requests) == 1


async def test_close_3000_is_authentication_failed_without_retry(
    loopback: Callable[..., Any],
) -> None:
    # A server that (carelessly) echoes the key back must not leak it through us.
    lb = await loopback("auth", error_message=f"Incorrect API key provided: {KEY}.")
    profile = ConnectionProfile.url(lb.url, api_key=KEY, model="gpt-realtime")
    with pytest.raises(AuthenticationFailed) as info:
        await connect(profile, retries=3, backoff=FAST)
    message = str(info.value)
    assert "close 3000" in message and "Incorrect API key provided" in message
    assert KEY not in message and "***" in message
    assert len(lb.requests) == 1
    assert header(lb.requests[0], "Authorization") == f"Bearer {KEY}"


async def test_close_4000_beta_suggests_dropping_beta(loopback: Callable[..., Any]) -> None:
    lb = await loopback("beta")
    profile = ConnectionProfile.url(lb.url, model="gpt-realtime", beta=True)
    with pytest.raises(ServerRejected) as info:
        await connect(profile, retries=3, backoff=FAST)
    assert "beta_api_shape_disabled" in str(info.value)
    assert "drop the beta profile" in str(info.value)
    assert len(lb.requests) == 1
    assert header(lb.requests[0], "OpenAI-Beta") == "realtime=v1"


async def test_close_4000_invalid_model_names_the_model(loopback: Callable[..., Any]) -> None:
    lb = await loopback("model")
    with pytest.raises(ServerRejected, match="check the model name 'gpt-nope'"):
        await connect(ConnectionProfile.url(lb.url, model="gpt-nope"), retries=1, backoff=FAST)


async def test_non_fatal_first_error_is_delivered(loopback: Callable[..., Any]) -> None:
    lb = await loopback("soft_error")
    conn = await connect(ConnectionProfile.url(lb.url), retries=0)
    first = await conn.recv()
    assert first["type"] == "error" and first["error"]["code"] == "invalid_value"
    assert (await conn.recv())["type"] == "session.created"
    await conn.close()


async def test_server_hanging_up_after_upgrade_is_retried(loopback: Callable[..., Any]) -> None:
    lb = await loopback("hangup", "ok")
    conn = await connect(ConnectionProfile.url(lb.url), retries=1, backoff=FAST)
    assert conn.attempts == 2
    await conn.close()


async def test_azure_path_and_api_key_header(loopback: Callable[..., Any]) -> None:
    lb = await loopback("ok")
    profile = ConnectionProfile.azure("my-dep", endpoint=f"http://127.0.0.1:{lb.port}",
                                      api_key=KEY)
    conn = await connect(profile, retries=0)
    request = lb.requests[0]
    assert request.path == "/openai/v1/realtime?model=my-dep"
    assert header(request, "api-key") == KEY
    assert header(request, "Authorization") is None
    assert header(request, "OpenAI-Beta") is None
    assert KEY not in repr(conn) and KEY not in repr(profile)
    await conn.close()


async def test_refused_connection_is_retried_then_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port that is certainly closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionFailed) as info:
        await connect(ConnectionProfile.url(f"ws://127.0.0.1:{port}/", api_key=KEY),
                      retries=1, backoff=FAST)
    assert "after 2 attempts" in str(info.value) and "refused" in str(info.value)
    assert KEY not in str(info.value)


async def test_fatal_close_mid_session_raises_authentication_failed(
    loopback: Callable[..., Any],
) -> None:
    lb = await loopback("ok")
    conn = await connect(ConnectionProfile.url(lb.url, api_key=KEY), retries=0)
    await conn.recv()
    await conn.send({"type": "revoke"})
    error = await conn.recv()
    assert error["type"] == "error"
    with pytest.raises(AuthenticationFailed, match="Key revoked"):
        await conn.recv()
    assert conn.close_info is not None and conn.close_info.code == 3000
    assert conn.close_info.error == "invalid_api_key: Key revoked."


async def test_binary_and_non_json_frames_are_skipped(loopback: Callable[..., Any]) -> None:
    lb = await loopback("noisy")
    conn = await connect(ConnectionProfile.url(lb.url), retries=0)
    assert (await conn.recv())["type"] == "session.created"
    assert (await conn.recv())["type"] == "rate_limits.updated"
    odd = await conn.recv()
    assert math.isnan(odd["nan"]) and odd["s"] == "\ud800"
    big = (await conn.recv())["big"]
    assert big == 1e30 and isinstance(big, float)
    await conn.close()


async def test_values_orjson_refuses_are_sent_as_the_stdlib_would(
    loopback: Callable[..., Any],
) -> None:
    lb = await loopback("ok")
    conn = await connect(ConnectionProfile.url(lb.url), retries=0)
    await conn.send({"type": "x", "keys": {1: "one"}, "big": 2**70, "text": "caf\u00e9 \ud800"})
    with pytest.raises(TypeError, match=r"cannot send 'y': a value in it is not JSON"):
        await conn.send({"type": "y", "value": object()})
    await conn.send({"type": "bye"})  # the connection is still usable
    with pytest.raises(ConnectionClosed):
        await conn.recv()  # session.created, then the close
        await conn.recv()
    assert lb.received == [
        {"type": "x", "keys": {"1": "one"}, "big": 2**70, "text": "caf\u00e9 \ud800"},
        {"type": "bye"},
    ]


# -- frames over max_size -----------------------------------------------------------------------


async def test_frame_over_max_size_raises_frame_too_large(loopback: Callable[..., Any]) -> None:
    lb = await loopback("big", compression=None)  # uncompressed: the frame header has the size
    conn = await connect(ConnectionProfile.url(lb.url, api_key=KEY), retries=0, max_size=1024)
    assert (await conn.recv())["type"] == "session.created"
    with pytest.raises(FrameTooLarge) as info:
        await conn.recv()
    exc = info.value
    assert isinstance(exc, ConnectionClosed)  # the session's reconnect path still sees it
    size = len(json.dumps({"type": "response.output_audio.delta", "delta": "A" * BIG}))
    assert (exc.code, exc.limit, exc.size) == (1009, 1024, size)
    text = str(exc)
    assert f"a {size} bytes frame" in text and "over the 1024 bytes limit (max_size)" in text
    assert "1009" in text and "dropped" not in text and KEY not in text and "\n" not in text
    assert conn.close_info is not None and conn.close_info.code == 1009
    # Iterating does not mistake it for a normal end either.
    with pytest.raises(FrameTooLarge):
        async for _ in conn:
            pass


async def test_first_event_over_max_size_is_not_retried(loopback: Callable[..., Any]) -> None:
    # realtalk offers no permessage-deflate, so even a server that would compress sends the
    # frame as is, and its size is known and named.
    lb = await loopback("big_first")
    with pytest.raises(FrameTooLarge) as info:
        await connect(ConnectionProfile.url(lb.url), retries=3, backoff=FAST, max_size=1024)
    assert len(lb.requests) == 1
    assert info.value.size is not None and info.value.size > 1024 and info.value.limit == 1024
    assert f"sent a {info.value.size} bytes frame, over the 1024 bytes limit (max_size)" in str(info.value)
    assert header(lb.requests[0], "Sec-WebSocket-Extensions") is None  # no compression offered


async def test_frames_under_max_size_pass(loopback: Callable[..., Any]) -> None:
    lb = await loopback("big")
    conn = await connect(ConnectionProfile.url(lb.url), retries=0, max_size=BIG + 1024)
    await conn.recv()
    assert len((await conn.recv())["delta"]) == BIG
    await conn.close()


# -- secrets in URLs ----------------------------------------------------------------------------

URL_SECRETS = {
    "api-key": "apikey-SECRET-1",
    "api_key": "apikey-SECRET-2",
    "key": "key-SECRET-3",
    "token": "token-SECRET-4",
    "access_token": "access/SECRET+5",  # percent-encoded on the wire
    "sig": "sig-SECRET-6",
}
PASSWORD = "pass-SECRET-7"


def secret_url(base: str, *, with_userinfo: bool = True) -> str:
    from urllib.parse import urlencode

    scheme, rest = base.split("://", 1)
    userinfo = f"alice:{PASSWORD}@" if with_userinfo else ""
    return f"{scheme}://{userinfo}{rest}?{urlencode(URL_SECRETS)}&model=m1"


def assert_no_secret(text: str) -> None:
    from urllib.parse import quote, quote_plus

    for value in [*URL_SECRETS.values(), PASSWORD, KEY]:
        for form in {value, quote(value, safe=""), quote_plus(value)}:
            assert form not in text, f"{form!r} leaked in {text!r}"


def test_display_url_and_redact_remove_url_credentials() -> None:
    profile = ConnectionProfile.url(secret_url("ws://h:1/v1/realtime"), api_key=KEY)
    shown = profile.display_url
    assert shown == ("ws://***@h:1/v1/realtime?api-key=***&api_key=***&key=***&token=***"
                     "&access_token=***&sig=***&model=m1")
    assert_no_secret(shown + repr(profile))
    # The raw values, wherever they appear in a message, decoded or encoded.
    message = f"failed: {profile.ws_url}; server said {URL_SECRETS['access_token']} {PASSWORD}"
    redacted = profile.redact(message)
    assert_no_secret(redacted)
    assert "***@h:1" in redacted and "model=m1" in redacted
    assert set(profile.secrets) >= {KEY, PASSWORD, *URL_SECRETS.values()}
    # Harmless parameters and URLs without credentials are left alone.
    plain = ConnectionProfile.url("ws://h:1/v1/realtime?model=m&api-version=2025")
    assert plain.display_url == plain.ws_url and plain.secrets == ()
    assert redact_url("wss://x/y?deployment=d&client_secret=cs-1234") == (
        "wss://x/y?deployment=d&client_secret=***")
    assert redact_url("not a url") == "not a url"


def test_console_redacts_a_url_it_is_given() -> None:
    from realtalk import Connected

    raw = secret_url("ws://h:1/v1/realtime")
    prose, lines = io.StringIO(), io.StringIO()
    for renderer in (ConsoleRenderer(prose), ConsoleRenderer(lines, json_lines=True)):
        renderer(Connected(agent="a", url=raw))
    assert prose.getvalue().startswith("· connected to ws://***@h:1/v1/realtime?api-key=***")
    assert json.loads(lines.getvalue())["url"].startswith("ws://***@h:1/")
    assert_no_secret(prose.getvalue() + lines.getvalue())


def test_bad_url_error_does_not_echo_credentials() -> None:
    with pytest.raises(ConnectionFailed, match="not a WebSocket URL") as info:
        ConnectionProfile.url(secret_url("ftp://h:1/x"))
    assert_no_secret(str(info.value))


async def test_refused_connection_error_has_no_url_secret() -> None:
    with socket.socket() as sock:  # a port that is certainly closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    profile = ConnectionProfile.url(secret_url(f"ws://127.0.0.1:{port}/v1/realtime"), api_key=KEY)
    with pytest.raises(ConnectionFailed, match="refused") as info:
        await connect(profile, retries=1, backoff=FAST)
    assert f"ws://***@127.0.0.1:{port}/v1/realtime?api-key=***" in str(info.value)
    assert_no_secret(str(info.value))


async def test_http_401_error_has_no_url_secret(loopback: Callable[..., Any]) -> None:
    lb = await loopback("http401")
    with pytest.raises(AuthenticationFailed) as info:
        await connect(ConnectionProfile.url(secret_url(lb.url)), retries=0)
    assert_no_secret(str(info.value))
    assert lb.requests[0].path.startswith("/v1/realtime?api-key=apikey-SECRET-1")  # still sent


async def test_url_secrets_never_shown_with_the_emulator(tmp_path: Any) -> None:
    from realtalk.emulator import Emulator
    from realtalk.runner import open_session

    agent = tmp_path / "a.yaml"
    agent.write_text("description: Test\ninstructions: Be brief.\n")
    record = tmp_path / "run.jsonl"
    shown: list[str] = []
    prose, lines = io.StringIO(), io.StringIO()
    listeners = [lambda e: shown.append(json.dumps(e.as_dict(), default=str)),
                 ConsoleRenderer(prose), ConsoleRenderer(lines, json_lines=True)]
    async with Emulator(api_key="apikey-SECRET-1") as emu:
        # A successful connection (the emulator takes its key from the api-key parameter).
        async with open_session(agent, url=secret_url(emu.url), record=record, text_only=True,
                                listeners=listeners):
            pass
        # A refused one: the wrong key in the URL, close 3000.
        wrong = secret_url(emu.url).replace("apikey-SECRET-1", "apikey-SECRET-2", 1)
        with pytest.raises(AuthenticationFailed) as info:
            async with open_session(agent, url=wrong, text_only=True):
                pass
    assert any("api-key=***" in line and "***@127.0.0.1" in line for line in shown)
    assert "connected to ws://***@127.0.0.1" in prose.getvalue()
    assert '"type": "connected"' in lines.getvalue()
    for text in [*shown, prose.getvalue(), lines.getvalue(), str(info.value),
                 record.read_text(encoding="utf-8")]:
        assert_no_secret(text)


async def test_a_loopback_server_is_reached_directly_despite_proxy_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from realtalk.emulator import Emulator

    # A "proxy" that refuses every connection: going through it would fail at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with Emulator() as emu:
        conn = await connect(ConnectionProfile.url(emu.url, api_key="k", model="gpt-realtime"), retries=0)
        try:
            assert (await conn.recv())["type"] == "session.created"
        finally:
            await conn.close()
        # An explicit proxy is still used: this one refuses, so the connection fails.
        with pytest.raises(ConnectionFailed):
            await connect(ConnectionProfile.url(emu.url, api_key="k", model="gpt-realtime"), retries=0, proxy=dead)
