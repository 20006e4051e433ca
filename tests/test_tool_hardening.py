"""What a plugin's handler can do to a session, and how run_tool contains it.

One section per class of failure: sync handlers that hang (their own pool of daemon
threads), async handlers that block the event loop, huge outputs, handlers that raise or
return anything at all, tool names that two distributions register, and lint.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from realtalk.agents import load_agents
from realtalk.exceptions import ConfigError, ToolDefinitionError
from realtalk.plugins import load_plugins
from realtalk.tools import (
    DEFAULT_MAX_OUTPUT_CHARS,
    Tool,
    ToolContext,
    ToolOutcome,
    ToolThreads,
    cap_output,
    load_tool_definitions,
    make_tool,
    run_tool,
)

ROOT = Path(__file__).resolve().parent.parent
NO_ARGS = {"type": "object", "properties": {}}
CTX = ToolContext(call_id="call_1", tool="get_x", agent="concierge")


def tool(handler: Any, **options: Any) -> Tool:
    return make_tool("get_x", "Gets x", NO_ARGS, handler, plugin="realtalk-test", plugin_version="1.0",
                     **options)


async def run_until_started(t: Tool, entered: threading.Event, threads: ToolThreads | None = None) -> ToolOutcome:
    """Run a sync tool whose handler sets ``entered``, holding the loop until it has.

    run_tool hands a sync call to its thread before its first await, so after one
    ``sleep(0)`` the call is queued; blocking the loop until the handler runs means its
    timeout can only fire once the handler is running: the timeout is then an overrun.
    """
    task = asyncio.create_task(run_tool(t, {}, CTX, threads=threads))
    await asyncio.sleep(0)
    assert entered.wait(10), "the handler never started"
    return await task


# --- 1. sync handlers have their own bounded pool of daemon threads ---------------------


async def test_hung_sync_tools_starve_neither_later_tools_nor_getaddrinfo() -> None:
    release = threading.Event()
    # One more than the loop's default executor has threads on this machine.
    hung = min(32, (os.cpu_count() or 1) + 4) + 1
    try:
        for _ in range(hung):
            entered = threading.Event()

            def hang(entered: threading.Event = entered) -> None:
                entered.set()
                release.wait(60)

            outcome = await run_until_started(tool(hang, timeout_s=0.01), entered)
            assert outcome.status == "timeout"
            assert outcome.note == "get_x overran its 0.01 s timeout; its thread is still running"
        later = await run_tool(tool(lambda: "fine", timeout_s=10), {}, CTX)
        assert (later.status, later.output) == ("ok", "fine")
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.getaddrinfo("localhost", 80), 10)
    finally:
        release.set()


async def test_pool_refuses_a_call_when_too_many_threads_overran() -> None:
    release = threading.Event()
    entered = threading.Event()

    def hang() -> None:
        entered.set()
        release.wait(60)

    threads = ToolThreads(workers=1, max_overrun=1)
    try:
        first = await run_until_started(tool(hang, timeout_s=0.01), entered, threads)
        assert first.status == "timeout" and threads.overrun == 1
        second = await run_tool(tool(lambda: "never", timeout_s=10), {}, CTX, threads=threads)
        assert second.status == "error"
        assert json.loads(second.output)["error"] == (
            "get_x was not run: 1 earlier sync tool calls are still running past their timeouts;"
            " fix the tool that hangs and restart")
        assert second.note is not None and second.note.startswith("get_x was not run")
    finally:
        release.set()


def test_program_with_a_hung_sync_tool_exits_when_its_run_ends(tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text(textwrap.dedent("""
        import asyncio, threading, time
        from realtalk.tools import ToolContext, make_tool, run_tool

        entered = threading.Event()

        def hang():
            entered.set()
            time.sleep(3600)

        async def main():
            t = make_tool("hang", "Hangs", {"type": "object"}, hang, plugin="p", timeout_s=0.01)
            task = asyncio.create_task(run_tool(t, {}, ToolContext("c", "hang", "a")))
            await asyncio.sleep(0)
            entered.wait(10)
            outcome = await task
            print(outcome.status, outcome.note, flush=True)

        asyncio.run(main())
    """))
    # The bound: asyncio.run used to wait for the default executor, i.e. the hour.
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "timeout hang overran its 0.01 s timeout; its thread is still running\n"


async def test_cancelling_a_sync_call_propagates() -> None:
    release = threading.Event()
    entered = threading.Event()

    def hang() -> None:
        entered.set()
        release.wait(60)

    try:
        task = asyncio.create_task(run_tool(tool(hang), {}, CTX))
        await asyncio.sleep(0)
        assert entered.wait(10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        release.set()


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


async def test_contextvars_reach_sync_and_async_handlers() -> None:
    async def in_loop() -> str:
        return REQUEST_ID.get()

    REQUEST_ID.set("req-7")
    assert (await run_tool(tool(lambda: REQUEST_ID.get()), {}, CTX)).output == "req-7"
    assert (await run_tool(tool(in_loop), {}, CTX)).output == "req-7"


# --- 2. async handlers that block the event loop ----------------------------------------


async def test_async_tool_that_blocks_past_its_timeout_is_a_timeout_naming_it() -> None:
    async def get_x() -> str:
        time.sleep(0.3)  # noqa: ASYNC251 - the bug under test: blocking in an async handler
        return "late"

    outcome = await run_tool(tool(get_x, timeout_s=0.1), {}, CTX)
    assert outcome.status == "timeout"
    assert json.loads(outcome.output) == {"error": "get_x timed out after 0.1 s; the result is unknown"}
    assert outcome.note is not None
    assert outcome.note.startswith("get_x blocked the event loop for ")
    assert outcome.note.endswith(" s: use await asyncio.sleep or a sync handler")


async def test_a_shorter_block_keeps_the_result_with_a_warning() -> None:
    async def get_x() -> str:
        await asyncio.sleep(0)
        time.sleep(0.6)  # noqa: ASYNC251 - blocking, but for less than its timeout
        return "result"

    outcome = await run_tool(tool(get_x, timeout_s=30), {}, CTX)
    assert (outcome.status, outcome.output) == ("ok", "result")
    assert outcome.note is not None and "get_x blocked the event loop for" in outcome.note


async def test_a_well_behaved_async_tool_has_no_note() -> None:
    async def get_x() -> str:
        await asyncio.sleep(0.01)
        return "result"

    outcome = await run_tool(tool(get_x), {}, CTX)
    assert (outcome.status, outcome.output, outcome.note) == ("ok", "result", None)


async def test_async_tool_that_ignores_cancellation_is_abandoned_at_its_timeout() -> None:
    stop = asyncio.Event()

    async def get_x() -> None:
        while not stop.is_set():
            try:
                await stop.wait()
            except asyncio.CancelledError:
                continue  # the bug under test

    outcome = await run_tool(tool(get_x, timeout_s=0.01), {}, CTX)
    stop.set()
    assert outcome.status == "timeout"
    assert outcome.note == "get_x ignored cancellation after its 0.01 s timeout; it is still running"


async def test_cancellation_and_exceptions_pass_through_the_step_timer() -> None:
    started = asyncio.Event()
    cleaned = asyncio.Event()

    async def get_x() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    task = asyncio.create_task(run_tool(tool(get_x), {}, CTX))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()  # the handler saw the cancellation

    async def raises() -> None:
        await asyncio.sleep(0)
        raise LookupError("no x today")

    outcome = await run_tool(tool(raises), {}, CTX)
    assert json.loads(outcome.output) == {"error": "get_x failed: LookupError: no x today"}


async def test_a_cancelled_error_the_handler_raises_itself_is_its_error() -> None:
    async def get_x() -> None:
        raise asyncio.CancelledError

    outcome = await run_tool(tool(get_x), {}, CTX)
    assert outcome.status == "error" and "CancelledError" in outcome.output


# --- 3. output size cap -----------------------------------------------------------------


async def test_huge_output_is_cut_to_valid_json_with_a_note() -> None:
    huge = "x" * 5_000_000
    outcome = await run_tool(tool(lambda: huge), {}, CTX)
    assert outcome.status == "ok"
    assert len(outcome.output) <= DEFAULT_MAX_OUTPUT_CHARS
    envelope = json.loads(outcome.output)
    assert envelope["truncated"] is True and envelope["original_chars"] == 5_000_000
    assert huge.startswith(envelope["output"]) and len(envelope["output"]) > 15_000
    assert outcome.note == ("get_x returned 5,000,000 characters; the model got the first 16,000"
                            " (max_output_chars)")


async def test_output_cap_is_per_tool_and_holds_for_json_that_escapes() -> None:
    rows = [{"quote": '"\\\n' * 10} for _ in range(1000)]
    outcome = await run_tool(tool(lambda: rows, max_output_chars=500), {}, CTX)
    assert len(outcome.output) <= 500
    envelope = json.loads(outcome.output)
    assert json.dumps(rows).startswith(envelope["output"][:10])
    assert len(cap_output("\x00" * 10_000, 100)) <= 100  # \u0000 is six characters


def test_max_output_chars_is_validated(tmp_path: Path) -> None:
    for bad in (10, "big", True, 1.5):
        with pytest.raises(ToolDefinitionError, match="max_output_chars must be an integer of at least 100"):
            tool(print, max_output_chars=bad)
    path = tmp_path / "tools.yaml"
    path.write_text("tools:\n  - name: t\n    description: d\n    handler: platform:python_version\n"
                    "    max_output_chars: 2000\n")
    [t] = load_tool_definitions(path, plugin="p")
    assert t.max_output_chars == 2000


def test_registrar_takes_max_output_chars(make_plugin: Any) -> None:
    make_plugin("realtalk-capped", """
        import realtalk

        @realtalk.hookimpl
        def register_tools(register):
            register("capped", description="x", handler=print, max_output_chars=300)
    """)
    plugins = load_plugins(allow=["realtalk-capped"])
    assert plugins.problems == []
    assert plugins.registry.get("capped").max_output_chars == 300  # type: ignore[union-attr]


# --- 4. anything a handler raises or returns ---------------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


class BadMessage(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message either")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_value_whose_str_raises_is_the_tools_error(kind: str) -> None:
    async def in_loop() -> Any:
        return {"value": Unprintable()}

    handler = in_loop if kind == "async" else lambda: Unprintable()
    outcome = await run_tool(tool(handler), {}, CTX)
    assert outcome.status == "error"
    assert json.loads(outcome.output) == {
        "error": "get_x returned a value that cannot be turned into text: RuntimeError: no text for you"}


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), BadMessage()])
async def test_any_base_exception_is_the_tools_error_and_logged(
    kind: str, error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    def sync() -> None:
        raise error

    async def in_loop() -> None:
        raise error

    outcome = await run_tool(tool(in_loop if kind == "async" else sync), {}, CTX)
    assert outcome.status == "error"
    assert json.loads(outcome.output)["error"].startswith(f"get_x failed: {type(error).__name__}")
    [record] = [r for r in caplog.records if r.name == "realtalk.tools"]
    assert record.levelname == "ERROR" and "realtalk-test 1.0" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is error


async def test_output_that_cannot_be_sent_as_utf8_is_repaired() -> None:
    outcome = await run_tool(tool(lambda: "half a pair: \ud83d"), {}, CTX)
    assert outcome.output.encode("utf-8") == b"half a pair: ?"


# --- 5. tool names that two distributions register --------------------------------------

SAME_NAME = """
    import realtalk

    @realtalk.hookimpl
    def register_tools(register):
        register("same_name", description="Same", handler=print)
