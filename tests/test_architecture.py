"""Import rules of the architecture, checked on the source (parsed with ``ast``, never imported).

- The sans-I/O core (``protocol/``, the emulator's ``protocol.py`` and ``responses.py``) imports no
  asyncio, websockets, numpy, sounddevice or soxr.
- Only the socket layers import websockets: ``connection.py`` (client) and the emulator's
  ``adapter.py`` and ``server.py``.
- Only ``audio/`` imports sounddevice, and only inside functions (importing it loads
  PortAudio).
- The serve extra (starlette, uvicorn, prometheus_client) is imported only by ``serve/``,
  and by ``cli/serve.py`` only inside functions (``realtalk --version`` and the other
  commands never load it); the server's rules (``serve/access.py``, ``serve/caller.py``)
  are sans-I/O like the protocol.
- No module uses ``asyncio.wait_for``: before Python 3.12 it loses a cancellation (a Ctrl-C
  or SIGTERM) that lands with the result; ``realtalk.waits.within`` is the bounded wait.

Direct imports are checked for every module; for the sans-I/O core, also every realtalk
module it imports at module level, all the way down (``protocol/client.py`` may use
``realtalk.tools``'s data types, but never drag asyncio in through them).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "core" / "realtalk"

SANS_IO_BANNED = ("asyncio", "websockets", "numpy", "sounddevice", "soxr")
WEBSOCKETS_ALLOWED = {
    "connection.py",
    "emulator/adapter.py",
    "emulator/server.py",
}


SERVE_EXTRA = ("starlette", "uvicorn", "prometheus_client")


def sans_io(module: str) -> bool:
    return module.startswith("protocol/") or module in (
        "emulator/protocol.py", "emulator/responses.py", "emulator/hosted.py", "hostedmcp.py",
        "serve/access.py", "serve/caller.py")


def imports(tree: ast.AST) -> Iterator[tuple[str, int, bool]]:
    """``(top-level package, line, inside a function)`` of every absolute import."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name.split(".")[0], child.lineno, in_function
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module.split(".")[0], child.lineno, in_function
            yield from walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    yield from walk(tree, False)


def wait_for_uses(tree: ast.AST) -> Iterator[int]:
    """Lines that use ``asyncio.wait_for`` (called, or imported from asyncio)."""
    for node in ast.walk(tree):
        attribute = isinstance(node, ast.Attribute) and node.attr == "wait_for" and (
            isinstance(node.value, ast.Name) and node.value.id == "asyncio")
        imported = isinstance(node, ast.ImportFrom) and node.module == "asyncio" and (
            any(alias.name == "wait_for" for alias in node.names))
        if attribute or imported:
            yield node.lineno  # type: ignore[attr-defined]


def violations(module: str, source: str) -> list[str]:
    """What ``module`` (a path under ``core/realtalk``) breaks, one line each."""
    problems = []
    tree = ast.parse(source)
    for line in wait_for_uses(tree):
        problems.append(f"core/realtalk/{module}:{line}: uses asyncio.wait_for, which can lose a Ctrl-C"
                        " before Python 3.12; use realtalk.waits.within")
    for package, line, in_function in imports(tree):
        where = f"core/realtalk/{module}:{line}"
        if sans_io(module) and package in SANS_IO_BANNED:
            problems.append(f"{where}: imports {package}, but the sans-I/O core does no I/O")
        if package == "websockets" and module not in WEBSOCKETS_ALLOWED:
            problems.append(f"{where}: imports websockets; only {', '.join(sorted(WEBSOCKETS_ALLOWED))} may")
        if package in SERVE_EXTRA and not module.startswith("serve/") and not (
                module == "cli/serve.py" and in_function):
            problems.append(f"{where}: imports {package} (the serve extra); only serve/ may, and"
                            " cli/serve.py inside functions")
        if package == "sounddevice" and not module.startswith("audio/"):
            problems.append(f"{where}: imports sounddevice; only audio/ may")
        elif package == "sounddevice" and not in_function:
            problems.append(f"{where}: imports sounddevice at module level (it loads PortAudio); import it"
                            " inside the function that needs it")
    return problems


def modules() -> list[str]:
    return sorted(p.relative_to(CORE).as_posix() for p in CORE.rglob("*.py"))


def test_the_tree_is_there() -> None:
    found = modules()
    assert "connection.py" in found and "protocol/events.py" in found and "audio/capture.py" in found
    assert sum(map(sans_io, found)) >= 5


@pytest.mark.parametrize("module", modules())
def test_module_follows_the_import_rules(module: str) -> None:
    assert violations(module, (CORE / module).read_text(encoding="utf-8")) == []


# --- each rule can fail ------------------------------------------------------------------


