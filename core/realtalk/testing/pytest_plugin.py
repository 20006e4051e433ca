"""The realtalk pytest plugin (entry point ``pytest11``): fixtures for agent and plugin tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import ThreadedEmulator

__all__ = ["emulator"]


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[ThreadedEmulator]:
    """A running Realtime emulator, served from a background thread.

    Give it a scenario with ``emulator.use(mapping_or_path)``, or with the marker
    ``@pytest.mark.realtalk_scenario(mapping_or_path)``. Pass it to
    :func:`realtalk.testing.converse`.
    """
    marker = request.node.get_closest_marker("realtalk_scenario")
    scenario = marker.args[0] if marker and marker.args else None
    server = ThreadedEmulator(scenario)
    try:
        yield server
    finally:
        server.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realtalk_scenario(scenario): the emulator fixture's scenario (mapping or path)"
    )