"""


def test_conflicts_are_recorded_and_refused_for_agents_that_use_them(make_plugin: Any, tmp_path: Path) -> None:
    make_plugin("realtalk-amb-a", SAME_NAME, version="1.0.0")
    make_plugin("realtalk-amb-b", SAME_NAME, version="2.0.0")
    plugins = load_plugins(allow=["realtalk-amb-a", "realtalk-amb-b"])
    assert plugins.registry.conflicts("same_name") == ["realtalk-amb-a 1.0.0", "realtalk-amb-b 2.0.0"]
    assert plugins.registry.conflicts("other") == []
    agent = tmp_path / "amb.yaml"
    agent.write_text("instructions: x\ntools:\n  - same_name\n")
    graph = load_agents([agent], plugins.registry)
    [problem] = graph.problems
    assert str(problem) == f"{agent}:3: {plugins.registry.ambiguous('same_name')}"
    with pytest.raises(ConfigError, match="ambiguous"):
        graph.tools_for(graph.agents["amb"], plugins.registry)
    chosen = load_plugins(allow=["realtalk-amb-a", "realtalk-amb-b"], block=["realtalk-amb-b"])
    assert load_agents([agent], chosen.registry).problems == []


def test_realtalk_run_refuses_an_ambiguous_tool_in_one_line(make_plugin: Any, tmp_path: Path) -> None:
    make_plugin("realtalk-amb-a", SAME_NAME, version="1.0.0")
    make_plugin("realtalk-amb-b", SAME_NAME, version="2.0.0")
    agent = tmp_path / "amb.yaml"
    agent.write_text("instructions: x\ntools:\n  - same_name\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(make_plugin.site), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-m", "realtalk.cli", "run", str(agent), "--emulator",
                             "--text", "hi"], capture_output=True, text=True, env=env, timeout=60,
                            check=False, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [(
        f"realtalk: error: {agent}:3: tool 'same_name' is ambiguous: it is registered by"
        " realtalk-amb-a 1.0.0 and realtalk-amb-b 2.0.0; leave all but one out with --no-plugin"
        " realtalk-amb-b or --no-plugin realtalk-amb-a, or list the plugins to load in REALTALK_PLUGINS"
    )]
