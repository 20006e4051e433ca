"""`realtalk run` end to end: the real console entry point in a subprocess."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from realtalk.testing import ThreadedEmulator

ROOT = Path(__file__).resolve().parents[2]
CONCIERGE = ROOT / "agents" / "concierge.yaml"


def realtalk(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "realtalk.cli", *args], capture_output=True, text=True,
                          input=stdin, env=full_env, timeout=60, check=False, cwd=ROOT)


@pytest.fixture
def keyed_emulator() -> Iterator[ThreadedEmulator]:
    server = ThreadedEmulator("agents/concierge.scenario.yaml", api_key="right-key")
    yield server
    server.close()


def test_readme_main_command_answers_through_a_tool_and_hands_off() -> None:
    result = realtalk("run", str(CONCIERGE), "--emulator", "--text", "What time is it in Tokyo?",
                      "--text", "I have a question about my bill")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "→ get_time(" in out and "✓ get_time ok" in out
    assert "⇢ handoff concierge → billing" in out
    assert "billing: Billing desk here." in out
    assert "tokens" in out and "first delta" in out


def test_json_lines_for_scripts() -> None:
    result = realtalk("run", str(CONCIERGE), "--emulator", "--json", "--text", "What time is it in Tokyo?")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "connected" and "tool.finished" in types and types[-2:] == ["turn.done", "session.usage"]
    finished = next(e for e in events if e["type"] == "tool.finished")
    assert finished["name"] == "get_time" and finished["status"] == "ok"
    # The turn's tokens by kind and estimated cost, then the session's total.
    turn, session = events[-2:]
    assert turn["tokens"]["input_text"] > 0 and turn["cost_usd"] > 0
    assert session == {"type": "session.usage", "model": "gpt-realtime-2.1", "turns": 1, "tokens": turn["tokens"],
                       "cost_usd": turn["cost_usd"]}


def test_a_price_file_prices_the_run(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("my-deployment:\n  input_text: 1000000\n  output_text: 0\n")
    result = realtalk("run", str(CONCIERGE), "--emulator", "--model", "my-deployment", "--prices", str(prices),
                      "--json", "--text", "hello")
    assert result.returncode == 0, result.stderr
    session = json.loads(result.stdout.splitlines()[-1])
    assert session["model"] == "my-deployment" and session["cost_usd"] == session["tokens"]["input_text"]
    # The same from REALTALK_PRICES; without a price, tokens only and a pointer to --prices.
    result = realtalk("run", str(CONCIERGE), "--emulator", "--model", "my-deployment", "--json", "--text", "hello",
                      env={"REALTALK_PRICES": str(prices)})
    assert json.loads(result.stdout.splitlines()[-1])["cost_usd"] == session["cost_usd"]
    result = realtalk("run", str(CONCIERGE), "--emulator", "--model", "my-deployment", "--text", "hello")
    assert result.stdout.splitlines()[-1].endswith("; no price known for model 'my-deployment' (--prices FILE)")


@pytest.mark.parametrize("given", ["flag", "env"])
def test_a_bad_price_file_is_one_usage_line(tmp_path: Path, given: str) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("gpt-realtime:\n  output_audio: cheap\n")
    flag = ["--prices", str(prices)] if given == "flag" else []
    result = realtalk("run", str(CONCIERGE), "--emulator", *flag, "--text", "hello",
                      env={"REALTALK_PRICES": str(prices)} if given == "env" else None)
    assert result.returncode == 2 and result.stdout == ""
    where = "argument --prices: " if given == "flag" else "REALTALK_PRICES: "
    assert result.stderr.splitlines() == [
        f"realtalk: error: {where}{prices}:2: $.gpt-realtime.output_audio:"
        f" must be a number of USD per 1M tokens, 0 or more, not 'cheap'"
        + (" (see realtalk run --help)" if given == "flag" else "")]


def test_record_has_every_event_and_no_key(keyed_emulator: ThreadedEmulator, tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    result = realtalk("run", str(CONCIERGE), "--url", keyed_emulator.url, "--record", str(record),
                      "--text", "What time is it in Tokyo?", env={"REALTALK_API_KEY": "right-key"})
    assert result.returncode == 0, result.stderr
    text = record.read_text()
    assert "right-key" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    sent = [line["event"]["type"] for line in lines if line["dir"] == "client"]
    received = [line["event"]["type"] for line in lines if line["dir"] == "server"]
    assert sent[0] == "session.update" and "response.create" in sent
    assert received[0] == "session.created" and "response.done" in received
    # Every event the emulator saw or sent is in the record, in order.
    assert len(sent) == len(keyed_emulator.client_events())
    assert len(received) == len(keyed_emulator.server_events())
    assert all(isinstance(line["t"], float) for line in lines)


def test_bad_api_key_is_one_line_and_exit_1(keyed_emulator: ThreadedEmulator) -> None:
    result = realtalk("run", str(CONCIERGE), "--url", keyed_emulator.url, "--text", "hi",
                      env={"REALTALK_API_KEY": "wrong-key-0123456789"})
    assert result.returncode == 1
    assert result.stderr.startswith("realtalk: error: ") and "Incorrect API key" in result.stderr
    assert "Traceback" not in result.stderr and "0123456789" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert len(keyed_emulator.emulator.connections) == 1  # not retried


def test_missing_openai_key_says_what_to_do() -> None:
    result = realtalk("run", str(CONCIERGE), "--text", "hi")
    assert result.returncode == 1
    assert result.stderr == ("realtalk: error: no OpenAI API key: set OPENAI_API_KEY, or use --emulator"
                             " (no key needed)\n")


def test_beta_against_ga_server_is_a_clear_error() -> None:
    result = realtalk("run", str(CONCIERGE), "--emulator", "--beta", "--text", "hi")
    assert result.returncode == 1
    assert "beta" in result.stderr.lower() and "Traceback" not in result.stderr


def test_unreachable_server() -> None:
    result = realtalk("run", str(CONCIERGE), "--url", "ws://127.0.0.1:9/v1/realtime", "--text", "hi")
    assert result.returncode == 1
    *retries, error = result.stderr.splitlines()
    assert error.startswith("realtalk: error: could not connect to ws://127.0.0.1:9/v1/realtime")
    assert [r.split(";")[0] for r in retries] == ["! could not connect: connection refused (is the server running?)"] * 4


def test_bad_agent_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("instructions: x\nvoice: nova\n")
    result = realtalk("run", str(path), "--emulator", "--text", "hi")
    assert result.returncode == 1
    assert result.stderr.startswith(f"realtalk: error: {path}:2: $.voice: 'nova' is not a valid voice")


def test_directory_without_agent_choice() -> None:
    result = realtalk("run", str(ROOT / "agents"), "--emulator", "--text", "hi")
    assert result.returncode == 1 and "choose one with --agent" in result.stderr


def test_no_audio_device_and_no_terminal(tmp_path: Path, require: Any) -> None:
    # ALSA's default device points at a card that does not exist: PortAudio finds none.
    system = Path("/usr/share/alsa/alsa.conf")
    require(system.exists(), "libasound2 (apt-get install -y libportaudio2)")
    require(ctypes.util.find_library("portaudio") is not None, "libportaudio2 (apt-get install -y libportaudio2)")
    conf = tmp_path / "nodev.conf"
    conf.write_text("pcm.!default { type hw card 99 }\nctl.!default { type hw card 99 }\n")
    result = realtalk("run", str(CONCIERGE), "--emulator", env={"ALSA_CONFIG_PATH": f"{system}:{conf}"})
    assert result.returncode == 1
    assert result.stderr == ("realtalk: error: no audio device found: use --input FILE.wav and --output"
                             " FILE.wav, --text TEXT, or --chat\n")


def test_chat_prompt_switches_agents_and_quits() -> None:
    result = realtalk("run", str(CONCIERGE), "--emulator", "--chat",
                      stdin="/agents\n/agent billing\n/agent nobody\nWhen is checkout?\n/quit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("concierge: Good evening, welcome to Hotel Aurora.") < out.index("agents: concierge")
    assert "agents: concierge (active), billing" in out
    assert "! unknown agent 'nobody'" in out
    assert "→ time_until(" in out  # asked while billing was active
