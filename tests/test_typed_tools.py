"""Typed tools (``@realtalk.tool``): schemas derived from type hints and docstrings, the
arguments converted to the declared types, and every handler's signature checked against
its schema at registration."""

from __future__ import annotations

import datetime
import json
import re
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import annotated_types
import pytest
import realtalk
from pydantic import AfterValidator, BaseModel, Field
from realtalk.emulator import Emulator
from realtalk.exceptions import ToolDefinitionError
from realtalk.plugins import load_plugins
from realtalk.runner import open_session
from realtalk.tools import Tool, ToolContext, load_tool_definitions, validate_arguments
from realtalk.typedtools import parse_docstring, typed_tool
from typing_extensions import TypedDict

SPEC = Path(__file__).parent / "protocol" / "spec" / "openai-realtime-session-update.json"


def build(fn: Any) -> Tool:
    return typed_tool(fn, plugin="realtalk-test", plugin_version="1.0")


def args(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    check = validate_arguments(tool, json.dumps(arguments))
    assert check.error is None, check.error
    assert check.values is not None
    return check.values


def problems(tool: Tool, arguments: dict[str, Any]) -> list[dict[str, str]]:
    check = validate_arguments(tool, json.dumps(arguments))
    assert check.error is not None and check.values is None
    found: list[dict[str, str]] = json.loads(check.error)["problems"]
    return found


def refs_and_titles(node: Any, inside_properties: bool = False) -> list[str]:
    """``$ref``, ``$defs`` and ``title`` keywords left anywhere in a schema."""
    if isinstance(node, list):
        return [k for item in node for k in refs_and_titles(item)]
    if not isinstance(node, dict):
        return []
    found = [] if inside_properties else [k for k in node if k in ("$ref", "$defs", "title")]
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict) and not inside_properties:
            found += [k for sub in value.values() for k in refs_and_titles(sub)]
        elif not inside_properties:
            found += refs_and_titles(value)
    return found


# --- the reservation example -------------------------------------------------------------


@dataclass
class Guest:
    name: str
    phone: Optional[str] = None  # noqa: UP045 - Optional is one of the spellings under test


class Preferences(TypedDict):
    seating: Literal["inside", "terrace"]


class Note(BaseModel):
    text: str = Field(max_length=200)


def weekday(day: datetime.date) -> datetime.date:
    if day.weekday() >= 5:
        raise ValueError("we are closed at weekends")
    return day


@realtalk.tool(timeout_s=10)
def find_table(date: datetime.date, party_size: Annotated[int, Field(ge=1, le=20)], time: str) -> list[str]:
    """Free tables at a time.

    Only tables that seat the whole party are listed.

    Args:
        date: Day of the reservation.
        party_size: How many people, 1 to 20.
        time: Time as HH:MM, 24-hour.
    """
    return [f"{date.isoformat()} {time} table for {party_size}"]


@realtalk.tool(name="book", requires_approval=True, cancellable=False, max_output_chars=500)
async def book_table(
    date: datetime.date,
    guest: Guest,
    seating: Preferences | None = None,
    note: Note | None = None,
    size: Annotated[int, annotated_types.Ge(1)] = 2,
    kind: Literal["dinner", "lunch"] = "dinner",
    context: ToolContext | None = None,
) -> dict[str, Any]:
    """Book a table.

    :param date: Day of the reservation.
    :param guest: Who the table is for;
        a phone number helps.
    :param int size: How many people.
    """
    return {"date": date, "guest": guest, "seating": seating, "note": note, "size": size, "kind": kind,
            "call": context.call_id if context else None}


def test_the_decorator_returns_the_function_itself() -> None:
    assert find_table(datetime.date(2026, 5, 1), 4, "19:00") == ["2026-05-01 19:00 table for 4"]


def test_schema_from_hints_and_a_google_docstring() -> None:
    tool = build(find_table)
    assert (tool.name, tool.description, tool.timeout_s) == ("find_table", "Free tables at a time.", 10.0)
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "date": {"type": "string", "format": "date", "description": "Day of the reservation."},
            "party_size": {"type": "integer", "minimum": 1, "maximum": 20,
                           "description": "How many people, 1 to 20."},
            "time": {"type": "string", "description": "Time as HH:MM, 24-hour."},
        },
        "required": ["date", "party_size", "time"],
        "additionalProperties": False,
    }


