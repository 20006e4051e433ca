"""HTTP tools (``http:`` in a tools YAML file): spec checks, requests built, and real calls
against HTTP servers on loopback started by the tests (``http_server`` fixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from realtalk import httptools
from realtalk.exceptions import ToolDefinitionError
from realtalk.httptools import HttpCall, build_request, parse_spec, response_output
from realtalk.toolcalls import run_tool
from realtalk.tools import Tool, ToolContext, load_tool_definitions

SECRET = "sk-test-Secret-Value-0123456789"
ARGS_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "units": {"type": "string"},
                   "flag": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["city"],
}


def write_tools(tmp_path: Path, http: str, parameters: str = "", name: str = "fetch") -> Path:
    """A tools file with one HTTP tool (``http`` is the YAML of its http: mapping, indented 6)."""
    params = parameters or """
    parameters:
      type: object
      properties:
        city: {type: string}
        days: {type: integer}
      required: [city]"""
    path = tmp_path / "tools.yaml"
    path.write_text(f"tools:\n  - name: {name}\n    description: Fetch something.{params}\n    http:\n{http}")
    return path


def load_one(path: Path) -> Tool:
    (tool,) = load_tool_definitions(path, plugin=str(path))
    return tool


def spec(http: dict[str, Any], parameters: dict[str, Any] | None = None) -> httptools.HttpSpec:
    return parse_spec(http, parameters or ARGS_SCHEMA)


# --- building requests (plain values) ---------------------------------------------------------


def test_url_arguments_are_escaped_whole_and_env_values_are_secrets() -> None:
    s = spec({"url": "https://api.example.com/v1/{city}/x?key=${KEY}", "headers": {"Authorization": "Bearer ${KEY}"}})
    request = build_request(s, {"city": "São Paulo/?#&x y"}, {"KEY": SECRET})
    assert request.url == f"https://api.example.com/v1/S%C3%A3o%20Paulo%2F%3F%23%26x%20y/x?key={SECRET}"
    assert request.headers == (("Authorization", f"Bearer {SECRET}"),)
    assert request.secrets == (SECRET,)


def test_an_argument_holding_an_env_reference_is_not_expanded() -> None:
    s = spec({"url": "https://api.example.com/", "query": {"q": "{city}"}})
    request = build_request(s, {"city": "${KEY}"}, {"KEY": SECRET})
    assert request.params == (("q", "${KEY}"),) and request.secrets == ()


def test_query_entries_of_absent_optional_arguments_are_omitted() -> None:
    s = spec({"url": "https://api.example.com/", "query": {"q": "{city}", "days": "{days}", "fixed": 1,
                                                           "flag": "{flag}"}})
    request = build_request(s, {"city": "Porto", "flag": True}, {})
    assert request.params == (("q", "Porto"), ("fixed", "1"), ("flag", "true"))


def test_json_body_keeps_argument_types_and_drops_absent_ones() -> None:
    s = spec({"method": "POST", "url": "https://api.example.com/",
              "json": {"city": "{city}", "days": "{days}", "units": "{units}", "label": "in {city}",
                       "tags": "{tags}", "nested": {"list": ["{flag}", "{units}", 3]}}})
    request = build_request(s, {"city": "Porto", "days": 3, "flag": False, "tags": ["a", "b"]}, {})
    assert request.has_json and request.json_body == {
        "city": "Porto", "days": 3, "label": "in Porto", "tags": ["a", "b"], "nested": {"list": [False, 3]}}


def test_form_body() -> None:
    s = spec({"method": "POST", "url": "https://api.example.com/", "form": {"city": "{city}", "days": "{days}"}})
    assert build_request(s, {"city": "Porto"}, {}).form == (("city", "Porto"),)


def test_a_missing_env_var_at_call_time_raises_missing_env() -> None:
    s = spec({"url": "https://api.example.com/?k=${WEATHER_KEY}"})
    with pytest.raises(httptools.envrefs.MissingEnv, match="WEATHER_KEY"):
        build_request(s, {"city": "x"}, {})


def test_an_env_url_that_is_not_http_is_refused_without_showing_it() -> None:
    s = spec({"url": "${BASE}/v1"})
    with pytest.raises(ValueError, match=r"not an http\(s\) URL") as raised:
        build_request(s, {"city": "x"}, {"BASE": "ftp-secret-host"})
    assert "ftp-secret-host" not in str(raised.value)


# --- answers (plain values) ----------------------------------------------------------------------


def test_returns_whole_json_a_path_or_capped_text() -> None:
    body = json.dumps({"current": {"temperature_2m": 14.2}, "hourly": {"time": ["t0", "t1"]}}).encode()
    assert json.loads(response_output(spec({"url": "http://h/"}), 200, "OK", "application/json", body)) == \
        json.loads(body)
    for path, value in (("$.current.temperature_2m", 14.2), ("hourly.time[1]", "t1"), ("hourly.time[-1]", "t1")):
        assert json.loads(response_output(spec({"url": "http://h/", "returns": {"path": path}}), 200, "OK", "",
                                          body)) == value
    text = spec({"url": "http://h/", "returns": {"text": {"max_chars": 100}}})
    capped = json.loads(response_output(text, 200, "OK", "text/plain", b"x" * 500))
    assert capped["truncated"] is True and capped["original_chars"] == 500


def test_a_missing_path_says_where_it_stopped() -> None:
    s = spec({"url": "http://h/", "returns": {"path": "results[0].name"}})
    out = json.loads(response_output(s, 200, "OK", "application/json", b'{"generationtime_ms": 1}'))
    assert out == {"error": "the response has no results[0].name", "status": 200, "at": "the top",
                   "keys": ["generationtime_ms"]}


def test_non_2xx_and_non_json_are_errors_with_status_and_excerpt() -> None:
    s = spec({"url": "http://h/"})
    out = json.loads(response_output(s, 404, "Not Found", "text/html", b"<p>  no\n such   city</p>" * 50))
    assert out["error"] == "HTTP 404 Not Found" and out["status"] == 404
    assert out["body"].startswith("<p> no such city</p>") and len(out["body"]) <= httptools.EXCERPT_CHARS
    out = json.loads(response_output(s, 200, "OK", "text/html", b"<html>"))
    assert out == {"error": "the response is not JSON (Content-Type: text/html)", "status": 200, "body": "<html>"}


# --- checks when the file is read: one line, file:line ---------------------------------------------


@pytest.mark.parametrize(("http", "line", "message"), [
    ("      url: https://x.example/{cty}\n", 11,
     "http.url refers to {cty}, which is not a parameter of the tool (did you mean 'city'?)"),
    ("      url: https://x.example/{days}\n", 11, "http.url refers to {days}, which is not required"),
    ("      url: x.example/v1\n", 11, "http.url must start with http:// or https:// and name a host"),
    ("      url: ${BASE:-ftp://x}/v1\n", 11, "http.url must start with http:// or https://"),
    ("      url: https://x.example/\n      query:\n        q: \"{citty}\"\n", 13,
     "http.query.q refers to {citty}"),
    ("      url: https://x.example/\n      headers: {X-Key: \"${BAD KEY}\"}\n", 12, "malformed reference"),
    ("      url: https://x.example/\n      metod: POST\n", 12, "unknown key 'metod' in http (did you mean 'method'?)"),
    ("      url: https://x.example/\n      method: FETCH\n", 12, "http.method must be one of GET"),
    ("      url: https://x.example/\n      json: {a: 1}\n", 12, "a GET request has no body"),
    ("      url: https://x.example/\n      returns: xml\n", 12, "http.returns must be json, text"),
    ("      url: https://x.example/\n      returns: {path: 'a..b'}\n", 12, "is not a path like"),
    ("      url: https://x.example/\n      timeout_s: 0\n", 12, "http.timeout_s must be a positive number"),
    ("      url: https://x.example/\n      max_response_bytes: 1.5\n", 12,
     "http.max_response_bytes must be a positive integer"),
    ("      method: POST\n", 10, "http needs url:"),
    ("      url: https://x.example/\n      headers: {\"X Key\": a}\n", 12, "http.headers: 'X Key' is not a header name"),
])
def test_bad_http_sections_are_one_line_with_file_and_line(tmp_path: Path, http: str, line: int,
                                                           message: str) -> None:
    path = write_tools(tmp_path, http)
    with pytest.raises(ToolDefinitionError) as raised:
        load_one(path)
    text = raised.value.message
    assert text.startswith(f"{path}:{line}: tool 'fetch': ") and message in text and "\n" not in text


def test_handler_and_http_together_are_refused(tmp_path: Path) -> None:
    path = write_tools(tmp_path, "      url: https://x.example/\n    handler: os:getcwd\n")
    with pytest.raises(ToolDefinitionError, match=r"tools.yaml:10: a tool has handler: or http:, not both"):
        load_one(path)


def test_realtalk_tools_shows_the_template_never_a_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY", SECRET)
    tool = load_one(write_tools(tmp_path, "      url: https://x.example/{city}?k=${KEY}\n"))
    assert tool.handler_path == "http: GET https://x.example/{city}?k=${KEY}"
    assert httptools.http_spec(tool) is not None and SECRET not in repr(tool)


# --- real calls on loopback ----------------------------------------------------------------------


async def call(server_url: str, http: str, tmp_path: Path, **arguments: Any) -> str:
    """The output of one call, run as the session runs it; a failed call's status is error."""
    tool = load_one(write_tools(tmp_path, http.replace("BASE", server_url)))
    outcome = await run_tool(tool, arguments, ToolContext("call_1", tool.name, "desk"))
    assert (outcome.status == "error") == outcome.output.startswith('{"error"'), outcome
    return outcome.output


