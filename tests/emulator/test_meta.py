"""Every emulator a test starts goes through make_emulator, so its events are validated."""

from __future__ import annotations

import re
from pathlib import Path


def test_emulators_come_from_the_validating_fixture() -> None:
    here = Path(__file__).parent
    offenders = [p.name for p in sorted(here.glob("test_*.py"))
                 if re.search(r"\bEmulator\(", p.read_text())]
    assert offenders == []
    assert "conformance_problems(sent)" in (here / "conftest.py").read_text()
