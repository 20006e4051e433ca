"""Fixtures of the realtalk-mcp tests: the plugin as realtalk finds it, and real MCP servers.

The plugin is found through its entry point when it is installed (CI installs it, as the
README's test command does); otherwise it is given to realtalk in-process (``extra``)
and, for ``realtalk`` subprocesses, through a site folder holding its entry point.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
SERVER = Path(__file__).resolve().parent / "mcp_server.py"
STARTUP_S = 20.0  # bound on the HTTP server's start (a cold Python import of the SDK)


def _installed() -> bool:
    try:
        importlib.metadata.distribution("realtalk-mcp")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


INSTALLED = _installed()
if not INSTALLED:
    sys.path.insert(0, str(PLUGIN_ROOT))

import realtalk.typedtools  # noqa: F401 - compiled (assertion rewriting) here, not deep in a test's stack
import realtalk_mcp


@pytest.fixture
def extra() -> list[object]:
    """What ``open_session(extra_plugins=...)`` needs for realtalk to see the plugin."""
    return [] if INSTALLED else [realtalk_mcp]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``realtalk`` subprocess that finds the plugin by its entry point."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_PLUGINS")}
    env["REALTALK_CACHE_DIR"] = str(tmp_path / ".cache")
    if not INSTALLED:
        site = tmp_path / "site"
        info = site / "realtalk_mcp-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: realtalk-mcp\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text("[realtalk]\nrealtalk_mcp = realtalk_mcp\n")
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(PLUGIN_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class HttpServer:
    """The test server over streamable HTTP: its URL and its process."""

    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """The test server over streamable HTTP on a loopback port."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, str(SERVER), "http", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert process.poll() is None, "the HTTP MCP server exited while starting"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"the HTTP MCP server did not listen within {STARTUP_S} s"
                time.sleep(0.05)  # polling a port that is not open yet; not a race fix
        yield HttpServer(f"http://127.0.0.1:{port}/mcp", process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
