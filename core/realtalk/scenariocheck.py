"""Scenario files checked against the agents they script, for ``realtalk check``.

:func:`realtalk.emulator.scenario.check_scenario_file` checks a scenario's own shape;
:func:`check_scenario` then follows it through the agent graph of ``AGENT.yaml`` beside
``AGENT.scenario.yaml``. The emulator runs turns in file order and may skip some (the
first unused turn that matches runs), so the agents that can be active at a turn are the
starting agent and every agent an earlier turn hands off to; within a turn, a handoff
step makes its target the active agent. Each ``call`` must name a tool one of those
agents lists, each ``handoff`` an agent one of them hands off to, and mapping
``arguments`` must pass the tool's JSON Schema with the validator the runtime uses
(:func:`realtalk.tools.validate_arguments`). A string ``arguments`` is sent verbatim,
unchecked, so a test can send a malformed call on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .agents import AgentGraph, AgentSpec
from .exceptions import ScenarioError
from .tools import ToolRegistry, validate_arguments
from .yamlfile import YamlDocument, did_you_mean, load_yaml

__all__ = ["agent_file_for", "check_scenario"]


def agent_file_for(scenario: Path) -> Path:
    """``AGENT.yaml`` for ``AGENT.scenario.yaml`` (whether it exists or not)."""
    stem = scenario.name.removesuffix(".yaml").removesuffix(".yml").removesuffix(".scenario")
    return scenario.with_name(stem + ".yaml")


def check_scenario(
    file: Path, graph: AgentGraph, registry: ToolRegistry, *,
    block: Iterable[str] = (), tool_files: Iterable[str | Path] = (),
) -> list[ScenarioError]:
    """Every problem of one scenario file: its shape, then its calls and handoffs.

    Args:
        file: The ``*.scenario.yaml`` file.
        graph: Agents already loaded; the scenario's agent is looked up here by file,
            and loaded from beside the scenario otherwise.
        registry: The tools ``graph`` was checked against.
        block: Plugins not to load, when the agent is loaded here.
        tool_files: Tool files for every agent (``--tools``), when loaded here.

    Returns:
        The problems, each with the scenario's file, line and JSON path. A scenario with
        no agent file beside it is checked for its shape only.
    """
    from .emulator.scenario import check_scenario_file, load_scenario

    shape = check_scenario_file(file)
    if shape:
        return shape
    agent_file = agent_file_for(file)
    start = next((a for a in graph.agents.values()
                  if a.file is not None and a.file.resolve() == agent_file.resolve()), None)
    if start is None:
        if not agent_file.is_file():
            return []
        from .localtools import load_graph

        graph, plugins = load_graph([agent_file], block=block, tool_files=tool_files)
        registry = plugins.registry
        start = next(iter(graph.agents.values()), None) if graph.roots else None
        if start is None:
            return []  # the agent file's own problems are check's to report, not ours
    return _Walk(graph, registry, load_yaml(file)).run(load_scenario(file), start)


class _Walk:
    """Follows a scenario's turns through the graph, collecting problems."""

    def __init__(self, graph: AgentGraph, registry: ToolRegistry, doc: YamlDocument) -> None:
        self.graph = graph
        self.registry = registry
        self.doc = doc
        self.problems: list[ScenarioError] = []

    def error(self, message: str, parts: tuple[object, ...]) -> None:
        problem = self.doc.error(message, parts, cls=ScenarioError)
        assert isinstance(problem, ScenarioError)
        self.problems.append(problem)

    def run(self, scenario: Any, start: AgentSpec) -> list[ScenarioError]:
        possible = [start]  # agents that can be active when the next turn starts
        for index, turn in enumerate(scenario.turns):
            reply = self.doc.data["turns"][index]["reply"]
            raws = reply if isinstance(reply, list) else [reply]
            steps = [step for segment in turn.segments for step in segment]
            active = list(possible)
            for position, (step, raw) in enumerate(zip(steps, raws)):
                parts: tuple[object, ...] = ("turns", index, "reply")
                if isinstance(reply, list):
                    parts += (position,)
                if step.kind == "mcp_call":
                    self.mcp_call(active, step.text, parts)
                if step.kind != "call":
                    continue
                if isinstance(raw, dict) and "handoff" in raw:
                    target = self.handoff(active, raw["handoff"], parts + ("handoff",))
                    if target is not None:
                        active = [target]
                else:
                    self.call(active, step.name, raw, parts)
            possible += [a for a in active if a not in possible]
        return self.problems

    def handoff(self, active: list[AgentSpec], name: str, parts: tuple[object, ...]) -> AgentSpec | None:
        target = self.graph.agents.get(name)
        if target is None:
            known = sorted(self.graph.agents)
            self.error(f"handoff to unknown agent {name!r}{did_you_mean(name, known)};"
                       f" agents: {', '.join(known) or 'none'}", parts)
            return None
        if not any(h.agent == name for agent in active for h in agent.handoffs):
            offered = sorted({h.agent for agent in active for h in agent.handoffs})
            said = (f"agent {active[0].name!r} cannot hand off to {name!r}; its handoffs:" if len(active) == 1
                    else f"no agent that can be active here ({_names(active)}) hands off to {name!r};"
                         " their handoffs:")
            self.error(f"{said} {', '.join(offered) or 'none'}", parts)
        return target

    def mcp_call(self, active: list[AgentSpec], label: str, parts: tuple[object, ...]) -> None:
        """An ``mcp_call`` step must name a ``hosted_mcp`` server of an agent active there."""
        labels = sorted({str(entry.get("server_label")) for agent in active for entry in agent.hosted_mcp})
        if label not in labels:
            self.error(f"mcp_call names server_label {label!r}, which no agent that can be active here"
                       f" ({_names(active)}) has in hosted_mcp{did_you_mean(label, labels)};"
                       f" its labels: {', '.join(labels) or 'none'}", parts + ("server_label",))

    def call(self, active: list[AgentSpec], name: str, raw: Any, parts: tuple[object, ...]) -> None:
        listed = {use.name: agent for agent in active for use in agent.tools}
        listed.update({h.tool_name: agent for agent in active for h in agent.handoffs})
        # MCP servers' tools are known once check started the servers (not with --no-mcp).
        served = {t.name: t for agent in active for server in agent.mcp_servers
                  for t in self.registry.source_tools(server)}
        listed.update(dict.fromkeys(served, active[0]))
        if name not in listed and any(not self.registry.source_tools(server)
                                      for agent in active for server in agent.mcp_servers):
            return  # a tool of a server not started: nothing to check it against
        if name not in listed:
            hint = did_you_mean(name, listed)
            said = (f"agent {active[0].name!r} has no tool {name!r}{hint}; its tools:" if len(active) == 1
                    else f"no agent that can be active here ({_names(active)}) has a tool {name!r}{hint};"
                         " their tools:")
            self.error(f"{said} {', '.join(sorted(listed)) or 'none'}", parts + ("call",))
            return
        tool = served.get(name) or self.registry.get(name)
        arguments = raw.get("arguments", {}) if isinstance(raw, dict) else {}
        if tool is None or not isinstance(arguments, dict):
            return  # unknown tools are the agent file's problem; strings are sent verbatim
        check = validate_arguments(tool, json.dumps(arguments))
        if check.error is not None:
            problems = json.loads(check.error)["problems"]
            said = "; ".join(f"{p['path']}: {p['message']}" if p["path"] != "$" else p["message"]
                             for p in problems)
            self.error(f"arguments do not match {name}'s schema: {said}",
                       parts + ("arguments",) if "arguments" in raw else parts + ("call",))


def _names(agents: list[AgentSpec]) -> str:
    return ", ".join(a.name for a in agents)
