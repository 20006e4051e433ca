"""HTTP tools through ``realtalk check`` and ``realtalk run`` against the emulator: an unset
variable (a warning at check, an error at run), secrets kept out of every output, and the
weather example of docs/http-tools.md against a loopback Open-Meteo stand-in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-desk-Secret-Value-9876543210"
TOOLS = """\
tools:
  - name: lookup
    description: Look a city up.
    parameters:
      type: object
      properties:
        city: {type: string}
      required: [city]
    http:
      url: BASE/ROUTE
      query: {city: "{city}", key: "${DESK_API_KEY}"}
      headers:
        X-Api-Key: ${DESK_API_KEY}
"""
KEY_LINE = 11  # the query line, the first use of DESK_API_KEY
AGENT = """\
name: desk
instructions: Look cities up.
modalities: [text]
tool_files: [desk.tools.yaml]
tools: [lookup]
"""
SCENARIO = """\
turns:
  - user: look
    reply:
      - call: lookup
        arguments: {city: Porto}
      - say: "The service said {output}"
"""


def realtalk_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REALTALK_API_KEY", "DESK_API_KEY",
                                                             "OPEN_METEO_URL", "OPEN_METEO_GEOCODING_URL")}
    return subprocess.run([sys.executable, "-m", "realtalk.cli", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=60, check=False, cwd=cwd)


def desk(tmp_path: Path, base: str = "http://127.0.0.1:9", route: str = "echo") -> Path:
    (tmp_path / "desk.tools.yaml").write_text(TOOLS.replace("BASE", base).replace("ROUTE", route))
    (tmp_path / "desk.scenario.yaml").write_text(SCENARIO)
    agent = tmp_path / "desk.yaml"
    agent.write_text(AGENT)
    return agent


def test_an_unset_variable_is_a_warning_at_check_and_an_error_at_run(tmp_path: Path) -> None:
    agent = desk(tmp_path)
    tools = tmp_path / "desk.tools.yaml"
    warning = (f"{tools}:{KEY_LINE}: warning: environment variable DESK_API_KEY is not set; HTTP tool 'lookup'"
               " needs it (set it, or write ${DESK_API_KEY:-default})")
    checked = realtalk_cli("check", str(agent))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [warning]
    ran = realtalk_cli("run", str(agent), "--emulator", "--text", "look")
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [f"realtalk: error: {warning.replace('warning: ', '')}"]
    assert "connected" not in ran.stdout
    assert realtalk_cli("check", str(agent), env={"DESK_API_KEY": SECRET}).stdout == ""


def test_secrets_reach_the_server_and_no_output(tmp_path: Path, http_server: Any) -> None:
    server = http_server()
    agent = desk(tmp_path, server.url, "status/401")
    record, log = tmp_path / "run.jsonl", tmp_path / "run.log"
    env = {"DESK_API_KEY": SECRET}
    console = realtalk_cli("run", str(agent), "--emulator", "--text", "look", "-v", "--log-file", str(log), env=env)
    as_json = realtalk_cli("run", str(agent), "--emulator", "--json", "--record", str(record), "--text", "look",
                           env=env)
    checked = realtalk_cli("check", str(agent), env=env)
    assert console.returncode == 0 and as_json.returncode == 0, console.stderr + as_json.stderr
    assert [r["headers"]["x-api-key"] for r in server.requests] == [SECRET, SECRET]
    assert "HTTP 401 Unauthorized" in console.stdout and "[redacted]" in console.stdout
    assert '\\"status\\": 401' in as_json.stdout and "[redacted]" in record.read_text()
    for text in (console.stdout, console.stderr, as_json.stdout, as_json.stderr, record.read_text(), log.read_text(),
                 checked.stdout, checked.stderr):
        assert SECRET not in text


def test_a_bad_http_section_fails_check_with_file_and_line(tmp_path: Path) -> None:
    agent = desk(tmp_path)
    tools = tmp_path / "desk.tools.yaml"
    tools.write_text(tools.read_text().replace('"{city}"', '"{town}"'))
    checked = realtalk_cli("check", str(agent), env={"DESK_API_KEY": SECRET})
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[0].startswith(
        f"{tools}:{KEY_LINE}: tool 'lookup': http.query.city refers to {{town}}, which is not a parameter")
    assert SECRET not in checked.stdout + checked.stderr


# --- the weather example (agents/weather.yaml) ---------------------------------------------------


def shape(line: str) -> str:
    """A console line with its numbers (times, ports, tokens, costs) left out."""
    return re.sub(r"\d+", "N", line)


def test_the_weather_example_of_http_tools_md_is_what_run_prints(http_server: Any) -> None:
    standin = http_server()
    docs = (ROOT / "docs" / "http-tools.md").read_text()
    block = re.search(r"```console\n\$ (OPEN_METEO_URL=\S+ OPEN_METEO_GEOCODING_URL=\S+ )?"
                      r"(realtalk run agents/weather\.yaml --emulator --text .*?)\n(.*?)```", docs, flags=re.DOTALL)
    assert block is not None
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', block[2])][1:]
    result = realtalk_cli(*args, env={"OPEN_METEO_URL": standin.url, "OPEN_METEO_GEOCODING_URL": standin.url})
    assert result.returncode == 0, result.stderr
    assert [shape(x) for x in result.stdout.splitlines()] == [shape(x) for x in block[3].splitlines()]
    assert [r["path"] for r in standin.requests] == ["/v1/search", "/v1/forecast"]
    assert standin.requests[1]["query"] == ("latitude=41.15&longitude=-8.61&current=temperature_2m%2Cwind_speed_10m"
                                            "%2Cweather_code&timezone=auto")


def test_realtalk_tools_with_an_agent_lists_its_tool_files_tools() -> None:
    result = realtalk_cli("tools", "--agent", "agents/weather.yaml")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert ("current_weather  (agents/weather.tools.yaml, http: GET"
            " ${OPEN_METEO_URL:-https://api.open-meteo.com}/v1/forecast)") in lines
    assert any(line.startswith("find_place  (agents/weather.tools.yaml, http: GET") for line in lines)
