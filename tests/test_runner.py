"""runner: loading targets, profiles, and the examples of docs/api.md."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
from pathlib import Path

import pytest
from realtalk.exceptions import AuthenticationFailed, ConfigError
from realtalk.runner import load_target, make_profile, scenario_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("index", [0, 1, 2])
def test_api_doc_examples_run(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marked = r"<!-- tested by: tests/test_runner.py::test_api_doc_examples_run -->\n```python\n(.*?)```"
    blocks = re.findall(marked, (ROOT / "docs" / "api.md").read_text(), flags=re.DOTALL)
    assert len(blocks) == 3
    monkeypatch.chdir(ROOT)
    script = tmp_path / "example.py"
    script.write_text(blocks[index])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(script), run_name="__main__")
    printed = out.getvalue()
    expected = {0: "get_time", 1: "billing", 2: "room_status"}[index]
    assert expected in printed


def test_directory_needs_agent_choice() -> None:
    with pytest.raises(ConfigError, match=r"holds 3 agents \(billing, concierge, weather\); choose one with --agent"):
        load_target(ROOT / "agents")
    assert load_target(ROOT / "agents", "billing").agent == "billing"


def test_bad_agent_reports_every_problem_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("instructions: x\nvoise: 1\nspeed: 9\ntools: [get_tme]\n")
    with pytest.raises(ConfigError) as info:
        load_target(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"3 problems in {path}:"
    assert [line.split(": ", 1)[0] for line in lines[1:]] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "unknown tool 'get_tme'" in lines[3]


def test_one_problem_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("instructions: x\nspeed: 9\n")
    with pytest.raises(ConfigError) as info:
        load_target(path)
    assert str(info.value) == f"{path}:2: $.speed: speed is 9, out of range: must be between 0.25 and 1.5"


def test_scenario_beside_agent() -> None:
    assert scenario_for(ROOT / "agents" / "concierge.yaml") == ROOT / "agents" / "concierge.scenario.yaml"
    assert scenario_for(ROOT / "agents" / "billing.yaml") is None


def test_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    target = load_target(ROOT / "agents" / "concierge.yaml")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationFailed, match="set OPENAI_API_KEY"):
        make_profile(target)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert make_profile(target).ws_url == "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"
    assert make_profile(target, model="gpt-realtime-2").model == "gpt-realtime-2"
    url = make_profile(target, url="ws://127.0.0.1:9/v1/realtime")
    assert url.ws_url == "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime-2.1" and url.api_key is None
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az")
    azure = make_profile(target, azure=True, model="my-deployment")
    assert azure.ws_url == "wss://res.openai.azure.com/openai/v1/realtime?model=my-deployment"


async def test_unwritable_record_is_a_config_error_before_connecting(tmp_path: Path) -> None:
    from realtalk.emulator import Emulator
    from realtalk.runner import open_session

    (tmp_path / "file").write_text("")
    record = tmp_path / "file" / "run.jsonl"  # a folder that is a file
    async with Emulator(fast=True) as emu:
        with pytest.raises(ConfigError) as info:
            async with open_session(ROOT / "agents" / "concierge.yaml", emulator=emu, record=record):
                pass
        assert len(emu.connections) == 0
    assert str(info.value).startswith(f"{record}: cannot write the record: ")


def test_directory_without_agents(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ConfigError, match=rf"^no agent files \(\*\.yaml\) in {tmp_path}$"):
        load_target(tmp_path)
