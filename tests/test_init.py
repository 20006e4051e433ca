from __future__ import annotations

import re

import realtalk


def test_public_api_is_curated() -> None:
    assert sorted(realtalk.__all__) == sorted(set(realtalk.__all__))
    for name in realtalk.__all__:
        assert hasattr(realtalk, name), name
    # Errors are importable from the package root, the hierarchy holds.
    assert issubclass(realtalk.ScenarioError, realtalk.ConfigError)
    assert issubclass(realtalk.AuthenticationFailed, realtalk.ConnectionFailed)
    assert issubclass(realtalk.ToolDefinitionError, realtalk.PluginError)


def test_version_matches_distribution() -> None:
    from importlib.metadata import version

    assert realtalk.__version__ == version("realtalk")


def test_version_constant_matches_pyproject() -> None:
    # __version__ is a constant (no metadata read at import): it must follow pyproject.toml.
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text("utf-8")
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE)
    assert match is not None, "no version in pyproject.toml's [project] table"
    assert realtalk.__version__ == match.group(1)


def test_lazy_names_are_listed_and_typed() -> None:
    # Every lazily loaded name is in __all__, and in the TYPE_CHECKING block for type checkers.
    from pathlib import Path

    source = Path(realtalk.__file__).read_text("utf-8")
    checking = source.split("if TYPE_CHECKING:", 1)[1].split("del TYPE_CHECKING", 1)[0]
    for name in realtalk._LAZY:
        assert name in realtalk.__all__, name
        assert re.search(rf"\b{name}\b", checking), name


def test_runtime_is_loaded_lazily() -> None:
    import subprocess
    import sys

    code = ("import sys, realtalk; assert 'realtalk.session' not in sys.modules;"
            " assert realtalk.Session.__module__ == 'realtalk.session'; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr
