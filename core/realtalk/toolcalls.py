"""Running a tool's handler: contained, bounded, and never blocking the session.

Sync handlers run on realtalk's own bounded pool of daemon threads
(:class:`~realtalk.toolthreads.ToolThreads`), never the event loop's default executor; an
async handler's synchronous steps are timed, so one that blocks the loop is named; the
output is capped at ``max_output_chars``; and whatever a handler raises (even
``SystemExit``) or returns (even an object whose ``__str__`` raises) becomes an output
for the model (:class:`~realtalk.tools.ToolOutcome`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .results import ApprovalRequest, Approver, ToolCallRecord
from .tools import (
    Tool,
    ToolContext,
    ToolFailed,
    ToolOutcome,
    cap_output,
    error_output,
    format_output,
    validate_arguments,
)
from .toolthreads import ToolThreads, ToolThreadsBusy, default_threads

__all__ = ["ToolThreads", "ToolThreadsBusy", "ask_approval", "default_threads", "execute_call", "run_tool"]

log = logging.getLogger("realtalk.tools")

BLOCK_STEP_S = 0.1  # a synchronous step of an async handler this long blocked the loop
BLOCK_WARN_S = 0.5  # this much blocking in one call earns a note on the console
CANCEL_GRACE_S = 1.0  # how long a cancelled async handler may take to stop
APPROVAL_TIMEOUT_S = 300.0
"""How long a ``requires_approval`` call waits for its yes or no; then it is refused.
Separate from the tool's ``timeout_s``, which starts once the call is approved."""


