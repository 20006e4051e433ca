"""The official Node SDK's two Realtime clients work unmodified against the emulator.

``OpenAIRealtimeWS`` (the ``ws`` package, key in an ``Authorization`` header) and
``OpenAIRealtimeWebSocket`` (the runtime's WebSocket, key in the
``openai-insecure-api-key.<key>`` subprotocol; Node 20 needs ``--experimental-websocket``)
both connect only to ``wss://``: the emulator serves TLS with a self-signed certificate that
``NODE_EXTRA_CA_CERTS`` makes trusted. Each runs ``node/clients.mjs``: a text turn, a tool
round trip and an audio turn.

The SDK is npm-installed once into ``~/.cache/realtalk-tests/node/<versions>`` (pinned);
without node, npm or the registry the tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from realtalk.emulator.conformance import client_event_problems

from .conftest import missing_dependency

OPENAI_NPM = "7.59.0"
WS_NPM = "8.23.1"
SCRIPT = Path(__file__).parent / "node" / "clients.mjs"
KEY = "sk-node-test-0123456789"
SCENARIO = {
    "turns": [
        {"user": "hello", "reply": "Hello from the emulator."},
        {
            "user": "weather",
            "reply": [
                {"call": "get_weather", "arguments": {"city": "Oslo"}},
                {"say": "The weather is {output}."},
            ],
        },
        {"audio": True, "transcript": "Is it warm outside?", "reply": "Warm enough for a walk."},
    ]
}
EXPECTED = {
    "first": "session.created",
    "text": ["Hello from the emulator."],
    "call": {"name": "get_weather", "arguments": {"city": "Oslo"}},
    "after_tool": ["The weather is sunny."],
    "vad": True,
    "transcript": ["Warm enough for a walk."],
    "heard": "Is it warm outside?",
    "status": "completed",
    "errors": [],
}


@pytest.fixture(scope="session")
def node_sdk(venvkit: Any) -> tuple[list[str], Path]:
    """``(node command, folder with node_modules/openai and ws)``, installed once per version."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing_dependency("node and npm (for the Node SDK tests)")
    folder = Path.home() / ".cache" / "realtalk-tests" / "node" / f"openai-{OPENAI_NPM}-ws-{WS_NPM}"
    if not (folder / "node_modules" / "openai" / "package.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".install-"))
        (scratch / "package.json").write_text('{"private": true}\n')
        venvkit.index_step(
            f"npm-install openai@{OPENAI_NPM} ws@{WS_NPM}",
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
             f"openai@{OPENAI_NPM}", f"ws@{WS_NPM}"],
            timeout=300,
            cwd=scratch,
        )
        try:
            scratch.rename(folder)  # whole or not at all, even with two runs at once
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)  # the other run got there first
    # Node 22 has a global WebSocket; Node 20 and 21 only behind a flag.
    probe = subprocess.run([node, "-e", "process.stdout.write(typeof WebSocket)"],
                           capture_output=True, text=True, timeout=30, check=True)
    command = [node] if probe.stdout == "function" else [node, "--experimental-websocket"]
    return command, folder


