"""``realtalk serve``'s application end to end: real sockets, uvicorn in-process, the
built-in emulator, and a fake page speaking realtalk.v1 with the websockets client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
        assert set(ready["agents"]) == {"billing", "concierge"}
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

        # What the user said is an audio turn: transcript, tool, spoken answer.
        player.clear(clear)
        player.reporting = True
        assert (await page.event("user.transcript"))["text"] == "What time is it in Tokyo?"
        assert (await page.event("tool.finished"))["name"] == "get_time"
        while player.samples < 2400:  # the answer's audio arrives in the new epoch
            await page.recv()
        await page.send({"type": "played", "epoch": 0, "samples": 10**6})  # stale: ignored
        assert (await page.event("turn.done"))["text"].startswith("It is now")


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
