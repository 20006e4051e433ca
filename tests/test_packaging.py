"""Packaging: what users install works, not only the source tree.

The core, every plugin under ``plugins/`` and a plugin made by ``realtalk new plugin`` are
built (``python -m build``: an sdist, then the wheel from that sdist), installed NOT
editable into one fresh virtual environment, and used from there: ``realtalk plugins``,
``realtalk check agents/``, and each plugin's own tests. Built once per module.

Only setting up the environment uses the package index configured on this machine (build,
hatchling, pytest and the core's dependencies); what is tested installs with
``--no-index``. Under ``CI=true`` a set-up that cannot get its
dependencies fails; elsewhere it skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
TOOLING = ["build", "hatchling", "pytest", "pytest-asyncio"]
SETUP_TIMEOUT_S = 600
STEP_TIMEOUT_S = 300


@dataclass
class Venv:
    """A fresh virtual environment and the distributions built for it."""

    root: Path
    dist: Path  # the sdists and wheels built here (wheels/: every wheel)
    scratch: Path  # an empty working directory: nothing importable from the current one
    environment: dict[str, str]  # of every command: nothing that would show the source tree

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def pip(self) -> list[str]:
        """This test run's pip, installing into the venv."""
        return [sys.executable, "-m", "pip", "--python", self.python]

    @property
    def realtalk(self) -> str:
        return str(self.root / "bin" / "realtalk")

    def run(self, command: Sequence[str], *, cwd: Path | None = None,
            timeout: float = STEP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), cwd=cwd or self.scratch, env=self.environment,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def must(self, command: Sequence[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = self.run(command, cwd=cwd)
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
        return result

    def build(self, project: Path) -> tuple[Path, Path]:
        """The sdist and the wheel of ``project`` (the wheel built from the sdist)."""
        out = self.dist / project.name
        self.must([self.python, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)])
        [sdist] = out.glob("*.tar.gz")
        [wheel] = out.glob("*.whl")
        (self.dist / "wheels").mkdir(exist_ok=True)
        (self.dist / "wheels" / wheel.name).write_bytes(wheel.read_bytes())
        return sdist, wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, venvkit: Any) -> Venv:
    """A fresh venv (without pip: this pip installs into it) with the build tools, pytest
    and the core's dependencies, from the configured package index."""
    import tomllib

    base = tmp_path_factory.mktemp("packaging")
    venv = Venv(root=base / "venv", dist=base / "dist", scratch=base / "scratch",
                environment=venvkit.environment())
    venv.scratch.mkdir()
    venvkit.create(venv.root, pip=False, timeout=SETUP_TIMEOUT_S)
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    # The plugins' own dependencies (realtalk-mcp's mcp SDK), but not realtalk: built here.
    dependencies += [d for p in PLUGINS for d in tomllib.loads((p / "pyproject.toml").read_text())["project"]
                     ["dependencies"] if d.split(";")[0].strip() != "realtalk"]
    venvkit.index_step("install the build tools, pytest and the core's dependencies",
                       [*venv.pip, "install", "-q", "--no-compile", *TOOLING, *dependencies],
                       timeout=SETUP_TIMEOUT_S, cwd=venv.scratch, env=venv.environment)
    return venv


@pytest.fixture(scope="module")
def built(venv: Venv) -> dict[str, tuple[Path, Path]]:
    """The sdist and wheel of the core, of every plugin and of a new plugin, installed
    from the wheels alone (``--no-index``: their dependencies are installed already)."""
    offline = ["--no-index", "--find-links", str(venv.dist / "wheels")]
    built = {"realtalk": venv.build(ROOT)}
    venv.must([*venv.pip, "install", "-q", "--no-compile", *offline, "realtalk"])
    # The installed core writes the new plugin: its templates are in the wheel.
    venv.must([venv.realtalk, "new", "plugin", "demo", "--dir", str(venv.dist / "new")])
    for project in [*PLUGINS, venv.dist / "new" / "realtalk-demo"]:
        built[project.name] = venv.build(project)
    venv.must([*venv.pip, "install", "-q", "--no-compile", *offline, *(name for name in built if name != "realtalk")])
    return built


def _package_files(package: Path) -> set[str]:
    return {str(p.relative_to(package.parent)) for p in package.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_each_wheel_carries_every_file_of_its_package(built: dict[str, tuple[Path, Path]], venv: Venv) -> None:
    packages = {"realtalk": ROOT / "core" / "realtalk", **{p.name: p / p.name.replace("-", "_") for p in PLUGINS},
                "realtalk-demo": venv.dist / "new" / "realtalk-demo" / "realtalk_demo"}
    assert set(packages) == set(built)
    for name, package in packages.items():
        _, wheel = built[name]  # built from the sdist: what it lacks, the sdist lacks too
        in_wheel = set(zipfile.ZipFile(wheel).namelist())
        missing = sorted(_package_files(package) - in_wheel)
        assert missing == [], f"{wheel.name} lacks {missing}"
    clock = set(zipfile.ZipFile(built["realtalk-clock"][1]).namelist())
    assert "realtalk_clock/tools.yaml" in clock
    core = set(zipfile.ZipFile(built["realtalk"][1]).namelist())
    assert {"realtalk/py.typed", "realtalk/schemas/agent.schema.json",
            "realtalk/templates/plugin/pyproject.toml.tmpl"} <= core


def test_the_installed_distributions_are_the_wheels_not_the_source(built: dict[str, tuple[Path, Path]],
                                                                   venv: Venv) -> None:
    code = ("import json, realtalk, realtalk_clock, realtalk_demo\n"
            "print(json.dumps([m.__file__ for m in (realtalk, realtalk_clock, realtalk_demo)]))")
    files = json.loads(venv.must([venv.python, "-c", code]).stdout)
    site = venv.root / "lib"
    assert all(Path(file).is_relative_to(site) for file in files), files
    assert not list(site.rglob("*.pth")) or all("realtalk" not in p.name for p in site.rglob("*.pth"))


def test_realtalk_plugins_lists_every_plugin_and_its_tools(built: dict[str, tuple[Path, Path]], venv: Venv) -> None:
    result = venv.must([venv.realtalk, "plugins", "--json"])
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)}
    assert set(plugins) == {p.name for p in PLUGINS} | {"realtalk-demo"}
    # Each registers tools, or (realtalk-mcp) a source of tools that exist while a session runs.
    assert [(name, p["error"]) for name, p in plugins.items()
            if p["error"] or not (p["tools"] or "register_tool_sources" in p["hooks"])] == []
    assert sorted(plugins["realtalk-clock"]["tools"]) == ["convert_time", "get_time", "time_until"]
    assert plugins["realtalk-demo"]["tools"] == ["demo_greet"]
    assert result.stderr == ""


def test_realtalk_check_accepts_the_agents(built: dict[str, tuple[Path, Path]], venv: Venv) -> None:
    result = venv.must([venv.realtalk, "check", str(ROOT / "agents")])
    assert result.stdout == "" and result.stderr.startswith("ok: ")


@pytest.mark.parametrize("plugin", [*(p.name for p in PLUGINS), "realtalk-demo"])
def test_the_plugin_tests_pass_against_the_installed_wheels(plugin: str, built: dict[str, tuple[Path, Path]],
                                                            venv: Venv) -> None:
    tests = (venv.dist / "new" / plugin if plugin == "realtalk-demo" else ROOT / "plugins" / plugin) / "tests"
    result = venv.run([venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and " failed" not in result.stdout
