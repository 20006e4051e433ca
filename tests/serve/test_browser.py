"""The browser console in a real headless Chromium, against ``realtalk serve agents/ --emulator``.

Chromium (Debian's ``/usr/bin/chromium``, never a downloaded one) is driven by Playwright
with a fake microphone: a WAV made with espeak-ng ("What time is it in Tokyo?", then
silence) for the voice turn, a silent one elsewhere. Each test starts its own server
(conftest's ``serve_server``: the app under uvicorn on a port of its own, with a
built-in emulator playing agents/concierge.scenario.yaml). The page is read through
its ``window.realtalk`` hook; every wait is a condition with a bound, never a sleep.

``REALTALK_SCREENSHOT=docs/images/console.png pytest tests/serve/test_browser.py -k text``
regenerates the screenshot of docs/serve.md.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 20_000
"""Bound of each wait on the page (a turn of the emulator takes a few seconds)."""
TOKEN = "browser-test-token-5b7f"
GREETING = "Good evening, welcome to Hotel Aurora. How can I help?"
REPORT_MS = 20
"""How often the page reports what it played while playing (playback-worklet.js)."""
IN_FLIGHT_MS = 150
"""What may also play between the server's newest report and the page hearing ``clear``:
the report and the clear each cross the loopback and two event loops (the page's main
thread; the server's, which in this test also runs the emulator and Playwright's client),
and the clear waits for the audio thread's next 128-frame quantum (under 3 ms).
Measured: 0-20 ms in all on an idle machine, up to 82 ms at a load average of 17 on
2 CPUs; the bound leaves room beyond that for a loaded CI runner."""


# --- what the tests need ---------------------------------------------------------------


@pytest.fixture
def chromium(require: Callable[[bool, str], None]) -> Path:
    """Debian's Chromium, and Playwright to drive it (never a downloaded browser)."""
    require(CHROMIUM.exists(), f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        require(False, "playwright (pip install -e '.[test]')")
    return CHROMIUM


@pytest.fixture
def speech_mic(speech_pcm: bytes, tmp_path: Path) -> str:
    """The fake microphone: the question at 48 kHz, then 3 s of silence, played once."""
    from realtalk.audio.resample import resample
    from realtalk.audio.wav import write_wav

    speech = resample(speech_pcm, 24000, 48000)
    path = tmp_path / "speech-mic.wav"
    write_wav(path, np.concatenate([speech, np.zeros(48000 * 3, dtype=np.int16)]), 48000)
    return f"{path}%noloop"


@pytest.fixture
def silent_mic(tmp_path: Path) -> str:
    from realtalk.audio.wav import write_wav

    path = tmp_path / "silent-mic.wav"
    write_wav(path, np.zeros(48000, dtype=np.int16), 48000)
    return str(path)


@contextlib.asynccontextmanager
async def browser(chromium: Path, microphone: str, profile: Path) -> AsyncIterator[Any]:
    """A fresh Chromium (its own profile) whose microphone plays ``microphone``."""
    from playwright.async_api import async_playwright

    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}", "--autoplay-policy=no-user-gesture-required"]
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(chromium), headless=True, args=args,
            viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            await context.close()


async def open_console(context: Any, url: str, errors: list[str]) -> Any:
    """A tab on the console, its agent list loaded."""
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    await page.wait_for_function("window.realtalk && document.querySelectorAll('#agent option').length > 0")
    return page


async def hook(page: Any, expression: str) -> Any:
    """Evaluate ``expression`` with ``rt`` = ``window.realtalk``."""
    return await page.evaluate(f"(() => {{ const rt = window.realtalk; return {expression}; }})()")


async def until(page: Any, condition: str) -> None:
    """Wait (bounded) until ``condition`` holds, with ``rt`` = ``window.realtalk``."""
    await page.wait_for_function(f"(() => {{ const rt = window.realtalk; return {condition}; }})()",
                                 timeout=WAIT_MS, polling=50)


