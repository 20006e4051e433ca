"""Benchmark: realtalk's runtime against openai-agents' ``agents.realtime``, same emulator.

Not part of the test suite (pytest collects only ``test_*.py``), and openai-agents is not a
dependency of realtalk: run it from a scratch virtualenv that has both::

    python3 -m venv /tmp/oa && /tmp/oa/bin/pip install openai-agents websockets /work/main
    /tmp/oa/bin/python tests/benchmarks/bench_vs_openai_agents.py --runs 50

realtalk is imported from the work tree this file sits in (``core/`` goes first on
``sys.path``), so the numbers are for the code you have checked out, not for the copy pip
installed; ``--installed-realtalk`` uses the installed copy instead.

Both frameworks talk to a realtalk ``Emulator`` (``fast=True``) on 127.0.0.1 that runs in
the same process and on the same asyncio loop as the client under test, in text-only
sessions with one function tool, ``get_weather``. The scenario turn is::

    user "weather" -> call get_weather {"city": "Lisbon"}; after the tool output: "It is {output}"

Measured:

1. Tool round trip: in one session (one connection), ``--runs`` turns, each from sending the
   user text to the client seeing the turn over (the final ``response.done``, after the tool
   output). realtalk: ``await session.ask(text)``. openai-agents:
   ``await session.send_message(text)``, then its event iterator until a ``raw_model_event``
   carrying a ``response.done`` without a function call. Also, from the emulator's own
   timestamps: the tool turnaround (server sent the function-call ``response.done`` ->
   server received the client's ``response.create`` after the ``function_call_output``).
2. Session start: ``--runs`` fresh sessions (fresh connections to one emulator), from the
   call that starts the session to the client having the ``session.updated`` that carries
   the agent's tools.
3. Correctness, every turn and session (warm-up included): the tool ran exactly once, the
   emulator got exactly two ``response.create`` per turn, no ``error`` event, and the final
   reply carries the tool's output.

The two frameworks run interleaved in one process (turn by turn, session by session, the
order alternating), each against its own emulator, so that load from other processes on the
machine falls on both alike; the garbage collector is frozen after setup (see
``quiet_gc``). Percentiles are nearest-rank over the measured runs (with 50
runs, p99 is the maximum).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import git_commit, percentile  # beside this script

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "openai-agents is not installed in this interpreter; install it in a scratch venv: "
    "python3 -m venv /tmp/oa && /tmp/oa/bin/pip install openai-agents websockets "
    f"{REPO} && /tmp/oa/bin/python {Path(__file__).relative_to(REPO)} --runs 50"
)

TOOL_OUTPUT = "sunny, 21 C"
USER_TEXT = "What's the weather in Lisbon?"
TURN = {
    "user": "weather",
    "reply": [
        {"call": "get_weather", "arguments": {"city": "Lisbon"}},
        {"say": "It is {output}"},
    ],
}
TOOL_DESCRIPTION = "The current weather in a city."
TOOL_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


# -- shared bookkeeping ------------------------------------------------------------------


class ToolCounter:
    """Which turn each tool run belonged to (set ``turn`` before sending the user text)."""

    def __init__(self) -> None:
        self.turn = -1
        self.runs: list[int] = []

    def __call__(self, city: str) -> str:
        self.runs.append(self.turn)
        return TOOL_OUTPUT


@dataclass
class TurnPhase:
    client_ms: list[float] = field(default_factory=list)  # per measured turn
    ends: dict[int, float] = field(default_factory=dict)  # turn -> client saw it over (monotonic)
    tail_ms: list[float] = field(default_factory=list)  # final response.done sent -> client saw it
    turnaround_ms: list[float] = field(default_factory=list)  # emulator clock, measured turns
    server_turn_ms: list[float] = field(default_factory=list)  # emulator clock, measured turns
    problems: list[str] = field(default_factory=list)
    turns_checked: int = 0
    client_errors: int = 0


@dataclass
class StartPhase:
    ready_ms: list[float] = field(default_factory=list)
    entered_ms: list[float] = field(default_factory=list)  # openai-agents: __aenter__ returned
    problems: list[str] = field(default_factory=list)
    sessions_checked: int = 0
    session_updates_sent: list[int] = field(default_factory=list)


def quiet_gc() -> None:
    """Collect, then freeze what exists (imports, sessions): a full collection scanning the
    frameworks' import-time objects takes ~20 ms here and would land on whichever framework
    happens to trigger it. Collections of what the runs allocate still happen."""
    gc.collect()
    gc.freeze()


def check_turns(record: Any, tools: ToolCounter, turns: int, warmup: int, phase: TurnPhase) -> None:
    """Cut one connection's record into turns (at each user message) and check each turn."""
    segments: list[list[Any]] = []
    for rec in record.events:
        event = rec.event
        if (
            rec.direction == "client"
            and event.get("type") == "conversation.item.create"
            and event.get("item", {}).get("type") == "message"
        ):
            segments.append([])
        if segments:
            segments[-1].append(rec)
    if len(segments) != turns:
        phase.problems.append(
            f"{len(segments)} user messages reached the emulator, expected {turns}"
        )
    for index, segment in enumerate(segments):
        phase.turns_checked += 1
        creates = [
            r
            for r in segment
            if r.direction == "client" and r.event.get("type") == "response.create"
        ]
        dones = [
            r for r in segment if r.direction == "server" and r.event.get("type") == "response.done"
        ]
        errors = [
            r.event["error"]
            for r in segment
            if r.direction == "server" and r.event.get("type") == "error"
        ]
        ran = tools.runs.count(index)
        where = f"turn {index}"
        if ran != 1:
            phase.problems.append(f"{where}: the tool ran {ran} times")
        if len(creates) != 2:
            phase.problems.append(f"{where}: {len(creates)} response.create reached the emulator")
        for error in errors:
            phase.problems.append(f"{where}: error {error.get('code')}: {error.get('message')}")
        calls = [
            d
            for d in dones
            if any(o.get("type") == "function_call" for o in d.event["response"]["output"])
        ]
        finals = [d for d in dones if d not in calls]
        final_text = ""
        if finals:
            for out in finals[-1].event["response"]["output"]:
                for part in out.get("content") or []:
                    final_text += part.get("text") or part.get("transcript") or ""
        if TOOL_OUTPUT not in final_text:
            phase.problems.append(f"{where}: the final reply {final_text!r} lacks the tool output")
        if index < warmup or not calls or not finals:
            continue
        after_call = [c for c in creates if c.t >= calls[0].t]
        if after_call:
            phase.turnaround_ms.append((after_call[0].t - calls[0].t) * 1000)
        phase.server_turn_ms.append((finals[-1].t - segment[0].t) * 1000)
        if index in phase.ends:
            phase.tail_ms.append((phase.ends[index] - finals[-1].t) * 1000)


