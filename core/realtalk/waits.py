"""A bounded wait that never loses a cancellation: use :func:`within`, not ``asyncio.wait_for``.

Before Python 3.12, ``asyncio.wait_for`` returns the awaited result when a cancellation
arrives in the same loop step as that result (it checks ``fut.done()`` first and drops
the ``CancelledError``). Ctrl-C and SIGTERM stop realtalk by cancelling its task, so a
signal landing just as, say, a server event wakes a wait was lost: the loop went on
waiting, and the run ended only when the tool or the turn did.

:func:`within` waits with ``asyncio.wait`` on a task instead: a cancellation of the
waiting task always propagates, whatever state the awaited work is in. Cancelled work
gets a bounded grace (``CANCEL_GRACE_S``) to end, where ``wait_for`` waits without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["CANCEL_GRACE_S", "within"]

T = TypeVar("T")

CANCEL_GRACE_S = 2.0  # how long cancelled work may take to end before we go on without it


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Await ``awaitable`` for at most ``timeout`` seconds (None: no bound).

    Like ``asyncio.wait_for``: the work is cancelled when the time is up or when the
    caller is cancelled (and given ``CANCEL_GRACE_S`` to end). Unlike it on Python
    < 3.12, the caller's cancellation is never swallowed, even when the work finished
    in the same step.

    Raises:
        TimeoutError: The work did not finish in time (it has been cancelled).
    """
    work = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({work}, timeout=None if timeout is None else max(timeout, 0.0))
    except asyncio.CancelledError:
        await _drop(work)
        raise
    if not done:
        await _drop(work)
        raise asyncio.TimeoutError  # (the built-in TimeoutError from Python 3.11 on)
    return work.result()


async def _drop(work: asyncio.Future[Any]) -> None:
    """Cancel the work and let it end (bounded); retrieve its error so asyncio does not log it."""
    if not work.done():
        work.cancel()
        await asyncio.wait({work}, timeout=CANCEL_GRACE_S)
    if work.done() and not work.cancelled():
        work.exception()
