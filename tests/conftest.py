"""Shared test fixtures.

Tests that need something outside Python (PortAudio, espeak-ng) ask for it through the
``require`` fixture: under ``CI=true`` a missing dependency fails the test, elsewhere it
skips, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def require() -> Callable[[bool, str], None]:
    """Return ``require(ok, what)``: fail under CI, skip elsewhere, when ``ok`` is false."""

    def check(ok: bool, what: str) -> None:
        if ok:
            return
        if _in_ci():
            pytest.fail(f"missing test dependency under CI=true: {what}")
        pytest.skip(f"missing test dependency: {what}")

    return check


class PluginFactory:
    """Writes real installed distributions (dist-info + entry point) into a site dir.

    Tests use it to exercise the same discovery path ``pip install`` gives a
    third-party plugin: ``importlib.metadata`` entry points in the ``realtalk`` group.
    """

    def __init__(self, site: Path) -> None:
        self.site = site

    def __call__(
        self,
        dist: str,
        source: str,
        *,
        version: str = "1.0.0",
        files: dict[str, str] | None = None,
        entry_point: str | None = None,
    ) -> Path:
        module = dist.replace("-", "_")
        package = self.site / module
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(textwrap.dedent(source))
        for name, text in (files or {}).items():
            (package / name).write_text(textwrap.dedent(text))
        info = self.site / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            f"[realtalk]\n{entry_point or module} = {module}\n"
        )
        return package


@pytest.fixture
def make_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PluginFactory:
    """A factory of installed plugin distributions, on sys.path for this test only."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return PluginFactory(site)
