"""A fresh clone is all the project needs: nothing reads files from beside the repository.

The tests once read OpenAI's spec from a folder next to the checkout and failed on a clean
clone. This scan fails when any file of the project points outside the repository again.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis", "build", "dist"}
SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg", ".txt", ""}
RELATIVE = re.compile(r"(?<![.\w])((?:\.\./)+[\w./-]*)")  # ../x, ../../x/y
ROOT_PARENT = re.compile(r"\bROOT\.parent\b")  # how the old test left the repository


def leaves_repository(line: str, where: Path) -> bool:
    """True when ``line`` (of a file in ``where``) names a path outside the repository."""
    if ROOT_PARENT.search(line):
        return True
    return any(not (where / m).resolve().is_relative_to(ROOT) for m in RELATIVE.findall(line))


def project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        if any(part in SKIP or part.endswith(".egg-info") for part in path.relative_to(ROOT).parts):
            continue
        if path.is_file() and path.suffix in SUFFIXES and path != Path(__file__).resolve():
            files.append(path)
    return files


def test_no_file_reads_from_beside_the_repository() -> None:
    offenders = []
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if leaves_repository(line, path.parent):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_scan_finds_a_path_out_of_the_repository() -> None:
    assert leaves_repository('SPEC = ROOT.parent / "shared" / "spec.yaml"', ROOT / "tests")
    assert leaves_repository("Read ../outside/reference/x.yaml", ROOT)
    assert leaves_repository("see ../../../outside/x.md", ROOT / "plugins" / "realtalk-clock")
    assert not leaves_repository("[realtalk](../../README.md)", ROOT / "plugins" / "realtalk-clock")
    assert not leaves_repository('file "/tmp/.../out.raw"', ROOT / "docs")
