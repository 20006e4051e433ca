"""What the benchmark scripts share (imported from beside them: they run as scripts)."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

__all__ = [
    "fmt",
    "git",
    "git_commit",
    "niced",
    "percentile",
    "ramp_steps",
    "rss_bytes",
    "runq_seconds",
]


def git(repo: Path, *args: str, check: bool = False) -> str:
    """The output of ``git -C repo ARGS`` (5 s timeout; ``check``: raise if git fails)."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=check,
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout


def git_commit(repo: Path) -> str:
    """``HEAD``'s short hash, with ``+dirty core/`` when ``core/`` has uncommitted changes."""
    try:
        head = git(repo, "rev-parse", "--short", "HEAD")
        dirty = git(repo, "status", "--porcelain", "--", "core")
        return head.strip() + ("+dirty core/" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank below; NaN when empty."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"  # NaN: no data


def ramp_steps(step: int, max_sessions: int) -> list[int]:
    """``step``, 2*``step``... up to 6*``step``, then by 2*``step`` up to ``max_sessions``."""
    steps, n = [], step
    while n <= max_sessions:
        steps.append(n)
        n += step if n < 6 * step else 2 * step
    return steps


def niced(nice: int, cmd: list[str]) -> list[str]:
    """``cmd`` run at niceness ``nice`` (unchanged for 0)."""
    return ["nice", "-n", str(nice), *cmd] if nice else cmd


def rss_bytes(pid: int | str = "self") -> int:
    """A process's resident set size, from ``/proc/PID/statm``."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def runq_seconds(pid: int) -> float:
    """Time a process's main thread was runnable but waited for a CPU held by others.

    ``/proc/PID/schedstat`` is the thread group leader's own line (as
    ``/proc/PID/task/PID/schedstat``), not a sum over the threads.
    """
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9
