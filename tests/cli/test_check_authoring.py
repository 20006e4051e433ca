"""Authoring: tool files beside an agent, scenarios checked against the agent graph,
``run --scenario``, and agents defined in Python. The CLI runs as a real subprocess."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import realtalk
from realtalk.exceptions import ConfigError
from realtalk.runner import load_target, run_agent

ROOT = Path(__file__).resolve().parents[2]

DESK = """\
instructions: Front desk.
tool_files: [tools.yaml, room_tools.py]
tools: [room_status, late_checkout]
"""
TOOLS_YAML = """\
tools:
  - name: room_status
    description: Whether a room is ready.
    parameters: {type: object, properties: {room: {type: integer}}, required: [room], additionalProperties: false}
    handler: desk_handlers:room_status
"""
HANDLERS = "def room_status(room):\n    return {'room': room, 'ready': True}\n"
TYPED = '''\
import realtalk


@realtalk.tool
def late_checkout(hour: int) -> str:
    """Book a late checkout.

    Args:
        hour: The hour, 12 to 16.
    """
    return f"late checkout at {hour}:00"
'''
SCENARIO = """\
turns:
  - user: ready
    reply:
      - call: room_status
        arguments: {room: 12}
      - say: "ready: {output.ready}"
  - user: late
    reply:
      - call: late_checkout
        arguments: {hour: 14}
      - say: "{output}"
