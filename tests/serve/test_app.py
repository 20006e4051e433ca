"""``realtalk serve``'s application end to end: real sockets, uvicorn in-process, the
built-in emulator, and a fake page speaking realtalk.v1 with the websockets client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import AGENTS, Page

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OpenPage = Callable[..., Any]


async def _greeted(page: Page) -> dict[str, Any]:
    """Read ``ready`` and the concierge's greeting turn; ``ready``."""
    ready = await page.next("ready")
    await page.event("turn.done")
    return ready


async def test_text_turn_uses_a_tool_and_hands_off(serve_server: Any, open_page: OpenPage) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True)
    async with open_page(base) as page:
        ready = await _greeted(page)
        assert ready["agent"] == "concierge"
        assert set(ready["agents"]) == {"billing", "concierge", "weather"}
        assert ready["audio"] == {"rate": 24000, "format": "pcm16"}
        assert page.ws.subprotocol == "realtalk.v1"

        await page.send({"type": "text", "text": "What time is it in Tokyo?"})
        started = await page.event("tool.started")
        finished = await page.event("tool.finished")
        done = await page.event("turn.done")
        usage = await page.next("usage")
        assert started["name"] == finished["name"] == "get_time"
        assert finished["status"] == "ok"
        assert "in Tokyo" in done["text"]
        assert set(usage) == {"type", "turn", "session"}
        assert "output_audio" in usage["session"]["tokens"]

        await page.send({"type": "text", "text": "I have a question about my bill"})
        handoff = await page.event("handoff")
        done = await page.event("turn.done")
        assert (handoff["source"], handoff["target"]) == ("concierge", "billing")
        assert done["agent"] == "billing"
        assert page.audio, "the agents speak: audio frames reach the page"

        await page.send({"type": "bye"})
        closing = await page.next("closing")
        assert closing["code"] == "bye"
        assert (await page.closed())[0] == 1000


FRAME = 960  # 20 ms of PCM16 24 kHz


async def _speak(page: Page, pcm: bytes, silence_ms: int = 1200) -> None:
    """Send speech then silence in 20 ms frames, as the capture worklet does (unpaced)."""
    audio = pcm + bytes(48 * silence_ms)
    for at in range(0, len(audio) - len(audio) % 2, FRAME):
        await page.send(audio[at:at + FRAME])


