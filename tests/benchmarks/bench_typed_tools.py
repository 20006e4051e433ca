"""What typed tools cost: pydantic's import, deriving schemas, checking arguments.

Run on demand (not by pytest): ``python tests/benchmarks/bench_typed_tools.py``. Each
figure is CPU time (``time.process_time``), the median over fresh interpreters, so other
processes on the machine disturb it little. The numbers back the pydantic decision in
``docs/plugins/typed-tools.md``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from benchkit import git_commit

ROOT = Path(__file__).resolve().parents[2]
RUNS = 7

IMPORT = "import time\nt = time.process_time()\nimport {module}\nprint((time.process_time() - t) * 1e3)"

TOOLS = r'''
import datetime, time
import realtalk.tools
from realtalk.tools import make_tool, schema_problem, validate_arguments
from realtalk.typedtools import typed_tool

def find_table(date: datetime.date, party_size: int, time_: str) -> list[str]:
    """Free tables.

    Args:
        date: Day.
        party_size: People.
        time_: HH:MM.
    """
    return []

def book_table(date: datetime.date, name: str, size: int = 2) -> str:
    """Book."""
    return ""

schema_problem({"type": "object"})  # jsonschema loaded, as in any registration
t0 = time.process_time(); typed = typed_tool(find_table, plugin="p")
t1 = time.process_time(); typed_tool(book_table, plugin="p")
t2 = time.process_time()
plain = make_tool("plain", "d", typed.parameters, lambda date, party_size, time_: None, plugin="p")
raw = '{"date": "2026-05-01", "party_size": 4, "time_": "19:00"}'
validate_arguments(typed, raw); validate_arguments(plain, raw)
n = 2000
s = time.process_time()
for _ in range(n): validate_arguments(plain, raw)
m = time.process_time()
for _ in range(n): validate_arguments(typed, raw)
e = time.process_time()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (m - s) / n * 1e6, (e - m) / n * 1e6)
'''


def median_of(code: str) -> list[float]:
    rows = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
        rows.append([float(v) for v in out.stdout.split()])
    return [statistics.median(column) for column in zip(*rows)]


def main() -> None:
    print(f"commit {git_commit(ROOT)}, Python {sys.version.split()[0]}, CPU time, median of {RUNS} interpreters")
    for module in ("pydantic", "jsonschema"):
        print(f"import {module}: {median_of(IMPORT.format(module=module))[0]:.0f} ms")
    first, further, plain, typed = median_of(TOOLS)
    print(f"first typed tool registered (pydantic's import included): {first:.0f} ms")
    print(f"each further typed tool: {further:.1f} ms")
    print(f"one call's arguments checked: schema only {plain:.0f} us, typed (schema + conversion) {typed:.0f} us")


if __name__ == "__main__":
    main()
