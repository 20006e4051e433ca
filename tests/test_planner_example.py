"""The issue's finished example: agents/planner/planner.yaml, declared only in YAML, gets
the weather from HTTP tools (agents/weather.tools.yaml, a loopback Open-Meteo stand-in
here) and its trip notes from the official filesystem MCP server
(``@modelcontextprotocol/server-filesystem``, started by ``npx`` over stdio), and the
command docs/mcp.md shows prints what the page shows when run against the emulator.

It needs Node.js (``npx``) and the npm registry the first time (npx keeps the server in
its cache); without them it skips, and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "mcp.md"
MARK = "<!-- tested by: tests/test_planner_example.py::test_the_planner_of_mcp_md_runs -->"


def shape(text: str) -> list[str]:
    """Lines with their numbers (times, ports, tokens, costs) left out."""
    return [re.sub(r"\d+(\.\d+)?", "N", line) for line in text.strip().splitlines()]


def test_the_planner_of_mcp_md_runs(http_server: Any, require: Callable[[bool, str], None],
                                    tmp_path: Path) -> None:
    require(shutil.which("npx") is not None, "npx (Node.js), to start the filesystem MCP server")
    blocks = re.findall(re.escape(MARK) + r"\n```console\n\$ (.*?)\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/mcp.md shows the planner's run once, marked for this test"
    command, shown = blocks[0]
    words = shlex.split(command)
    while "=" in words[0]:  # VAR=value before the command: the stand-in's URL is set below
        words.pop(0)
    assert words[:2] == ["realtalk", "run"] and "agents/planner/planner.yaml" in words
    standin = http_server()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REALTALK_"))}
    env.update(OPEN_METEO_URL=standin.url, OPEN_METEO_GEOCODING_URL=standin.url,
               npm_config_update_notifier="false")
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", *words[1:]], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=300, check=False)
    if result.returncode != 0 and "could not start" in result.stderr:
        require(False, f"the filesystem MCP server (npx, npm registry): {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert shape(result.stdout) == shape(shown)
    # The calls were real: the note's text came from the file, the weather from the stand-in.
    assert "Livraria Lello" in result.stdout
    assert [r["path"] for r in standin.requests] == ["/v1/forecast"]


def test_the_planner_and_its_scenario_check_without_node() -> None:
    """``check --no-mcp`` checks the agent, its HTTP tools and its scenario without
    starting the server (so without Node.js)."""
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", "check", "--no-mcp", "agents/planner/"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "ok: 1 agent(s), 1 scenario(s) checked"  # check reports on stderr
