"""``realtalk install`` and ``realtalk uninstall``, for real: pip run by the realtalk of a
fresh virtual environment made here, installing a plugin made by ``realtalk new plugin``.

Setting up uses the package index configured on this machine (the core's dependencies,
hatchling); every install tested runs with ``PIP_NO_INDEX=1`` and a local wheelhouse.
Under ``CI=true`` a set-up that cannot get its dependencies fails; elsewhere it skips.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from realtalk.cli import main

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


@dataclass
class Venv:
    root: Path
    wheelhouse: Path  # hatchling and the core's wheel: what the installs under test may use
    scratch: Path  # the working directory of every command
    clean: dict[str, str]  # this environment minus what would show the source tree

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def realtalk(self) -> str:
        return str(self.root / "bin" / "realtalk")

    def environment(self, **extra: str) -> dict[str, str]:
        """Offline: pip looks only in the wheelhouse."""
        environment = {k: v for k, v in self.clean.items() if not k.startswith("PIP_")}
        return {**environment, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(self.wheelhouse),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_COMPILE": "1", **extra}

    def run(self, *command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), cwd=self.scratch, env=self.environment(**extra),
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)

    def must(self, *command: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*command)
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, venvkit: Any) -> Venv:
    """A fresh venv (with its own pip) where the core is installed from its wheel."""
    import tomllib

    base = tmp_path_factory.mktemp("install")
    venv = Venv(root=base / "venv", wheelhouse=base / "wheelhouse", scratch=base / "scratch",
                clean=venvkit.environment())
    venv.scratch.mkdir()
    venvkit.create(venv.root, pip=True, timeout=TIMEOUT_S)
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    venvkit.index_step("download hatchling", [venv.python, "-m", "pip", "download", "-q", "-d",
                                              str(venv.wheelhouse), "hatchling", "editables"],
                       timeout=TIMEOUT_S * 2)  # editables: hatchling's -e
    venvkit.index_step("install the core's dependencies",
                       [venv.python, "-m", "pip", "install", "-q", "--no-compile", *dependencies],
                       timeout=TIMEOUT_S * 2)
    venv.must(venv.python, "-m", "pip", "install", "hatchling")
    venv.must(venv.python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(venv.wheelhouse),
              str(ROOT))
    venv.must(venv.python, "-m", "pip", "install", "realtalk")
    return venv


def test_a_new_plugin_is_installed_from_its_path_listed_and_uninstalled(venv: Venv) -> None:
    venv.must(venv.realtalk, "new", "plugin", "demo")
    result = venv.run(venv.realtalk, "install", "./realtalk-demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully installed realtalk-demo-0.1.0" in result.stdout
    assert result.stdout.splitlines()[-1] == "realtalk-demo 0.1.0: tools demo_greet"
    assert "realtalk-demo" in venv.must(venv.realtalk, "plugins").stdout

    result = venv.run(venv.realtalk, "uninstall", "-y", "realtalk-demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully uninstalled realtalk-demo-0.1.0" in result.stdout
    assert "realtalk-demo" not in venv.must(venv.realtalk, "plugins").stdout


def test_an_editable_install_is_listed_by_a_fresh_interpreter(venv: Venv) -> None:
    venv.must(venv.realtalk, "new", "plugin", "edit")
    result = venv.run(venv.realtalk, "install", "-e", "./realtalk-edit")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "realtalk-edit 0.1.0: tools edit_greet"
    venv.must(venv.realtalk, "uninstall", "-y", "realtalk-edit")


def test_a_distribution_that_is_no_plugin_is_named_in_a_warning(venv: Venv) -> None:
    project = venv.scratch / "not-a-plugin"
    (project / "not_a_plugin").mkdir(parents=True)
    (project / "not_a_plugin" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text('[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"'
                                            '\n[project]\nname = "not-a-plugin"\nversion = "1.0"\n')
    result = venv.run(venv.realtalk, "install", "./not-a-plugin")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("realtalk: ")] == [
        ("realtalk: warning: not-a-plugin 1.0 registered nothing: it has no entry point in the"
         " 'realtalk' group, so it is not a realtalk plugin")]


def test_the_exit_code_is_pips(venv: Venv) -> None:
    ours = venv.run(venv.realtalk, "install", "./nowhere")
    pips = venv.run(venv.python, "-m", "pip", "install", "./nowhere")
    assert ours.returncode == pips.returncode != 0
    assert "nowhere" in ours.stderr and "Traceback" not in ours.stderr
    assert venv.run(venv.realtalk, "uninstall", "-y", "not-installed-here").returncode == \
        venv.run(venv.python, "-m", "pip", "uninstall", "-y", "not-installed-here").returncode


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_is_passed_on_to_pip(signum: int, code: int, venv: Venv) -> None:
    # An index that accepts pip's connection and never answers: pip is then busy for good.
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(TIMEOUT_S)
        port = server.getsockname()[1]
        environment = venv.environment(PIP_INDEX_URL=f"http://127.0.0.1:{port}/simple/", PIP_RETRIES="0",
                                       PIP_DEFAULT_TIMEOUT=str(TIMEOUT_S), PIP_CONFIG_FILE=os.devnull)
        del environment["PIP_NO_INDEX"], environment["PIP_FIND_LINKS"]
        process = subprocess.Popen([venv.realtalk, "install", "some-plugin"], cwd=venv.scratch, env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            connection, _ = server.accept()  # pip is waiting for the index
            with connection:
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
                [pip] = [int(pid) for pid in children]
                process.send_signal(signum)  # to realtalk only, not to its process group
                _, stderr = process.communicate(timeout=TIMEOUT_S)
        finally:
            process.kill()
    assert process.returncode == code, stderr
    with pytest.raises(ProcessLookupError):
        os.kill(pip, 0)  # stopped and reaped


def test_without_pip_the_error_says_how_to_add_it(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=TIMEOUT_S)
    python = str(bare / "bin" / "python")
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "core")}  # realtalk, its source: no pip beside it
    result = subprocess.run([python, "-m", "realtalk.cli", "install", "realtalk-clock"], env=environment,
                            capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"realtalk: error: pip is not installed in the Python realtalk runs in ({python});"
                             f" add it with: {python} -m ensurepip\n")


def test_install_without_a_package_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install"]) == 2
    assert capsys.readouterr().err == "realtalk: error: install needs a PKG or -e PATH (see realtalk install --help)\n"
