"""``realtalk transcribe`` and ``realtalk.transcribe()`` end to end against the emulator.

These need the emulator to serve transcription sessions (``?intent=transcription``,
``session.type: "transcription"``, scenario ``speakers`` and ``transcription_error``):
the emulator part of issue 13. They also run the examples of ``docs/transcribe.md``
marked as tested here (the page's blocks that need the emulator).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import realtalk
from realtalk.audio import write_wav
from realtalk.emulator.conformance import client_event_problems, server_event_problems
from realtalk.testing import ThreadedEmulator

ROOT = Path(__file__).resolve().parents[2]
PAGE = "docs/transcribe.md"
THIS = "tests/cli/test_transcribe_e2e.py::test_the_transcribe_page_runs"

TWO_TURNS = """\
turns:
  - audio: true
    transcript: What time is it in Tokyo?
    reply: (never said)
  - audio: true
    transcript: And in Lisbon?
    reply: (never said)
"""


def realtalk_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    env["PYTHONPATH"] = str(ROOT / "core")
    return subprocess.run([sys.executable, "-m", "realtalk.cli", "transcribe", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False, cwd=cwd)


@pytest.fixture
def two_segments(tmp_path: Path) -> Path:
    """Two stretches of loud tone with a pause between: two segments for the VAD."""
    rate = 24000

    def tone(seconds: float) -> Any:
        t = np.arange(int(rate * seconds)) / rate
        return (np.sin(2 * np.pi * 300 * t) * 10000).astype(np.int16)

    def silence(seconds: float) -> Any:
        return np.zeros(int(rate * seconds), dtype=np.int16)

    (tmp_path / "two.scenario.yaml").write_text(TWO_TURNS)
    path = tmp_path / "two.wav"
    write_wav(path, np.concatenate([silence(0.3), tone(1.0), silence(1.5), tone(0.8), silence(0.3)]), rate)
    return path


# -- the command ------------------------------------------------------------------------------


def test_segments_are_printed_in_the_order_spoken(two_segments: Path) -> None:
    result = realtalk_cli("--emulator", "--scenario", "two.scenario.yaml", "--wav", "two.wav", "--fast",
                          cwd=two_segments.parent)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "What time is it in Tokyo?\nAnd in Lisbon?\n"


def test_on_a_terminal_the_words_stream_onto_one_line_per_segment(two_segments: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    env["PYTHONPATH"] = str(ROOT / "core")
    leader, follower = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "realtalk.cli", "transcribe", "--emulator", "--scenario",
                           "two.scenario.yaml", "--wav", "two.wav", "--fast"], stdout=follower,
                          stderr=subprocess.PIPE, env=env, cwd=two_segments.parent) as proc:
        os.close(follower)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
            while chunk := os.read(leader, 4096):
                shown += chunk
        assert proc.wait(timeout=60) == 0
    os.close(leader)
    assert shown.decode() == "What time is it in Tokyo?\r\nAnd in Lisbon?\r\n"


def test_a_segment_that_fails_is_a_warning_and_exit_1(tmp_path: Path, two_segments: Path) -> None:
    (tmp_path / "fail.scenario.yaml").write_text(
        "turns:\n  - audio: true\n    transcription_error: Audio too noisy.\n    reply: x\n"
        "  - audio: true\n    transcript: And in Lisbon?\n    reply: x\n")
    result = realtalk_cli("--emulator", "--scenario", "fail.scenario.yaml", "--wav", "two.wav", "--fast",
                          cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == "And in Lisbon?\n"
    assert result.stderr.startswith("realtalk: warning: a segment was not transcribed (item_")
    assert result.stderr.endswith("): transcription_failed: Audio too noisy.\n")
    assert result.stderr.count("\n") == 1


def test_logprobs_and_the_session_options_reach_the_server(two_segments: Path) -> None:
    result = realtalk_cli("--emulator", "--scenario", "two.scenario.yaml", "--wav", "two.wav", "--fast", "--json",
                          "--logprobs", "--language", "en", "--model", "gpt-4o-mini-transcribe",
                          cwd=two_segments.parent)
    assert result.returncode == 0, result.stderr
    done = [json.loads(line) for line in result.stdout.splitlines() if '"transcript.done"' in line]
    assert [d["text"] for d in done] == ["What time is it in Tokyo?", "And in Lisbon?"]
    assert [entry["token"] for entry in done[1]["logprobs"]] == ["And", " in", " Lisbon?"]


def test_without_turn_detection_the_file_is_one_segment(two_segments: Path) -> None:
    result = realtalk_cli("--emulator", "--scenario", "two.scenario.yaml", "--wav", "two.wav", "--fast",
                          "--turn-detection", "none", cwd=two_segments.parent)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "What time is it in Tokyo?\n"


def test_the_emulator_without_a_scenario_says_it_transcribes_nothing(two_segments: Path) -> None:
    result = realtalk_cli("--emulator", "--wav", "two.wav", "--fast", cwd=two_segments.parent)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == ("realtalk: warning: emulator: no scenario, so every segment is transcribed as empty"
                             " text (give one whose audio turns have a transcript: --scenario FILE, or"
                             " scenario=...)\n")


# -- the Python API ---------------------------------------------------------------------------


async def test_the_api_speaks_ga_and_yields_speakers(tmp_path: Path, two_segments: Path) -> None:
    scenario = {"turns": [{"audio": True, "speakers": [{"A": "Hello there."}, {"B": "Hi!"}], "reply": "x"},
                          {"audio": True, "speakers": [{"A": "Bye."}], "reply": "x"}]}
    with ThreadedEmulator(scenario) as emulator:
        got = [t async for t in realtalk.transcribe(two_segments, emulator=emulator.emulator, realtime=False,
                                                    model="gpt-4o-transcribe-diarize")]
        server = emulator.emulator.server_events()
        client = emulator.emulator.client_events()
    assert [[(s.speaker, s.text) for s in t.segments] for t in got] == [
        [("A", "Hello there."), ("B", "Hi!")], [("A", "Bye.")]]
    assert [t.text for t in got] == ["Hello there. Hi!", "Bye."]
    assert server_event_problems(server) == [] and client_event_problems(client) == []
    update = next(e for e in client if e["type"] == "session.update")
    assert update["session"]["type"] == "transcription"
    assert next(e for e in server if e["type"] == "session.updated")["session"]["audio"]["input"][
        "transcription"]["model"] == "gpt-4o-transcribe-diarize"


# -- the page ---------------------------------------------------------------------------------


def docs_runner() -> ModuleType:
    """``tests/test_docs_examples.py``, whose runner the page's marked blocks go through."""
    spec = importlib.util.spec_from_file_location("transcribe_docs_runner", ROOT / "tests" / "test_docs_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_the_transcribe_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  require: Callable[[bool, str], None]) -> None:
    require(shutil.which("espeak-ng") is not None, "espeak-ng (apt-get install espeak-ng)")
    runner = docs_runner()
    work = tmp_path / "work"
    work.mkdir()
    blocks = [b for b in runner.parse((ROOT / PAGE).read_text(), PAGE) if b.marker == "tested by" and THIS in b.note]
    assert len(blocks) >= 7
    namespace: dict[str, Any] = {"__name__": "__main__"}
    printed = ""
    for block in blocks:
        what = runner.kind(runner.Block(block.page, block.line, block.info, block.text, None, "", block.follows))
        if what == "file":
            (work / block.text.split("\n", 1)[0].removeprefix("# ").strip()).write_text(block.text)
        elif what == "shell":
            runner.run_shell(block, work)
        elif what == "python":
            out = io.StringIO()
            monkeypatch.chdir(work)
            with contextlib.redirect_stdout(out):
                exec(compile(block.text, block.where, "exec"), namespace)  # noqa: S102 - the page's own example
            printed = out.getvalue()
        else:
            assert what == "output", block.where
            runner.assert_prints(block.text, printed, f"the python block before {block.where}")