class Player:
    """Plays what arrives at once and reports it, as the console's playback worklet does."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.epoch = 0
        self.samples = 0
        self.reporting = True
        self.reported = 0

    async def frame(self, data: bytes) -> None:
        self.samples += len(data) // 2
        if self.reporting:
            self.reported = self.samples
            await self.page.send({"type": "played", "epoch": self.epoch, "samples": self.samples})

    def clear(self, message: dict[str, Any]) -> None:
        self.epoch, self.samples, self.reported = message["epoch"], 0, 0


async def test_barge_in_then_an_audio_turn(serve_server: Any, open_page: OpenPage, speech_pcm: bytes) -> None:
    base = await serve_server(AGENTS, agent="concierge")  # audio paced in real time, as the live API does
    async with open_page(base) as page:
        player = Player(page)
        page.on_audio = player.frame
        await page.next("ready")
        while player.samples < 24000 * 3 // 10:  # 300 ms of the greeting played
            await page.recv()
        player.reporting = False
        heard = player.reported

        # The user speaks over the greeting: the page drops its queue, the reply is cut
        # to what the page said it played.
        speaking = asyncio.create_task(_speak(page, speech_pcm))
        clear = await page.next("clear")
        interrupted = await page.event("interrupted")
        await speaking
        assert clear["epoch"] == 1
        assert heard * 1000 // 24000 - 20 <= interrupted["played_ms"] <= heard * 1000 // 24000  # within one report
        assert interrupted["played_ms"] > 0

        # What the user said is an audio turn: transcript, tool, spoken answer. As live,
        # the transcript comes asynchronously: before the answer, or (often) after it.
        player.clear(clear)
        player.reporting = True
        start = len(page.messages)
        while player.samples < 2400:  # the answer's audio arrives in the new epoch
            await page.recv()
        await page.send({"type": "played", "epoch": 0, "samples": 10**6})  # stale: ignored

        def since(kind: str) -> list[dict[str, Any]]:
            return [m["event"] for m in page.messages[start:]
                    if m["type"] == "event" and m["event"]["type"] == kind]

        while len(since("turn.done")) < 2:  # the call's turn, then the answer's
            await page.recv()
        assert since("turn.done")[-1]["text"].startswith("It is now")
        assert [e["name"] for e in since("tool.finished")] == ["get_time"]
        transcript = since("user.transcript") or [await page.event("user.transcript")]
        assert transcript[0]["text"] == "What time is it in Tokyo?"


# --- refusals ------------------------------------------------------------------------------


async def _refused(open_page: OpenPage, base: str, **how: Any) -> tuple[dict[str, Any], int | None]:
    async with open_page(base, **how) as page:
        refused = await page.next("refused")
        code, _ = await page.closed()
    return refused, code


async def test_tokens_origins_and_agents_are_checked(serve_server: Any, open_page: OpenPage) -> None:
    token = "static-token-0123456789"
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True, tokens=(token,),
                              allow_origins=("https://app.example",))
    refused, code = await _refused(open_page, base, token="wrong-token")
    assert (refused["status"], refused["code"], code) == (401, "unauthorized", 4401)
    assert "wrong-token" not in refused["reason"]
    refused, code = await _refused(open_page, base)
    assert (refused["code"], code) == ("unauthorized", 4401)
    assert "needs a token" in refused["reason"]
    refused, code = await _refused(open_page, base, token=token, origin="https://evil.example")
    assert (refused["status"], refused["code"], code) == (403, "forbidden_origin", 4403)
    assert "evil.example" in refused["reason"]
    refused, code = await _refused(open_page, base, token=token, agent="nobody")
    assert (refused["status"], refused["code"], code) == (404, "unknown_agent", 4404)
    assert "concierge" in refused["reason"]

    own = base  # the server's own origin, one allowed by --allow-origin, and a script without Origin
    for how in ({"origin": own}, {"origin": "https://app.example"}, {}):
        async with open_page(base, token=token, **how) as page:
            assert (await page.next("ready"))["agent"] == "concierge"
    async with open_page(base, agent="billing", headers={"Authorization": f"Bearer {token}"}) as page:
        assert (await page.next("ready"))["agent"] == "billing"


async def test_capacity_per_process_and_per_client(serve_server: Any, open_page: OpenPage) -> None:
    one = await serve_server(AGENTS, agent="concierge", emulator_fast=True, max_sessions=1)
    async with open_page(one) as first:
        await first.next("ready")
        refused, code = await _refused(open_page, one)
        assert (refused["status"], refused["code"], code) == (429, "capacity", 4429)

    per_client = await serve_server(AGENTS, agent="concierge", emulator_fast=True, max_per_client=1)
    async with open_page(per_client) as first:
        await first.next("ready")
        refused, code = await _refused(open_page, per_client)
        assert (refused["code"], code) == ("client_capacity", 4429)
        assert "your address" in refused["reason"]


async def test_max_session_length(serve_server: Any, open_page: OpenPage) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True, max_session_s=0.5)
    async with open_page(base) as page:
        assert (await page.next("ready"))["max_session_s"] == 0.5
        closing = await page.next("closing")
        assert closing["code"] == "max_session"
        assert "0.5 s" in closing["reason"]
        assert (await page.closed())[0] == 1000


async def test_drain_refuses_new_sessions_and_lets_existing_ones_finish(
        serve_server: Any, open_page: OpenPage) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True)
    hub = serve_server.hub(base)
    async with httpx.AsyncClient(base_url=base) as http, open_page(base) as page:
        await _greeted(page)
        assert (await http.get("/readyz")).status_code == 200
        draining = asyncio.create_task(hub.drain(30))
        await asyncio.sleep(0)  # the drain begins: no new sessions from now on
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (503, "draining")
        assert (await http.get("/healthz")).status_code == 200
        refused, code = await _refused(open_page, base)
        assert (refused["status"], refused["code"], code) == (503, "draining", 4503)

        await page.send({"type": "text", "text": "What time is it in Tokyo?"})  # the existing one goes on
        assert "in Tokyo" in (await page.event("turn.done"))["text"]
        assert not draining.done()
        await page.send({"type": "bye"})
        assert (await page.next("closing"))["code"] == "bye"
        await asyncio.wait_for(draining, 15)


async def test_drain_closes_sessions_that_outlast_it(serve_server: Any, open_page: OpenPage) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True)
    async with open_page(base) as page:
        await page.next("ready")
        draining = asyncio.create_task(serve_server.hub(base).drain(0.2))
        closing = await page.next("closing")
        assert closing["code"] == "draining"
        assert (await page.closed())[0] == 1000
        await asyncio.wait_for(draining, 15)


# --- the page's messages -------------------------------------------------------------------

BAD_MESSAGES: list[tuple[str | bytes, str]] = [
    (b"\x00" * (64 * 1024 + 2), "over the 65536-byte limit"),
    (b"\x00\x01\x02", "not whole PCM16 samples"),
    (json.dumps({"type": "text", "text": "x" * 17000}), "over the 16384-byte limit"),
    ("{not json", "not JSON"),
    ("[1, 2]", "must be a JSON object, not list"),
    (json.dumps({"text": "hi"}), 'no "type"'),
    (json.dumps({"type": "shout"}), "unknown message type 'shout'"),
    (json.dumps({"type": "text"}), 'field "text" of the text message must be a string (missing)'),
    (json.dumps({"type": "text", "text": "  "}), 'field "text" of the text message is empty'),
    (json.dumps({"type": "ptt", "down": "yes"}), 'field "down" of the ptt message must be true or false'),
    (json.dumps({"type": "played", "epoch": 0, "samples": -1}), 'field "samples" of the played message must be 0'),
    (json.dumps({"type": "played", "epoch": 1.5, "samples": 1}), 'field "epoch" of the played message must be a whole number'),
    (json.dumps({"type": "approve", "call_id": "call_x", "allow": True}), "no approval is waiting for 'call_x'"),
    (json.dumps({"type": "switch", "agent": "nobody"}), "unknown agent 'nobody'"),
]


async def test_every_bad_message_gets_its_error_and_too_many_close(serve_server: Any, open_page: OpenPage) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True)
    async with open_page(base) as page:
        await _greeted(page)
        for frame, expected in BAD_MESSAGES:
            await page.send(frame)
            error = await page.next("error")
            assert expected in error["message"], (frame[:40], error)
            assert "\n" not in error["message"]
        await page.send({"type": "text", "text": "What time is it in Tokyo?"})  # the session goes on
        assert "in Tokyo" in (await page.event("turn.done"))["text"]
        for _ in range(20 - len(BAD_MESSAGES)):
            await page.send("{}")
            await page.next("error")
        await page.send("{}")  # the 21st
        await page.next("error")
        code, reason = await page.closed()
        assert (code, reason) == (1008, "too many bad messages (21)")


async def test_switch_and_push_to_talk(serve_server: Any, open_page: OpenPage) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True)
    async with open_page(base) as page:
        await _greeted(page)
        await page.send({"type": "switch", "agent": "billing"})
        handoff = await page.event("handoff")
        assert (handoff["source"], handoff["target"], handoff["call_id"]) == ("concierge", "billing", None)
        await page.send({"type": "ptt", "down": True})
        await page.send({"type": "ptt", "down": False})  # nothing recorded: a warning, no turn
        assert "nothing recorded" in (await page.event("warning"))["message"]


APPROVAL_AGENT = """\
name: desk
model: gpt-realtime
instructions: Tell the time.
modalities: [text]
tools:
  - {name: get_time, requires_approval: true}