class _Failed(Exception):
    """A handler raised (anything), or returned a value that cannot become text."""

    def __init__(self, error: BaseException, *, output: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.output = output

    def message(self, tool: str) -> str:
        try:
            detail = str(self.error)
        except Exception:  # noqa: BLE001 - an exception whose __str__ raises is still reported
            detail = "<unprintable>"
        kind = type(self.error).__name__
        if self.output:
            return f"{tool} returned a value that cannot be turned into text: {kind}: {detail}"
        return f"{tool} failed: {kind}: {detail}"


class _TimedOut(Exception):
    pass


@dataclass
class _CallState:
    blocked_s: float = 0.0  # event-loop time spent in synchronous steps of BLOCK_STEP_S or more
    overran: bool = False  # a sync handler's thread outlived the call
    ignored_cancel: bool = False  # an async handler did not stop within CANCEL_GRACE_S

    def step(self, seconds: float) -> None:
        if seconds >= BLOCK_STEP_S:
            self.blocked_s += seconds


class _Stepper:
    """Awaits an awaitable one step at a time, timing each synchronous step.

    A step is the code between two suspensions; while it runs, nothing else on the
    event loop does. Everything else passes through untouched: yielded futures, sent
    values, thrown exceptions (cancellation) and the context the task runs in.
    """

    def __init__(self, awaitable: Awaitable[Any], state: _CallState) -> None:
        self._awaitable = awaitable
        self._state = state
        self.closed = False  # closed from outside, as opposed to a handler raising GeneratorExit

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self._awaitable.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            started = time.perf_counter()
            try:
                yielded = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                self._state.step(time.perf_counter() - started)
            value, error = None, None
            try:
                value = yield yielded
            except GeneratorExit:
                self.closed = True
                close = getattr(steps, "close", None)
                if close is not None:
                    close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task: forwarded to the handler
                error = exc


def _cancelled_by_us() -> bool:
    # A CancelledError is ours when our task is being cancelled; one a handler raises on
    # its own is its error. Before Python 3.11 the two cannot be told apart.
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling is None or cancelling() > 0


async def _contained(start: Callable[[], Awaitable[Any]], state: _CallState) -> str:
    stepper: _Stepper | None = None
    try:
        stepper = _Stepper(start(), state)
        result = await stepper
    except GeneratorExit as exc:
        if stepper is not None and stepper.closed:
            raise
        raise _Failed(exc) from None
    except asyncio.CancelledError as exc:
        if _cancelled_by_us():
            raise
        raise _Failed(exc) from None
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too: they must not end the loop
        raise _Failed(exc) from None
    try:
        return format_output(result)
    except BaseException as exc:  # noqa: BLE001 - a value's __str__ may raise anything
        raise _Failed(exc, output=True) from None


async def _on_loop(start: Callable[[], Awaitable[Any]], timeout: float | None, state: _CallState) -> str:
    # In a task of its own, so a handler that ignores cancellation cannot hold us past
    # the timeout (asyncio.wait_for would wait for it without bound).
    task = asyncio.create_task(_contained(start, state))
    try:
        await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        await _stop(task)
        raise
    if task.done():
        return task.result()
    state.ignored_cancel = not await _stop(task)
    raise _TimedOut


async def _stop(task: asyncio.Task[str]) -> bool:
    """Cancel the handler's task and wait for it a bounded time; True if it ended."""
    task.cancel()
    await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
    if task.done() and not task.cancelled():
        task.exception()  # a result that came too late; retrieved so asyncio does not log it
    return task.done()


def _in_thread(handler: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[str, Any]:
    # Runs in a worker thread: formatting a huge value happens there too, not on the loop.
    try:
        result = handler(**kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported as the tool's error
        return "raised", exc
    if inspect.isawaitable(result):
        return "awaitable", result
    try:
        return "text", format_output(result)
    except BaseException as exc:  # noqa: BLE001 - a value's __str__ may raise anything
        return "unprintable", exc


async def _call(tool: Tool, kwargs: dict[str, Any], state: _CallState, threads: ToolThreads) -> str:
    handler = tool.handler
    assert handler is not None
    timeout = tool.timeout_s
    if inspect.iscoroutinefunction(handler):
        return await _on_loop(lambda: handler(**kwargs), timeout, state)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    job = threads.submit(lambda: _in_thread(handler, kwargs))  # before the first await
    try:
        await asyncio.wait({job.future}, timeout=timeout)
    except asyncio.CancelledError:
        if threads.abandon(job):
            log.info("tool %s (%s) was cancelled; its thread is still running", tool.name, tool.origin)
        raise
    if not job.future.done():
        state.overran = threads.abandon(job)
        raise _TimedOut
    completed, value = job.future.result()
    kind, result = value if completed else ("raised", value)
    if kind == "raised":
        raise _Failed(result)
    if kind == "unprintable":
        raise _Failed(result, output=True)
    if kind == "awaitable":
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        return await _on_loop(lambda: result, remaining, state)
    return str(result)


async def run_tool(
    tool: Tool, arguments: Mapping[str, Any], context: ToolContext, *, threads: ToolThreads | None = None
) -> ToolOutcome:
    """Run a tool's handler with validated arguments; never raises for the handler's sake.

    Async handlers run on the event loop, each synchronous step timed: a handler that
    blocks the loop for ``timeout_s`` is reported as a timeout, and for ``BLOCK_WARN_S``
    gets a note. Sync handlers run on ``threads`` (default: :func:`default_threads`);
    at a timeout the call returns at once and, when its thread is still running, the
    note says so (a thread cannot be killed). Anything the handler raises, including
    ``SystemExit`` and ``KeyboardInterrupt``, is an error output; the output is cut to
    the tool's ``max_output_chars``.

    Args:
        tool: The tool to run.
        arguments: The handler's keyword arguments, as checked (and, for a typed tool,
            converted) by :func:`validate_arguments`: its ``values``.
        context: Passed to a handler that declares a ``context`` parameter.
        threads: The pool for sync handlers.

    Raises:
        asyncio.CancelledError: Only when the calling task itself is cancelled.
    """
    if tool.handler is None:
        return ToolOutcome(error_output(f"{tool.name} has no handler"), "error")
    kwargs = dict(arguments)
    if tool._wants_context:
        kwargs["context"] = context
    state = _CallState()
    notes: list[str] = []
    status: Literal["ok", "error", "timeout"] = "ok"
    started = time.perf_counter()
    try:
        output = await _call(tool, kwargs, state, threads or default_threads())
    except _TimedOut:
        status, output = "timeout", _timeout_output(tool)
        log.warning("tool %s (%s) timed out after %g s", tool.name, tool.origin, tool.timeout_s)
    except _Failed as failed:
        status = "error"
        if isinstance(failed.error, ToolFailed) and not failed.output:  # the tool's own explanation
            output = failed.error.output
            log.info("tool %s (%s) failed: %s", tool.name, tool.origin, output)
        else:
            output = error_output(failed.message(tool.name))
            log.error("tool %s (%s) failed", tool.name, tool.origin, exc_info=failed.error)
    except ToolThreadsBusy as busy:
        status, output = "error", error_output(f"{tool.name} was not run: {busy}")
        notes.append(f"{tool.name} was not run: {busy}")
    elapsed = time.perf_counter() - started
    blocked_past_timeout = tool.timeout_s is not None and 0 < tool.timeout_s <= state.blocked_s
    if blocked_past_timeout and status == "ok":
        status, output = "timeout", _timeout_output(tool)  # a result this late cannot count
    if blocked_past_timeout or state.blocked_s >= BLOCK_WARN_S:
        notes.append(f"{tool.name} blocked the event loop for {state.blocked_s:.1f} s:"
                     " use await asyncio.sleep or a sync handler")
    if state.overran:
        notes.append(f"{tool.name} overran its {tool.timeout_s:g} s timeout; its thread is still running")
    if state.ignored_cancel:
        notes.append(f"{tool.name} ignored cancellation after its {tool.timeout_s:g} s timeout;"
                     " it is still running")
    if len(output) > tool.max_output_chars:
        notes.append(f"{tool.name} returned {len(output):,} characters; the model got the first"
                     f" {tool.max_output_chars:,} (max_output_chars)")
        output = cap_output(output, tool.max_output_chars)
    for note in notes:
        log.warning("tool %s (%s): %s", tool.name, tool.origin, note)
    # Lone surrogates cannot be sent as UTF-8; replaced here, they cannot break the send.
    output = output.encode("utf-8", "replace").decode("utf-8")
    return ToolOutcome(output, status, elapsed, "; ".join(notes) or None)


def _timeout_output(tool: Tool) -> str:
    return error_output(f"{tool.name} timed out after {tool.timeout_s:g} s; the result is unknown")


async def execute_call(record: ToolCallRecord, tool: Tool | None, available: tuple[str, ...],
                       approve: Approver | None) -> ToolOutcome:
    """One call of the model, from its raw arguments to the outcome for the model.

    An unknown tool, arguments that break the schema, and a refused approval are
    outcomes too (the model can act on them); ``available`` names what the calling agent
    may call. The approval waits at most :data:`APPROVAL_TIMEOUT_S`; the handler's
    timeout and the outcome's ``duration_s`` start after it.
    """
    if tool is None:
        known = ", ".join(available) or "none"
        return ToolOutcome(error_output(
            f"unknown tool {record.name!r}: agent {record.agent} can call: {known}"), "unknown_tool")
    check = validate_arguments(tool, record.arguments)
    if check.error is not None or check.arguments is None or check.values is None:
        return ToolOutcome(check.error or "", "invalid_arguments")
    if tool.requires_approval:
        answer = await _approved(approve, ApprovalRequest(tool.name, check.arguments, record.agent, record.call_id))
        if answer is None:
            return ToolOutcome(error_output(
                f"{tool.name} was not approved: nobody answered within {APPROVAL_TIMEOUT_S:g} s;"
                " do not retry unless the user asks"), "refused")
        if not answer:
            return ToolOutcome(error_output(
                f"{tool.name} was not approved by the user; do not retry unless they ask"), "refused")
    return await run_tool(tool, check.values, ToolContext(record.call_id, tool.name, record.agent))


async def ask_approval(approve: Approver | None, request: ApprovalRequest) -> bool | None:
    """The approver's yes or no (no approver: no); None when it did not answer within
    :data:`APPROVAL_TIMEOUT_S`. For ``requires_approval`` tools and hosted MCP calls."""
    return await _approved(approve, request)


async def _approved(approve: Approver | None, request: ApprovalRequest) -> bool | None:
    """The approver's yes or no; None when it did not answer within APPROVAL_TIMEOUT_S."""
    if approve is None:
        return False
    answer = approve(request)
    if inspect.isawaitable(answer):
        waiting = asyncio.ensure_future(answer)
        try:
            await asyncio.wait({waiting}, timeout=APPROVAL_TIMEOUT_S)
        finally:
            if not waiting.done():
                waiting.cancel()
        if not waiting.done() or waiting.cancelled():
            return None
        answer = waiting.result()
    return bool(answer)