def check_start(record: Any, phase: StartPhase) -> None:
    phase.sessions_checked += 1
    phase.session_updates_sent.append(len(record.client_events("session.update")))
    for error in record.errors():
        phase.problems.append(
            f"session {phase.sessions_checked - 1}: error {error.get('code')}: "
            f"{error.get('message')}"
        )


def has_tool(session_payload: dict[str, Any]) -> bool:
    return any(t.get("name") == "get_weather" for t in session_payload.get("tools") or [])


# -- realtalk ----------------------------------------------------------------------------


def realtalk_agent_file() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-rt-"))
    path = folder / "weather.yaml"
    path.write_text(
        "name: weather\ninstructions: Answer questions about the weather.\ntools: [get_weather]\n"
    )
    return path


def realtalk_plugin(tools: ToolCounter) -> object:
    import realtalk

    class WeatherTools:
        @realtalk.hookimpl
        def register_tools(self, register: Any) -> None:
            register(
                "get_weather",
                description=TOOL_DESCRIPTION,
                parameters=TOOL_PARAMETERS,
                handler=tools,
            )

    return WeatherTools()


class RealtalkTurns:
    name = "realtalk"

    def __init__(self, phase: TurnPhase, tools: ToolCounter) -> None:
        self.phase, self.tools = phase, tools

    async def open(self, stack: contextlib.AsyncExitStack, emu: Any) -> None:
        from realtalk.runner import open_session

        def on_event(event: Any) -> None:
            if event.type == "error":
                self.phase.client_errors += 1

        self.session = await stack.enter_async_context(
            open_session(
                realtalk_agent_file(),
                emulator=emu,
                text_only=True,
                extra_plugins=[realtalk_plugin(self.tools)],
                listeners=[on_event],
            )
        )

    async def turn(self) -> tuple[float, float]:
        start = time.monotonic()
        await self.session.ask(USER_TEXT, timeout=30)
        end = time.monotonic()
        return start, end