async def _run_client(
    node_sdk: tuple[list[str], Path], kind: str, base_url: str, cert: Path, work: Path
) -> dict[str, Any]:
    """Run a copy of clients.mjs in ``work``, whose ``node_modules`` is the installed SDK's
    (so ``import 'openai'`` resolves; the shared cache is never written to)."""
    command, folder = node_sdk
    script = work / "clients.mjs"
    shutil.copyfile(SCRIPT, script)
    (work / "node_modules").symlink_to(folder / "node_modules", target_is_directory=True)
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(cert)}
    env.pop("NODE_TLS_REJECT_UNAUTHORIZED", None)  # the certificate must really be trusted
    proc = await asyncio.create_subprocess_exec(
        *command, str(script), kind, base_url, KEY,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.parametrize(("kind", "subprotocol"), [("ws", ""), ("websocket", "realtime")])
async def test_node_sdk_clients(
    kind: str,
    subprotocol: str,
    make_emulator: Any,
    node_sdk: tuple[list[str], Path],
    tls_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    cert, key = tls_files
    emu = await make_emulator(SCENARIO, api_key=KEY, tls_cert=cert, tls_key=key)
    result = await _run_client(node_sdk, kind, emu.base_url, cert, tmp_path)
    assert result.pop("subprotocol") == subprotocol
    assert result.pop("audio_bytes") > 24_000  # at least half a second of PCM16 at 24 kHz
    assert result == EXPECTED
    [connection] = emu.connections
    if kind == "ws":
        assert connection.headers["authorization"] == f"Bearer {KEY}"
    else:  # the browser-style client: its key came as a subprotocol, not a header
        assert "authorization" not in connection.headers
        assert f"openai-insecure-api-key.{KEY}" in connection.headers["sec-websocket-protocol"]
    # What the Node SDK sent is valid GA (the server side is checked by make_emulator).
    assert client_event_problems(emu.client_events()) == []


def test_node_sdk_against_the_command(
    node_sdk: tuple[list[str], Path], tls_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """``realtalk emulator --tls-cert --tls-key``, as docs/emulator.md tells users to run it."""
    cert, key = tls_files
    scenario = tmp_path / "node.scenario.yaml"
    scenario.write_text(json.dumps(SCENARIO))  # JSON is YAML
    code = (
        "import sys; from argparse import ArgumentParser; "
        "from realtalk.cli.emulator import add_arguments, run; p = ArgumentParser(); "
        "add_arguments(p); sys.exit(run(p.parse_args(sys.argv[1:])))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--fast", "--scenario", str(scenario),
         "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "REALTALK_EMULATOR_API_KEY": KEY},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("realtalk emulator listening on wss://127.0.0.1:"), line
        base_url = line.split()[-1].replace("wss://", "https://").removesuffix("/realtime")
        result = asyncio.run(_run_client(node_sdk, "websocket", base_url, cert, tmp_path))
        assert result["subprotocol"] == "realtime"
        assert result["text"] == EXPECTED["text"] and result["transcript"] == EXPECTED["transcript"]
        assert result["after_tool"] == EXPECTED["after_tool"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _doc_blocks() -> tuple[str, str, list[str]]:
    """docs/emulator.md's Node example: ``(script, command, printed lines)``."""
    import re

    text = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text()
    [script] = [b for b in re.findall(r"```js\n(.*?)```", text, re.DOTALL) if "hello.mjs" in b]
    [shown] = [b for b in re.findall(r"```console\n(.*?)```", text, re.DOTALL) if "hello.mjs" in b]
    command, *printed = shown.splitlines()
    return script, command, printed


async def test_doc_node_example(
    make_emulator: Any,
    node_sdk: tuple[list[str], Path],
    tls_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """The Node example of docs/emulator.md prints what the page shows, run as it says."""
    script, command, printed = _doc_blocks()
    cert, key = tls_files
    emu = await make_emulator(tls_cert=cert, tls_key=key)
    node, folder = node_sdk
    (tmp_path / "hello.mjs").write_text(script)
    (tmp_path / "node_modules").symlink_to(folder / "node_modules", target_is_directory=True)
    # The page's command, with the emulator's real port and certificate, the node found.
    words = command.removeprefix("$ ").split()
    settings = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    assert settings == {
        "OPENAI_BASE_URL": "https://127.0.0.1:8765/v1",
        "OPENAI_API_KEY": "test-key",
        "NODE_EXTRA_CA_CERTS": "cert.pem",
    }
    assert words[len(settings):] == ["node", "--experimental-websocket", "hello.mjs"]
    env = {**os.environ, **settings, "OPENAI_BASE_URL": emu.base_url,
           "NODE_EXTRA_CA_CERTS": str(cert)}
    env.pop("NODE_TLS_REJECT_UNAUTHORIZED", None)
    proc = await asyncio.create_subprocess_exec(
        *node, "hello.mjs", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == printed
    assert len(emu.connections) == 2