def test_schema_from_a_rest_docstring_with_nested_types_inlined() -> None:
    tool = build(book_table)
    assert (tool.name, tool.requires_approval, tool.cancellable, tool.max_output_chars) == ("book", True, False, 500)
    assert tool._wants_context
    props = tool.parameters["properties"]
    assert "context" not in props
    assert tool.parameters["required"] == ["date", "guest"]
    assert props["guest"]["description"] == "Who the table is for; a phone number helps."
    assert props["guest"]["properties"]["phone"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert props["guest"]["required"] == ["name"]
    assert props["seating"]["anyOf"][0]["properties"]["seating"] == {"type": "string", "enum": ["inside", "terrace"]}
    assert props["note"]["anyOf"][0]["properties"]["text"] == {"type": "string", "maxLength": 200}
    assert props["size"] == {"type": "integer", "minimum": 1, "default": 2, "description": "How many people."}
    assert props["kind"] == {"type": "string", "enum": ["dinner", "lunch"], "default": "dinner"}
    assert refs_and_titles(tool.parameters) == []


def test_a_property_named_title_is_kept() -> None:
    def headline(title: str) -> str:
        """Set the headline."""
        return title

    assert build(headline).parameters["properties"] == {"title": {"type": "string"}}


def test_arguments_are_converted_to_the_declared_types() -> None:
    values = args(build(book_table), {"date": "2026-05-01", "guest": {"name": "Ada"},
                                      "seating": {"seating": "terrace"}, "note": {"text": "window"}})
    assert values["date"] == datetime.date(2026, 5, 1)
    assert values["guest"] == Guest("Ada")
    assert values["seating"] == {"seating": "terrace"}
    assert values["note"] == Note(text="window")
    assert (values["size"], values["kind"]) == (2, "dinner")


def test_invalid_arguments_go_back_to_the_model_with_their_paths() -> None:
    tool = build(find_table)
    found = problems(tool, {"date": "2026-02-30", "party_size": 21, "time": "19:00"})
    assert found == [{"path": "$.date", "message": "'2026-02-30' is not a 'date'"},
                     {"path": "$.party_size", "message": "21 is greater than the maximum of 20"}]
    assert problems(tool, {"date": "2026-05-01", "party_size": 2, "time": "19:00", "extra": 1}) == [
        {"path": "$", "message": "Additional properties are not allowed ('extra' was unexpected)"}]


def test_a_value_the_schema_allows_but_the_type_refuses_is_an_invalid_argument() -> None:
    # The schema cannot say everything a type checks (here: a custom validator).
    def visit(day: Annotated[datetime.date, AfterValidator(weekday)]) -> str:
        """Plan a visit."""
        return day.isoformat()

    assert problems(build(visit), {"day": "2026-05-02"}) == [
        {"path": "$.day", "message": "Value error, we are closed at weekends"}]


async def test_the_handler_gets_the_converted_values_and_its_context() -> None:
    from realtalk.results import ToolCallRecord
    from realtalk.toolcalls import execute_call

    tool = build(book_table)
    record = ToolCallRecord(call_id="c1", name="book", arguments='{"date": "2026-05-01", "guest": {"name": "Ada"}}',
                            agent="front")
    outcome = await execute_call(record, tool, ("book",), lambda request: True)
    assert outcome.status == "ok"
    assert json.loads(outcome.output) == {"date": "2026-05-01", "guest": "Guest(name='Ada', phone=None)",
                                          "seating": None, "note": None, "size": 2, "kind": "dinner",
                                          "call": "c1"}


def test_an_undecorated_function_gets_the_defaults() -> None:
    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    tool = build(shout)
    assert (tool.name, tool.description, tool.timeout_s, tool.requires_approval) == (
        "shout", "Say it louder.", 30.0, False)


def test_the_decorator_takes_only_known_options() -> None:
    with pytest.raises(TypeError):
        realtalk.tool(timeout=3)  # type: ignore[call-overload]


@pytest.mark.parametrize(("source", "message"), [
    ("def f(x: int) -> None:\n    pass\n", r"tool 'f' \(.*handlers_under_test.py:3\): no description: give the function a docstring"),
    ("def f(x) -> None:\n    '''Doc.'''\n", r"parameter 'x' has no type hint"),
    ("def f(*names: str) -> None:\n    '''Doc.'''\n", r"parameter 'names': \*args and \*\*kwargs cannot be described"),
    ("def f(**options: str) -> None:\n    '''Doc.'''\n", r"parameter 'options': \*args and \*\*kwargs"),
    ("def f(x: int, /) -> None:\n    '''Doc.'''\n", r"parameter 'x' is positional-only"),
    ("def f(x: 'Missing') -> None:\n    '''Doc.'''\n", r"cannot read the type hints: NameError"),
    ("def f(x: object) -> None:\n    '''Doc.'''\n", None),  # any JSON value
    ("@dataclass\nclass Node:\n    next: 'Node | None'\n\ndef f(x: Node) -> None:\n    '''Doc.'''\n",
     r"type 'Node' refers to itself"),
    ("def f(x: int) -> None:\n    '''Doc.'''\nf.__name__ = 'two words'\n", r"invalid tool name 'two words'"),
])
def test_functions_that_cannot_be_tools_are_refused_in_one_line(tmp_path: Path, source: str,
                                                                 message: str | None) -> None:
    module = tmp_path / "handlers_under_test.py"
    module.write_text("from __future__ import annotations\nfrom dataclasses import dataclass\n" + source)
    namespace: dict[str, Any] = {"__name__": "handlers_under_test"}
    exec(compile(module.read_text(), str(module), "exec"), namespace)  # noqa: S102 - the module under test
    if message is None:
        build(namespace["f"])
        return
    with pytest.raises(ToolDefinitionError, match=message) as caught:
        build(namespace["f"])
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("plugin realtalk-test 1.0: ")


@pytest.mark.parametrize(("doc", "summary", "params"), [
    ("One line.", "One line.", {}),
    ("Two\nlines.\n\nBody.", "Two lines.", {}),
    ("Do it.\n\nArgs:\n    a (int): First.\n    b: Second,\n        continued.\n\nReturns:\n    x: not a param.",
     "Do it.", {"a": "First.", "b": "Second, continued."}),
    ("Do it.\n:param a: First.\n:param str b: Second,\n    continued.\n:returns: nothing.",
     "Do it.", {"a": "First.", "b": "Second, continued."}),
    ("Do it.\n\nParameters:\n    a: First.\nRaises:\n    ValueError: never.", "Do it.", {"a": "First."}),
])
def test_docstrings(doc: str, summary: str, params: dict[str, str]) -> None:
    assert parse_docstring(doc) == (summary, params)


# --- the Realtime API's function-tool shape ----------------------------------------------


def test_definitions_fit_the_specs_function_tool() -> None:
    from jsonschema import Draft202012Validator

    schemas = json.loads(SPEC.read_text())["schemas"]
    function_tool = Draft202012Validator(schemas["RealtimeFunctionTool"])
    for fn in (find_table, book_table):
        definition = build(fn).definition()
        assert list(function_tool.iter_errors(definition)) == []
        assert set(definition) <= set(schemas["RealtimeFunctionTool"]["properties"])
        parameters = definition["parameters"]
        assert parameters["type"] == "object" and isinstance(parameters["properties"], dict)
        assert isinstance(parameters["required"], list)
        assert refs_and_titles(parameters) == []
        Draft202012Validator.check_schema(parameters)


# --- registration: plugins and sessions --------------------------------------------------


def test_a_plugin_registers_typed_functions(make_plugin: Any) -> None:
    make_plugin("realtalk-typed", """
        import datetime
        import realtalk

        @realtalk.tool(timeout_s=5)
        def days_until(day: datetime.date) -> int:
            '''Days from today until a date.'''
            return (day - datetime.date.today()).days

        def plain(text: str) -> str:
            '''Echo the text.'''
            return text

        def untyped(text):
            '''No hints.'''

        @realtalk.hookimpl
        def register_tools(register):
            register(days_until)
            register(plain)
            register(untyped)
            register(plain, timeout_s=3)
    """)
    plugins = load_plugins(allow=["realtalk-typed"])
    assert plugins.registry.names() == ["days_until", "plain"]
    assert plugins.registry.get("days_until").origin == "realtalk-typed 1.0.0"  # type: ignore[union-attr]
    untyped, options = (p.message for p in plugins.problems)
    assert re.fullmatch(r"tool 'untyped' \(.*/realtalk_typed/__init__\.py:\d+\):"
                        r" parameter 'text' has no type hint \(such as 'str' or 'int'\)", untyped)
    assert options == ("register('plain', ...): a typed function takes its options from"
                       " @realtalk.tool(...), not from register()")


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as server:
        yield server


async def test_a_session_takes_typed_functions_and_sends_their_schemas(emu: Emulator, tmp_path: Path) -> None:
    agent = tmp_path / "host.yaml"
    agent.write_text(textwrap.dedent("""
        description: Restaurant host
        instructions: You take reservations.
        tools: [find_table, book]
    """))
    emu.use({"turns": [{"user": "table", "reply": [
        {"call": "find_table", "arguments": {"date": "2026-05-01", "party_size": 4, "time": "19:00"}},
        {"say": "Found: {output}"}]}]})
    async with open_session(agent, emulator=emu, text_only=True, extra_plugins=[find_table, book_table]) as session:
        turn = await session.ask("A table for four on May 1st at seven, please.")
    [record] = turn.tool_calls
    assert (record.name, record.status) == ("find_table", "ok") and record.output is not None
    assert json.loads(record.output) == ["2026-05-01 19:00 table for 4"]
    [update] = emu.client_events("session.update")
    sent = {t["name"]: t for t in update["session"]["tools"]}
    assert sent["find_table"] == build(find_table).definition()
    assert sent["book"]["parameters"] == build(book_table).parameters


async def test_a_format_error_reaches_the_model_as_invalid_arguments(emu: Emulator, tmp_path: Path) -> None:
    agent = tmp_path / "host.yaml"
    agent.write_text("description: Host\ninstructions: You take reservations.\ntools: [find_table]\n")
    emu.use({"turns": [{"user": "table", "reply": [
        {"call": "find_table", "arguments": {"date": "May 1st", "party_size": 4, "time": "19:00"}},
        {"say": "{output}"}]}]})
    async with open_session(agent, emulator=emu, text_only=True, extra_plugins=[find_table]) as session:
        turn = await session.ask("A table on May 1st.")
    [record] = turn.tool_calls
    assert record.status == "invalid_arguments" and record.output is not None
    assert json.loads(record.output)["problems"] == [{"path": "$.date", "message": "'May 1st' is not a 'date'"}]


# --- every handler's signature against its schema (YAML and code) ------------------------


def test_a_renamed_parameter_fails_at_registration_naming_plugin_tool_parameter_and_files(
        tmp_path: Path, make_plugin: Any) -> None:
    package = make_plugin("realtalk-tables", "", files={
        "handlers.py": "def book(date, size):\n    return 'ok'\n",
        "tools.yaml": """\
            tools:
              - name: book_table
                description: Book a table.
                handler: realtalk_tables.handlers:book
                parameters:
                  type: object
                  properties:
                    date: {type: string, format: date}
                    party_size: {type: integer}
                  required: [date, party_size]
        """})
    with pytest.raises(ToolDefinitionError) as caught:
        load_tool_definitions(package / "tools.yaml", plugin="realtalk-tables", plugin_version="1.0.0")
    message = str(caught.value)
    assert message == (
        f"plugin realtalk-tables 1.0.0: {package / 'tools.yaml'}:2: tool 'book_table': handler"
        f" realtalk_tables.handlers:book ({package / 'handlers.py'}:1) takes no parameter 'party_size',"
        " a property of the schema; its parameters: date, size")


@pytest.mark.parametrize(("handler", "problem"), [
    ("def f(date, party_size): pass", None),
    ("def f(date, party_size=2, note=None): pass", None),
    ("def f(**arguments): pass", None),
    ("def f(date, **rest): pass", None),
    ("def f(date, party_size, context): pass", None),
    ("def f(date): pass", "takes no parameter 'party_size', a property of the schema; its parameters: date"),
    ("def f(date, party_size, room): pass",
     "requires parameter 'room', which the schema does not define; schema properties: date, party_size"),
    ("def f(date, party_sise): pass",
     "takes no parameter 'party_size', a property of the schema (did you mean 'party_sise'?)"),
    ("def f(date, party_size, *, size): pass",
     "requires parameter 'size', which the schema does not define; schema properties: date, party_size"),
    ("def f(x, /, date, party_size): pass", "requires positional-only parameter 'x'"),
])
def test_signature_checks(handler: str, problem: str | None) -> None:
    from realtalk.tools import make_tool

    namespace: dict[str, Any] = {"__name__": "handlers"}
    exec(handler, namespace)  # noqa: S102 - a handler under test
    properties = {"date": {"type": "string"}, "party_size": {"type": "integer"}}
    schema = {"type": "object", "properties": properties, "required": ["date"]}
    if problem is None:
        make_tool("t", "d", schema, namespace["f"], plugin="p")
        return
    with pytest.raises(ToolDefinitionError, match=re.escape(problem)):
        make_tool("t", "d", schema, namespace["f"], plugin="p")


# --- formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "good", "bad"), [
    ("date", "2026-05-01", "01/05/2026"),
    ("email", "ada@example.com", "ada.example.com"),
    ("ipv4", "192.0.2.1", "192.0.2.300"),
    ("ipv6", "2001:db8::1", "2001:db8::g"),
    ("uuid", "12345678-1234-5678-1234-567812345678", "1234"),
    ("regex", "^a+$", "(unclosed"),
])
def test_yaml_tools_formats_are_enforced(fmt: str, good: str, bad: str) -> None:
    from realtalk.tools import make_tool

    tool = make_tool("t", "d", {"type": "object", "properties": {"v": {"type": "string", "format": fmt}}},
                     lambda v: v, plugin="p")
    assert validate_arguments(tool, json.dumps({"v": good})).ok
    error = json.loads(validate_arguments(tool, json.dumps({"v": bad})).error or "{}")
    assert error["problems"] == [{"path": "$.v", "message": f"{bad!r} is not a {fmt!r}"}]


# --- start-up ----------------------------------------------------------------------------


def test_decorating_loads_neither_pydantic_nor_jsonschema() -> None:
    import subprocess
    import sys

    code = ("import sys, realtalk\n@realtalk.tool(timeout_s=5)\ndef f(x: int) -> int:\n    'Doc.'\n    return x\n"
            "print(sorted(m for m in ('pydantic', 'jsonschema') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
