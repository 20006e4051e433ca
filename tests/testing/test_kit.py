"""The testing kit: the pytest fixture, converse() and its arguments, and its assertions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import realtalk
from realtalk.exceptions import ConfigError, ScenarioError
from realtalk.testing import ThreadedEmulator, aconverse, converse

ROOT = Path(__file__).resolve().parents[2]


class Desk:
    """An in-process plugin: one tool that works and one that raises."""

    __name__ = "desk-tools"

    @realtalk.hookimpl
    def register_tools(self, register: realtalk.Registrar) -> None:
        register("room_rate", description="Nightly rate of a room", handler=lambda room: {"room": room, "eur": 180},
                 parameters={"type": "object", "properties": {"room": {"type": "string"}}, "required": ["room"]})
        register("late_checkout", description="Books a late checkout", handler=self.late_checkout)

    @staticmethod
    def late_checkout() -> str:
        raise RuntimeError("the booking system is down")


def two_agents(directory: Path) -> Path:
    directory.mkdir()
    (directory / "front.yaml").write_text("instructions: Front desk.\nhandoffs: [billing]\n")
    (directory / "billing.yaml").write_text("instructions: Billing desk.\n")
    return directory


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert "\n" not in text, text
    return text


# --- which agent runs ------------------------------------------------------------------


@pytest.mark.realtalk_scenario({"turns": [{"user": "hi", "reply": "Hello there."}]})
def test_scenario_marker_and_a_mapping_agent(emulator: ThreadedEmulator) -> None:
    result = converse({"name": "greeter", "instructions": "Greet."}, ["hi"], emulator)
    assert result.transcript == [("user", "hi"), ("greeter", "Hello there.")]
    result.assert_ok()


def test_agent_keyword_picks_an_agent_of_a_directory(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    agents = two_agents(tmp_path / "agents")
    emulator.use({"turns": [{"user": "hi", "reply": "Billing here."}]})
    result = converse(agents, ["hi"], emulator, agent="billing")
    assert result.transcript == [("user", "hi"), ("billing", "Billing here.")]
    # every argument by keyword, in any order, and one text as a plain string
    emulator.use({"turns": [{"user": "hi", "reply": "Front desk."}]})
    result = converse(emulator=emulator, texts="hi", agent="front", agents=str(agents))
    assert result.transcript == [("user", "hi"), ("front", "Front desk.")]


def test_agent_keyword_alone_is_the_agent_file(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    agents = two_agents(tmp_path / "agents")
    emulator.use({"turns": [{"user": "hi", "reply": "Billing here."}]})
    result = converse(agent=agents / "billing.yaml", texts=["hi"], emulator=emulator)
    assert result.transcript[1] == ("billing", "Billing here.")


def test_the_start_agent_of_a_file_may_be_one_it_hands_off_to(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    agents = two_agents(tmp_path / "agents")
    emulator.use({"turns": [{"user": "hi", "reply": "Billing here."}]})
    assert converse(agents / "front.yaml", ["hi"], emulator, agent="billing").transcript[1][0] == "billing"


def test_wrong_agent_name_lists_the_agents(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    agents = two_agents(tmp_path / "agents")
    with pytest.raises(ConfigError) as error:
        converse(agents, ["hi"], emulator, agent="biling")
    assert one_line(error) == f"no agent named 'biling' in {str(agents)!r}; its agents: billing, front"


def test_a_directory_of_several_agents_needs_a_name(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    agents = two_agents(tmp_path / "agents")
    with pytest.raises(ConfigError) as error:
        converse(agents, ["hi"], emulator)
    assert one_line(error) == f"{str(agents)!r} holds 2 agents (billing, front); choose one with agent='billing'"


def test_a_directory_with_no_agents(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        converse(tmp_path, ["hi"], emulator, agent="billing")
    assert one_line(error) == f"no agents in directory {str(tmp_path)!r}: it holds no agent files (*.yaml)"


def test_a_missing_agent_file(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        converse(tmp_path / "desk.yaml", ["hi"], emulator)
    assert one_line(error).startswith(f"agent file or directory '{tmp_path / 'desk.yaml'}' not found")


def test_two_agents_or_none(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    agents = two_agents(tmp_path / "agents")
    with pytest.raises(TypeError) as error:
        converse(agents, ["hi"], emulator, agent=agents / "billing.yaml")
    assert "with a directory, agent= is the name of one agent in it" in one_line(error)
    with pytest.raises(TypeError) as error:
        converse(texts=["hi"], emulator=emulator)
    assert one_line(error).startswith("converse() needs an agent")


def test_an_invalid_agent_mapping_is_named_as_such(emulator: ThreadedEmulator) -> None:
    with pytest.raises(ConfigError) as error:
        converse({"instructions": "x", "voise": "marin"}, ["hi"], emulator)
    assert one_line(error).startswith("the agent mapping: ")
    assert "voise" in str(error.value) and "realtalk-test-" not in str(error.value)


# --- scenarios -------------------------------------------------------------------------


def test_without_an_emulator_the_scenario_beside_the_agent_runs() -> None:
    """agents/concierge.yaml against agents/concierge.scenario.yaml, as `realtalk run --emulator`."""
    result = converse(ROOT / "agents" / "concierge.yaml",
                      ["What time is it in Tokyo?", "I have a question about my bill"])
    result.assert_ok()
    call = result.assert_called("get_time", timezone="Asia/Tokyo")
    assert call.agent == "concierge"
    assert re.fullmatch(r"Let me check the clock for Tokyo\.\nIt is \d\d:\d\d in Tokyo, on \w+day\.",
                        result.turns[0].text)
    assert result.turns[1].handoffs == [("concierge", "billing")]
    assert result.transcript[0] == ("concierge", "Good evening, welcome to Hotel Aurora. How can I help?")
    assert result.transcript[-1] == ("billing", "Billing desk here. I can see your invoice; how can I help?")


def test_a_scenario_argument_replaces_the_emulators(emulator: ThreadedEmulator) -> None:
    emulator.use({"turns": [{"user": "hi", "reply": "Old."}]})
    result = converse({"instructions": "x"}, "hi", emulator, scenario={"turns": [{"user": "hi", "reply": "New."}]})
    result.assert_said("New.")


def test_no_scenario_without_an_emulator(tmp_path: Path) -> None:
    (tmp_path / "desk.yaml").write_text("instructions: x\n")
    with pytest.raises(ScenarioError) as error:
        converse(tmp_path / "desk.yaml", ["hi"])
    assert one_line(error) == (f"no scenario for '{tmp_path / 'desk.yaml'}': pass the emulator fixture or "
                               f"scenario=, or write {tmp_path / 'desk.scenario.yaml'}")


def test_a_missing_scenario_file(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as error:
        emulator.use("tests/clock.scenario.yaml")
    assert one_line(error).startswith("scenario file 'tests/clock.scenario.yaml' not found (looked for /")
    with pytest.raises(ScenarioError) as error:
        converse({"instructions": "x"}, ["hi"], scenario=tmp_path / "nope.scenario.yaml")
    assert "nope.scenario.yaml' not found" in one_line(error)


def test_an_invalid_scenario_says_where(emulator: ThreadedEmulator) -> None:
    with pytest.raises(ScenarioError) as error:
        emulator.use({"turns": [{"usr": "hi", "reply": "x"}]})
    assert one_line(error).startswith("$.turns[0].usr: unknown key 'usr'")


def test_unmatched_input_gets_the_fallback_and_is_reported(emulator: ThreadedEmulator) -> None:
    emulator.use({"turns": [{"user": "hello", "reply": "Hi."}]})
    result = converse({"instructions": "x"}, ["something unscripted"], emulator)
    assert "no scenario turn matches" in result.turns[0].text
    assert result.unmatched == ["something unscripted"]
    with pytest.raises(AssertionError) as error:
        result.assert_said("Hi.")
    assert str(error.value) == (
        "expected the reply to turns[0] (user: 'something unscripted') to contain 'Hi.'; "
        "it was \"[emulator] no scenario turn matches: 'something unscripted'\"\n"
        "(no scenario turn matches 'something unscripted': check the scenario's `user:` patterns)")


# --- failures a person can act on --------------------------------------------------------


def test_a_tool_that_raises(emulator: ThreadedEmulator) -> None:
    emulator.use({"turns": [{"user": "late", "reply": [{"call": "late_checkout", "arguments": {}},
                                                       {"say": "{output}"}]}]})
    agent = {"name": "desk", "instructions": "x", "tools": ["late_checkout"]}
    result = converse(agent, ["Can I check out late?"], emulator, extra_plugins=[Desk()])
    with pytest.raises(AssertionError) as error:
        result.assert_called("late_checkout")
    assert str(error.value) == (
        "expected a call of late_checkout with status 'ok'; calls made:\n"
        "  late_checkout({}) in turns[0] (user: 'Can I check out late?') by agent 'desk': status 'error', "
        "output {\"error\": \"late_checkout failed: RuntimeError: the booking system is down\"}")
    assert result.assert_called("late_checkout", status="error").agent == "desk"
    with pytest.raises(AssertionError) as error:
        result.assert_ok()
    assert str(error.value).startswith("the conversation had problems:\n  late_checkout({}) in turns[0]")


def test_a_call_with_other_arguments_or_none(emulator: ThreadedEmulator) -> None:
    emulator.use({"turns": [{"user": "rate", "reply": [{"call": "room_rate", "arguments": {"room": "101"}},
                                                       {"say": "It is {output.eur} euros."}]},
                            {"user": "thanks", "reply": "You are welcome."}]})
    agent = {"name": "desk", "instructions": "x", "tools": ["room_rate"]}
    result = converse(agent, ["Rate of room 101?", "thanks"], emulator, extra_plugins=[Desk()])
    assert result.assert_called("room_rate", room="101").output == '{"room": "101", "eur": 180}'
    assert result.assert_said("180 euros", turn=0) == "It is 180 euros."
    assert result.assert_said(re.compile(r"welcome\.$")) == "You are welcome."
    with pytest.raises(AssertionError) as error:
        result.assert_called("room_rate", room="102")
    assert str(error.value).startswith(
        'expected a call of room_rate with {"room": "102"} with status \'ok\'; calls made:\n'
        '  room_rate({"room":"101"}) in turns[0]')
    with pytest.raises(AssertionError) as error:
        result.assert_called("late_checkout")
    assert "room_rate(" in str(error.value)
    with pytest.raises(AssertionError) as error:
        result.assert_said("dollars", turn=0)
    assert str(error.value) == ("expected the reply to turns[0] (user: 'Rate of room 101?') to contain "
                                "'dollars'; it was 'It is 180 euros.'")
    with pytest.raises(AssertionError, match=r"^turns\[5\] does not exist: there were 2 turn\(s\)$"):
        result.assert_said("x", turn=5)


def test_no_tool_called_shows_the_replies(emulator: ThreadedEmulator) -> None:
    emulator.use({"turns": [{"user": "hi", "reply": "Hello."}]})
    result = converse({"instructions": "x"}, ["hi"], emulator)
    with pytest.raises(AssertionError) as error:
        result.assert_called("get_time")
    assert str(error.value) == ("expected a call of get_time with status 'ok'; no tool was called; the replies:\n"
                                "  turns[0] (user: 'hi') -> 'Hello.'")


# --- sync and async ----------------------------------------------------------------------


async def test_async_form(emulator: ThreadedEmulator) -> None:
    emulator.use({"turns": [{"user": "a", "reply": "One."}, {"user": "b", "reply": "Two."}]})
    result = await aconverse({"instructions": "x"}, ["a", "b"], emulator)
    assert [t.text for t in result.turns] == ["One.", "Two."]


async def test_converse_in_a_running_loop_says_what_to_use(emulator: ThreadedEmulator) -> None:
    with pytest.raises(RuntimeError) as error:
        converse({"instructions": "x"}, ["a"], emulator)
    assert "use `await aconverse(...)`" in one_line(error)


def test_agent_file_and_approval(emulator: ThreadedEmulator, tmp_path: Path) -> None:
    agent = tmp_path / "desk.yaml"
    agent.write_text("instructions: x\ntools: [{name: get_time, requires_approval: true}]\n")
    emulator.use({"turns": [{"user": "t", "reply": [{"call": "get_time", "arguments": {}}, {"say": "{output}"}]}]})
    approved = converse(agent, ["t"], emulator, approve=lambda request: True)
    assert approved.calls("get_time")[0].status == "ok"


def test_server_errors_are_those_of_this_conversation(emulator: ThreadedEmulator) -> None:
    emulator.use({"turns": [{"user": "hi", "reply": "Hello."}]})
    first: Any = converse({"instructions": "x"}, ["hi"], emulator)
    assert first.server_errors == [] and emulator.errors() == []


def test_threaded_emulator_as_a_context_manager() -> None:
    with ThreadedEmulator({"turns": [{"user": "hi", "reply": "Hello."}]}) as emulator:
        converse({"instructions": "x"}, ["hi"], emulator).assert_said("Hello.")
    with pytest.raises(ScenarioError):
        ThreadedEmulator("missing.scenario.yaml")


@realtalk.tool
def room_price(room: str, nights: int = 1) -> dict[str, Any]:
    """Price of a stay.

    Args:
        room: The room's number.
        nights: How many nights.
    """
    return {"room": room, "eur": 180 * nights}


PRICE_SCENARIO = {"turns": [{"user": "/price/", "reply": [
    {"call": "room_price", "arguments": {"room": "12", "nights": 2}}, {"say": "That is {output.eur} euros."}]}]}


def test_an_agent_defined_in_python_with_a_typed_tool() -> None:
    desk = realtalk.Agent(name="desk", instructions="Quote prices.", tools=[room_price])
    result = converse(desk, ["What is the price of room 12?"], scenario=PRICE_SCENARIO)
    result.assert_called("room_price", room="12", nights=2)
    assert result.turns[0].text == "That is 360 euros."


def test_agent_keyword_must_name_the_python_agent() -> None:
    desk = realtalk.Agent(name="desk", instructions="Quote prices.", tools=[room_price])
    with pytest.raises(ConfigError) as error:
        converse(desk, ["price"], agent="front", scenario=PRICE_SCENARIO)
    assert one_line(error) == "agent='front' names no agent of realtalk.Agent 'desk'; leave it out"
