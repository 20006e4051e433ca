"""Every fenced block of ``docs/**/*.md`` and ``README.md`` is classified, and every example runs.

The convention (``docs/architecture.md``, "Examples in the docs", says the same):

- An HTML comment on the line before a block (blank lines between are allowed) says what
  the block is when this module does not run it:

  - ``<!-- not run: REASON -->``: a fragment or an illustration (a diagram, a synopsis, a
    signature, an excerpt, an error line of a made-up file, a command that installs
    packages, serves or benchmarks); the reason is required.
  - ``<!-- tested by: tests/FILE.py::test_name -->`` (several: comma-separated): another
    test runs the block and compares what it prints; the named test must exist and read
    this page.

- An unmarked block is run here, by its info string:

  - ``python``: executed in-process, the page's blocks in order in one namespace (like one
    script), with the repository as the working directory. An ``output`` block right after
    it is exactly what it must print.
  - ``yaml``: a first line ``# PATH`` makes it a file, written into the page's work folder
    for the commands after it. Otherwise it is a scenario when it has ``turns:`` (parsed by
    the emulator's ``load_scenario``), else an agent, checked as ``realtalk check`` does
    (``load_graph``: keys, values, tools, and handoffs to the repository's other agents).
  - ``console``, or no info string, with a first line ``$ COMMAND``: a shell session, run by
    bash in the page's work folder (a fresh folder with a copy of ``agents/``; ``realtalk``
    is ``python -m realtalk.cli`` of the interpreter running the tests). What follows each
    ``$ COMMAND`` up to the next one is what the command prints, stdout and stderr
    together as a terminal shows them (nothing shown: it prints nothing). ``realtalk
    emulator``, which serves until Ctrl-C, is started with ``--port 0`` when no port is
    given, its shown lines are read, then it is stopped with SIGINT.
  - Anything else (``text``, ``toml``, plain lines, an ``output`` block after a block not
    run here) fails the audit until it is marked.

- Shown and printed output are compared after normalising, on both sides, what changes
  per run: durations (``12 ms``), token counts and estimated costs (``~$0.0011``), times of day (``21:49``), weekday names,
  ISO date-times, the port after ``127.0.0.1``/``0.0.0.0``, and the work folder's path.
  ``...`` in the shown output stands for any text; a line of only ``...`` for any lines.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
MARKER = re.compile(r"^<!--\s*(not run|tested by):\s*(.*?)\s*-->$")
FENCE = re.compile(r"^( *)```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    info: str
    text: str  # the body, with the fence's indentation removed
    marker: str | None  # "not run" or "tested by"
    note: str  # the marker's reason or test list
    follows: bool  # the previous non-blank line closes another block

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse(text: str, page: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the marker before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    previous = ""  # the previous non-blank line outside blocks, or "```" for a closing fence
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            if lines[index].strip():
                previous = lines[index].strip()
            index += 1
            continue
        indent, info = len(fence[1]), fence[2]
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{index + 1}: a block that is never closed")
        body = "".join(line[indent:] + "\n" for line in lines[index + 1:end])
        marked = MARKER.match(previous)
        blocks.append(Block(page, index + 1, info, body, marked[1] if marked else None,
                            marked[2] if marked else "", previous == "```"))
        previous = "```"
        index = end + 1
    return blocks


def kind(block: Block) -> str:
    """What the block is: a marker's kind, or how it is run here ("unclassified" if neither)."""
    if block.marker:
        return block.marker
    if block.info == "python":
        return "python"
    if block.info == "output":
        return "output"
    if block.info == "yaml":
        if block.text.startswith("# "):
            return "file"
        return "scenario" if re.search(r"^turns:", block.text, flags=re.MULTILINE) else "agent"
    if block.info in ("console", "") and block.text.startswith("$ "):
        return "shell"
    return "unclassified"


def problems(blocks: list[Block]) -> list[str]:
    """What is wrong with the classification of a page's blocks."""
    found = []
    for number, block in enumerate(blocks):
        what = kind(block)
        if what == "unclassified":
            found.append(f"{block.where}: a ```{block.info} block that is not run: run it (see "
                         "tests/test_docs_examples.py) or mark it <!-- not run: REASON -->")
        elif what == "not run" and not block.note:
            found.append(f"{block.where}: <!-- not run: --> needs a reason")
        elif what == "tested by":
            found += [f"{block.where}: {problem}" for problem in reference_problems(block)]
        elif what == "output" and not (number and block.follows and kind(blocks[number - 1]) == "python"):
            found.append(f"{block.where}: an output block must follow a python block run here")
    return found


