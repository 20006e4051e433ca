"""Transport: WebSocket subprotocols (browser-style clients) and TLS (``wss://``)."""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from realtalk.emulator import Emulator
from realtalk.emulator.tls import server_context
from realtalk.exceptions import ConfigError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage
from websockets.typing import Subprotocol

BROWSER = ["realtime", "openai-insecure-api-key.{key}", "openai-beta.realtime-v1"]


def _offer(key: str) -> list[Subprotocol]:
    """What OpenAI's browser WebSocket client offers, with ``key``."""
    return [Subprotocol(p.format(key=key)) for p in BROWSER]


# -- subprotocols ------------------------------------------------------------------------


async def test_realtime_is_selected_when_offered(emu: Emulator) -> None:
    async with connect(emu.url + "?model=gpt-realtime", subprotocols=_offer("k")) as ws:
        assert ws.subprotocol == "realtime"
        assert json.loads(await ws.recv())["type"] == "session.created"


async def test_no_subprotocol_when_none_offered(emu: Emulator) -> None:
    async with connect(emu.url + "?model=gpt-realtime") as ws:
        assert ws.subprotocol is None
        assert json.loads(await ws.recv())["type"] == "session.created"


async def test_key_from_the_subprotocol_is_accepted(make_emulator: Any) -> None:
    emu = await make_emulator(api_key="sk-right-key")
    async with connect(emu.url + "?model=gpt-realtime", subprotocols=_offer("sk-right-key")) as ws:
        assert ws.subprotocol == "realtime"  # never the key's protocol: it would echo the key
        assert json.loads(await ws.recv())["type"] == "session.created"


async def test_wrong_key_in_the_subprotocol_is_refused_as_a_wrong_bearer_key(
    make_emulator: Any,
) -> None:
    emu = await make_emulator(api_key="sk-right-key")
    refusals = []
    for how in ("subprotocol", "bearer"):
        options: dict[str, Any] = (
            {"subprotocols": _offer("wrong-key-123")}
            if how == "subprotocol"
            else {"additional_headers": {"Authorization": "Bearer wrong-key-123"}}
        )
        async with connect(emu.url + "?model=gpt-realtime", **options) as ws:
            event = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            del event["event_id"]
            refusals.append((event, ws.close_code, ws.close_reason))
    assert refusals[0] == refusals[1]
    event, code, reason = refusals[0]
    assert event["error"]["code"] == "invalid_api_key"
    assert "wrong-key-123" not in event["error"]["message"]
    assert (code, reason) == (3000, "invalid_request_error.invalid_api_key")


async def test_keys_never_reach_the_log(
    make_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """websockets logs every handshake header at DEBUG (``realtalk -v``): the keys are masked."""
    emu = await make_emulator(api_key="sk-secret-1")
    caplog.set_level(logging.DEBUG, logger="realtalk")
    url = emu.url + "?model=gpt-realtime"
    async with connect(url, subprotocols=_offer("sk-secret-1")) as ws:
        await ws.recv()
    async with connect(url, additional_headers={"Authorization": "Bearer sk-secret-1"}) as ws:
        await ws.recv()
    async with connect(url + "&api-key=sk-secret-1", additional_headers={"api-key": "sk-secret-1"}) as ws:
        await ws.recv()
    assert "sk-secret-1" not in caplog.text
    # The handshakes were logged (so the check above could have failed), keys masked.
    assert "openai-insecure-api-key.***" in caplog.text
    assert "Authorization: Bearer ***" in caplog.text
    assert "api-key=***" in caplog.text and "api-key: ***" in caplog.text


# -- TLS ---------------------------------------------------------------------------------


def _trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_tls_serves_wss(make_emulator: Any, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    emu = await make_emulator(tls_cert=cert, tls_key=key)
    assert emu.url.startswith("wss://127.0.0.1:")
    assert emu.base_url.startswith("https://") and emu.websocket_base_url.startswith("wss://")
    async with connect(emu.url + "?model=gpt-realtime", ssl=_trusting(cert)) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"


async def test_tls_refuses_plain_ws(make_emulator: Any, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    emu = await make_emulator(tls_cert=cert, tls_key=key)
    plain = emu.url.replace("wss://", "ws://") + "?model=gpt-realtime"
    with pytest.raises(InvalidMessage):  # the TLS server answers no HTTP
        async with connect(plain, open_timeout=5):
            pass


async def test_tls_needs_both_files(make_emulator: Any, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    with pytest.raises(ConfigError, match="TLS certificate was given without a TLS key"):
        await make_emulator(tls_cert=cert)
    with pytest.raises(ConfigError, match="TLS key was given without a TLS certificate"):
        await make_emulator(tls_key=key)


def test_tls_missing_file(tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    cert, _ = tls_files
    with pytest.raises(ConfigError) as info:
        server_context(cert, tmp_path / "nope.pem")
    assert str(info.value) == f"{tmp_path / 'nope.pem'}: cannot read this TLS file: No such file or directory"


def test_tls_not_pem(tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = tls_files
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(ConfigError) as info:
        server_context(junk, key)
    assert str(info.value) == f"{junk}: not a PEM certificate (BEGIN CERTIFICATE)"
    with pytest.raises(ConfigError) as info:
        server_context(cert, cert)  # the certificate twice
    assert str(info.value) == f"{cert}: not a PEM private key (BEGIN ... PRIVATE KEY)"


def test_tls_key_of_another_certificate(tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    import shlex
    import subprocess

    from .conftest import TLS_RECIPE

    subprocess.run(shlex.split(TLS_RECIPE), cwd=tmp_path, check=True, capture_output=True)
    cert, _ = tls_files
    other_key = tmp_path / "key.pem"
    with pytest.raises(ConfigError) as info:
        server_context(cert, other_key)
    assert str(info.value) == f"{cert}: the TLS key {other_key} does not belong to this certificate"


def test_tls_encrypted_key(tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    import subprocess

    cert, key = tls_files
    locked = tmp_path / "locked.pem"
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-out", str(locked), "-aes256", "-passout", "pass:x"],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ConfigError) as info:
        server_context(cert, locked)
    assert str(info.value) == (
        f"{locked}: the TLS key is encrypted; give an unencrypted one (openssl ... -nodes)"
    )


# -- the command's one-line errors -------------------------------------------------------


def _run(*argv: str) -> int:
    import argparse

    from realtalk.cli.emulator import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(["--port", "0", *argv]))


@pytest.mark.parametrize(
    ("given", "missing"), [("--tls-cert", "--tls-key"), ("--tls-key", "--tls-cert")]
)
def test_command_needs_both_flags(
    given: str, missing: str, tls_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(given, str(tls_files[0])) == 1
    assert capsys.readouterr().err == f"realtalk emulator: {given} needs {missing} too\n"


def test_command_bad_certificate_is_one_line(
    tmp_path: Path, tls_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "cert.pem"
    assert _run("--tls-cert", str(missing), "--tls-key", str(tls_files[1])) == 1
    assert capsys.readouterr().err == (
        f"realtalk emulator: {missing}: cannot read this TLS file: No such file or directory\n"
    )


def test_the_docs_recipe_is_the_one_tests_use() -> None:
    """docs/emulator.md's self-signed recipe is the command ``tls_files`` runs."""
    from .conftest import TLS_RECIPE

    page = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text()
    assert f"$ {TLS_RECIPE}\n" in page
