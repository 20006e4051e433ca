"""Shared test fixtures.

Tests that need something outside Python (PortAudio, espeak-ng) ask for it through the
``require`` fixture: under ``CI=true`` a missing dependency fails the test, elsewhere it
skips, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Callable

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
