"""`realtalk run --image`, `/image` in the chat prompt, push-to-talk barge-in, and how the
console shows input timeouts and slow tools."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from realtalk import InputTimeout, ToolStillWorking
from realtalk.audio import WavFileSink
from realtalk.cli.console import ConsoleRenderer
from realtalk.cli.interactive import push_to_talk_start
from realtalk.emulator import Emulator
from realtalk.emulator.conformance import client_event_problems
from realtalk.runner import open_session

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


def realtalk(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    return subprocess.run([sys.executable, "-m", "realtalk.cli", *args], capture_output=True, text=True,
                          input=stdin, env=env, timeout=60, check=False, cwd=ROOT)


@pytest.fixture
def looker(tmp_path: Path) -> Path:
    agent = tmp_path / "looker.yaml"
    agent.write_text("instructions: Describe pictures.\n")
    (tmp_path / "looker.scenario.yaml").write_text(textwrap.dedent("""
        turns:
          - user: picture
            reply: A tidy hotel room.
    """))
    (tmp_path / "room.png").write_bytes(PNG)
    return agent


def test_run_text_with_an_image(looker: Path, tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    result = realtalk("run", str(looker), "--emulator", "--image", str(tmp_path / "room.png"),
                      "--text", "What is in the picture?", "--record", str(record))
    assert result.returncode == 0, result.stderr
    assert "you: [image room.png]" in result.stdout
    assert "looker: A tidy hotel room." in result.stdout
    sent = [json.loads(line) for line in record.read_text().splitlines()]
    creates = [e["event"] for e in sent if e.get("dir") == "client"
               and e["event"]["type"] == "conversation.item.create"]
    image = creates[0]["item"]["content"][0]
    # The record names the image instead of keeping its bytes (as it does for audio).
    assert image["type"] == "input_image" and image["image_url"].startswith("<image/png ")
    assert client_event_problems(creates) == []


def test_a_bad_image_is_one_usage_line_before_connecting(looker: Path) -> None:
    result = realtalk("run", str(looker), "--emulator", "--image", "nowhere.png", "--text", "hi")
    assert result.returncode == 2
    assert result.stderr.startswith("realtalk: error: argument --image: image nowhere.png: cannot read it")
    assert result.stderr.count("\n") == 1 and "connected" not in result.stdout


def test_image_only_with_text_or_chat(looker: Path, tmp_path: Path) -> None:
    from realtalk.audio import write_wav

    write_wav(tmp_path / "quiet.wav", bytes(4800), 24000)
    result = realtalk("run", str(looker), "--emulator", "--image", str(tmp_path / "room.png"),
                      "--input", str(tmp_path / "quiet.wav"))
    assert result.returncode == 2
    assert result.stderr == "realtalk: error: argument --image: only with --text or --chat\n"


def test_chat_image_command(looker: Path, tmp_path: Path) -> None:
    image = tmp_path / "room.png"
    result = realtalk("run", str(looker), "--emulator", "--chat",
                      stdin=f"/image\n/image {tmp_path / 'none.png'}\n/image {image} what is in this picture?\n/quit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "! /image needs a file: /image PATH [QUESTION]" in out
    assert f"! image {tmp_path / 'none.png'}: cannot read it" in out
    assert "looker: A tidy hotel room." in out


async def test_push_to_talk_start_interrupts_and_clears(tmp_path: Path) -> None:
    agent = tmp_path / "ptt.yaml"
    agent.write_text("instructions: Talk.\nturn_detection: {type: none}\n")
    long = "A reply long enough to be interrupted by the user pressing Enter. " * 4
    sink = WavFileSink(tmp_path / "out.wav", realtime=True)
    async with Emulator({"turns": [{"user": "talk", "reply": long}]}, fast=False) as emu:
        async with open_session(agent, emulator=emu, output=sink) as session:
            await session.send_text("talk")
            await emu.wait_for("response.output_audio.delta", timeout=20)
            await push_to_talk_start(session)
            await emu.wait_for("input_audio_buffer.cleared", timeout=20)
            await session.wait_turn(20)
        sink.close()
    types = [e["type"] for e in emu.client_events()]
    assert types.index("response.cancel") < types.index("input_audio_buffer.clear")
    assert client_event_problems(emu.client_events()) == []
    assert [e["response"]["status"] for e in emu.server_events("response.done")] == ["cancelled"]


def test_the_console_shows_input_timeouts_and_slow_tools() -> None:
    out = io.StringIO()
    console = ConsoleRenderer(stream=out)
    console(InputTimeout(item_id="item_1", audio_start_ms=0, audio_end_ms=5000))
    console(ToolStillWorking(call_id="c1", name="lookup", after_s=3.0, say="Still checking..."))
    console(ToolStillWorking(call_id="c2", name="search", after_s=2.5))
    assert out.getvalue().splitlines() == [
        "  · no input for a while: the agent follows up",
        "  … lookup still running after 3 s: Still checking...",
        "  … search still running after 2.5 s",
    ]
    lines = io.StringIO()
    ConsoleRenderer(stream=lines, json_lines=True)(InputTimeout(item_id="item_1", audio_start_ms=0,
                                                                audio_end_ms=5000))
    assert json.loads(lines.getvalue()) == {"type": "input.timeout", "item_id": "item_1",
                                            "audio_start_ms": 0, "audio_end_ms": 5000}
