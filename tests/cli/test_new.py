"""``realtalk new plugin|agent``: what is written, what is refused, and that it works.

The generated plugin's own tests are run here against its source tree, made visible as an
installed distribution (a dist-info with its entry point); ``tests/test_packaging.py``
builds its wheel and installs it into a fresh virtual environment.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from realtalk.cli import main

PLUGIN_FILES = ["pyproject.toml", "README.md", "realtalk_demo/__init__.py", "realtalk_demo/tools.py",
                "tests/test_realtalk_demo.py"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_new_plugin_writes_a_distribution(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "new", "plugin", "demo", "--dir", str(tmp_path))
    assert (code, err) == (0, "")
    root = tmp_path / "realtalk-demo"
    assert sorted(tree(root)) == sorted(PLUGIN_FILES)
    assert out.splitlines()[:len(PLUGIN_FILES)] == [f"created {root / name}" for name in PLUGIN_FILES]
    assert f"realtalk install -e {root}" in out
    pyproject = (root / "pyproject.toml").read_text()
    assert '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"' in pyproject
    assert 'name = "realtalk-demo"' in pyproject
    assert '[project.entry-points.realtalk]\nrealtalk_demo = "realtalk_demo"' in pyproject
    assert "def demo_greet(person: str) -> str:" in (root / "realtalk_demo" / "tools.py").read_text()
    assert "{{" not in "".join(tree(root).values())


def test_names_map_to_a_distribution_a_package_and_a_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "new", "plugin", "realtalk-My-Tools", "--dir", str(tmp_path))[0] == 0
    root = tmp_path / "realtalk-My-Tools"
    assert (root / "realtalk_My_Tools" / "__init__.py").is_file()
    assert "def my_tools_greet(" in (root / "realtalk_My_Tools" / "tools.py").read_text()


def test_the_current_directory_is_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "new", "agent", "helper")
    assert code == 0 and (tmp_path / "helper.yaml").is_file()
    assert out.splitlines() == ["created helper.yaml", "created helper.scenario.yaml", "next:",
                                "  realtalk check helper.yaml",
                                '  realtalk run helper.yaml --emulator --text "Hello"']
    assert "realtalk install -e ./realtalk-x " in run(capsys, "new", "plugin", "x")[1]


def test_an_existing_plugin_directory_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "realtalk-demo").mkdir()
    (tmp_path / "realtalk-demo" / "pyproject.toml").write_text("mine")
    code, out, err = run(capsys, "new", "plugin", "demo", "--dir", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == (f"realtalk: error: {tmp_path / 'realtalk-demo'} already exists; nothing was written"
                   " (choose another NAME or --dir)\n")
    assert tree(tmp_path) == {"realtalk-demo/pyproject.toml": "mine"}


def test_an_existing_scenario_stops_the_agent_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "helper.scenario.yaml").write_text("mine")
    code, out, err = run(capsys, "new", "agent", "helper", "--dir", str(tmp_path))
    assert (code, out) == (1, "")
    assert err.startswith(f"realtalk: error: {tmp_path / 'helper.scenario.yaml'} already exists")
    assert len(err.splitlines()) == 1
    assert tree(tmp_path) == {"helper.scenario.yaml": "mine"}


@pytest.mark.parametrize(("kind", "name"), [("plugin", ""), ("plugin", "my tools"), ("plugin", "a.b"),
                                            ("plugin", "tools-"), ("plugin", "café"), ("plugin", "x" * 51),
                                            ("agent", ""), ("agent", "_x"), ("agent", "a/b")])
def test_an_invalid_name_is_one_usage_line(kind: str, name: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["new", kind, name, "--dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert (exit.value.code, out) == (2, "")
    assert err.startswith(f"realtalk: error: argument NAME: {kind} name {name!r} is not valid: ")
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_new_agent_is_checked_and_runs_on_the_emulator(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "new", "agent", "helper", "--dir", str(tmp_path))[0] == 0
    code, out, err = run(capsys, "check", str(tmp_path / "helper.yaml"), str(tmp_path / "helper.scenario.yaml"))
    assert (code, out, err) == (0, "", "ok: 1 agent(s), 1 scenario(s) checked\n")
    result = subprocess.run(
        [sys.executable, "-m", "realtalk.cli", "run", "helper.yaml", "--emulator", "--text", "Hello there",
         "--text", "And then?"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    replies = [line for line in result.stdout.splitlines() if line.startswith("helper: ")]
    assert replies == ["helper: Hello! This is the emulator speaking for helper.",
                       "helper: (emulator) no turn of helper.scenario.yaml matches 'And then?': add one"]


def test_the_generated_plugin_tests_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "new", "plugin", "demo", "--dir", str(tmp_path))[0] == 0
    root = tmp_path / "realtalk-demo"
    # Installed as far as importlib.metadata can tell: a dist-info naming the entry point.
    site = tmp_path / "site"
    info = site / "realtalk_demo-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: realtalk-demo\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[realtalk]\nrealtalk_demo = realtalk_demo\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(root)])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=root, env=environment, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_the_examples_of_docs_cli_md_print_what_they_show(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    section = text.split("## realtalk new\n", 1)[1].split("\n## ", 1)[0]
    examples = re.findall(r"```\n(\$ .*?)```", section, flags=re.DOTALL)
    assert len(examples) == 2
    ran = []
    for example in examples:
        for command, shown in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", example, flags=re.MULTILINE):
            result = subprocess.run([sys.executable, "-m", "realtalk.cli", *shlex.split(command)[1:]],
                                    cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
            ran.append(command)
            assert result.returncode == 0, result.stderr
            if command.startswith("realtalk run"):  # the replies, among connection and latency lines
                assert [line for line in result.stdout.splitlines() if line.startswith("helper: ")] \
                    == shown.splitlines()
            else:
                assert result.stdout == shown, command
    assert len(ran) == 3, ran