def reference_problems(block: Block) -> list[str]:
    found = []
    for reference in filter(None, (r.strip() for r in block.note.split(","))):
        path, _, name = reference.partition("::")
        file = ROOT / path
        if not (path.startswith("tests/") and name and file.is_file()):
            found.append(f"tested by {reference!r}: not tests/FILE.py::test_name of an existing file")
            continue
        source = file.read_text()
        defined = {node.name for node in ast.walk(ast.parse(source))
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if name not in defined:
            found.append(f"tested by {reference!r}: {path} has no {name}")
        elif Path(block.page).name not in source:
            found.append(f"tested by {reference!r}: {path} never names {Path(block.page).name}")
    if not found and not block.note:
        found.append("<!-- tested by: --> names no test")
    return found


ALL = {str(page.relative_to(ROOT)): parse(page.read_text(), str(page.relative_to(ROOT))) for page in PAGES}
RUN_HERE = ("python", "output", "file", "scenario", "agent", "shell")


# --- output -------------------------------------------------------------------------------


def normalise(text: str, work: Path | None = None) -> str:
    """What changes per run, replaced by a placeholder (the same on both sides)."""
    if work is not None:
        text = text.replace(str(work), "<work>")
    text = re.sub(r"\b((?:127\.0\.0\.1|0\.0\.0\.0):)\d+", r"\1<port>", text)
    text = re.sub(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?", "<datetime>", text)
    text = re.sub(r"\b\d\d:\d\d\b", "<hh:mm>", text)
    text = re.sub(r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b", "<weekday>", text)
    text = re.sub(r"\b\d+ ms\b", "<n> ms", text)
    text = re.sub(r"\btokens \d+ in \([^()]*\) / \d+ out\b", "tokens <usage>", text)
    return re.sub(r"~\$\d+\.\d+", "~$<usd>", text)


def shown_pattern(shown: str) -> re.Pattern[str]:
    """The shown output as a pattern: ``...`` is any text, a line of only ``...`` any lines."""
    parts = []
    for line in shown.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:.*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts))


def assert_prints(shown: str, printed: str, what: str, work: Path | None = None) -> None:
    expected, actual = normalise(shown, work), normalise(printed, work)
    if actual and not actual.endswith("\n"):
        actual += "\n"
    assert shown_pattern(expected).fullmatch(actual), (
        f"{what} does not print what the page shows\n--- shown (normalised):\n{expected}"
        f"--- printed (normalised):\n{actual}")


# --- running -----------------------------------------------------------------------------


def commands(text: str) -> list[tuple[str, str]]:
    """A shell session as (command, what it prints) pairs."""
    return re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", text, flags=re.MULTILINE)


def shell_env(work: Path) -> dict[str, str]:
    """The environment of a page's commands: ``realtalk`` is this interpreter's CLI."""
    bin_dir = work.parent / "bin"
    if not (bin_dir / "realtalk").exists():
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "realtalk").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m realtalk.cli "$@"\n')
        (bin_dir / "realtalk").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "REALTALK_", "OPENAI_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    return env


def run_shell(block: Block, work: Path) -> None:
    steps = commands(block.text)
    assert steps and "".join(f"$ {c}\n{s}" for c, s in steps) == block.text, f"{block.where}: not a shell session"
    words = shlex.split(steps[0][0])
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        words.pop(0)
    if words[:2] == ["realtalk", "emulator"]:
        assert len(steps) == 1, f"{block.where}: a serving command is alone in its block"
        run_server(block, work, *steps[0])
        return
    script = ["exec 2>&1"]
    for number, (command, _) in enumerate(steps):
        script.append(f"__rc=$?; printf '\\036%d\\n' {number}; (exit $__rc); {command}")
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=shell_env(work),
                            capture_output=True, text=True, timeout=300, check=False)
    printed = [part.split("\n", 1)[1] for part in result.stdout.split("\x1e")[1:]]
    assert len(printed) == len(steps), f"{block.where}: the session stopped early:\n{result.stdout}"
    for (command, shown), output in zip(steps, printed):
        assert_prints(shown, output, f"{block.where}: $ {command}", work)


def run_server(block: Block, work: Path, command: str, shown: str) -> None:
    """Start a serving command, read the lines it shows, stop it with Ctrl-C (SIGINT)."""
    env = shell_env(work)
    words = shlex.split(command)
    while re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if "--port" not in words:
        words += ["--port", "0"]
    wanted = max(1, len(shown.splitlines()))
    lines: queue.Queue[str] = queue.Queue()
    printed: list[str] = []
    with subprocess.Popen([str(work.parent / "bin" / "realtalk"), *words[1:]], cwd=work, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        stdout = process.stdout
        assert stdout is not None

        def read() -> None:
            for line in iter(stdout.readline, ""):
                lines.put(line)
            lines.put("")  # the end of its output

        reader = threading.Thread(target=read)
        reader.start()
        try:
            while len(printed) < wanted and (line := lines.get(timeout=60)):
                printed.append(line)
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=60)
            reader.join()
    assert code == 130, f"{block.where}: {command} exited {code} on Ctrl-C:\n{''.join(printed)}"
    assert_prints(shown, "".join(printed), f"{block.where}: $ {command}", work)