async def test_success_whole_json_and_path(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    whole = json.loads(await call(server.url, "      url: BASE/json\n", tmp_path, city="x"))
    assert whole["current"]["temperature_2m"] == 14.2
    value = await call(server.url, "      url: BASE/json\n      returns: {path: current.wind_speed_10m}\n", tmp_path,
                       city="x")
    assert json.loads(value) == 11.5


async def test_text_is_capped(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    out = json.loads(await call(server.url, "      url: BASE/text\n      returns: {text: {max_chars: 200}}\n",
                                tmp_path, city="x"))
    assert out["truncated"] is True and out["output"].startswith("line of text\n")


async def test_the_url_escaping_and_query_reach_the_server(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    out = json.loads(await call(server.url, "      url: BASE/echo/{city}\n      query: {d: \"{days}\", u: x}\n",
                                tmp_path, city="a/b?c d#é"))
    assert out["path"] == "/echo/a%2Fb%3Fc%20d%23%C3%A9"
    assert out["query"] == "u=x"  # days was absent: its entry is left out


async def test_form_and_json_bodies_reach_the_server(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    out = json.loads(await call(server.url, "      method: POST\n      url: BASE/echo\n"
                                "      form: {city: \"{city}\", days: \"{days}\"}\n", tmp_path, city="Porto", days=2))
    assert out["body"] == "city=Porto&days=2"
    assert out["headers"]["content-type"] == "application/x-www-form-urlencoded"
    out = json.loads(await call(server.url, "      method: POST\n      url: BASE/echo\n"
                                "      json: {city: \"{city}\", days: \"{days}\"}\n", tmp_path, city="Porto", days=2))
    assert json.loads(out["body"]) == {"city": "Porto", "days": 2}


@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (500, "Internal Server Error")])
async def test_4xx_and_5xx_are_outputs_with_status_and_excerpt(http_server: Any, tmp_path: Path, status: int,
                                                               reason: str) -> None:
    server = http_server()
    out = json.loads(await call(server.url, f"      url: BASE/status/{status}\n", tmp_path, city="x"))
    assert out["error"] == f"HTTP {status} {reason}" and out["status"] == status and '"nope"' in out["body"]


async def test_a_server_that_never_answers_times_out(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    out = json.loads(await call(server.url, "      url: BASE/hang\n      timeout_s: 0.3\n", tmp_path, city="x"))
    assert out["error"].startswith("no complete answer from 127.0.0.1:") and "within 0.3 s" in out["error"]


async def test_a_slow_body_is_bounded_by_the_whole_request_deadline(http_server: Any, tmp_path: Path) -> None:
    # Each byte comes well within 0.5 s, so only a deadline over the whole request stops it.
    server = http_server()
    out = json.loads(await call(server.url, "      url: BASE/slow\n      timeout_s: 0.5\n", tmp_path, city="x"))
    assert "within 0.5 s" in out["error"]


@pytest.mark.parametrize("route", ["huge", "huge-declared"])
async def test_a_huge_body_is_not_read_past_the_cap(http_server: Any, tmp_path: Path, route: str) -> None:
    server = http_server()
    out = json.loads(await call(server.url, f"      url: BASE/{route}\n      max_response_bytes: 10000\n",
                                tmp_path, city="x"))
    assert out["error"].startswith("the response is larger than 10000 bytes") and out["status"] == 200


async def test_a_huge_text_body_gives_its_beginning(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    out = json.loads(await call(server.url, "      url: BASE/huge\n      max_response_bytes: 10000\n"
                                "      returns: {text: {max_chars: 300}}\n", tmp_path, city="x"))
    assert out["truncated"] is True


async def test_a_non_json_body_when_json_is_expected(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    out = json.loads(await call(server.url, "      url: BASE/html\n", tmp_path, city="x"))
    assert out["error"] == "the response is not JSON (Content-Type: text/html)" and "Service page" in out["body"]


async def test_connection_refused(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    url = server.url
    server.close()  # nobody listens on its port any more
    out = json.loads(await call(url, "      url: BASE/json\n", tmp_path, city="x"))
    assert out["error"].startswith(f"could not connect to {url.removeprefix('http://')}")


async def test_same_origin_redirects_are_followed(http_server: Any, tmp_path: Path) -> None:
    server = http_server()
    out = json.loads(await call(server.url, "      url: BASE/redirect\n      query: {to: /json}\n", tmp_path, city="x"))
    assert out["current"]["temperature_2m"] == 14.2
    out = json.loads(await call(server.url, "      url: BASE/loop\n", tmp_path, city="x"))
    assert out["error"] == f"more than {httptools.MAX_REDIRECTS} redirects"


async def test_a_redirect_to_another_origin_is_not_followed_and_no_secret_goes_there(
        http_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, other = http_server(), http_server()
    monkeypatch.setenv("WEATHER_API_KEY", SECRET)
    out = json.loads(await call(first.url, "      url: BASE/redirect\n      query: {to: \"" + other.url + "/echo\"}\n"
                                "      headers: {X-Api-Key: \"${WEATHER_API_KEY}\"}\n", tmp_path, city="x"))
    assert out["status"] == 302 and out["error"].startswith(
        f"the server redirected to another origin (http://{other.url.removeprefix('http://')})")
    assert other.requests == [] and first.requests[0]["headers"]["x-api-key"] == SECRET


async def test_a_secret_the_server_echoes_is_redacted(http_server: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    server = http_server()
    monkeypatch.setenv("WEATHER_API_KEY", SECRET)
    headers = "      headers: {X-Api-Key: \"${WEATHER_API_KEY}\"}\n      query: {key: \"${WEATHER_API_KEY}\"}\n"
    for route in ("echo", "status/401"):
        out = await call(server.url, f"      url: BASE/{route}\n{headers}", tmp_path, city="x")
        assert SECRET not in out and "[redacted]" in out
    assert server.requests[0]["headers"]["x-api-key"] == SECRET  # it was sent, only hidden


async def test_a_missing_env_var_at_call_time_is_the_tools_error(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEATHER_API_KEY", raising=False)
    out = json.loads(await call("http://127.0.0.1:9", "      url: BASE/x?k=${WEATHER_API_KEY}\n", tmp_path, city="x"))
    assert out["error"].startswith("environment variable WEATHER_API_KEY is not set")


async def test_httpx2_log_records_of_the_call_are_redacted(http_server: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    server = http_server()
    monkeypatch.setenv("WEATHER_API_KEY", SECRET)
    with caplog.at_level("DEBUG"):
        await call(server.url, "      url: BASE/json?key=${WEATHER_API_KEY}\n", tmp_path, city="x")
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text


async def test_calls_share_one_verifying_ssl_context(http_server: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Building an SSL context loads the CA bundle (~30 ms of CPU): one per process, not per call."""
    import ssl

    import httpx2

    server = http_server()
    given: list[object] = []
    real = httpx2.AsyncClient

    def client(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs.get("verify", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx2, "AsyncClient", client)
    for _ in range(2):
        assert "current" in json.loads(await call(server.url, "      url: BASE/json\n", tmp_path, city="x"))
    assert len(given) == 2 and given[0] is given[1]
    assert isinstance(given[0], ssl.SSLContext)
    assert given[0].verify_mode == ssl.CERT_REQUIRED and given[0].check_hostname


def test_http_call_is_an_async_handler() -> None:
    import inspect

    handler = HttpCall(spec({"url": "http://h/{city}"})).call
    assert inspect.iscoroutinefunction(handler)


async def test_an_argument_cannot_inject_a_header(http_server: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    server = http_server()
    monkeypatch.setenv("WEATHER_API_KEY", SECRET)
    out = json.loads(await call(server.url, "      url: BASE/echo\n"
                                "      headers: {X-City: \"{city}\", X-Key: \"${WEATHER_API_KEY}\"}\n",
                                tmp_path, city="a\r\nX-Injected: 1"))
    assert "failed: LocalProtocolError: Illegal header value" in out["error"] and SECRET not in json.dumps(out)
    assert server.requests == []  # no header was injected: nothing was sent


def test_realtalk_tools_lists_an_http_tool_with_its_template(make_plugin: Any, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from realtalk.cli import main

    monkeypatch.setenv("WEATHER_API_KEY", SECRET)
    make_plugin("realtalk-weatherhttp", """
        from importlib.resources import files
        import realtalk

        @realtalk.hookimpl
        def register_tools(register):
            register.from_yaml(files(__name__).joinpath("tools.yaml"))
    """, files={"tools.yaml": """
        tools:
          - name: forecast
            description: The forecast.
            http:
              url: https://api.example.com/v1/forecast?key=${WEATHER_API_KEY}
    """})
    assert main(["tools"]) == 0
    out = capsys.readouterr().out
    assert "forecast  (realtalk-weatherhttp 1.0.0, http: GET https://api.example.com/v1/forecast?key=${WEATHER_API_KEY})" \
        in out
    assert main(["tools", "--json", "forecast"]) == 0
    shown = capsys.readouterr().out
    assert json.loads(shown)["handler"].startswith("http: GET ") and SECRET not in out + shown


async def test_a_python_plugin_registers_an_http_tool(http_server: Any) -> None:
    from realtalk.plugins import load_plugins

    server = http_server()

    from realtalk.hookspecs import hookimpl

    class Plugin:
        __name__ = "realtalk-pyhttp"

        @hookimpl
        def register_tools(self, register: Any) -> None:
            register("temperature", description="The temperature now.", parameters=ARGS_SCHEMA,
                     http={"url": server.url + "/json", "returns": {"path": "current.temperature_2m"}})
            register("broken", description="Broken.", parameters=ARGS_SCHEMA, http={"url": "{town}"})
            register("both", description="Both.", handler=print, http={"url": server.url})

    plugins = load_plugins(allow=[], extra=[Plugin()])
    tool = plugins.registry.get("temperature")
    assert tool is not None and tool.handler is not None and tool.handler_path == f"http: GET {server.url}/json"
    assert json.loads(await tool.handler(city="x")) == 14.2
    assert [p.message for p in plugins.problems] == [
        ("tool 'broken': http.url refers to {town}, which is not a parameter of the tool; parameters: city, days,"
         " units, flag, tags"),
        "tool 'both': register() needs description= and one of handler= or http=",
    ]