async def realtalk_open_session(emu: Any, agent_file: Path, plugin: object) -> tuple[float, float]:
    """``open_session`` (loads plugins and the agent YAML, connects, configures) to ready."""
    from realtalk.runner import open_session

    start = time.perf_counter()
    async with open_session(agent_file, emulator=emu, text_only=True, extra_plugins=[plugin]):
        elapsed = (time.perf_counter() - start) * 1000
    return elapsed, elapsed


async def realtalk_session_start(emu: Any, agent_file: Path, plugin: object) -> tuple[float, float]:
    """``Session.start()`` alone (plugins and agent loaded beforehand, untimed) to ready."""
    from realtalk.runner import load_target, make_profile
    from realtalk.session import Session

    target = load_target(agent_file, extra=[plugin])
    session = Session(
        target.graph,
        target.agent,
        target.plugins.registry,
        make_profile(target, url=emu.url),
        text_only=True,
    )
    start = time.perf_counter()
    await session.start()
    elapsed = (time.perf_counter() - start) * 1000
    await session.close()
    return elapsed, elapsed


# -- openai-agents -----------------------------------------------------------------------


def oa_agent(tools: ToolCounter) -> Any:
    from agents.realtime import RealtimeAgent

    from agents import function_tool

    @function_tool(name_override="get_weather", description_override=TOOL_DESCRIPTION)
    def get_weather(city: str) -> str:
        return tools(city)

    return RealtimeAgent(
        name="weather", instructions="Answer questions about the weather.", tools=[get_weather]
    )


def oa_runner(agent: Any) -> Any:
    from agents.realtime import RealtimeRunner

    # Text-only, as realtalk's text_only=True. Everything else is openai-agents' default.
    return RealtimeRunner(agent, config={"model_settings": {"output_modalities": ["text"]}})


def oa_model_config(emu: Any) -> dict[str, Any]:
    # The URL replaces the whole default (wss://api.openai.com/v1/realtime?model=...), so the
    # emulator's required ?model= query goes in it; any non-empty key will do.
    return {"url": emu.url + "?model=gpt-realtime", "api_key": "emulator"}


def is_raw(event: Any, type_: str) -> dict[str, Any] | None:
    if event.type != "raw_model_event" or getattr(event.data, "type", None) != "raw_server_event":
        return None
    data = event.data.data
    return data if isinstance(data, dict) and data.get("type") == type_ else None


def is_configured(event: Any) -> bool:
    data = is_raw(event, "session.updated")
    return bool(data and has_tool(data["session"]))


def is_turn_over(event: Any) -> bool:
    data = is_raw(event, "response.done")
    return bool(
        data and not any(o.get("type") == "function_call" for o in data["response"]["output"])
    )


class OpenAIAgentsTurns:
    name = "openai-agents"

    def __init__(self, phase: TurnPhase, tools: ToolCounter) -> None:
        self.phase, self.tools = phase, tools

    async def open(self, stack: contextlib.AsyncExitStack, emu: Any) -> None:
        session = await oa_runner(oa_agent(self.tools)).run(model_config=oa_model_config(emu))
        self.session = await stack.enter_async_context(session)
        self.events = self.session.__aiter__()
        await self.until(is_configured)  # the same starting line as realtalk's open_session

    async def until(self, match: Callable[[Any], bool]) -> None:
        while True:
            event = await asyncio.wait_for(self.events.__anext__(), 30)
            if event.type == "error":
                self.phase.client_errors += 1
            if match(event):
                return

    async def turn(self) -> tuple[float, float]:
        start = time.monotonic()
        await self.session.send_message(USER_TEXT)
        await self.until(is_turn_over)
        end = time.monotonic()
        return start, end


async def oa_session_start(emu: Any, runner: Any) -> tuple[float, float]:
    """``runner.run()`` + ``__aenter__`` until the configured ``session.updated`` is seen."""
    start = time.perf_counter()
    session = await runner.run(model_config=oa_model_config(emu))
    async with session:
        entered = (time.perf_counter() - start) * 1000
        async for event in session:
            if is_configured(event):
                break
        elapsed = (time.perf_counter() - start) * 1000
        await asyncio.sleep(0.02)  # let its second (tracing) session.update be answered too
    return elapsed, entered


