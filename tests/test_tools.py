from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from realtalk.exceptions import ToolDefinitionError
from realtalk.tools import (
    Tool,
    ToolContext,
    ToolFailed,
    ToolRegistry,
    format_output,
    load_tool_definitions,
    make_tool,
    run_tool,
    validate_arguments,
)

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
    "additionalProperties": False,
}
CITY_ONLY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CTX = ToolContext(call_id="call_1", tool="weather", agent="concierge")


def weather(city: str, days: int = 1) -> dict[str, Any]:
    return {"city": city, "days": days, "temp_c": 21}


def tool(**overrides: Any) -> Tool:
    args: dict[str, Any] = {"plugin": "realtalk-test", "plugin_version": "1.0"}
    args.update(overrides)
    return make_tool(
        args.pop("name", "weather"),
        args.pop("description", "Weather in a city"),
        args.pop("parameters", CITY),
        args.pop("handler", weather),
        **args,
    )


# --- registration checks -----------------------------------------------------------------


def test_valid_tool_records_origin_and_handler_path() -> None:
    t = tool()
    assert t.origin == "realtalk-test 1.0"
    assert t.handler_path.endswith(":weather")
    assert t.definition() == {"type": "function", "name": "weather",
                              "description": "Weather in a city", "parameters": CITY}


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "get weather"}, r"^plugin realtalk-test: invalid tool name 'get weather': use 1-64 letters.*\(no spaces\)$"),
    ({"name": "x" * 65}, r"^plugin realtalk-test: invalid tool name 'x{65}'"),
    ({"description": "d" * 1025}, r"^plugin realtalk-test: tool 'weather': description is 1025 characters; .* at most 1024$"),
    ({"description": " "}, r"^plugin realtalk-test: tool 'weather': description is missing$"),
    ({"parameters": {"type": "array"}}, r"^plugin realtalk-test: tool 'weather': the root of parameters must be \{type: object\}"),
    ({"parameters": {"type": "object", "properties": {"a": {"type": 7}}}},
     r"^plugin realtalk-test: tool 'weather': parameters is not a valid JSON Schema at \$\.properties\.a\.type: "),
    ({"timeout_s": 0}, r"^plugin realtalk-test: tool 'weather': timeout_s must be a positive number, got 0$"),
    ({"max_output_chars": 10}, r"^plugin realtalk-test: tool 'weather': max_output_chars must be an integer of at least 100"),
])
def test_an_invalid_tool_cannot_be_built(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"name": "weather", "description": "Weather in a city", "parameters": CITY,
                            "handler": weather, "plugin": "realtalk-test"}
    with pytest.raises(ToolDefinitionError, match=message) as info:
        Tool(**{**base, **fields})
    assert "\n" not in str(info.value) and info.value.plugin == "realtalk-test"
    assert Tool(**base).validator().is_valid({"city": "Oslo"})  # the valid one builds


def test_name_with_spaces_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match=r"invalid tool name 'get weather'.*no spaces"):
        tool(name="get weather")


def test_description_over_1024_characters_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="1025 characters; .* at most 1024"):
        tool(description="x" * 1025)


def test_schema_that_is_not_json_schema_is_rejected() -> None:
    bad = {"type": "object", "properties": {"city": {"type": "strng"}}}
    with pytest.raises(ToolDefinitionError, match=r"not a valid JSON Schema at \$\.properties\.city\.type"):
        tool(parameters=bad)


def test_schema_root_must_be_object() -> None:
    with pytest.raises(ToolDefinitionError, match="root of parameters must be"):
        tool(parameters={"type": "array"})


def test_handler_path_that_does_not_resolve() -> None:
    with pytest.raises(ToolDefinitionError, match="cannot import 'no_such_module_xyz'"):
        tool(parameters=CITY_ONLY, handler="no_such_module_xyz:run")
    with pytest.raises(ToolDefinitionError, match="has no attribute 'nope'"):
        tool(parameters=CITY_ONLY, handler="json:nope")
    with pytest.raises(ToolDefinitionError, match="must look like"):
        tool(parameters=CITY_ONLY, handler="json.dumps")


def test_error_names_the_plugin() -> None:
    with pytest.raises(ToolDefinitionError) as info:
        tool(name="bad name")
    assert str(info.value).startswith("plugin realtalk-test 1.0: ")


def test_duplicate_name_names_both_plugins() -> None:
    registry = ToolRegistry()
    registry.add(tool())
    with pytest.raises(ToolDefinitionError) as info:
        registry.add(tool(plugin="realtalk-other", plugin_version="2.0"))
    message = str(info.value)
    assert "realtalk-test 1.0" in message and "realtalk-other 2.0" in message


def test_registry_suggests_close_names() -> None:
    registry = ToolRegistry()
    registry.add(tool())
    assert registry.suggest("wether") == " (did you mean 'weather'?)"
    assert registry.describe_available() == "weather (realtalk-test)"


def test_tools_yaml_errors_carry_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(
        "tools:\n"
        "  - name: ok_tool\n"
        "    description: fine\n"
        "    handler: platform:python_version\n"
        "  - name: bad tool\n"
        "    description: spaces\n"
        "    handler: platform:python_version\n"
    )
    with pytest.raises(ToolDefinitionError, match=rf"{path}:5: invalid tool name 'bad tool'"):
        load_tool_definitions(path, plugin="p")


