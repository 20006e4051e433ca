"""Start-up stays light: what ``import realtalk`` and ``realtalk --version`` load.

Not timed (timings belong in ``tests/benchmarks/bench_startup.py``): each check runs a
fresh interpreter and looks at ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk import ConfigError

HEAVY = ("jsonschema", "yaml", "websockets", "numpy", "soxr", "sounddevice", "importlib.metadata",
         "asyncio", "realtalk.session")


def loaded_after(code: str, modules: tuple[str, ...] = HEAVY) -> list[str]:
    """The ``modules`` (HEAVY by default) a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_import_realtalk_loads_nothing_heavy() -> None:
    assert loaded_after("import realtalk") == []


def test_version_loads_nothing_heavy() -> None:
    code = ("import contextlib\nfrom realtalk.cli import main\n"
            "with contextlib.suppress(SystemExit):\n    main(['--version'])")
    assert loaded_after(code) == []


def test_version_is_printed_before_argparse_is_imported() -> None:
    code = "from realtalk.cli import main\nassert main(['--version']) == 0"
    assert loaded_after(code, ("argparse", "pathlib", "logging", "realtalk.cli.options")) == []


def test_the_parser_still_answers_version_with_other_words() -> None:
    # Only the exact command line `realtalk --version` takes the short way.
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", "-v", "--version"],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, f"realtalk {realtalk.__version__}\n")


def test_plugin_style_import_loads_no_jsonschema() -> None:
    # What a plugin module does at import: decorate its hooks.
    code = "import realtalk\n@realtalk.hookimpl\ndef register_tools(register): pass"
    assert "jsonschema" not in loaded_after(code)


@pytest.mark.parametrize("module", ["realtalk.tools", "realtalk.agents", "realtalk.plugins"])
def test_schema_modules_import_jsonschema_only_when_checking(module: str) -> None:
    assert "jsonschema" not in loaded_after(f"import {module}")


# --- what open_session no longer redoes per session: still correct when things change ---


def test_sessions_share_plugins_until_refreshed(make_plugin: Any) -> None:
    from realtalk.plugins import refresh_plugins, shared_plugins

    make_plugin("realtalk-shared", 'import realtalk\n@realtalk.hookimpl\ndef register_tools(register):\n'
                "    register('shared_tool', description='x', handler=print)\n")
    first = shared_plugins()
    assert "shared_tool" in first.registry
    assert shared_plugins() is first
    assert shared_plugins(block=["realtalk-shared"]) is not first
    assert "shared_tool" not in shared_plugins(block=["realtalk-shared"]).registry
    refresh_plugins()
    assert shared_plugins() is not first


def test_an_edited_agent_file_is_read_again(tmp_path: Path) -> None:
    from realtalk.agents import load_agent

    agent = tmp_path / "a.yaml"
    agent.write_text("instructions: first\nvoice: sage\n")
    spec = load_agent(agent)
    assert (spec.instructions, spec.voice) == ("first", "sage")
    agent.write_text("instructions: other\nvoice: echo\n")  # same size, likely same mtime
    assert (load_agent(agent).instructions, load_agent(agent).voice) == ("other", "echo")
    agent.write_text("instructions: other\nvoice: nova\n")
    with pytest.raises(ConfigError, match="not a valid voice"):
        load_agent(agent)


def test_agents_from_the_cache_do_not_share_mappings(tmp_path: Path) -> None:
    from realtalk.agents import load_agent

    agent = tmp_path / "a.yaml"
    agent.write_text("instructions: x\ninput_audio_transcription: {model: whisper-1}\n")
    first = load_agent(agent)
    assert first.input_transcription is not None
    first.input_transcription["model"] = "changed"
    assert load_agent(agent).input_transcription == {"model": "whisper-1"}


def test_schema_verdicts_are_remembered_not_shared_wrongly() -> None:
    from realtalk.tools import schema_problem

    good = {"type": "object", "properties": {"n": {"type": "integer"}}}
    bad = {"type": "object", "properties": {"n": {"type": "integr"}}}
    assert schema_problem(good) is None and schema_problem(dict(good)) is None
    first = schema_problem(bad)
    assert first is not None and "$.properties.n.type" in first
    assert schema_problem(bad) == first


