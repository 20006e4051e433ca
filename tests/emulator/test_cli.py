"""The emulator's CLI glue: one-line errors, the warning, and a real serve-until-Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from realtalk.emulator.cli import add_arguments, run
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


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serves_until_ctrl_c(stop: signal.Signals) -> None:
    scenario = Path(__file__).parents[2] / "agents" / "concierge.scenario.yaml"
    code = (
        "import sys; from argparse import ArgumentParser; "
        "from realtalk.emulator.cli import add_arguments, run; p = ArgumentParser(); "
        "add_arguments(p); sys.exit(run(p.parse_args(sys.argv[1:])))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--fast", "--scenario", str(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("realtalk emulator listening on ws://127.0.0.1:")
        url = line.split()[-1]

        async def talk() -> list[str]:
            async with connect(url + "?model=gpt-realtime") as ws:
                await ws.send(
                    json.dumps(
                        {
                            "type": "conversation.item.create",
                            "item": {
                                "type": "message",
                                "role": "user",
                                "content": [
                                    {"type": "input_text", "text": "What time is it in Tokyo?"}
                                ],
                            },
                        }
                    )
                )
                await ws.send(json.dumps({"type": "response.create"}))
                seen = []
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
        assert proc.wait(timeout=10) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
