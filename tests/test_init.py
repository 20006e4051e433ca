from __future__ import annotations

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


def test_runtime_is_loaded_lazily() -> None:
    import subprocess
    import sys

    code = ("import sys, realtalk; assert 'realtalk.session' not in sys.modules;"
            " assert realtalk.Session.__module__ == 'realtalk.session'; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr
