"""A conversation with tools, its socket dropped after every possible server event in turn.

Three turns against the emulator: a tool call then a reply; two parallel tool calls then
a reply; a plain reply. For each N, the emulator aborts the first connection (no close
frame) right after sending its N-th event; the session must reconnect and finish every
turn. What the emulator holds on the last connection must be the whole conversation:
every user message once and in order, every function call answered exactly once, no
assistant reply twice; and no tool may have run twice.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk.emulator import Emulator
from realtalk.exceptions import RealtalkError
from realtalk.runner import open_session
from realtalk.tools import ToolContext

ASK_TIMEOUT = 2.0  # a healthy turn, reconnect included, takes milliseconds on loopback
MARGIN = 3.0  # beyond ASK_TIMEOUT before an ask counts as hung

SCENARIO: dict[str, Any] = {"turns": [
    {"user": "weather", "reply": [{"call": "weather", "arguments": {"city": "Lisbon"}},
                                  {"say": "It is {output.temp_c} degrees in Lisbon."}]},
    {"user": "both", "reply": [{"call": "weather", "arguments": {"city": "Oslo"}},
                               {"call": "stock", "arguments": {"item": "towels"}},
                               {"say": "Oslo is mild and towels are in stock."}]},
    {"user": "thanks", "reply": [{"say": "You are welcome."}]},
]}
USER_TEXTS = ["weather in Lisbon?", "both: Oslo weather and towels", "thanks"]
EVENTS = 90  # server events of the whole conversation without a drop (checked below)


class Tools:
    """Tools that count their runs, by call and by arguments."""

    __name__ = "sweep-tools"

    def __init__(self) -> None:
        self.runs: collections.Counter[tuple[str, str]] = collections.Counter()
        self.call_ids: collections.Counter[str] = collections.Counter()

    @realtalk.hookimpl
    def register_tools(self, register: realtalk.Registrar) -> None:
        register("weather", description="Weather in a city", handler=self.weather,
                 parameters={"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]})
        register("stock", description="Stock level", handler=self.stock,
                 parameters={"type": "object", "properties": {"item": {"type": "string"}},
                             "required": ["item"]})

    def weather(self, city: str, context: ToolContext) -> dict[str, Any]:
        self.runs["weather", city] += 1
        self.call_ids[context.call_id] += 1
        return {"city": city, "temp_c": 21}

    def stock(self, item: str, context: ToolContext) -> dict[str, Any]:
        self.runs["stock", item] += 1
        self.call_ids[context.call_id] += 1
        return {"item": item, "count": 3}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "front.yaml"
    path.write_text("description: Front desk\ninstructions: You are the front desk.\ntools: [weather, stock]\n")
    return path


async def converse(agent: Path, drop_after: int | None) -> tuple[Emulator, Tools, list[str]]:
    """Run the three turns; return the emulator, the tools, and what went wrong."""
    tools = Tools()
    problems: list[str] = []
    async with Emulator(SCENARIO, fast=True, drop_after_events=drop_after) as emu:
        try:
            async with open_session(agent, emulator=emu, text_only=True, extra_plugins=[tools],
                                    backoff_s=0.01) as session:
                for text in USER_TEXTS:
                    task = asyncio.ensure_future(session.ask(text, timeout=ASK_TIMEOUT))
                    done, _ = await asyncio.wait({task}, timeout=ASK_TIMEOUT + MARGIN)
                    if not done:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                        problems.append(f"ask({text!r}) still running after {ASK_TIMEOUT + MARGIN} s")
                        break
                    exc = task.exception()
                    if exc is not None:
                        problems.append(f"ask({text!r}) raised {type(exc).__name__}: {exc}")
                        break
        except RealtalkError as exc:  # a drop is never the user's problem: reported, not raised
            problems.append(f"the session raised {type(exc).__name__}: {exc}")
    return emu, tools, problems


def conversation(emu: Emulator) -> list[dict[str, Any]]:
    """The items the emulator holds on its last connection, in order."""
    items: dict[str, dict[str, Any]] = {}
    for event in emu.connections[-1].server_events():
        if event["type"] == "conversation.item.done":
            items[event["item"]["id"]] = event["item"]
        elif event["type"] == "conversation.item.deleted":
            items.pop(event["item_id"], None)
    return list(items.values())


def conversation_problems(emu: Emulator, tools: Tools) -> list[str]:
    problems: list[str] = []
    items = conversation(emu)
    users = [part.get("text") for i in items if i.get("role") == "user" for part in i["content"]]
    if users != USER_TEXTS:
        problems.append(f"the user messages on the last connection are {users}, not {USER_TEXTS}")
    calls = collections.Counter(i["call_id"] for i in items if i["type"] == "function_call")
    outputs = collections.Counter(i["call_id"] for i in items if i["type"] == "function_call_output")
    for call_id in calls | outputs:
        if (calls[call_id], outputs[call_id]) != (1, 1):
            problems.append(f"call {call_id}: {calls[call_id]} call item(s) and {outputs[call_id]} output(s)")
    replies = collections.Counter(" ".join(str(p.get("text") or p.get("transcript")) for p in i["content"])
                                  for i in items if i.get("role") == "assistant")
    problems += [f"assistant reply {text!r} is there {n} times" for text, n in replies.items() if n > 1]
    problems += [f"tool {name}({arg}) ran {n} times" for (name, arg), n in tools.runs.items() if n > 1]
    problems += [f"call {cid} ran {n} times" for cid, n in tools.call_ids.items() if n > 1]
    busy = [e for e in emu.errors() if e.get("code") == "conversation_already_has_active_response"]
    if busy:
        problems.append(f"{len(busy)} response.create sent while a response was active")
    return problems


async def test_the_sweep_covers_every_event(agent: Path) -> None:
    """Without a drop: the conversation is whole and has EVENTS server events."""
    emu, tools, problems = await converse(agent, None)
    assert problems + conversation_problems(emu, tools) == []
    assert len(emu.connections) == 1
    assert len(emu.server_events()) == EVENTS, "update EVENTS: the sweep must reach every event"
    assert sorted(tools.runs) == [("stock", "towels"), ("weather", "Lisbon"), ("weather", "Oslo")]


@pytest.mark.parametrize("drop_after", range(1, EVENTS + 1))
async def test_drop_after_event(agent: Path, drop_after: int) -> None:
    emu, tools, problems = await converse(agent, drop_after)
    assert emu.connections[0].dropped, "the drop fault did not fire"
    problems += conversation_problems(emu, tools)
    assert problems == [], "\n".join(problems)
