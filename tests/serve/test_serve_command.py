"""The ``realtalk serve`` command: one-line flag errors (exit 2), the serve extra loaded
lazily, and real ``realtalk serve`` processes: SIGTERM drains (readyz 503, new sessions
refused, the open one finishes) and exits 0 with JSON logs that carry the session id and
never a token; a second Ctrl-C exits at once (130); ``--workers 2`` answers from two
processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from realtalk.cli import main

from .conftest import AGENTS, ROOT, WAIT_S

OpenPage = Callable[..., Any]
TOKEN = "serve-token-0123456789"


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--port", "99999"], {}, "argument --port: must be a port number from 0 to 65535, not '99999'"),
    (["--max-sessions", "0"], {}, "argument --max-sessions: must be a whole number of 1 or more, not '0'"),
    (["--max-per-client", "x"], {}, "argument --max-per-client: must be a whole number of 1 or more"),
    (["--workers", "0"], {}, "argument --workers: must be a whole number of 1 or more, not '0'"),
    (["--max-session-s", "0"], {}, "argument --max-session-s: must be a number of seconds above 0"),
    (["--drain-s", "-1"], {}, "argument --drain-s: must be a number of seconds above 0"),
    (["--allow-origin", "junk"], {}, "argument --allow-origin: not an origin: 'junk'"),
    (["--public-url", "ftp://x"], {}, "argument --public-url: not an http(s) URL: 'ftp://x'"),
    (["--log-format", "xml"], {}, "argument --log-format: invalid choice: 'xml'"),
    (["--emulator", "--url", "ws://x"], {}, "argument --url: not allowed with argument --emulator"),
    (["--scenario", str(AGENTS / "concierge.scenario.yaml")], {}, "--scenario needs --emulator"),
    (["--emulator", "--scenario", "missing.yaml"], {}, "--scenario: no such file: missing.yaml"),
    (["--fast"], {}, "--fast needs --emulator"),
    (["--agent", "ghost"], {}, "unknown agent 'ghost'; known agents: billing, concierge, weather"),
    ([], {"REALTALK_SERVE_TOKEN_SECRET": "short"}, "REALTALK_SERVE_TOKEN_SECRET must be at least 16 characters"),
    ([], {"REALTALK_SERVE_MINT_KEY": "mint-key-0123456789"}, "minted tokens need both"),
    ([], {"REALTALK_SERVE_TOKENS": "a b"}, "REALTALK_SERVE_TOKENS: a token is empty or holds spaces"),
])
def test_flag_errors_are_one_line(args: list[str], env: dict[str, str], message: str,
                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = main(["serve", str(AGENTS), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("realtalk: error: ")
    assert message in err
    for value in env.values():
        assert len(value) < 16 or value not in err


def test_a_bad_agents_directory_stops_before_listening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\ninstructions: hi\nbogus: 1\n")
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "broken.yaml:3: $.bogus: unknown key 'bogus'" in err
    assert main(["serve", str(tmp_path / "nowhere"), "--port", "0"]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=False)


def test_the_serve_extra_is_imported_only_by_serve() -> None:
    lazy = _python("import sys\nfrom realtalk.cli import main\n"
                   "assert main(['check', 'agents']) == 0\n"
                   "assert main(['--version']) == 0\n"
                   "print(sorted(m for m in ('starlette', 'uvicorn', 'prometheus_client') if m in sys.modules))")
    assert lazy.returncode == 0, lazy.stderr
    assert lazy.stdout.splitlines()[-1] == "[]"
    helped = _python("from realtalk.cli import main\nmain(['--help'])")
    assert "serve" in helped.stdout
    missing = _python("import sys\nsys.modules['starlette'] = None\nfrom realtalk.cli import main\n"
                      "sys.exit(main(['serve', 'agents']))")
    assert missing.returncode == 2
    assert missing.stderr == ("realtalk: error: realtalk serve needs the serve extra:"
                              " pip install 'realtalk[serve]'\n")


# --- real processes ----------------------------------------------------------------------------


class Served:
    """A ``realtalk serve`` process and the address it printed."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "realtalk.cli", "serve", str(AGENTS), "--agent", "concierge", "--emulator",
             "--fast", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, **(env or {})})
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline()  # the first line says where it listens
        assert self.line.startswith("realtalk serve: listening on http://127.0.0.1:"), self._failure()
        self.url = self.line.split()[4]

    def _failure(self) -> str:
        self.proc.kill()
        return self.proc.communicate(timeout=WAIT_S)[1]

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=WAIT_S)


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        started.append(Served(*args, env=env))
        return started[-1]

    yield start
    for server in started:
        server.stop()


