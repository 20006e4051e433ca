"""The GA coverage table in docs/emulator.md: generated from the code, and true.

``realtalk.emulator.coverage`` reads each column from the code; these tests check that the
page holds exactly what it generates, that every gap has a note and no covered row has
one, and that the code-reading columns match what really happens on the wire: a session
against the emulator receives every server event type the table says it sends and is
refused exactly the client event types it says it does not accept, and the runtime's
protocol sends no client event type the table leaves out.
"""

from __future__ import annotations

import ast
import base64
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
from realtalk.agents import AgentGraph, AgentSpec
from realtalk.emulator import coverage
from realtalk.protocol.arbiter import ResponseArbiter
from realtalk.protocol.client import ClientProtocol, Send
from realtalk.tools import ToolRegistry

ROOT = Path(__file__).resolve().parent.parent.parent
PAGE = ROOT / "docs" / "emulator.md"


# -- the page --------------------------------------------------------------------------


def test_the_page_holds_the_generated_table() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert coverage.replace_section(page, coverage.render()) == page, (
        f"docs/emulator.md's coverage table is out of date; run {coverage.COMMAND}"
    )


def test_every_gap_has_a_note_and_no_covered_row_has_one() -> None:
    assert coverage.note_problems() == []


def test_the_command_rewrites_the_page(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "emulator.md"
    page.parent.mkdir()
    stale = PAGE.read_text(encoding="utf-8").replace("| yes |", "| maybe |")
    page.write_text(stale, encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "realtalk.emulator.coverage", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    checked = run("--check", "docs/emulator.md")
    assert checked.returncode == 1
    assert "out of date" in checked.stdout
    written = run("--write", "docs/emulator.md")
    assert (written.returncode, written.stdout, written.stderr) == (
        0,
        "docs/emulator.md: coverage table updated\n",
        "",
    )
    assert page.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")
    assert run("--check", "docs/emulator.md").returncode == 0
    page.write_text("# no markers\n", encoding="utf-8")
    refused = run("--write", "docs/emulator.md")
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "error: docs/emulator.md: expected one <!-- coverage:start -->"
    )


@pytest.mark.parametrize(
    "page",
    [
        "no markers\n",
        f"{coverage.END}\n{coverage.START}\n",
        f"{coverage.START}\n" * 2 + coverage.END,
    ],
)
def test_markers_missing_misplaced_or_twice_are_an_error(page: str) -> None:
    with pytest.raises(ValueError, match="expected one"):
        coverage.replace_section(page, "x\n")


def test_replace_section_keeps_the_rest_of_the_page() -> None:
    page = f"before\n{coverage.START}\nold\n{coverage.END}\nafter\n"
    assert coverage.replace_section(page, "new\n") == "before\nnew\nafter\n"


# -- the notes ---------------------------------------------------------------------------


def test_a_stale_or_missing_note_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = dict(coverage.EMULATOR_WHY_NOT, **{"session.created": "stale"})
    runtime = {k: v for k, v in coverage.RUNTIME_WHY_NOT.items() if k != "conversation.item.retrieve"}
    runtime["bogus.event"] = "a | b"
    monkeypatch.setattr(coverage, "EMULATOR_WHY_NOT", emulator)
    monkeypatch.setattr(coverage, "RUNTIME_WHY_NOT", runtime)
    assert sorted(coverage.note_problems()) == [
        "EMULATOR_WHY_NOT['session.created']: now covered, remove the note",
        "RUNTIME_WHY_NOT['bogus.event']: a note may hold no '|' or line break",
        "RUNTIME_WHY_NOT['bogus.event']: no such GA event in the openai package",
        "RUNTIME_WHY_NOT['conversation.item.retrieve']: not covered, say why in a note",
    ]


def test_the_command_reports_notes_and_unreadable_pages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    runtime = {k: v for k, v in coverage.RUNTIME_WHY_NOT.items() if k != "conversation.item.retrieve"}
    monkeypatch.setattr(coverage, "RUNTIME_WHY_NOT", runtime)
    assert coverage.main([]) == 1
    out, err = capsys.readouterr()
    assert (
        out.startswith(coverage.START)
        and "| `conversation.item.retrieve` | yes | no | runtime: (no note) |" in out
    )
    assert err == (
        "realtalk/emulator/coverage.py: RUNTIME_WHY_NOT['conversation.item.retrieve']:"
        " not covered, say why in a note\n"
    )
    assert coverage.main(["--check", str(tmp_path / "missing.md")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {tmp_path / 'missing.md'}: ")
    assert len(err.splitlines()) == 1


# -- the rows ----------------------------------------------------------------------------


def test_the_rows_are_every_member_of_the_openai_unions() -> None:
    from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

    sides: tuple[tuple[coverage.Side, Any], ...] = (
        ("server", RealtimeServerEvent),
        ("client", RealtimeClientEvent),
    )
    for side, alias in sides:
        members = get_args(get_args(alias)[0])
        events = [row.event for row in coverage.rows(side)]
        assert len(events) == len(members) == len(set(events))
        # The same names, read another way: the JSON Schema of each member.
        assert (
            sorted(m.model_json_schema()["properties"]["type"]["const"] for m in members) == events
        )
    assert "session.created" in coverage.ga_event_types("server")
    assert "session.update" in coverage.ga_event_types("client")


def test_the_scan_finds_event_dicts_and_helper_calls(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "send({'type': 'response.done', 'response': {}})\n"
        "send(vocab.error_event('invalid_request_error', None, 'm'))\n"
        "x = {'kind': 'response.created', **other}\n"
        "y = {'type': name}\n"
        "'''{\"type\": \"session.created\"}'''\n",
        encoding="utf-8",
    )
    assert coverage.built_event_types([tmp_path / "a.py"]) == {"response.done", "error"}


def test_the_runtime_acts_on_what_its_tables_handle() -> None:
    acts = coverage.runtime_acts_on()
    assert "response.function_call_arguments.done" in acts  # ClientProtocol
    assert "conversation.item.deleted" in acts  # the conversation mirror only
    assert "conversation.item.created" in acts  # normalised to .added and .done
    assert "response.content_part.added" not in acts


def test_the_arbiter_reads_only_events_the_tables_name() -> None:
    source = textwrap.dedent(inspect.getsource(ResponseArbiter.on_server_event))
    read = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and node.value in coverage.ga_event_types("server")
    }
    assert "response.done" in read
    assert read - coverage.runtime_acts_on() == set()


# -- the emulator, on the wire -------------------------------------------------------------

SCENARIO = {
    "turns": [
        {"audio": True, "transcript": "book a room", "reply": "Which dates would you like?"},
        {"user": "hello", "reply": "Welcome."},
        {"user": "time", "reply": [{"call": "get_time", "arguments": {"tz": "UTC"}}]},
    ]
}


OBSERVED_ELSEWHERE: dict[str, str] = {
    "conversation.item.input_audio_transcription.failed":
        "tests/emulator/test_ga_transcription.py::test_transcription_failed",
    "conversation.item.input_audio_transcription.segment":
        "tests/emulator/test_ga_transcription.py::test_diarized_segments",
    "input_audio_buffer.timeout_triggered":
        "tests/emulator/test_ga_idle.py::test_idle_timeout_triggers_a_response",
    **{
        event: "tests/emulator/test_hosted_mcp.py::test_hosted_mcp_end_to_end_with_the_official_sdk"
        for event in (
            "mcp_list_tools.in_progress",
            "mcp_list_tools.completed",
            "response.mcp_call_arguments.delta",
            "response.mcp_call_arguments.done",
            "response.mcp_call.in_progress",
            "response.mcp_call.completed",
            "response.mcp_call.failed",
        )
    },
    "mcp_list_tools.failed":
        "tests/emulator/test_hosted_mcp.py::test_unreachable_server_and_connector_fail_to_list",
}
"""Server event types the session below does not make, each with the emulator test that
receives it: ``"tests/emulator/test_x.py::test_name"``, whose body names the type."""


def elsewhere_problems(observed_elsewhere: dict[str, str]) -> list[str]:
    """What is wrong with an :data:`OBSERVED_ELSEWHERE` table, one line each."""
    problems = []
    for event, reference in observed_elsewhere.items():
        path, _, name = reference.partition("::")
        file = ROOT / path
        if not (path.startswith("tests/emulator/") and file.is_file()):
            problems.append(f"{event}: {reference!r} is not a test file of tests/emulator/")
            continue
        source = file.read_text(encoding="utf-8")
        bodies = [
            ast.get_source_segment(source, node) or ""
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
        ]
        if not bodies:
            problems.append(f"{event}: {path} has no {name}")
        elif not any(f'"{event}"' in body for body in bodies):
            problems.append(f"{event}: {reference} never names it")
        if event not in coverage.emulator_sends():
            problems.append(f"{event}: not an event type the table says the emulator sends")
    return problems


def test_events_observed_elsewhere_name_a_test_that_receives_them() -> None:
    assert elsewhere_problems(OBSERVED_ELSEWHERE) == []
    vad = "tests/emulator/test_audio.py::test_vad_turn"
    assert elsewhere_problems({"input_audio_buffer.speech_started": vad}) == []
    assert elsewhere_problems(
        {
            "response.output_text.done": vad,
            "error": "tests/emulator/test_audio.py::test_nope",
            "session.created": "docs/emulator.md::x",
            "conversation.created": vad,
        }
    ) == [
        f"response.output_text.done: {vad} never names it",
        "error: tests/emulator/test_audio.py has no test_nope",
        "session.created: 'docs/emulator.md::x' is not a test file of tests/emulator/",
        f"conversation.created: {vad} never names it",
        "conversation.created: not an event type the table says the emulator sends",
    ]


def speech() -> bytes:
    """Half a second of silence, 0.8 s of a loud tone, 0.7 s of silence: PCM16 24 kHz."""
    t = np.arange(24000 * 800 // 1000) / 24000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    samples = np.concatenate([np.zeros(12000), tone, np.zeros(16800)])
    return (samples * 32767).astype("<i2").tobytes()


def append(data: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()}


async def test_the_emulator_sends_and_accepts_what_the_table_says(
    make_emulator: Any, open_client: Any, user_message: Any
) -> None:
    emu = await make_emulator(SCENARIO)
    sent: list[dict[str, Any]] = []
    async with open_client(emu) as client:

        async def send(event: dict[str, Any], until: str | None = None) -> list[dict[str, Any]]:
            sent.append(event)
            await client.send(event)
            return await client.until(until) if until else []

        transcribe = {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}
        await send(
            {"type": "session.update", "session": {"type": "realtime", "audio": transcribe}},
            "session.updated",
        )
        # An audio turn: VAD, transcription, an audio response.
        audio = speech()
        for start in range(0, len(audio), 4800):
            await send(append(audio[start : start + 4800]))
        turn = await client.until("rate_limits.updated")
        user_id = next(e["item_id"] for e in turn if e["type"] == "input_audio_buffer.committed")
        reply_id = next(e["item_id"] for e in turn if e["type"] == "response.output_audio.delta")
        await send(
            {
                "type": "conversation.item.truncate",
                "item_id": reply_id,
                "content_index": 0,
                "audio_end_ms": 100,
            },
            "conversation.item.truncated",
        )
        await send(
            {"type": "conversation.item.retrieve", "item_id": user_id},
            "conversation.item.retrieved",
        )
        await send(
            {"type": "conversation.item.delete", "item_id": user_id}, "conversation.item.deleted"
        )
        await send(append(bytes(480)))
        await send({"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared")
        await send({"type": "input_audio_buffer.commit"}, "error")  # under 100 ms: refused
        # Text turns: a reply, then a tool call.
        text = {"type": "realtime", "output_modalities": ["text"]}
        await send({"type": "session.update", "session": text}, "session.updated")
        await send(user_message("hello"))
        await send({"type": "response.create"}, "rate_limits.updated")
        await send(user_message("what time is it"))
        await send({"type": "response.create"}, "rate_limits.updated")
        await send({"type": "response.cancel"}, "error")  # nothing active: refused
        # Every GA client event type the emulator does not accept: refused as unknown.
        refused_types = []
        for kind in sorted(set(coverage.ga_event_types("client")) - coverage.emulator_accepts()):
            [error] = await send({"type": kind}, "error")
            assert error["error"]["code"] == "invalid_value", error
            refused_types.append(kind)
    received = {e["type"] for e in emu.server_events()}
    ga_server = set(coverage.ga_event_types("server"))
    assert received - ga_server == set()
    unobserved = sorted(coverage.emulator_sends() - received - set(OBSERVED_ELSEWHERE))
    assert not unobserved, (
        f"the emulator builds {unobserved}, never received: add a step to this session, or"
        " name the test that receives it in OBSERVED_ELSEWHERE"
    )
    unscanned = sorted(received - coverage.emulator_sends())
    assert not unscanned, f"received {unscanned}, which the scan of the emulator's code misses"
    # Every accepted GA type was sent and none of them was refused as an unknown type.
    sent_types = {e["type"] for e in sent}
    accepted_ga = coverage.emulator_accepts() & set(coverage.ga_event_types("client"))
    assert accepted_ga - sent_types == set()
    unknown = [e for e in emu.errors() if e.get("param") == "type"]
    assert [u["message"].split("'")[1] for u in unknown] == refused_types
    assert refused_types == [r.event for r in coverage.rows("client") if not r.emulator]


# -- the runtime, sans I/O -------------------------------------------------------------------


def test_the_runtime_sends_no_client_event_type_the_table_leaves_out() -> None:
    """Drive the runtime's protocol through a text turn, push-to-talk and two barge-ins."""
    agent = AgentSpec(name="front", instructions="You are the front desk.")
    graph = AgentGraph(agents={"front": agent}, roots=["front"])
    protocol = ClientProtocol(graph, agent, ToolRegistry())
    out: list[Any] = []
    protocol.connection_opened()
    out += protocol.receive({"type": "session.created", "event_id": "e1", "session": {}})
    out += protocol.configure()
    session = {"instructions": agent.instructions, "tools": []}
    out += protocol.receive({"type": "session.updated", "event_id": "e2", "session": session})
    out += protocol.seed([])
    out += protocol.go_live(0.0)
    out += protocol.user_text("hello")
    out += protocol.audio_appended(base64.b64encode(bytes(9600)).decode(), 200.0)
    commit = protocol.commit_audio()
    assert commit is not None
    out += commit
    for item_id, played_ms in (("item_heard", 100), ("item_unheard", 0)):
        item = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        out += protocol.receive(
            {
                "type": "response.output_item.added",
                "event_id": "e3",
                "response_id": "resp_1",
                "output_index": 0,
                "item": item,
            }
        )
        out += protocol.receive(
            {
                "type": "response.output_audio.delta",
                "event_id": "e4",
                "response_id": "resp_1",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": base64.b64encode(bytes(9600)).decode(),
            }
        )
        out += protocol.interrupted(item_id, played_ms, 0, 0.0)
    observed = {a.event["type"] for a in out if isinstance(a, Send)}
    assert observed == {
        "session.update",
        "conversation.item.create",
        "response.create",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "conversation.item.truncate",
        "conversation.item.delete",
    }
    unscanned = sorted(observed - coverage.runtime_sends())
    assert not unscanned, f"the runtime sent {unscanned}, which the scan of its code misses"