# --- realtalk check with the on-disk cache (realtalk.cache): faster, never more lenient ---

ROOT = Path(__file__).resolve().parents[1]


def _check(paths: list[str], cache: Path, **env: str) -> tuple[int, str, list[str]]:
    """Run ``realtalk check`` in a fresh interpreter: exit code, output, modules it loaded."""
    import os

    probe = ("import json, sys\nfrom realtalk.cli import main\ncode = main(sys.argv[1:])\n"
             "print(json.dumps(sorted(m for m in ('jsonschema', 'importlib.metadata') if m in sys.modules)),"
             " file=sys.stderr)\nsys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, "check", *paths], capture_output=True, text=True,
                            check=False, cwd=ROOT, env={**os.environ, "REALTALK_CACHE_DIR": str(cache), **env})
    *errors, modules = result.stderr.splitlines()
    return result.returncode, result.stdout + "\n".join(errors), json.loads(modules)


AGENT_FILES = ["agents/concierge.yaml", "agents/billing.yaml"]


def test_check_skips_jsonschema_and_metadata_for_what_it_checked_before(tmp_path: Path) -> None:
    # Agent files and their tools' schemas (a scenario's tool calls still need jsonschema).
    cache = tmp_path / "cache"
    first = _check(AGENT_FILES, cache)
    assert first[0] == 0 and first[2] == ["importlib.metadata", "jsonschema"]
    assert _check(AGENT_FILES, cache) == (first[0], first[1], [])
    assert sorted(p.name for p in cache.iterdir()) == ["entry-points.json", "verdicts.json"]
    assert (cache.stat().st_mode & 0o777, (cache / "verdicts.json").stat().st_mode & 0o777) == (0o700, 0o600)


def test_an_agent_that_became_invalid_is_still_caught(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    agent = tmp_path / "a.yaml"
    agent.write_text("instructions: hi\nvoice: sage\n")
    assert _check([str(agent)], cache)[0] == 0
    agent.write_text("instructions: hi\nvoice: sagee\n")
    code, output, modules = _check([str(agent)], cache)
    assert code == 1 and "not a valid voice" in output and "jsonschema" in modules
    assert _check([str(agent)], cache)[:2] == (code, output)  # and again: failures are never kept


def test_a_tool_schema_that_became_invalid_is_still_caught(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from realtalk import cache, tools

    monkeypatch.setenv("REALTALK_CACHE_DIR", str(tmp_path / "cache"))
    good = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert tools.schema_problem(good) is None
    key = cache.verdict_key("tool-schema", good, decided_by=(tools.__file__,))
    assert key is not None and cache.known_good(key)
    bad = {"type": "object", "properties": {"n": {"type": "integr"}}}
    assert cache.verdict_key("tool-schema", bad, decided_by=(tools.__file__,)) != key
    assert "$.properties.n.type" in (tools.schema_problem(bad) or "")
    # Not plain JSON (an int key would be written as "1"): never a key, never kept.
    assert cache.verdict_key("tool-schema", {"type": "object", "properties": {1: {}}},
                             decided_by=(tools.__file__,)) is None


def test_a_broken_or_foreign_cache_is_ignored_never_a_failure(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir(mode=0o700)
    (corrupt / "verdicts.json").write_text('{"format": 1, "good": [')
    (corrupt / "entry-points.json").write_bytes(b"\xff\x00")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # others may write there: not used
    unwritable = tmp_path / "file"
    unwritable.write_text("not a folder")
    expected = _check(["agents/"], tmp_path / "fresh")[:2]
    for cache in (corrupt, shared, unwritable):
        assert _check(["agents/"], cache)[:2] == expected
    assert list(shared.iterdir()) == []
    off = tmp_path / "off"
    assert _check(["agents/"], off, REALTALK_NO_CACHE="1")[:2] == expected
    assert not off.exists()
