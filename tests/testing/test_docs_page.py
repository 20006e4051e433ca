"""docs/testing.md is run: its files make a fresh project, its commands run there.

Each ```python or ```yaml block starts with ``# path``: the file it is. Each ```console
block starts with ``$ command``; the command runs in the project (no pytest settings of
ours), and the lines shown must come out, in order (pytest's run times aside). A plain
``python script.py`` must print exactly what is shown.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCKS = re.findall(r"```(python|yaml|console)\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
FILES = {code.split("\n", 1)[0].removeprefix("# "): code for kind, code in BLOCKS if kind != "console"}
COMMANDS = [code for kind, code in BLOCKS if kind == "console"]


def test_every_example_is_a_file_and_every_test_file_is_run() -> None:
    assert all(path.endswith((".py", ".yaml")) for path in FILES), list(FILES)
    assert len(FILES) == sum(kind != "console" for kind, _ in BLOCKS), "two examples with one path"
    run = " ".join(block.split("\n", 1)[0] for block in COMMANDS)
    assert [path for path in FILES if path.endswith(".py") and path not in run] == []


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin-project")
    (root / "pyproject.toml").write_text('[project]\nname = "realtalk-desk"\nversion = "0.1.0"\n')
    for path, code in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(code)
    return root


def without_times(text: str) -> str:
    return re.sub(r" in \d+\.\d+s", " in <time>", text)


@pytest.mark.parametrize("block", COMMANDS, ids=[b.split("\n", 1)[0].split()[-1] for b in COMMANDS])
def test_command_prints_what_the_page_shows(block: str, project: Path) -> None:
    command, shown = block.split("\n", 1)
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[0] == "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    if argv[1:3] != ["-m", "pytest"]:
        assert (proc.returncode, proc.stdout) == (0, shown), proc.stderr
        return
    output = without_times(proc.stdout).splitlines()
    assert proc.returncode == (1 if " failed" in shown else 0), proc.stdout + proc.stderr
    position = 0
    for line in without_times(shown).splitlines():
        assert line in output[position:], f"not in pytest's output (in order): {line!r}\n{proc.stdout}"
        position = output.index(line, position) + 1
