"""Messages a person can act on: the user's text echoed, connection retries with their
progress, /agent listing and greeting, approval time kept out of the tool's time.

The CLI runs as a subprocess against real emulators; the rest through real sessions."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk import toolcalls
from realtalk.emulator import Emulator
from realtalk.runner import open_session
from realtalk.testing import ThreadedEmulator

ROOT = Path(__file__).resolve().parents[2]
CONCIERGE = ROOT / "agents" / "concierge.yaml"


def realtalk_cli(*args: str, stdin: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    return subprocess.run([sys.executable, "-m", "realtalk.cli", *args], capture_output=True, text=True,
                          input=stdin, env=env, timeout=60, check=False, cwd=cwd)


# --- the user's text, before the reply ------------------------------------------------------


def test_text_mode_shows_the_users_turn_before_the_reply() -> None:
    result = realtalk_cli("run", str(CONCIERGE), "--emulator", "--text", "What time is it in Tokyo?",
                          "--text", "A question about my bill")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first, second = lines.index("you: What time is it in Tokyo?"), lines.index("you: A question about my bill")
    assert first < lines.index("concierge: Let me check the clock for Tokyo.") < second
    assert second < lines.index("billing: Billing desk here. I can see your invoice; how can I help?")


def test_json_mode_has_the_users_turn_as_an_event() -> None:
    result = realtalk_cli("run", str(CONCIERGE), "--emulator", "--json", "--text", "What time is it in Tokyo?")
    assert result.returncode == 0, result.stderr
    types = [json.loads(line)["type"] for line in result.stdout.splitlines()]
    assert types[:3] == ["connected", "user.text", "assistant.delta"]
    assert json.loads(result.stdout.splitlines()[1]) == {"type": "user.text", "text": "What time is it in Tokyo?"}


def shape(line: str) -> str:
    """A console line with its numbers (times, ports, tokens), weekday and a tool's output left out."""
    line = re.sub(r"\d+", "N", re.sub(r"\b(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b", "DAY", line))
    return line.split(": {", 1)[0] if line.startswith("  ✓ ") else line


def test_the_run_example_of_cli_md_is_what_run_prints() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text()
    block = re.search(r"```\n\$ (realtalk run agents/concierge\.yaml --emulator --text .*?)\n(.*?)```", docs,
                      flags=re.DOTALL)
    assert block is not None
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', block[1])][1:]
    result = realtalk_cli(*args)
    assert result.returncode == 0, result.stderr
    assert [shape(x) for x in result.stdout.splitlines()] == [shape(x) for x in block[2].splitlines()]


# --- connection retries --------------------------------------------------------------------


def test_each_retry_says_why_how_long_and_which_attempt() -> None:
    with ThreadedEmulator(str(ROOT / "agents" / "concierge.scenario.yaml"), refuse_connections=2) as server:
        result = realtalk_cli("run", str(CONCIERGE), "--url", server.url, "--text", "What time is it in Tokyo?")
    assert result.returncode == 0, result.stderr
    retries = [line for line in result.stderr.splitlines() if "retrying" in line]
    assert [re.sub(r"\d+\.\d s", "D s", line) for line in retries] == [
        "! could not connect: HTTP 429 Too Many Requests; retrying in D s (attempt 2 of 5)",
        "! could not connect: HTTP 429 Too Many Requests; retrying in D s (attempt 3 of 5)",
    ]
    assert "retrying" not in result.stdout and "you: What time is it in Tokyo?" in result.stdout


def test_retries_are_events_in_json_mode() -> None:
    with ThreadedEmulator(str(ROOT / "agents" / "concierge.scenario.yaml"), refuse_connections=1) as server:
        result = realtalk_cli("run", str(CONCIERGE), "--url", server.url, "--json", "--text", "hello")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "warning" and events[1]["type"] == "connected"
    assert re.fullmatch(r"could not connect: HTTP 429 Too Many Requests; retrying in \d+\.\d s \(attempt 2 of 5\)",
                        events[0]["message"])


# --- /agent in the chat, and switch_agent greeting --------------------------------------------