def check_agent(block: Block, work: Path) -> None:
    import yaml
    from realtalk.localtools import load_graph

    name = yaml.safe_load(block.text).get("name", "agent")
    folder = work / f"agent-at-line-{block.line}"
    folder.mkdir()
    for other in (ROOT / "agents").glob("*.yaml"):
        if not other.name.endswith(".scenario.yaml") and other.stem != name:
            shutil.copy(other, folder / other.name)
    (folder / f"{name}.yaml").write_text(block.text)
    graph, plugins = load_graph([folder / f"{name}.yaml"])
    assert [str(p) for p in [*plugins.problems, *graph.problems]] == [], block.where


def check_scenario(block: Block, work: Path) -> None:
    from realtalk.emulator.scenario import load_scenario

    file = work / f"at-line-{block.line}.scenario.yaml"
    file.write_text(block.text)
    assert load_scenario(file).turns, block.where


def run_page(page: str, work: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a page's examples in order; returns how many ran."""
    blocks = ALL[page]
    namespace: dict[str, Any] = {"__name__": "__main__"}
    printed = ""
    ran = 0
    for block in blocks:
        what = kind(block)
        if what == "python":
            out = io.StringIO()
            monkeypatch.chdir(ROOT)
            with contextlib.redirect_stdout(out):
                exec(compile(block.text, block.where, "exec"), namespace)  # noqa: S102 - the docs' own examples
            printed = out.getvalue()
        elif what == "output":
            assert_prints(block.text, printed, f"the python block before {block.where}")
        elif what == "file":
            path = work / block.text.split("\n", 1)[0].removeprefix("# ").strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
        elif what == "agent":
            check_agent(block, work)
        elif what == "scenario":
            check_scenario(block, work)
        elif what == "shell":
            run_shell(block, work)
        ran += what in RUN_HERE
    return ran


# --- tests -------------------------------------------------------------------------------


def test_every_block_is_run_or_marked() -> None:
    assert len(ALL) >= 12 and sum(map(len, ALL.values())) > 90
    assert [problem for blocks in ALL.values() for problem in problems(blocks)] == []


@pytest.mark.parametrize("page", [p for p, blocks in ALL.items() if any(kind(b) in RUN_HERE for b in blocks)])
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "agents", work / "agents")
    assert run_page(page, work, monkeypatch) > 0


# --- the audit itself can fail ---------------------------------------------------------------


def test_an_unmarked_block_fails_the_audit() -> None:
    page = "Text.\n\n```\nrealtalk check agents/\n```\n\n```toml\n[project]\n```\n\n```output\nx\n```\n"
    assert [p.split(": ", 1)[1][:11] for p in problems(parse(page, "new.md"))] == ["a ``` block", "a ```toml b",
                                                                                  "an output b"]
    marked = ("<!-- not run: a synopsis -->\n```\nrealtalk check PATH\n```\n"
              "<!-- not run: -->\n```\nx\n```\n"
              "<!-- tested by: tests/test_docs.py::test_nope -->\n```\ny\n```\n"
              "<!-- tested by: tests/test_runner.py::test_scenario_beside_agent -->\n```\nz\n```\n")
    assert problems(parse(marked, "docs/cli.md")) == [
        "docs/cli.md:6: <!-- not run: --> needs a reason",
        "docs/cli.md:10: tested by 'tests/test_docs.py::test_nope': tests/test_docs.py has no test_nope",
        "docs/cli.md:14: tested by 'tests/test_runner.py::test_scenario_beside_agent': tests/test_runner.py never names cli.md",
    ]


def test_a_wrong_output_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "agents").mkdir()
    session = "$ realtalk --version\nrealtalk 0.0.0\n"
    with pytest.raises(AssertionError, match="does not print what the page shows"):
        run_shell(parse(f"```\n{session}```\n", "x.md")[0], tmp_path)
    ALL["wrong.md"] = parse("```python\nprint('It is 21:49 on Tuesday')\n```\n```output\nIt is 10:00\n```\n", "wrong.md")
    try:
        with pytest.raises(AssertionError, match="does not print what the page shows"):
            run_page("wrong.md", tmp_path, monkeypatch)
    finally:
        del ALL["wrong.md"]


def test_normalising_keeps_what_matters() -> None:
    shown = "  ✓ get_time ok in 2 ms: {\"time\": \"21:49\", ...}\n...\nbye on Tuesday\n"
    assert shown_pattern(normalise(shown)).fullmatch(normalise(
        "  ✓ get_time ok in 13 ms: {\"time\": \"01:02\", \"x\": 1}\nmore\nlines\nbye on Friday\n"))
    assert not shown_pattern(normalise(shown)).fullmatch(normalise(
        "  ✓ get_time error in 13 ms: {\"time\": \"01:02\"}\nbye on Friday\n"))