# -- the phases: both frameworks interleaved, so background load hits them alike ----------


async def turn_phase(runs: int, warmup: int, gap: float) -> list[TurnPhase]:
    from realtalk.emulator import Emulator

    total = runs + warmup
    phases = [TurnPhase(), TurnPhase()]
    counters = [ToolCounter(), ToolCounter()]
    clients: list[RealtalkTurns | OpenAIAgentsTurns] = [
        RealtalkTurns(phases[0], counters[0]),
        OpenAIAgentsTurns(phases[1], counters[1]),
    ]
    emus = [Emulator({"turns": [TURN] * total}, fast=True) for _ in clients]
    async with contextlib.AsyncExitStack() as stack:
        for emu, client in zip(emus, clients):
            await stack.enter_async_context(emu)
            await client.open(stack, emu)
        quiet_gc()
        for index in range(total):
            for k in (0, 1) if index % 2 == 0 else (1, 0):
                await asyncio.sleep(gap)
                counters[k].turn = index
                start, end = await clients[k].turn()
                phases[k].ends[index] = end
                if index >= warmup:
                    phases[k].client_ms.append((end - start) * 1000)
        await asyncio.sleep(0.3)  # a late, extra response.create would show up now
        for emu, counter, phase in zip(emus, counters, phases):
            check_turns(emu.connections[-1], counter, total, warmup, phase)
    return phases


async def start_phase(runs: int, warmup: int, gap: float) -> list[StartPhase]:
    from realtalk.emulator import Emulator

    agent_file = realtalk_agent_file()
    plugin = realtalk_plugin(ToolCounter())
    runner = oa_runner(oa_agent(ToolCounter()))
    starters: list[Callable[[Any], Any]] = [
        lambda emu: realtalk_open_session(emu, agent_file, plugin),
        lambda emu: realtalk_session_start(emu, agent_file, plugin),
        lambda emu: oa_session_start(emu, runner),
    ]
    phases = [StartPhase() for _ in starters]
    emus = [Emulator({"turns": []}, fast=True) for _ in starters]
    async with contextlib.AsyncExitStack() as stack:
        for emu in emus:
            await stack.enter_async_context(emu)
        quiet_gc()
        for index in range(runs + warmup):
            shift = index % len(starters)
            for k in [*range(shift, len(starters)), *range(shift)]:
                await asyncio.sleep(gap)
                ready, entered = await starters[k](emus[k])
                updated = emus[k].connections[-1].server_events("session.updated")
                if not updated or not has_tool(updated[0]["session"]):
                    phases[k].problems.append(f"session {index}: no session.updated with the tool")
                if index >= warmup:
                    phases[k].ready_ms.append(ready)
                    phases[k].entered_ms.append(entered)
        await asyncio.sleep(0.1)
        for emu, phase in zip(emus, phases):
            for record in emu.connections:
                check_start(record, phase)
    return phases


# -- report ------------------------------------------------------------------------------


def row(name: str, values: list[float], cols: tuple[float, ...]) -> str:
    if not values:
        return f"| {name} | " + " | ".join("-" for _ in cols) + " |"
    return f"| {name} | " + " | ".join(f"{percentile(sorted(values), q):.2f}" for q in cols) + " |"