HOST = "instructions: Host.\ngreeting: Welcome to the show!\nhandoffs: [guest]\n"
GUEST = "instructions: Guest.\ngreeting: Hi, guest speaking.\n"
SHOW = ("turns:\n  - greeting: true\n    reply: Welcome to the show!\n"
        "  - greeting: true\n    reply: Hi, guest speaking.\n")


def show(tmp_path: Path) -> Path:
    (tmp_path / "host.yaml").write_text(HOST)
    (tmp_path / "guest.yaml").write_text(GUEST)
    (tmp_path / "host.scenario.yaml").write_text(SHOW)
    return tmp_path / "host.yaml"


def test_chat_agent_without_a_name_lists_and_with_one_greets(tmp_path: Path) -> None:
    result = realtalk_cli("run", str(show(tmp_path)), "--emulator", "--chat", stdin="/agent\n/agent guest\n/quit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout  # with "you> " prompts, as stdin is no terminal
    listing = out.index("you> agents: host (active), guest; switch with /agent NAME\n")
    assert out.index("\nhost: Welcome to the show!\n") < listing < out.index("  ⇢ handoff host → guest\n")
    assert out.index("  ⇢ handoff host → guest\n") < out.index("\nguest: Hi, guest speaking.\n")


async def test_switch_agent_greets_as_a_handoff_does(tmp_path: Path) -> None:
    async with Emulator(scenario={"turns": [{"greeting": True, "reply": "Hi, guest speaking."}]}) as emu:
        async with open_session(show(tmp_path), emulator=emu, text_only=True) as session:
            turn = await session.switch_agent("guest")
        created = emu.client_events("response.create")
    assert turn is not None and turn.text == "Hi, guest speaking."
    [greeting] = created
    assert greeting["response"]["instructions"] == "Guest.\n\nStart by greeting the user with: Hi, guest speaking."


# --- approval time is not the tool's time ----------------------------------------------------


class Payments:
    __name__ = "payments"

    @realtalk.hookimpl
    def register_tools(self, register: realtalk.Registrar) -> None:
        register("pay", description="Pay", handler=lambda: "paid", requires_approval=True, timeout_s=5)


PAY = [{"user": "pay", "reply": [{"call": "pay", "arguments": {}}, {"say": "{output}"}]}]
PAYER = "instructions: Pays.\ntools: [pay]\n"


async def test_approval_time_is_not_counted_as_the_tools_time(tmp_path: Path) -> None:
    (tmp_path / "payer.yaml").write_text(PAYER)
    waited: list[float] = []

    async def approve(request: Any) -> bool:
        started = time.perf_counter()
        answered = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, answered.set)  # a person thinking
        await answered.wait()
        waited.append(time.perf_counter() - started)
        return True

    finished: list[realtalk.ToolFinished] = []
    async with Emulator(scenario={"turns": PAY}) as emu, open_session(
            tmp_path / "payer.yaml", emulator=emu, text_only=True, approve=approve, extra_plugins=[Payments()],
            listeners=[lambda e: finished.append(e) if isinstance(e, realtalk.ToolFinished) else None]) as session:
        turn = await session.ask("pay", 20)
    assert turn.text == "paid"
    [event] = finished
    assert event.status == "ok"
    assert event.duration_s < waited[0]  # the handler's own time only
    assert turn.tool_calls[0].duration_s == event.duration_s


async def test_an_unanswered_approval_is_a_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "payer.yaml").write_text(PAYER)
    monkeypatch.setattr(toolcalls, "APPROVAL_TIMEOUT_S", 0.05)

    async def approve(request: Any) -> bool:
        await asyncio.Event().wait()  # nobody ever answers
        return True

    async with Emulator(scenario={"turns": PAY}) as emu, open_session(
            tmp_path / "payer.yaml", emulator=emu, text_only=True, approve=approve,
            extra_plugins=[Payments()]) as session:
        turn = await session.ask("pay", 20)
    assert turn.tool_calls[0].status == "refused"
    assert "pay was not approved: nobody answered within 0.05 s" in turn.text
