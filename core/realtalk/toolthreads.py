"""realtalk's own bounded pool of daemon threads for sync tool handlers.

Not the event loop's default executor, and not ``concurrent.futures``: see
:class:`ToolThreads` for why.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ToolJob", "ToolThreads", "ToolThreadsBusy", "default_threads"]


class ToolThreadsBusy(RuntimeError):
    """No thread can take a sync call: too many hang past their timeouts, or wait."""


class ToolJob:
    """One sync call on :class:`ToolThreads`; ``future`` settles on the loop."""

    __slots__ = ("abandoned", "context", "finished", "fn", "future", "loop", "running")

    def __init__(self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        self.context = contextvars.copy_context()
        self.running = False
        self.finished = False
        self.abandoned = False


class ToolThreads:
    """realtalk's own pool of daemon threads for sync handlers.

    Not the event loop's default executor: a handler that never returns must starve
    neither later tools nor ``getaddrinfo`` (which a reconnect needs), and must not hold
    the program at exit (``asyncio.run`` joins the default executor, and the interpreter
    joins ``ThreadPoolExecutor`` threads; these are daemon threads nobody waits for).

    Bounded: at most ``workers`` threads run calls that are within their timeout; a call
    that overruns is abandoned and its thread no longer counts, but at most
    ``max_overrun`` such threads may exist, and at most ``max_queued`` calls may wait
    for a thread. Beyond either bound :meth:`submit` refuses with :class:`ToolThreadsBusy`.
    Idle threads end after ``idle_s`` seconds.
    """

    def __init__(
        self, workers: int = 8, *, max_overrun: int = 64, max_queued: int = 64, idle_s: float = 60.0
    ) -> None:
        self.workers = workers
        self.max_overrun = max_overrun
        self.max_queued = max_queued
        self._idle_s = idle_s
        self._lock = threading.Condition()
        self._pending: collections.deque[ToolJob] = collections.deque()
        self._threads = 0
        self._idle = 0
        self._overrun = 0
        self._count = 0

    @property
    def overrun(self) -> int:
        """Threads still running a call that was abandoned at its timeout."""
        with self._lock:
            return self._overrun

    def submit(self, fn: Callable[[], Any]) -> ToolJob:
        """Queue ``fn`` in the current context; call from the event loop's thread.

        The job's future gets ``(True, result)`` or ``(False, exception)``; it never
        holds an exception itself, so not even ``SystemExit`` can escape through it.

        Raises:
            ToolThreadsBusy: A bound is reached; the message says which.
        """
        job = ToolJob(fn, asyncio.get_running_loop())
        with self._lock:
            if self._overrun >= self.max_overrun:
                raise ToolThreadsBusy(
                    f"{self._overrun} earlier sync tool calls are still running past their"
                    " timeouts; fix the tool that hangs and restart"
                )
            if len(self._pending) >= self.max_queued:
                raise ToolThreadsBusy(f"{len(self._pending)} sync tool calls are already waiting for a thread")
            self._pending.append(job)
            try:
                self._grow()
            except RuntimeError as exc:  # "can't start new thread": the process is at its limit
                if self._threads == self._overrun:  # no worker will ever take it
                    self._pending.remove(job)
                    raise ToolThreadsBusy(f"cannot start a thread: {exc}") from None
            self._lock.notify()
        return job

    def abandon(self, job: ToolJob) -> bool:
        """Give up on a job (its call timed out or was cancelled).

        Returns:
            True when its handler is still running in its thread (it overran); a job
            that had not started yet is dropped and never runs.
        """
        with self._lock:
            if job.finished:
                return False
            if not job.running:
                job.abandoned = True
                self._pending.remove(job)
                return False
            job.abandoned = True
            self._overrun += 1
            try:
                self._grow()  # the hung thread no longer counts: let another take the queue
            except RuntimeError:  # no thread to spare: the queued calls wait or time out
                pass
            return True

    def _grow(self) -> None:
        # Called with the lock held. Raises RuntimeError when no thread can be started.
        if len(self._pending) > self._idle and self._threads - self._overrun < self.workers:
            self._count += 1
            thread = threading.Thread(target=self._work, name=f"realtalk-tool-{self._count}", daemon=True)
            thread.start()
            self._threads += 1

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
                while not self._pending:
                    if not self._lock.wait(self._idle_s) and not self._pending:
                        self._idle -= 1
                        self._threads -= 1
                        return
                self._idle -= 1
                job = self._pending.popleft()
                job.running = True
            try:
                outcome: tuple[bool, Any] = (True, job.context.run(job.fn))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine, which reports it
                outcome = (False, exc)
            with self._lock:
                job.finished = True
                if job.abandoned:
                    self._overrun -= 1
                    outcome = (True, None)  # nobody waits: drop the result and its references
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, outcome)
            except RuntimeError:  # the loop is closed: nobody waits for this result any more
                pass
            del job, outcome


def _settle(future: asyncio.Future[tuple[bool, Any]], outcome: tuple[bool, Any]) -> None:
    if not future.done():
        future.set_result(outcome)


_default_threads: ToolThreads | None = None


def default_threads() -> ToolThreads:
    """The process's pool for sync handlers, created on first use."""
    global _default_threads
    if _default_threads is None:
        _default_threads = ToolThreads()
    return _default_threads
