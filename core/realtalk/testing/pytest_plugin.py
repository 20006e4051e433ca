"""The realtalk pytest plugin (entry point ``pytest11``): fixtures for agent and plugin tests.

- ``emulator``: a running emulator (:class:`~realtalk.testing.ThreadedEmulator`), with the
  scenario of the ``realtalk_scenario`` marker if the test has one.
- ``async def`` tests that use ``emulator`` run on a fresh event loop even without
  pytest-asyncio's ``asyncio_mode`` setting; when pytest-asyncio (or anyio, or trio)
  handles a test, it is left to them.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..exceptions import ScenarioError
from . import ThreadedEmulator

__all__ = ["emulator"]

_OTHER_RUNNERS = ("asyncio", "anyio", "trio")  # markers of plugins that run async tests


def _marker_scenario(request: pytest.FixtureRequest) -> Any:
    """The marker's scenario; a relative path is looked up from the working directory,
    then beside the test file."""
    marker = request.node.get_closest_marker("realtalk_scenario")
    if marker is None or not marker.args:
        return None
    scenario = marker.args[0]
    if isinstance(scenario, (str, Path)) and not Path(scenario).is_file():
        beside = Path(request.node.path).parent / scenario
        if not beside.is_file():
            raise ScenarioError(f"realtalk_scenario: scenario file {str(scenario)!r} not found "
                                f"(looked for {Path(scenario).resolve()} and {beside})")
        scenario = beside
    return scenario


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[ThreadedEmulator]:
    """A running Realtime emulator, served from a background thread.

    Give it a scenario with ``emulator.use(mapping_or_path)``, or with the marker
    ``@pytest.mark.realtalk_scenario(mapping_or_path)``. Pass it to
    :func:`realtalk.testing.converse`.
    """
    server = ThreadedEmulator(_marker_scenario(request))
    try:
        yield server
    finally:
        server.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test that uses ``emulator`` when no async plugin claimed it.

    pytest-asyncio in auto mode (or a test marked ``asyncio``) has already turned the
    test into a plain function by now, so this only acts where pytest would otherwise
    refuse the test ("async def functions are not natively supported").
    """
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test) or "emulator" not in pyfuncitem.fixturenames:
        return None
    if any(pyfuncitem.get_closest_marker(name) for name in _OTHER_RUNNERS):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(test(**arguments))
    return True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realtalk_scenario(scenario): the emulator fixture's scenario (mapping or path)"
    )