def lines(transcript: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [line for line in transcript if line["kind"] == kind]


TURNS = "rt.events.filter(e => e.type === 'turn.done').length"
ALL_PLAYED = "rt.receivedSamples > 0 && rt.playedSamples === rt.receivedSamples"


# --- tests -----------------------------------------------------------------------------


async def test_voice_turn_runs_a_tool_and_its_reply_plays(
    chromium: Path, speech_mic: str, serve_server: Any, tmp_path: Path
) -> None:
    url = await serve_server(agent="concierge")
    errors: list[str] = []
    async with browser(chromium, speech_mic, tmp_path / "profile") as context:
        page = await open_console(context, url + "/", errors)
        assert await hook(page, "rt.agents") == ["billing", "concierge", "weather"]
        await page.select_option("#agent", "concierge")
        await page.check("input[name=mic][value=off]")  # the question waits for the greeting
        await page.click("#connect")
        await until(page, f"rt.connected && {TURNS} >= 1 && {ALL_PLAYED}")
        greeting = await hook(page, "rt.playedSamples")
        assert greeting >= 24000 * 3  # the whole greeting, heard (about 3.6 s of audio)

        await page.check("input[name=mic][value=open]")  # the fake microphone starts speaking
        await until(page, f"{TURNS} >= 2 && rt.transcript.some(l => l.kind === 'tool' && l.status)")
        await until(page, f"rt.receivedSamples > {greeting} && {ALL_PLAYED}")
        transcript = await hook(page, "rt.transcript")
        assert [line["text"] for line in lines(transcript, "user")] == ["What time is it in Tokyo?"]
        (tool,) = lines(transcript, "tool")
        assert (tool["name"], tool["arguments"], tool["status"]) == ("get_time", '{"timezone":"Asia/Tokyo"}', "ok")
        assert '"timezone": "Asia/Tokyo"' in tool["output"] and tool["durationMs"] >= 0
        replies = [line["text"] for line in lines(transcript, "assistant")]
        assert replies[0] == GREETING and replies[-1].startswith("It is now ") and replies[-1].endswith(" in Tokyo.")
        turn = lines(transcript, "turn")[-1]
        assert turn["firstDeltaMs"] is not None and turn["doneMs"] >= turn["firstDeltaMs"]
        usage = await hook(page, "rt.usage")
        assert usage["session"]["tokens"]["output_audio"] > 0 and usage["session"]["cost_usd"] > 0
        assert "tokens" in turn["detail"] and "$" in turn["detail"]

        # The page picks another agent of the graph: a handoff without a call.
        await page.select_option("#agent", "billing")
        await page.click("#switch")
        await until(page, "rt.agent === 'billing' && rt.transcript.some(l => l.kind === 'handoff')")
        (handoff,) = lines(await hook(page, "rt.transcript"), "handoff")
        assert (handoff["source"], handoff["target"]) == ("concierge", "billing")
        await page.click("#connect")  # Disconnect: the page says bye
        await until(page, "!rt.connected && rt.closing && rt.closing.code === 'bye'")
    assert errors == []


async def test_text_turns_show_tool_calls_handoffs_latency_and_cost(
    chromium: Path, silent_mic: str, serve_server: Any, tmp_path: Path
) -> None:
    url = await serve_server(agent="concierge", emulator_fast=True)  # audio as fast as it goes
    errors: list[str] = []
    async with browser(chromium, silent_mic, tmp_path / "profile") as context:
        page = await open_console(context, url + "/", errors)
        await page.select_option("#agent", "concierge")
        await page.check("input[name=mic][value=off]")
        await page.click("#connect")
        await until(page, f"rt.connected && {TURNS} >= 1")
        await page.fill("#text", "What time is it in Tokyo?")
        await page.press("#text", "Enter")
        await until(page, f"{TURNS} >= 2")
        await page.fill("#text", "I have a question about my bill")
        await page.click("#send")
        await until(page, "rt.agent === 'billing' && rt.transcript.filter(l => l.kind === 'turn' && l.detail).length >= 3")

        transcript = await hook(page, "rt.transcript")
        typed = [line["text"] for line in lines(transcript, "user")]
        assert typed == ["What time is it in Tokyo?", "I have a question about my bill"]
        tool, transfer = lines(transcript, "tool")  # a handoff is a call the model makes
        assert (tool["name"], tool["status"]) == ("get_time", "ok") and "ok in " in tool["detail"]
        assert (transfer["name"], transfer["detail"]) == ("transfer_to_billing", "handed off to billing")
        (handoff,) = lines(transcript, "handoff")
        assert (handoff["source"], handoff["target"]) == ("concierge", "billing")
        assert handoff["text"] == "concierge → billing"  # by the model's call, not switched
        said = [(line["who"], line["text"]) for line in lines(transcript, "assistant")]
        assert ("concierge", "Let me check the clock for Tokyo.") in said
        assert said[-1] == ("billing", "Billing desk here. I can see your invoice; how can I help?")
        assert len(lines(transcript, "turn")) == 3
        assert await page.text_content("#latency") != "–"
        assert "$" in (await page.text_content("#usage-session") or "")

        shot = Path(os.environ.get("REALTALK_SCREENSHOT") or tmp_path / "console.png")
        await page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        await page.set_viewport_size({"width": 360, "height": 780})  # a small phone: no sideways scrolling
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    assert errors == []


async def test_barge_in_truncates_at_what_the_page_played(
    chromium: Path, silent_mic: str, speech_pcm: bytes, serve_server: Any, tmp_path: Path
) -> None:
    url = await serve_server(agent="concierge")
    errors: list[str] = []
    speech = base64.b64encode(speech_pcm).decode()
    async with browser(chromium, silent_mic, tmp_path / "profile") as context:
        page = await open_console(context, url + "/", errors)
        await page.select_option("#agent", "concierge")
        await page.click("#connect")  # open mic (silence) from the start
        # Half a second of the greeting heard, then the user speaks over it: the question
        # is mixed into the microphone signal inside the capture worklet (before
        # resampling and framing), so it leaves the page as ordinary microphone frames.
        await until(page, "rt.microphone && rt.playedSamples >= 12000")
        spoke_at = await page.evaluate("""(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const pcm = new Int16Array(bytes.buffer);
            window.realtalk.injectMicrophone(Float32Array.from(pcm, (v) => v / 32768));
            return window.realtalk.playedSamples;  // reported to the server before the speech
        }""", speech)
        await until(page, "rt.epoch === 1 && ['interrupted', 'assistant.done'].every("
                          "(kind) => rt.events.some(e => e.type === kind))")
        state = await hook(page, "({events: rt.events, epochs: rt.epochs, reports: rt.reports})")

    (cut,) = [e for e in state["events"] if e["type"] == "interrupted"]
    assert cut["action"] == "conversation.item.truncate"
    (before,) = state["epochs"]  # epoch 0: the greeting, then the clear
    assert before["epoch"] == 0
    reported = [r["samples"] for r in state["reports"] if r["epoch"] == 0]
    # Exact: the server cut the greeting at one of the page's own reports (the greeting
    # is the first audio of epoch 0, so its samples are the epoch's).
    assert any(abs(samples / 24 - cut["played_ms"]) < 1 for samples in reported), (cut, reported[-5:])
    # Causality: no earlier than what had been reported when the user spoke (that report
    # went out before the speech), no later than what had played when the clear came.
    assert spoke_at // 24 <= cut["played_ms"] <= before["played"] / 24, (spoke_at, cut, before)
    # And close: what the page played before it heard the clear is at most one report
    # interval (plus what plays while a report and the clear are in flight) past the cut.
    heard_ms = before["played"] / 24
    assert 0 <= heard_ms - cut["played_ms"] <= REPORT_MS + IN_FLIGHT_MS, (heard_ms, cut)
    assert before["received"] > before["played"]  # the rest of the greeting was dropped
    greeting = next(e for e in state["events"] if e["type"] == "assistant.done")["text"]
    assert GREETING.startswith(greeting) and len(greeting) < len(GREETING)
    assert errors == []


async def test_refusals_show_their_message(
    chromium: Path, silent_mic: str, serve_server: Any, tmp_path: Path
) -> None:
    url = await serve_server(agent="concierge", max_sessions=1, tokens=(TOKEN,))
    errors: list[str] = []
    async with browser(chromium, silent_mic, tmp_path / "profile") as context:
        # A token in the address is taken once, kept in the tab, and leaves the address bar.
        first = await open_console(context, url + "/?token=wrong-token", errors)
        assert "token" not in first.url
        assert await first.evaluate("sessionStorage.getItem('realtalk.token')") == "wrong-token"
        assert await first.input_value("#token") == "wrong-token"
        await first.check("input[name=mic][value=off]")
        await first.click("#connect")
        await until(first, "rt.refusal !== null && rt.alert !== ''")
        assert (await hook(first, "rt.refusal"))["status"] == 401
        alert = await hook(first, "rt.alert")
        assert alert.startswith("The server refused the token") and alert.endswith("(401)")
        assert TOKEN not in alert and not await hook(first, "rt.connected")

        await first.fill("#token", TOKEN)
        await first.click("#connect")
        await until(first, "rt.connected && rt.alert === ''")

        # One session per process: a second tab is refused while the first is connected.
        # (A token in the fragment works the same, and never reaches the server.)
        second = await open_console(context, url + f"/#token={TOKEN}", errors)
        assert second.url == url + "/" and await second.input_value("#token") == TOKEN
        await second.check("input[name=mic][value=off]")
        await second.click("#connect")
        await until(second, "rt.refusal !== null && rt.alert !== ''")
        refusal = await hook(second, "rt.refusal")
        assert (refusal["status"], refusal["code"]) == (429, "capacity")
        assert (await hook(second, "rt.alert")).startswith("The server is at capacity")
        assert await second.is_visible("#alert")
    assert errors == []


DESK = """\
name: desk
model: gpt-realtime
instructions: Tell the time.
modalities: [text]
tools:
  - {name: get_time, requires_approval: true}
"""
DESK_SCENARIO = """\
name: desk
turns:
  - user: /tokyo/
    reply:
      - call: get_time
        arguments: {timezone: Asia/Tokyo}
      - say: "Done: {output.time}"
  - user: /again/
    reply:
      - call: get_time
        arguments: {timezone: Asia/Tokyo}
      - say: "Refused: {output}"
"""


async def test_approvals_and_push_to_talk_from_the_keyboard(
    chromium: Path, silent_mic: str, serve_server: Any, tmp_path: Path
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "desk.yaml").write_text(DESK)
    (agents / "desk.scenario.yaml").write_text(DESK_SCENARIO)
    url = await serve_server(agents, emulator_fast=True)
    errors: list[str] = []
    async with browser(chromium, silent_mic, tmp_path / "profile") as context:
        page = await open_console(context, url + "/", errors)
        await page.check("input[name=mic][value=ptt]")
        await page.click("#connect")
        await until(page, "rt.connected && rt.microphone")

        # The approval takes the focus: Enter allows, the Deny button denies.
        await page.fill("#text", "Time in Tokyo?")
        await page.press("#text", "Enter")
        await page.wait_for_selector(".line.approval button.allow:focus")
        await page.keyboard.press("Enter")
        await until(page, "rt.transcript.some(l => l.kind === 'assistant' && l.text.startsWith('Done: '))")
        await page.fill("#text", "Once again")
        await page.press("#text", "Enter")
        await page.click(".line.approval button.deny")
        await until(page, "rt.transcript.some(l => l.kind === 'assistant' && l.text.startsWith('Refused: '))")
        transcript = await hook(page, "rt.transcript")
        assert [line["answer"] for line in lines(transcript, "approval")] == ["allowed", "denied"]
        assert [line["status"] for line in lines(transcript, "tool")] == ["ok", "refused"]

        # Push-to-talk: audio leaves the page only while the space bar is held; letting go
        # commits it (the emulator answers speech it has no turn for with its fallback).
        await page.focus("#connect")
        sent = await hook(page, "rt.sentSamples")
        assert sent == 0  # nothing while the key was up
        await page.keyboard.down("Space")
        await until(page, "rt.ptt && rt.sentSamples >= 4800")  # 200 ms of microphone
        await page.keyboard.up("Space")
        await until(page, "!rt.ptt && rt.transcript.some(l => l.kind === 'assistant' && l.text.includes('(speech)'))")
        assert await hook(page, "rt.connected")  # the space bar did not press the focused button
    assert errors == []
