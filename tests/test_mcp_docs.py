"""docs/mcp.md's example runs: the agent it shows is the one shipped in
plugins/realtalk-mcp/examples/, and ``realtalk run`` against the emulator prints what the
page shows (numbers aside), its tools served by the example's real MCP server."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "mcp.md"
PLUGIN = ROOT / "plugins" / "realtalk-mcp"
MARK = "<!-- tested by: tests/test_mcp_docs.py::test_the_example_of_mcp_md_runs -->"


def marked_blocks() -> list[str]:
    text = PAGE.read_text()
    return re.findall(re.escape(MARK) + r"\n```[a-z]*\n(.*?)```", text, flags=re.DOTALL)


def numbers_aside(text: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "0", text).strip()


def plugin_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``realtalk`` that finds realtalk-mcp: installed, or from the
    repository through a site folder holding its entry point."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_PLUGINS")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # `python` is ours
    env["REALTALK_CACHE_DIR"] = str(tmp_path / ".cache")
    try:
        importlib.metadata.distribution("realtalk-mcp")
    except importlib.metadata.PackageNotFoundError:
        info = tmp_path / "site" / "realtalk_mcp-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: realtalk-mcp\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text("[realtalk]\nrealtalk_mcp = realtalk_mcp\n")
        env["PYTHONPATH"] = os.pathsep.join([str(info.parent), str(PLUGIN), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_the_example_of_mcp_md_runs(tmp_path: Path, require: Callable[[bool, str], None]) -> None:
    require(importlib.util.find_spec("mcp") is not None, "the mcp SDK (pip install -e ./plugins/realtalk-mcp)")
    agent, session = marked_blocks()
    first, _, rest = agent.partition("\n")
    assert first == "# plugins/realtalk-mcp/examples/notes.yaml"
    assert rest == (PLUGIN / "examples" / "notes.yaml").read_text()
    command, _, shown = session.partition("\n")
    assert command.startswith("$ realtalk run ")
    args = shlex.split(command[len("$ realtalk "):])
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", *args], cwd=ROOT, env=plugin_env(tmp_path),
                            capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr
    assert numbers_aside(result.stdout + result.stderr) == numbers_aside(shown)
