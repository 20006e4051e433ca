"""Every emulator a test starts goes through make_emulator, so its events are validated."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def test_emulators_come_from_the_validating_fixture() -> None:
    here = Path(__file__).parent
    offenders = [
        p.name for p in sorted(here.glob("test_*.py")) if re.search(r"\bEmulator\(", p.read_text())
    ]
    assert offenders == []
    assert "conformance_problems(sent)" in (here / "conftest.py").read_text()


def test_the_validator_can_fail(conformance: Any) -> None:
    ok = {
        "type": "response.output_text.delta",
        "event_id": "e",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hi",
    }
    assert conformance([ok]) == []
    beta = {**ok, "type": "response.text.delta"}
    missing = {k: v for k, v in ok.items() if k != "item_id"}
    problems = conformance([beta, missing])
    assert len(problems) == 2
    assert problems[0].startswith("response.text.delta:")


def test_conformance_module_imports_openai_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, realtalk.emulator, realtalk.emulator.conformance as c; "
        "assert 'openai' not in sys.modules; "
        "assert c.client_event_problems([{'type': 'response.create'}]) == []; "
        "assert 'openai' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_client_validator() -> None:
    from realtalk.emulator.conformance import client_event_problems

    good = {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "c", "output": "{}"},
    }
    assert client_event_problems([good]) == []
    [problem] = client_event_problems([{"type": "response.text.delta"}])
    assert problem.startswith("response.text.delta:")
