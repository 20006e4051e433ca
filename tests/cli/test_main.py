from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from realtalk.cli import main

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_console_script_version() -> None:
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", "--version"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("realtalk ")


def test_console_script_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("instructions: x\nvoice: nova\n")
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", "check", str(bad)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        (f"{bad}:2: $.voice: 'nova' is not a valid voice; use one of: alloy, ash, ballad, coral,"
         " echo, sage, shimmer, verse, marin, cedar")]
    assert "Traceback" not in result.stderr


def test_check_example_agents_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", str(AGENTS))
    assert (code, out) == (0, "")
    assert err.startswith("ok: ")


def test_check_reports_every_problem_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("instructions: x\nvoise: marin\ntools: [get_tme]\n")
    (tmp_path / "b.yaml").write_text("")
    code, out, err = run(capsys, "check", str(tmp_path))
    assert code == 1
    lines = out.splitlines()
    assert f"{tmp_path / 'a.yaml'}:2: $.voise: unknown key 'voise' (did you mean 'voice'?)" in lines
    assert f"{tmp_path / 'b.yaml'}:1: the file is empty; an agent needs at least 'instructions'" in lines
    assert any(line.startswith(f"{tmp_path / 'a.yaml'}:3: unknown tool 'get_tme'") for line in lines)
    assert err.strip() == "realtalk: 3 error(s)"


def test_check_unknown_tool_lists_installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("instructions: x\ntools:\n  - get_tme\n")
    code, out, _ = run(capsys, "check", str(path))
    assert code == 1
    assert out.startswith(f"{path}:3: unknown tool 'get_tme' (did you mean 'get_time'?); available:")
    assert "get_time (realtalk-clock)" in out


def test_check_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(tmp_path / "nope.yaml"))
    assert code == 1 and out.strip() == f"{tmp_path / 'nope.yaml'}: no such file or directory"


def test_check_warns_but_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("instructions: x\nhandoffs: [b]\n")
    (tmp_path / "b.yaml").write_text("instructions: y\nvoice: cedar\n")
    code, out, _ = run(capsys, "check", str(tmp_path))
    assert code == 0
    assert out.startswith(f"{tmp_path / 'a.yaml'}:2: warning: handoff to 'b' changes the voice")


def test_check_print_emits_session_update(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--print", str(AGENTS / "concierge.yaml"))
    assert code == 0
    event = json.loads(out)
    assert event["type"] == "session.update" and event["session"]["type"] == "realtime"
    assert [t["name"] for t in event["session"]["tools"]] == ["get_time", "convert_time", "transfer_to_billing"]


def test_check_reports_broken_plugin(make_plugin: Any, capsys: pytest.CaptureFixture[str]) -> None:
    make_plugin("realtalk-cli-broken", "raise ImportError('needs libfoo')\n", version="0.9.0")
    code, out, _ = run(capsys, "check", str(AGENTS))
    assert code == 1
    assert "plugin realtalk-cli-broken 0.9.0: import of 'realtalk_cli_broken' failed: ImportError: needs libfoo" in out
    # Blocking it makes the check pass again.
    code, _, _ = run(capsys, "--no-plugin", "realtalk-cli-broken", "check", str(AGENTS))
    assert code == 0


def test_plugins_json_lists_clock(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0
    clock = next(p for p in json.loads(out) if p["distribution"] == "realtalk-clock")
    from importlib.metadata import version

    assert clock["version"] == version("realtalk-clock")
    assert clock["tools"] == ["get_time", "convert_time", "time_until"]
    assert clock["hooks"] == ["register_tools"] and clock["error"] is None


def test_plugins_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins")
    assert code == 0 and "realtalk-clock " in out and "tools: get_time, convert_time, time_until" in out


def test_tools_one_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tools", "get_time", "--json")
    data = json.loads(out)
    assert code == 0 and data["plugin"] == "realtalk-clock"
    assert data["parameters"]["type"] == "object" and data["handler"] == "realtalk_clock.handlers:get_time"


def test_tools_unknown_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tools", "get_tim")
    assert code == 1 and out == ""
    assert err.startswith("realtalk: error: unknown tool 'get_tim' (did you mean 'get_time'?)")
    assert err.count("\n") == 1


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 2 and "usage: realtalk" in out


def test_unknown_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--bogus", "x"])
    assert info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_check_malformed_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "desk.scenario.yaml"
    path.write_text("turns:\n  - user: hi\n    reply:\n      - sing: la la\n")
    code, out, _ = run(capsys, "check", str(path))
    assert code == 1
    [line] = out.splitlines()
    assert line.startswith(f"{path}:4: ")
    # Scenarios in a checked directory are checked too.
    code, out, _ = run(capsys, "check", str(tmp_path))
    assert code == 1 and out.startswith(f"{path}:4: ")