"""
APPROVAL_SCENARIO = """\
name: desk
turns:
  - user: /tokyo/
    reply:
      - call: get_time
        arguments: {timezone: Asia/Tokyo}
      - say: "Done: {output}"
  - user: /again/
    reply:
      - call: get_time
        arguments: {timezone: Asia/Tokyo}
      - say: "Done: {output}"
"""


async def test_approvals_are_asked_on_the_page(serve_server: Any, open_page: OpenPage, tmp_path: Path) -> None:
    (tmp_path / "desk.yaml").write_text(APPROVAL_AGENT)
    (tmp_path / "desk.scenario.yaml").write_text(APPROVAL_SCENARIO)
    base = await serve_server(tmp_path, emulator_fast=True, approval_timeout_s=0.5)
    async with open_page(base) as page:
        await page.next("ready")
        await page.send({"type": "text", "text": "Time in Tokyo?"})
        asked = await page.next("approval")
        assert (asked["tool"], asked["agent"], asked["arguments"]) == ("get_time", "desk", {"timezone": "Asia/Tokyo"})
        await page.send({"type": "approve", "call_id": asked["call_id"], "allow": True})
        assert (await page.event("tool.finished"))["status"] == "ok"
        await page.event("turn.done")

        await page.send({"type": "text", "text": "Once again"})  # no answer: refused after the timeout
        asked = await page.next("approval")
        assert "no answer to the approval of get_time within 0.5 s" in (await page.next("error"))["message"]
        assert (await page.event("tool.finished"))["status"] == "refused"
        await page.send({"type": "approve", "call_id": asked["call_id"], "allow": True})  # too late
        assert "no approval is waiting" in (await page.next("error"))["message"]


# --- HTTP ------------------------------------------------------------------------------------

SECRET = "token-secret-0123456789abcdef"
MINT_KEY = "mint-key-0123456789abcdef"


async def test_minted_tokens_work_and_expire(serve_server: Any, open_page: OpenPage) -> None:
    now = [1_000_000.0]
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True, token_secret=SECRET,
                              mint_key=MINT_KEY, token_ttl_s=300, clock=lambda: now[0])
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.post("/token")).status_code == 401
        wrong = await http.post("/token", headers={"Authorization": "Bearer not-the-key"})
        assert wrong.status_code == 401
        assert "not-the-key" not in wrong.text
        minted = await http.post("/token", headers={"Authorization": f"Bearer {MINT_KEY}"})
        assert minted.status_code == 200
        body = minted.json()
        assert body["expires_at"] == 1_000_300
        assert minted.headers["cache-control"] == "no-store"
    async with open_page(base, token=body["token"]) as page:
        assert (await page.next("ready"))["agent"] == "concierge"
    forged = body["token"][:-2] + ("AA" if not body["token"].endswith("AA") else "BB")
    refused, code = await _refused(open_page, base, token=forged)
    assert (refused["reason"], code) == ("invalid token", 4401)
    now[0] += 301
    refused, code = await _refused(open_page, base, token=body["token"])
    assert ("expired" in refused["reason"], code) == (True, 4401)


async def test_token_endpoint_without_a_secret(serve_server: Any) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True)
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post("/token", headers={"Authorization": f"Bearer {MINT_KEY}"})
        assert response.status_code == 404
        assert "not configured" in response.json()["error"]
        assert (await http.get("/token")).status_code == 405


async def test_health_agents_metrics_and_page(serve_server: Any, open_page: OpenPage) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True)
    async with httpx.AsyncClient(base_url=base) as http:
        health = (await http.get("/healthz")).json()
        assert health["status"] == "ok"
        assert isinstance(health["pid"], int)
        assert (await http.get("/readyz")).json()["status"] == "ready"
        agents = (await http.get("/agents")).json()
        assert agents["default"] == "concierge"
        assert {a["name"] for a in agents["agents"]} == {"concierge", "billing", "weather"}
        page = await http.get("/")
        assert (page.status_code, page.headers["content-type"].split(";")[0]) == (200, "text/html")
        assert (await http.get("/static/nothing.js")).status_code == 404

        async with open_page(base) as client:
            await _greeted(client)
            metrics = (await http.get("/metrics")).text
            assert 'realtalk_active_sessions{kind="browser"} 1.0' in metrics
            await client.send({"type": "bye"})
            await client.closed()
        await _refused(open_page, base, agent="nobody")
        metrics = await http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'realtalk_turns_total{agent="concierge",status="completed"} 1.0' in metrics.text
        assert 'realtalk_sessions_total{kind="browser",outcome="refused"} 1.0' in metrics.text


async def test_one_record_per_session(serve_server: Any, open_page: OpenPage, tmp_path: Path) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True, record_dir=tmp_path / "records")
    async with open_page(base) as page:
        ready = await _greeted(page)
        await page.send({"type": "bye"})
        await page.closed()
    (record,) = (tmp_path / "records").iterdir()
    assert record.name == f"{ready['session_id']}.jsonl"
    events = [json.loads(line) for line in record.read_text().splitlines()]
    assert any(e.get("event", {}).get("type") == "session.update" for e in events)


async def test_phones_make_every_agent_speak_mulaw(serve_server: Any) -> None:
    base = await serve_server(AGENTS, agent="concierge")
    hub = serve_server.hub(base)
    phone = hub._graph("audio/pcmu")
    assert {spec.audio_format for spec in phone.agents.values()} == {"audio/pcmu"}
    assert {spec.audio_format for spec in hub.target.graph.agents.values()} == {"audio/pcm"}
    assert hub._graph("audio/pcmu") is phone


def test_the_outbox_is_bounded_and_barge_in_withdraws_audio() -> None:
    from realtalk.serve.app import OUTBOX_ITEMS, _Outbox

    outbox = _Outbox()
    assert outbox.put('{"type": "event"}')
    assert outbox.put(b"\x00" * 960)
    outbox.drop_audio()  # a clear: audio not sent yet belongs to the old epoch
    assert list(outbox.items) == ['{"type": "event"}']
    assert outbox.size == len('{"type": "event"}')
    while outbox.put(b"\x00\x00"):
        pass
    assert len(outbox.items) == OUTBOX_ITEMS  # full: the caller closes the page rather than lose audio
    outbox.close(1011, "server_error", flush=False)
    assert len(outbox.items) == 1
    assert outbox.put(b"late")  # after the close nothing more is queued
    assert len(outbox.items) == 1


async def test_every_caller_gets_the_whole_scenario(serve_server: Any, open_page: OpenPage) -> None:
    base = await serve_server(AGENTS, agent="concierge", emulator_fast=True)
    for _ in range(2):  # one after the other, then side by side
        async with open_page(base) as page:
            await page.next("ready")
            assert (await page.event("turn.done"))["text"].startswith("Good evening")
            await page.send({"type": "text", "text": "What time is it in Tokyo?"})
            assert "in Tokyo" in (await page.event("turn.done"))["text"]
    async with open_page(base) as first, open_page(base) as second:
        for page in (first, second):
            await page.next("ready")
            assert (await page.event("turn.done"))["text"].startswith("Good evening")
