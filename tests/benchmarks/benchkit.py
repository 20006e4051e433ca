"""What the benchmark scripts share (imported from beside them: they run as scripts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["git_commit"]


def git_commit(repo: Path) -> str:
    """``HEAD``'s short hash, with ``+dirty core/`` when ``core/`` has uncommitted changes."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "core"],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + ("+dirty core/" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"
