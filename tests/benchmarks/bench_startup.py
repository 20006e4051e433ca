"""Benchmark: start-up, ``realtalk --version``, ``realtalk check agents/`` and ``open_session``.

Not part of the test suite (pytest collects only ``test_*.py``). Run it with::

    .venv/bin/python tests/benchmarks/bench_startup.py            # 20 runs each
    .venv/bin/python tests/benchmarks/bench_startup.py --runs 50

Commands run as fresh processes, alternating with a bare interpreter (``python -c pass``)
so that both see the same machine load; the medians are compared. The YAML parse is the
in-process time to load the files ``check agents/`` reads (the agents, the scenario and
the clock plugin's ``tools.yaml``); ``import jsonschema`` is shown too: ``check`` validates
agent files and tool schemas with it, so no import trick removes either.
``open_session`` is timed in-process against one running ``Emulator(fast=True)``, after
a warm-up session, so the emulator's own start is not counted; ``load_target`` (plugins
and agents, no socket) is the part of it before ``Session.start()``.

Commands get a bytecode cache outside the work tree (``PYTHONPYCACHEPREFIX``), as an
installed wheel has one, unless ``--no-bytecode``. To compare with another version, run
the benchmark with ``PYTHONPATH=<that tree>/core`` (its ``realtalk`` script then imports
that tree too), or pass ``--baseline <that tree>``: its commands then run interleaved with
these, and its in-process rows in a child process, in the same run.

``realtalk check`` keeps good verdicts and the entry points on disk (``realtalk.cache``):
the commands get their own cache folder, filled by the warm-up round, as a user's is
after the first check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"
BIN = Path(sys.executable).parent


def _realtalk() -> list[str]:
    script = BIN / "realtalk"
    return [str(script)] if script.exists() else [sys.executable, "-m", "realtalk.cli"]


def time_commands(commands: dict[str, list[str]], runs: int, env: dict[str, str],
                  baseline: str | None = None) -> dict[str, list[float]]:
    """Wall times (ms) of each command, run ``runs`` times in turn, after one warm-up each;
    those named ``base: ...`` with ``PYTHONPATH=<baseline>/core``."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    base_env = {**env, "PYTHONPATH": str(Path(baseline or ".").resolve() / "core")}
    for index in range(runs + 1):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, cwd=ROOT, env=base_env if name.startswith("base: ") else env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if index:  # the first round warms the file cache
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def time_yaml_parse(runs: int) -> list[float]:
    """In-process time (ms) to parse the YAML files ``check agents/`` reads."""
    from realtalk.yamlfile import load_yaml

    files = sorted(AGENTS.glob("*.yaml")) + sorted(ROOT.glob("plugins/*/*/tools.yaml"))
    texts = {file: file.read_text("utf-8") for file in files}
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        for file, text in texts.items():
            load_yaml(file, text)
        out.append((time.perf_counter() - start) * 1000)
    return out


def time_load_target(runs: int) -> list[float]:
    """In-process time (ms) of ``load_target``: what open_session does before connecting."""
    from realtalk.runner import load_target

    load_target(AGENTS, "concierge")
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        load_target(AGENTS, "concierge")
        out.append((time.perf_counter() - start) * 1000)
    return out


async def time_open_session(runs: int) -> list[float]:
    """In-process time (ms) of ``open_session`` entering against one running emulator."""
    from realtalk.emulator import Emulator
    from realtalk.runner import open_session

    out = []
    async with Emulator(AGENTS / "concierge.scenario.yaml", fast=True) as emu:
        async with open_session(AGENTS, agent="concierge", emulator=emu):
            pass  # warm-up: imports, first plugin load
        for _ in range(runs):
            start = time.perf_counter()
            async with open_session(AGENTS, agent="concierge", emulator=emu):
                out.append((time.perf_counter() - start) * 1000)
    return out


def in_process(runs: int) -> dict[str, list[float]]:
    """The in-process rows: the YAML parse, open_session, load_target."""
    return {
        "YAML parse (check's files)": time_yaml_parse(runs),
        "open_session (emulator up)": asyncio.run(time_open_session(runs)),
        "  of which load_target": time_load_target(runs),
    }


def _row(name: str, values: list[float], bare: float | None = None) -> str:
    median = statistics.median(values)
    p90 = sorted(values)[int(len(values) * 0.9) - 1] if len(values) >= 10 else max(values)
    ratio = f"  {median / bare:4.1f}x bare" if bare else ""
    return f"{name:<28} median {median:7.1f} ms   p90 {p90:7.1f} ms{ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-bytecode", action="store_true",
                        help="compile realtalk's modules on every start (PYTHONDONTWRITEBYTECODE)")
    parser.add_argument("--baseline", metavar="TREE", help="also time the realtalk of this work tree, interleaved")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # the baseline's child
    args = parser.parse_args()

    # An installed wheel has its bytecode cached; a work tree may not (PYTHONDONTWRITEBYTECODE
    # is common in containers), so by default the commands get a cache outside the tree.
    env = dict(os.environ)
    if not args.no_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "realtalk-bench-pycache")

    if args.in_process:
        print(json.dumps(in_process(args.runs)))
        return
    env["REALTALK_CACHE_DIR"] = str(Path(tempfile.mkdtemp(prefix="realtalk-bench-cache-")))

    realtalk = _realtalk()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import realtalk'": [sys.executable, "-c", "import realtalk"],
        "realtalk --version": [*realtalk, "--version"],
        "realtalk check agents/": [*realtalk, "check", "agents/"],
        "realtalk check agents/*.yaml": [*realtalk, "check", "agents/concierge.yaml", "agents/billing.yaml"],
        # What check needs when anything new is to be validated.
        "python -c 'import jsonschema'": [sys.executable, "-c", "import jsonschema"],
    }
    if args.baseline:
        # The baseline tree's code, through this interpreter (and this console script).
        base = {f"base: {name}": argv for name, argv in commands.items() if "realtalk" in name}
        commands.update(base)
    times = time_commands(commands, args.runs, env, baseline=args.baseline)
    bare = statistics.median(times["python -c pass"])
    rows = in_process(args.runs)
    if args.baseline:
        child = subprocess.run([sys.executable, __file__, "--in-process", "--runs", str(args.runs)], cwd=ROOT,
                               env={**env, "PYTHONPATH": str(Path(args.baseline).resolve() / "core")},
                               capture_output=True, text=True, check=True)
        rows.update({f"base: {name}": values for name, values in json.loads(child.stdout).items()})

    cache = "no bytecode cache" if args.no_bytecode else "bytecode cached"
    print(f"{args.runs} runs each, Python {sys.version.split()[0]}, {cache},"
          f" load {os.getloadavg()[0]:.2f}")
    for name, values in times.items():
        print(_row(name, values, None if name == "python -c pass" else bare))
    budget = 2 * bare + statistics.median(rows["YAML parse (check's files)"])
    for name, values in rows.items():
        print(_row(name, values))
    print(f"{'target: 2x bare + YAML':<28} {budget:14.1f} ms")


if __name__ == "__main__":
    main()
