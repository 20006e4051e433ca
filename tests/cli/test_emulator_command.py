"""The emulator's CLI glue: one-line errors, the warning, and a real serve-until-Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from realtalk.cli.emulator import add_arguments, run
from websockets.asyncio.client import connect


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_in_use_is_one_line(busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_args("--port", str(busy_port))) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"realtalk emulator: cannot listen on 127.0.0.1:{busy_port}: address already in use\n"
    )


def test_warns_without_key_off_loopback(busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    # The busy port makes it exit before a non-loopback socket is ever opened.
    assert run(_args("--host", "0.0.0.0", "--port", str(busy_port))) == 1
    lines = capsys.readouterr().err.splitlines()
    assert "warning" in lines[0] and "--api-key" in lines[0]
    assert run(_args("--host", "0.0.0.0", "--port", str(busy_port), "--api-key", "k")) == 1
    assert "warning" not in capsys.readouterr().err


def test_bad_scenario_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.scenario.yaml"
    bad.write_text("turns:\n  - user: hi\n    repyl: oops\n")
    assert run(_args("--scenario", str(bad), "--port", "0")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{bad}:3:" in err and "repyl" in err


def test_key_from_the_environment_silences_the_warning(
    busy_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REALTALK_EMULATOR_API_KEY", "k")
    assert run(_args("--host", "0.0.0.0", "--port", str(busy_port))) == 1
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "99999"],
        ["--port", "-1"],
        ["--port", "http"],
        ["--expire-after", "0"],
        ["--expire-after", "inf"],
        ["--refuse", "-3"],
        ["--drop-after", "-1"],
        ["--latency-ms", "-5"],
        ["--latency-ms", "nan"],
        ["--audio-speed", "0"],
        ["--audio-speed", "fast"],
        ["--transcription-delay-ms", "-1"],
    ],
)
def test_bad_values_are_one_usage_line(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "realtalk.cli", "emulator", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"realtalk: error: argument {argv[0]}: ")
    assert result.stderr.count("\n") == 1 and result.stdout == ""


@pytest.mark.parametrize(("stop", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_serves_until_ctrl_c(
    stop: signal.Signals, exit_code: int, user_message: Callable[[str], dict[str, Any]]
) -> None:
    scenario = Path(__file__).parents[2] / "agents" / "concierge.scenario.yaml"
    code = (
        "import sys; from argparse import ArgumentParser; "
        "from realtalk.cli.emulator import add_arguments, run; p = ArgumentParser(); "
        "add_arguments(p); sys.exit(run(p.parse_args(sys.argv[1:])))"
    )
    # The key comes from the environment: it is not in the process list.
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--fast", "--scenario", str(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "REALTALK_EMULATOR_API_KEY": "env-key-42"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("realtalk emulator listening on ws://127.0.0.1:")
        url = line.split()[-1]

        async def refused() -> str:
            async with connect(url + "?model=gpt-realtime&api-key=wrong") as ws:
                return str(json.loads(await ws.recv())["error"]["code"])

        assert asyncio.run(refused()) == "invalid_api_key"

        async def talk() -> list[str]:
            headers = {"Authorization": "Bearer env-key-42"}
            async with connect(url + "?model=gpt-realtime", additional_headers=headers) as ws:
                await ws.send(json.dumps(user_message("What time is it in Tokyo?")))
                await ws.send(json.dumps({"type": "response.create"}))
                seen: list[str] = []
                while not seen or seen[-1] != "response.done":
                    event = json.loads(await ws.recv())
                    seen.append(event["type"])
                    if event["type"] == "response.output_audio_transcript.done":
                        seen.append(event["transcript"])
                return seen

        seen = asyncio.run(talk())
        assert "Let me check the clock for Tokyo." in seen
        assert "response.function_call_arguments.done" in seen
        proc.send_signal(stop)
        assert proc.wait(timeout=10) == exit_code
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
