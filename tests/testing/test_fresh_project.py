"""The kit in a plugin author's own project: no pytest configuration at all.

The repository's pyproject sets ``asyncio_mode = "auto"``, which would hide a missing
setting; these tests run ``python -m pytest`` in a fresh directory with its own minimal
pyproject, as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PYPROJECT = '[project]\nname = "realtalk-desk"\nversion = "0.1.0"\n'

TESTS = '''
from realtalk.testing import aconverse, converse

AGENT = {"name": "desk", "instructions": "Greet."}


async def test_async_with_the_fixture(emulator):
    emulator.use({"turns": [{"user": "hi", "reply": "Hello."}]})
    result = await aconverse(AGENT, ["hi"], emulator)
    result.assert_said("Hello.")


def test_sync_with_the_fixture(emulator):
    emulator.use({"turns": [{"user": "hi", "reply": "Hello."}]})
    converse(AGENT, ["hi"], emulator).assert_said("Hello.")
'''

FAILING = '''

async def test_an_async_test_that_fails_fails(emulator):
    emulator.use({"turns": [{"user": "hi", "reply": "Hello."}]})
    (await aconverse(AGENT, ["hi"], emulator)).assert_said("Bye.")
'''


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("plugins", [(), ("-p", "no:asyncio")], ids=["with-pytest-asyncio", "without"])
def test_async_tests_need_no_configuration(tmp_path: Path, plugins: tuple[str, ...]) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_desk.py").write_text(TESTS + FAILING)
    proc = run_pytest(tmp_path, *plugins)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 2 passed" in proc.stdout and "warning" not in proc.stdout.lower(), proc.stdout
    assert "FAILED tests/test_desk.py::test_an_async_test_that_fails_fails" in proc.stdout
    assert "AssertionError: expected the reply to turns[0] (user: 'hi') to contain 'Bye.'; it was 'Hello.'" in proc.stdout