def report_problems(
    name: str, problems: list[str], checked: int, what: str, client_errors: int = 0
) -> None:
    extra = f", {client_errors} client-side error event(s)" if client_errors else ""
    print(f"- {name}: {len(problems)} violation(s) in {checked} {what}{extra}")
    for line in problems[:10]:
        print(f"    {line}")
    if len(problems) > 10:
        print(f"    ... and {len(problems) - 10} more")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--runs", type=int, default=50, help="measured turns, and measured sessions"
    )
    parser.add_argument(
        "--warmup", type=int, default=5, help="turns/sessions run first, checked, not timed"
    )
    parser.add_argument(
        "--gap-ms", type=float, default=10.0, help="idle time before each turn/session"
    )
    parser.add_argument(
        "--installed-realtalk",
        action="store_true",
        help="benchmark the installed realtalk, not the work tree's core/",
    )
    args = parser.parse_args()
    if not args.installed_realtalk:
        sys.path.insert(0, str(REPO / "core"))
    try:
        import agents.realtime  # noqa: F401

        oa_version = importlib.metadata.version("openai-agents")
    except ImportError:
        print(INSTALL_HINT)
        return 2
    import realtalk

    gap = args.gap_ms / 1000
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    versions = (
        f"realtalk {realtalk.__version__} from {Path(realtalk.__file__).parent} "
        f"(commit {git_commit(REPO)}); openai-agents {oa_version}; "
        f"openai {importlib.metadata.version('openai')}; "
        f"websockets {importlib.metadata.version('websockets')}"
    )
    print(f"command: (cd {REPO} && {command})")
    machine = f"{platform.platform()}, {os.cpu_count()} CPU(s)"
    print(f"machine: {machine}, Python {platform.python_version()}")
    print(versions)
    print(
        "emulator: realtalk.emulator.Emulator(fast=True) on 127.0.0.1, in the same process and "
        "on the same asyncio loop as the client under test; text-only sessions"
    )
    print(
        f"runs: {args.runs} measured + {args.warmup} warm-up; {args.gap_ms:g} ms idle before each; "
        "the frameworks alternate (turn by turn), each with its own emulator"
    )

    load_before = os.getloadavg()
    rt_turns, oa_turns = asyncio.run(turn_phase(args.runs, args.warmup, gap))
    rt_open, rt_start, oa_start = asyncio.run(start_phase(args.runs, args.warmup, gap))
    load_after = os.getloadavg()
    loads = [" ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after)]
    print(f"load average (1/5/15 min) before: {loads[0]}, after: {loads[1]}\n")

    print(f"Tool round trip, one session, {args.runs} turns (ms)")
    print("| | p50 | p95 | p99 |\n|---|---|---|---|")
    for label, values in (
        ("realtalk `session.ask` (client clock)", rt_turns.client_ms),
        (
            "openai-agents `send_message` -> final `response.done` seen (client clock)",
            oa_turns.client_ms,
        ),
        ("realtalk tool turnaround (emulator clock)", rt_turns.turnaround_ms),
        ("openai-agents tool turnaround (emulator clock)", oa_turns.turnaround_ms),
        (
            "realtalk user message in -> final `response.done` out (emulator clock)",
            rt_turns.server_turn_ms,
        ),
        (
            "openai-agents user message in -> final `response.done` out (emulator clock)",
            oa_turns.server_turn_ms,
        ),
        ("realtalk final `response.done` out -> `ask` returned", rt_turns.tail_ms),
        (
            "openai-agents final `response.done` out -> its event iterator yields it",
            oa_turns.tail_ms,
        ),
    ):
        print(row(label, values, (0.5, 0.95, 0.99)))
    print(
        "\ntool turnaround: the emulator sent the function-call response.done -> it received "
        "the client's next response.create\n"
    )

    print(f"Session start, {args.runs} fresh sessions (ms)")
    print("| | p50 | p95 |\n|---|---|---|")
    for label, values in (
        ("realtalk `open_session` (loads plugins + agent YAML) -> ready", rt_open.ready_ms),
        ("realtalk `Session.start()` (agent preloaded) -> ready", rt_start.ready_ms),
        (
            "openai-agents `runner.run()` + `__aenter__` -> `session.updated` seen",
            oa_start.ready_ms,
        ),
        (
            "openai-agents `runner.run()` + `__aenter__` returned (not configured yet)",
            oa_start.entered_ms,
        ),
    ):
        print(row(label, values, (0.5, 0.95)))
    for name, phase in (("realtalk", rt_start), ("openai-agents", oa_start)):
        print(f"session.update sent per session, {name}: {sorted(set(phase.session_updates_sent))}")

    print(
        "\nCorrectness (warm-up included): the tool ran once, 2 response.create per turn, "
        "no error, the reply carries the tool output"
    )
    report_problems(
        "realtalk turns", rt_turns.problems, rt_turns.turns_checked, "turns", rt_turns.client_errors
    )
    report_problems(
        "openai-agents turns",
        oa_turns.problems,
        oa_turns.turns_checked,
        "turns",
        oa_turns.client_errors,
    )
    for name, start_phase_ in (
        ("realtalk sessions (open_session)", rt_open),
        ("realtalk sessions (Session.start)", rt_start),
        ("openai-agents sessions", oa_start),
    ):
        report_problems(name, start_phase_.problems, start_phase_.sessions_checked, "sessions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