"""


def realtalk_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realtalk.cli", *argv], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=120)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    return write(tmp_path, {"desk.yaml": DESK, "tools.yaml": TOOLS_YAML, "desk_handlers.py": HANDLERS,
                            "room_tools.py": TYPED, "desk.scenario.yaml": SCENARIO})


# --- tool files beside the agent ----------------------------------------------------------


def test_tool_files_beside_the_agent_pass_check_and_run(desk: Path) -> None:
    result = realtalk_cli("check", ".", cwd=desk)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr
    assert result.stderr == "ok: 1 agent(s), 1 scenario(s) checked\n"
    result = realtalk_cli("run", "desk.yaml", "--emulator", "--text", "ready?", "--text", "late please", cwd=desk)
    assert result.returncode == 0, result.stderr
    assert "desk: ready: true" in result.stdout
    assert "desk: late checkout at 14:00" in result.stdout


def test_tools_option_gives_tools_to_every_agent(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "instructions: x\ntools: [late_checkout]\n", "extra.py": TYPED})
    result = realtalk_cli("check", "a.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "unknown tool 'late_checkout'" in result.stdout
    result = realtalk_cli("check", "--tools", "extra.py", "a.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    result = realtalk_cli("run", "a.yaml", "--emulator", "--tools", "extra.py", "--text", "hi", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("name", "error"), [
    ("nope.py", "no such tool file: nope.py"),
    ("tools.txt", "tools.txt is not a tool file: give a tools YAML (.yaml, .yml) or a Python module (.py)"),
])
def test_tools_option_refuses_what_is_not_a_tool_file(tmp_path: Path, name: str, error: str) -> None:
    (tmp_path / "tools.txt").write_text("")
    result = realtalk_cli("check", "--tools", name, ".", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"realtalk: error: argument --tools: {error}")


def test_problems_in_tool_files_are_located_in_them(tmp_path: Path) -> None:
    write(tmp_path, {
        "a.yaml": "instructions: x\ntool_files: [tools.yaml, broken.py, missing.py]\ntools: [room_status]\n",
        "tools.yaml": TOOLS_YAML.replace("description:", "descripton:"),
        "broken.py": "x = 1\nraise ValueError('no database')\n",
    })
    result = realtalk_cli("check", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        ("a.yaml:3: unknown tool 'room_status'; available: convert_time (realtalk-clock), get_time"
        " (realtalk-clock), time_until (realtalk-clock)"),
        "broken.py:2: importing it failed: ValueError: no database",
        "missing.py: no such tool file",
        "tools.yaml:3: unknown key 'descripton' (did you mean 'description'?)",
    ]


def test_a_local_tool_named_like_a_plugin_tool_is_ambiguous(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "instructions: x\ntool_files: [mine.py]\ntools: [get_time]\n",
                     "mine.py": TYPED.replace("def late_checkout", "def get_time")})
    result = realtalk_cli("check", "a.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "a.yaml:3: tool 'get_time' is ambiguous: it is registered by realtalk-clock" in result.stdout


def test_extra_plugin_tools_pass_check_through_tools(tmp_path: Path) -> None:
    plugin = ("from realtalk import hookimpl\n\n@hookimpl\ndef register_tools(register):\n"
              "    register('lookup', description='Look up.', handler=print)\n")
    write(tmp_path, {"a.yaml": "instructions: x\ntools: [lookup]\n", "my_plugin.py": plugin})
    result = realtalk_cli("check", "--tools", "my_plugin.py", "a.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout


# --- scenarios against the graph ------------------------------------------------------------


def test_scenario_calls_handoffs_and_arguments_are_checked(tmp_path: Path) -> None:
    for name in ("concierge.yaml", "billing.yaml"):
        (tmp_path / name).write_text((ROOT / "agents" / name).read_text())
    scenario = (ROOT / "agents" / "concierge.scenario.yaml").read_text() + (
        "  - user: typo\n"
        "    reply:\n"
        "      - call: get_tme\n"
        "      - handoff: bling\n"
        "      - call: get_time\n"
        "        arguments: {timezone: 5}\n")
    (tmp_path / "concierge.scenario.yaml").write_text(scenario)
    first = len(scenario.splitlines()) - 3  # the line of "- call: get_tme"
    result = realtalk_cli("check", "concierge.scenario.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        (f"concierge.scenario.yaml:{first}: $.turns[5].reply[0].call: no agent that can be active here"
        " (concierge, billing) has a tool 'get_tme' (did you mean 'get_time'?); their tools: convert_time,"
        " get_time, time_until, transfer_to_billing, transfer_to_concierge"),
        (f"concierge.scenario.yaml:{first + 1}: $.turns[5].reply[1].handoff: handoff to unknown agent 'bling'"
        " (did you mean 'billing'?); agents: billing, concierge"),
        (f"concierge.scenario.yaml:{first + 3}: $.turns[5].reply[2].arguments: arguments do not match"
        " get_time's schema: $.timezone: 5 is not of type 'string'"),
    ]


def test_a_call_is_checked_against_the_agent_active_after_a_handoff(tmp_path: Path) -> None:
    write(tmp_path, {
        "a.yaml": "instructions: x\ntools: [get_time]\nhandoffs: [b]\n",
        "b.yaml": "instructions: y\ntools: [time_until]\n",
        "a.scenario.yaml": """\
            turns:
              - user: hi
                reply:
                  - handoff: b
                  - call: get_time
              - user: back
                reply:
                  - handoff: a
            """,
    })
    result = realtalk_cli("check", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "a.scenario.yaml:5: $.turns[0].reply[1].call: agent 'b' has no tool 'get_time'; its tools: time_until",
        ("a.scenario.yaml:8: $.turns[1].reply[0].handoff: no agent that can be active here (a, b) hands off to"
        " 'a'; their handoffs: b"),
    ]


def test_the_example_scenario_passes() -> None:
    result = realtalk_cli("check", "agents/concierge.scenario.yaml", cwd=ROOT)
    assert (result.returncode, result.stdout) == (0, "")


# --- run --scenario ---------------------------------------------------------------------------


def test_run_scenario_plays_the_given_file(desk: Path) -> None:
    (desk / "other.scenario.yaml").write_text("turns:\n  - user: hi\n    reply: From the other file.\n")
    result = realtalk_cli("run", "desk.yaml", "--emulator", "--scenario", "other.scenario.yaml",
                          "--text", "hi", cwd=desk)
    assert result.returncode == 0 and "desk: From the other file." in result.stdout


def test_run_without_a_scenario_warns_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("instructions: x\n")
    result = realtalk_cli("run", "a.yaml", "--emulator", "--text", "hi", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr.splitlines()[0] == (
        "realtalk: warning: emulator: no scenario a.scenario.yaml; every input gets the emulator's"
        " fallback reply (give one with --scenario FILE, or scenario=...)")


def test_scenario_needs_the_emulator(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("instructions: x\n")
    result = realtalk_cli("run", "a.yaml", "--scenario", "x.yaml", "--text", "hi", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("realtalk: error: argument --scenario: only with --emulator")


# --- agents in Python -------------------------------------------------------------------------


@realtalk.tool
def room_status(room: int) -> dict[str, object]:
    """Whether a room is ready.

    Args:
        room: The room number.
    """
    return {"room": room, "ready": True}


def test_an_agent_in_python_runs_with_its_typed_tools_and_handoffs() -> None:
    billing = realtalk.Agent(name="billing", instructions="Billing desk.", voice_policy="keep")
    desk = realtalk.Agent(name="desk", instructions="Front desk.", tools=[room_status, "get_time"],
                          handoffs=[billing])
    assert isinstance(desk, realtalk.AgentSpec) and desk.file is None
    scenario = {"turns": [
        {"user": "room", "reply": [{"call": "room_status", "arguments": {"room": 7}}, {"say": "{output.ready}"}]},
        {"user": "bill", "reply": [{"handoff": "billing"}, {"say": "Billing here."}]},
    ]}
    turns = asyncio.run(run_agent(desk, ["room 7?", "my bill"], emulator=True, scenario=scenario, timeout=30))
    assert [t.text for t in turns] == ["true", "Billing here."]
    assert turns[0].tool_calls[0].output == '{"room": 7, "ready": true}'


def test_an_agent_in_python_is_validated_like_a_file() -> None:
    with pytest.raises(ConfigError) as info:
        realtalk.Agent(name="desk", instructions="x", voice="nova", max_output_tokens=5000)
    assert str(info.value).splitlines() == [
        "2 problems:",
        "agent 'desk': $.max_output_tokens: max_output_tokens is 5000; use 1–4096 or 'inf'",
        ("agent 'desk': $.voice: 'nova' is not a valid voice; use one of: alloy, ash, ballad, coral, echo,"
        " sage, shimmer, verse, marin, cedar"),
    ]
    with pytest.raises(ConfigError, match=r"^agent 'a b': \$\.name: name 'a b' is invalid"):
        realtalk.Agent(name="a b", instructions="x")


def test_an_agent_in_python_with_unknown_tools_fails_before_connecting() -> None:
    agent = realtalk.Agent(name="desk", instructions="x", tools=["get_tme"], handoffs=["nobody"])
    with pytest.raises(ConfigError) as info:
        load_target(agent)
    assert str(info.value).splitlines() == [
        "2 problems in agent 'desk':",
        ("agent 'desk': unknown handoff target 'nobody': no agent of that name given (hand off to the Agent"
        " object itself) (known: desk)"),
        ("agent 'desk': unknown tool 'get_tme' (did you mean 'get_time'?); available: convert_time"
        " (realtalk-clock), get_time (realtalk-clock), time_until (realtalk-clock)"),
    ]