@pytest.mark.parametrize("package", SANS_IO_BANNED)
def test_sans_io_core_may_not_import_io(package: str) -> None:
    source = f"from __future__ import annotations\n\ndef later():\n    from {package}.sub import thing\n"
    for module in ("protocol/vocab.py", "protocol/client.py", "emulator/protocol.py"):
        problems = violations(module, source)
        assert f"core/realtalk/{module}:4: imports {package}, but the sans-I/O core does no I/O" in problems
    assert violations("protocol/client.py", "import json\nfrom .arbiter import Arbiter\n") == []


def test_only_the_socket_layers_import_websockets() -> None:
    source = "import json\nimport websockets.asyncio.client\n"
    assert violations("session.py", source) == [
        ("core/realtalk/session.py:2: imports websockets; only connection.py, emulator/adapter.py,"
        " emulator/server.py may")]
    assert violations("connection.py", source) == []
    assert violations("emulator/adapter.py", "from websockets.asyncio.server import serve\n") == []


@pytest.mark.parametrize("package", SERVE_EXTRA)
def test_only_serve_imports_the_serve_extra(package: str) -> None:
    assert violations("session.py", f"import {package}\n") == [
        (f"core/realtalk/session.py:1: imports {package} (the serve extra); only serve/ may, and"
         " cli/serve.py inside functions")]
    assert len(violations("cli/serve.py", f"from {package} import x\n")) == 1
    assert violations("cli/serve.py", f"def main():\n    import {package}\n") == []
    assert violations("serve/app.py", f"from {package} import x\n") == []


def test_only_audio_imports_sounddevice_and_only_in_functions() -> None:
    at_module_level = "import sounddevice as sd\n"
    in_function = "def devices():\n    import sounddevice\n    return sounddevice.query_devices()\n"
    in_method = "class Mic:\n    async def open(self):\n        import sounddevice\n"
    assert violations("audio/capture.py", at_module_level) == [
        ("core/realtalk/audio/capture.py:1: imports sounddevice at module level (it loads PortAudio);"
        " import it inside the function that needs it")]
    assert violations("audio/capture.py", in_function) == []
    assert violations("audio/capture.py", in_method) == []
    assert violations("cli/commands.py", in_function) == [
        "core/realtalk/cli/commands.py:2: imports sounddevice; only audio/ may"]


# --- the sans-I/O core, transitively ------------------------------------------------------


def internal_imports(module: str, source: str) -> list[str]:
    """Realtalk modules (paths under ``core/realtalk``) ``module`` imports at module level."""
    found = []
    here = Path(module).parent
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here
            for _ in range(node.level - 1):
                base = base.parent
            names = [node.module] if node.module else [alias.name for alias in node.names]
            for name in names:
                path = base.joinpath(*name.split("."))
                for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                    if (CORE / candidate).exists():
                        found.append(candidate.as_posix())
                        break
    return found


def reached(module: str) -> set[str]:
    """``module`` and every realtalk module it imports at module level, transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += internal_imports(current, (CORE / current).read_text(encoding="utf-8"))
    return seen


@pytest.mark.parametrize("module", [m for m in modules() if sans_io(m)])
def test_the_sans_io_core_reaches_no_io_through_realtalk_modules(module: str) -> None:
    problems = []
    for dependency in sorted(reached(module)):
        for package, line, in_function in imports(ast.parse((CORE / dependency).read_text(encoding="utf-8"))):
            if package in SANS_IO_BANNED and not in_function:
                problems.append(f"core/realtalk/{dependency}:{line}: imports {package} (reached from {module})")
    assert problems == []


def test_the_transitive_rule_follows_relative_imports() -> None:
    assert internal_imports("protocol/client.py", "from ..tools import Tool\nfrom .arbiter import X\n") == [
        "tools.py", "protocol/arbiter.py"]
    assert "toolcalls.py" not in reached("protocol/client.py")  # the asyncio half of tools
    assert {"tools.py", "protocol/arbiter.py", "agents.py"} <= reached("protocol/client.py")


def test_no_module_uses_asyncio_wait_for() -> None:
    message = "uses asyncio.wait_for, which can lose a Ctrl-C before Python 3.12; use realtalk.waits.within"
    called = "import asyncio\n\nasync def f(e):\n    await asyncio.wait_for(e.wait(), 1)\n"
    assert violations("session.py", called) == [f"core/realtalk/session.py:4: {message}"]
    assert violations("serve/hub.py", "from asyncio import wait_for\n") == [f"core/realtalk/serve/hub.py:1: {message}"]
    assert violations("session.py", "from .waits import within\n\nasync def f(e):\n    await within(e.wait(), 1)\n") == []
