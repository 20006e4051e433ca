"""Bad command-line input: one ``realtalk: error:`` line and exit 2, before connecting;
a closed stdout ends quietly; log records are one line unless ``-v`` or ``--log-file``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from realtalk.cli import main
from realtalk.testing import ThreadedEmulator
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parents[2]
CONCIERGE = ROOT / "agents" / "concierge.yaml"


def realtalk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "realtalk.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=60, check=False, cwd=ROOT)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedEmulator]:
    emulator = ThreadedEmulator("agents/concierge.scenario.yaml")
    yield emulator
    emulator.close()


# --- usage errors ------------------------------------------------------------------------


def _bad_run_values(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "notes.txt").write_text("not audio")
    (tmp / "file").write_text("")
    return [
        (["--record", str(tmp)], f"argument --record: {tmp} is a directory"),
        (["--record", str(tmp / "file" / "run.jsonl")], f"argument --record: cannot write {tmp}/file/run.jsonl:"),
        (["--output", str(tmp)], f"argument --output: {tmp} is a directory"),
        (["--output", str(tmp / "missing" / "out.wav")], "argument --output: cannot write"),
        (["--input", str(tmp / "missing.wav")], "argument --input: "),
        (["--input", str(tmp / "notes.txt")], "argument --input: "),
        (["--input", str(tmp)], "argument --input: "),
        (["--timeout", "-5"], "argument --timeout: must be a number of seconds above 0, not '-5'"),
        (["--timeout", "0"], "argument --timeout: "),
        (["--timeout", "nan"], "argument --timeout: "),
        (["--timeout", "soon"], "argument --timeout: "),
        (["--log-file", str(tmp)], f"argument --log-file: {tmp} is a directory"),
        (["--echo", "loud"], "argument --echo: invalid choice: 'loud'"),
    ]


def test_bad_run_values_are_one_line_and_never_connect(server: ThreadedEmulator, tmp_path: Path) -> None:
    before = len(server.emulator.connections)
    for argv, expected in _bad_run_values(tmp_path):
        result = realtalk("run", str(CONCIERGE), "--url", server.url, "--text", "hi", *argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stderr.startswith(f"realtalk: error: {expected}"), (argv, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, argv
        assert result.stdout == ""
    assert len(server.emulator.connections) == before


@pytest.mark.parametrize(("url", "expected"), [
    ("ws://[::1", "invalid URL 'ws://[::1': invalid IPv6 URL"),
    ("ws://localhost:99999", "invalid URL 'ws://localhost:99999': port out of range 0-65535"),
    ("ws://", "not a WebSocket URL: 'ws://'"),
    ("ftp://example.com/x", "not a WebSocket URL: 'ftp://example.com/x'"),
    ("ws://user:s3cret-pass@[::1", "invalid URL 'ws://***@[::1'"),
])
def test_bad_url_is_one_line(url: str, expected: str) -> None:
    result = realtalk("run", str(CONCIERGE), "--url", url, "--text", "hi")
    assert result.returncode == 2
    assert result.stderr.startswith(f"realtalk: error: argument --url: {expected}")
    assert result.stderr.count("\n") == 1 and "s3cret" not in result.stderr


def test_record_into_a_missing_folder_creates_it(server: ThreadedEmulator, tmp_path: Path) -> None:
    record = tmp_path / "runs" / "today" / "run.jsonl"
    result = realtalk("run", str(CONCIERGE), "--url", server.url, "--text", "hi", "--record", str(record))
    assert result.returncode == 0, result.stderr
    assert record.read_text().count("\n") > 2


# --- a closed stdout ---------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["plugins"],
    ["tools"],
    ["tools", "get_time"],
    ["run", str(CONCIERGE), "--emulator", "--text", "What time is it in Tokyo?", "--text", "A question on my bill"],
    ["run", str(CONCIERGE), "--emulator", "--json", "--text", "What time is it in Tokyo?"],
])
def test_closed_stdout_ends_quietly_with_141(argv: list[str]) -> None:
    # What `realtalk ... | head -1` does, without the race: the reader is gone before the
    # first line is written.
    proc = subprocess.Popen([sys.executable, "-m", "realtalk.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_closed_stdout_starts_no_more_turns(tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtalk.cli", "run", str(CONCIERGE), "--emulator", "--record", str(record),
         "--text", "What time is it in Tokyo?", "--text", "A question on my bill"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    assert proc.stdout is not None
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert "A question on my bill" not in record.read_text()


# --- logging -----------------------------------------------------------------------------

FAILING_TOOL = '''
import realtalk


def explode() -> str:
    raise ValueError("the flux capacitor is empty")


@realtalk.hookimpl
def register_tools(register: realtalk.Registrar) -> None:
    register("explode", description="Fails.", parameters={"type": "object", "properties": {}},
             handler=explode)
'''


@pytest.fixture
def failing_agent(make_plugin: Any, tmp_path: Path) -> Path:
    make_plugin("realtalk-exploding", FAILING_TOOL)
    agent = tmp_path / "agents" / "bomber.yaml"
    agent.parent.mkdir()
    agent.write_text("instructions: Use the explode tool.\ntools: [explode]\n")
    agent.with_name("bomber.scenario.yaml").write_text(textwrap.dedent("""\
        turns:
          - user: /go/
            reply:
              - call: explode
              - say: "That did not work."
        """))
    return agent


def test_tool_failure_is_one_log_line_by_default(failing_agent: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(failing_agent), "--emulator", "--text", "go"])
    out, err = capsys.readouterr()
    assert code == 0 and "That did not work." in out
    lines = [line for line in err.splitlines() if "explode" in line]
    assert len(lines) == 1 and lines[0].startswith("realtalk: error: tool explode (")
    assert lines[0].endswith(" (ValueError: the flux capacitor is empty)")
    assert "Traceback" not in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_shows_the_traceback(failing_agent: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    run = ["run", str(failing_agent), "--emulator", "--text", "go"]
    code = main(["-v", *run] if where == "before" else [*run, "-v"])
    err = capsys.readouterr().err
    assert code == 0
    assert "Traceback (most recent call last)" in err and "ValueError: the flux capacitor is empty" in err


def test_log_file_has_the_traceback(failing_agent: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "realtalk.log"
    code = main(["run", str(failing_agent), "--emulator", "--text", "go", "--log-file", str(log)])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    text = log.read_text()
    assert "ERROR realtalk.tools: tool explode" in text
    assert "Traceback (most recent call last)" in text and "ValueError: the flux capacitor is empty" in text


# --- exit code of the last turn ----------------------------------------------------------


@pytest.fixture
def failing_relay(server: ThreadedEmulator) -> Iterator[str]:
    """A loopback relay to the emulator that turns every ``response.done`` into a failure."""
    upstream = "ws://" + urlsplit(server.url).netloc
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    started = threading.Event()
    stop: asyncio.Future[None] = loop.create_future()

    async def relay(ws: ServerConnection) -> None:
        assert ws.request is not None
        async with connect(upstream + ws.request.path) as up:
            async def down() -> None:
                async for message in up:
                    event = json.loads(message)
                    if event["type"] == "response.done":
                        event["response"]["status"] = "failed"
                        event["response"]["status_details"] = {"type": "failed", "error": {
                            "type": "server_error", "message": "The server had an error"}}
                    await ws.send(json.dumps(event))

            async def onward() -> None:
                async for message in ws:
                    await up.send(message)

            tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(onward())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def main() -> None:
        async with serve(relay, "127.0.0.1", 0) as listening:
            port = next(iter(listening.sockets)).getsockname()[1]
            ready.append(f"ws://127.0.0.1:{port}/v1/realtime")
            started.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(30)
    yield ready[0]
    loop.call_soon_threadsafe(stop.set_result, None)
    thread.join(30)
    loop.close()


def test_failed_last_turn_exits_1(failing_relay: str) -> None:
    result = realtalk("run", str(CONCIERGE), "--url", failing_relay, "--text", "hi")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


def test_completed_last_turn_exits_0(server: ThreadedEmulator) -> None:
    result = realtalk("run", str(CONCIERGE), "--url", server.url, "--text", "hi")
    assert result.returncode == 0, result.stderr
