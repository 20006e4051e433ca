"""realtalk.waits.within: a bounded wait that never loses the caller's cancellation (the
Ctrl-C and SIGTERM of ``realtalk run`` and ``realtalk transcribe`` are cancellations)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from realtalk.waits import within

Wait = Callable[[Awaitable[str], float], Awaitable[str]]


async def cancelled_as_the_work_finishes(wait: Wait) -> str:
    """Cancel the waiting task in the very step its work finishes; what did the wait do?"""
    outer: asyncio.Task[str] | None = None

    async def work() -> str:
        assert outer is not None
        outer.cancel()  # lands together with the result below
        return "result"

    async def waiting() -> str:
        await wait(work(), 10)
        return "returned: the cancellation was lost"

    outer = asyncio.create_task(waiting())
    try:
        return await asyncio.wait_for(outer, 10)
    except asyncio.CancelledError:
        if outer.cancelled():
            return "cancelled"
        raise


async def test_a_cancellation_landing_with_the_result_is_not_lost() -> None:
    assert await cancelled_as_the_work_finishes(within) == "cancelled"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asyncio.wait_for was fixed in Python 3.12")
async def test_asyncio_wait_for_loses_it_before_python_3_12() -> None:
    # Why within exists: the same race, with wait_for, goes on as if nothing happened.
    assert await cancelled_as_the_work_finishes(asyncio.wait_for) == "returned: the cancellation was lost"


async def test_the_result_and_the_error_of_the_work_come_through() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    assert await within(asyncio.sleep(0, "x"), 10) == "x"
    assert await within(asyncio.sleep(0, "y"), None) == "y"
    with pytest.raises(ValueError, match="broken"):
        await within(fails(), 10)


async def test_past_the_bound_the_work_is_cancelled_and_it_times_out() -> None:
    never = asyncio.Event()
    work: asyncio.Task[Any] = asyncio.ensure_future(never.wait())
    with pytest.raises(asyncio.TimeoutError):
        await within(work, 0.05)
    assert work.cancelled()


async def test_a_cancelled_caller_cancels_the_work() -> None:
    started = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    async def hangs() -> None:
        tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        started.set()
        await asyncio.Event().wait()

    waiting = asyncio.ensure_future(within(hangs(), 10))
    await within(started.wait(), 10)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert tasks[0].cancelled()