async def _until_draining(http: httpx.AsyncClient) -> None:
    for _ in range(int(WAIT_S / 0.05)):
        if (await http.get("/readyz")).status_code == 503:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("/readyz never said draining")


async def test_sigterm_drains_and_exits_0_with_json_logs(served: Callable[..., Served], open_page: OpenPage) -> None:
    server = served("--drain-s", "30", env={"REALTALK_SERVE_TOKEN": TOKEN})
    assert "(agents: billing, concierge, weather; emulator ws://127.0.0.1:" in server.line
    async with httpx.AsyncClient(base_url=server.url) as http, open_page(server.url, token=TOKEN) as page:
        ready = await page.next("ready")
        await page.event("turn.done")  # the greeting
        async with open_page(server.url, token=TOKEN + "x") as refused:
            assert (await refused.next("refused"))["code"] == "unauthorized"
        server.signal(signal.SIGTERM)
        await _until_draining(http)
        assert (await http.get("/healthz")).status_code == 200
        async with open_page(server.url, token=TOKEN) as late:
            assert (await late.next("refused"))["code"] == "draining"
            assert (await late.closed())[0] == 4503
        await page.send({"type": "text", "text": "What time is it in Tokyo?"})  # the open session goes on
        assert "in Tokyo" in (await page.event("turn.done"))["text"]
        await page.send({"type": "bye"})
        assert (await page.next("closing"))["code"] == "bye"
    code, err = server.wait()
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("session_id") == ready["session_id"]]
    assert any(line["message"].startswith("session started") for line in mine)
    assert any(line["message"] == "session ended: completed" for line in mine)
    assert any(line["message"] == "SIGTERM: draining" for line in lines)
    assert TOKEN not in err


async def test_a_second_ctrl_c_exits_at_once(served: Callable[..., Served], open_page: OpenPage) -> None:
    server = served("--drain-s", "60", "--log-format", "text")
    async with httpx.AsyncClient(base_url=server.url) as http, open_page(server.url) as page:
        await page.next("ready")
        server.signal(signal.SIGINT)
        await _until_draining(http)
        server.signal(signal.SIGINT)
        code, err = server.wait()
    assert code == 130
    assert "realtalk serve: interrupted again, exiting now" in err
    assert " info realtalk.serve: SIGINT: draining" in err


async def test_two_workers_answer_from_two_processes(served: Callable[..., Served], open_page: OpenPage) -> None:
    server = served("--workers", "2", "--drain-s", "5")
    assert server.line.rstrip().endswith("; 2 workers)")
    pids: set[int] = set()
    for _ in range(400):  # each request on a new connection: either worker may accept it
        async with httpx.AsyncClient(base_url=server.url) as http:
            pids.add((await http.get("/healthz")).json()["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2
    assert server.proc.pid not in pids
    async with open_page(server.url) as page:  # a session in a worker, on the parent's emulator
        await page.next("ready")
        await page.event("turn.done")
        await page.send({"type": "text", "text": "What time is it in Tokyo?"})
        assert "in Tokyo" in (await page.event("turn.done"))["text"]
    server.signal(signal.SIGTERM)
    code, err = server.wait()
    assert code == 0, err