def test_tools_yaml_unknown_key_is_suggested(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("tools:\n  - name: t\n    description: d\n    handler: platform:python_version\n    timout_s: 3\n")
    with pytest.raises(ToolDefinitionError, match=r":5: unknown key 'timout_s' \(did you mean 'timeout_s'\?\)"):
        load_tool_definitions(path, plugin="p")


# --- argument validation -----------------------------------------------------------------


def test_valid_arguments_are_parsed() -> None:
    check = validate_arguments(tool(), '{"city": "Paris", "days": 2}')
    assert check.ok and check.arguments == {"city": "Paris", "days": 2}


def test_invalid_json_tells_the_model_what_and_repeats_schema() -> None:
    check = validate_arguments(tool(), '{"city": "Paris"')
    assert not check.ok and check.arguments is None
    error = json.loads(check.error or "")
    assert error["problems"][0]["path"] == "$"
    assert "not valid JSON" in error["problems"][0]["message"]
    assert error["expected_schema"] == CITY


def test_schema_violation_names_the_json_path() -> None:
    error = json.loads(validate_arguments(tool(), '{"city": "Paris", "days": 0}').error or "")
    assert error["problems"] == [{"path": "$.days", "message": "0 is less than the minimum of 1"}]


def test_missing_and_extra_properties_are_reported() -> None:
    error = json.loads(validate_arguments(tool(), '{"town": "Paris"}').error or "")
    messages = " ".join(p["message"] for p in error["problems"])
    assert "'city' is a required property" in messages
    assert "'town' was unexpected" in messages


def test_non_object_arguments_are_rejected() -> None:
    error = json.loads(validate_arguments(tool(), "[1, 2]").error or "")
    assert "must be a JSON object, got list" in error["problems"][0]["message"]


def test_empty_string_means_no_arguments() -> None:
    no_args = tool(parameters={"type": "object", "properties": {}}, handler=lambda: "ok")
    assert validate_arguments(no_args, "").arguments == {}


def test_double_encoded_object_is_unwrapped() -> None:
    check = validate_arguments(tool(), json.dumps(json.dumps({"city": "Oslo"})))
    assert check.arguments == {"city": "Oslo"}


# --- execution ---------------------------------------------------------------------------


async def test_sync_handler_runs_in_a_thread() -> None:
    seen: list[int] = []

    def where(city: str) -> str:
        seen.append(threading.get_ident())
        return city.upper()

    outcome = await run_tool(tool(parameters=CITY_ONLY, handler=where), {"city": "rome"}, CTX)
    assert outcome.status == "ok" and outcome.output == "ROME"
    assert seen and seen[0] != threading.get_ident()


async def test_slow_sync_tool_does_not_block_the_loop() -> None:
    release = threading.Event()

    def slow(city: str) -> str:
        release.wait(5)
        return "done"

    task = asyncio.create_task(run_tool(tool(parameters=CITY_ONLY, handler=slow), {"city": "x"}, CTX))
    # The loop keeps running while the handler waits: this coroutine gets to run.
    await asyncio.sleep(0)
    assert not task.done()
    release.set()
    assert (await task).output == "done"


async def test_async_handler_is_awaited_with_context() -> None:
    async def handler(city: str, context: ToolContext) -> dict[str, str]:
        return {"city": city, "call": context.call_id, "agent": context.agent}

    outcome = await run_tool(tool(parameters=CITY_ONLY, handler=handler), {"city": "Lima"}, CTX)
    assert json.loads(outcome.output) == {"city": "Lima", "call": "call_1", "agent": "concierge"}


async def test_timeout_becomes_an_output() -> None:
    async def hang(city: str) -> None:
        await asyncio.Event().wait()

    outcome = await run_tool(tool(parameters=CITY_ONLY, handler=hang, timeout_s=0.05), {"city": "x"}, CTX)
    assert outcome.status == "timeout"
    assert "timed out after 0.05 s" in json.loads(outcome.output)["error"]


async def test_exception_becomes_an_output_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def boom(city: str) -> None:
        raise ValueError(f"no forecast for {city}")

    outcome = await run_tool(tool(parameters=CITY_ONLY, handler=boom), {"city": "Atlantis"}, CTX)
    assert outcome.status == "error"
    assert json.loads(outcome.output) == {"error": "weather failed: ValueError: no forecast for Atlantis"}
    assert any("realtalk-test 1.0" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_a_tool_that_fails_on_purpose_gives_its_own_output(caplog: pytest.LogCaptureFixture) -> None:
    async def closed(city: str) -> None:
        raise ToolFailed('{"error": "HTTP 503 Service Unavailable", "status": 503}')

    outcome = await run_tool(tool(parameters=CITY_ONLY, handler=closed), {"city": "Oslo"}, CTX)
    assert outcome.status == "error"
    assert outcome.output == '{"error": "HTTP 503 Service Unavailable", "status": 503}'
    assert not any(r.exc_info for r in caplog.records)  # an expected failure: no traceback


def test_validators_are_built_off_the_event_loop_before_the_first_call() -> None:
    import threading

    from realtalk.tools import build_validators_soon

    fresh = tool(parameters={"type": "object", "properties": {"n": {"type": "integer", "minimum": 7}}},
                 handler=lambda n: n)
    assert fresh._validator is None
    build_validators_soon([fresh])
    for worker in [t for t in threading.enumerate() if t.name == "realtalk-validators"]:
        worker.join(timeout=30)
    assert fresh._validator is not None  # built by the thread: the call will find it ready
    assert not validate_arguments(fresh, '{"n": 3}').ok


async def test_cancellation_propagates() -> None:
    started = asyncio.Event()

    async def hang(city: str) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run_tool(tool(parameters=CITY_ONLY, handler=hang), {"city": "x"}, CTX))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_format_output() -> None:
    assert format_output("plain") == "plain"
    assert format_output(None) == '{"ok": true}'
    assert format_output({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert format_output(3.5) == "3.5"
    assert json.loads(format_output({"when": time.gmtime(0)}))  # non-JSON values fall back to str
