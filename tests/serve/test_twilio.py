"""Phone calls through Twilio Media Streams (realtalk.serve.twilio).

The rules first, with plain strings and dicts: the webhook signature against Twilio's
published vectors, the one-time stream token, and :class:`TwilioCall` (Twilio's messages
in, actions out). Then whole calls end to end: a Twilio simulator (``twilio_sim.py``,
following Twilio's documented message format) POSTs the signed webhook, follows the
TwiML to the media stream of a real server, speaks espeak-ng speech as 8 kHz mu-law at
real-time pace and plays what it receives on its own clock, echoing marks as Twilio does.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import shutil
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from realtalk.protocol import codec
from realtalk.serve import twilio as tw
from realtalk.serve.twilio import (
    BadMessage,
    Digit,
    HangUp,
    InputAudio,
    Played,
    StartCall,
    Stopped,
    StreamTokens,
    TwilioCall,
    signature,
    signed_url,
    verify_signature,
)


def _load_sim() -> Any:
    """tests/serve/twilio_sim.py (tests are imported with --import-mode=importlib)."""
    if "twilio_sim" not in sys.modules:
        spec = importlib.util.spec_from_file_location("twilio_sim", Path(__file__).with_name("twilio_sim.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["twilio_sim"] = module
        spec.loader.exec_module(module)
    return sys.modules["twilio_sim"]


# -- the webhook signature -----------------------------------------------------------------

URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def _params(number: str) -> dict[str, str]:
    return {"CallSid": "CA1234567890ABCDE", "Caller": number, "Digits": "1234", "From": number,
            "To": "+18005551212"}


def test_signature_reproduces_twilios_documented_example() -> None:
    # The worked example of Twilio's "Webhooks security" page (auth token 12345).
    params = _params("+12349013030")
    assert signature("12345", URL, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert verify_signature("12345", URL, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def test_signature_reproduces_twilios_library_vector() -> None:
    # The vector of Twilio's helper libraries' RequestValidator tests: the same URL and
    # fields with the number +14158675309. ("RSOYDt4T..." belongs to this number, not to
    # the documentation page's +12349013030.)
    params = _params("+14158675309")
    assert signature("12345", URL, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert verify_signature("12345", URL, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_signature_refuses_any_change() -> None:
    params = _params("+14158675309")
    good = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert not verify_signature("12346", URL, params, good)
    assert not verify_signature("12345", URL + "&baz=3", params, good)
    assert not verify_signature("12345", URL, {**params, "Digits": "9999"}, good)
    assert not verify_signature("12345", URL, {**params, "Extra": ""}, good)
    assert not verify_signature("12345", URL, params, good[:-2])
    assert not verify_signature("12345", URL, params, "")


def test_signature_accepts_the_url_with_or_without_its_default_port() -> None:
    # As Twilio's libraries do: what Twilio signs depends on how the URL was written.
    params = _params("+14158675309")
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_signature("12345", with_port, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert verify_signature("12345", URL, params, signature("12345", with_port, params))
    other_port = "https://mycompany.com:8443/myapp.php?foo=1&bar=2"
    assert not verify_signature("12345", other_port, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_signed_url_uses_the_public_url_behind_a_proxy() -> None:
    inside = "http://10.0.0.5:8080/twilio/voice?agent=billing"
    assert signed_url(inside, None) == inside
    assert signed_url(inside, "https://voice.example.com") == "https://voice.example.com/twilio/voice?agent=billing"
    assert signed_url(inside, "https://example.com/bot/") == "https://example.com/bot/twilio/voice?agent=billing"


# -- the one-time stream token -------------------------------------------------------------


def test_stream_token_is_for_one_call_one_agent_once_and_a_minute() -> None:
    tokens = StreamTokens(b"auth-token")
    token = tokens.mint("CA1", "concierge", now=1000.0)
    assert tokens.spend(token, "CA2", "concierge", now=1001.0) == (
        "the stream token was not made for this call and agent by this server")
    assert tokens.spend(token, "CA1", "billing", now=1001.0) == (
        "the stream token was not made for this call and agent by this server")
    assert StreamTokens(b"other").spend(token, "CA1", "concierge", now=1001.0) == (
        "the stream token was not made for this call and agent by this server")
    assert tokens.spend(token, "CA1", "concierge", now=1001.0) is None
    assert tokens.spend(token, "CA1", "concierge", now=1002.0) == "the stream token was already used"
    late = tokens.mint("CA1", "concierge", now=1000.0)
    assert tokens.spend(late, "CA1", "concierge", now=1075.0) == (
        "the stream token expired 15 s ago (tokens last 60 s)")
    assert tokens.spend("nonsense", "CA1", "concierge", now=1000.0) == "the stream token is malformed"


def test_stream_tokens_remember_a_bounded_number() -> None:
    tokens = StreamTokens(b"k", max_spent=3)
    minted = [tokens.mint(f"CA{i}", "a", now=0.0) for i in range(5)]
    assert [tokens.spend(t, f"CA{i}", "a", now=1.0) for i, t in enumerate(minted)] == [None] * 5
    assert len(tokens._spent) == 3


# -- TwilioCall: Twilio's messages in, actions out ------------------------------------------

SID = "MZ0123456789abcdef"


def _msg(event: str, **fields: Any) -> str:
    return json.dumps({"event": event, **fields})


def _start(agent: str | None = "concierge", token: str | None = "t", **fmt: Any) -> str:
    params = {k: v for k, v in (("agent", agent), ("token", token)) if v is not None}
    media_format = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **fmt}
    return _msg("start", sequenceNumber="1", streamSid=SID, start={
        "streamSid": SID, "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
        "customParameters": params, "mediaFormat": media_format})


def _media(payload: str, **media: Any) -> str:
    return _msg("media", sequenceNumber="3", streamSid=SID,
                media={"track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload, **media})


def _mark(name: Any) -> str:
    return _msg("mark", sequenceNumber="4", streamSid=SID, mark={"name": name})


def _call(**options: Any) -> TwilioCall:
    checked: list[tuple[str, str, str]] = []

    def check(token: str, call_sid: str, agent: str) -> str | None:
        checked.append((token, call_sid, agent))
        return None if token == "t" else "the stream token is malformed"

    call = TwilioCall(agents=["concierge", "billing"], default_agent="concierge", check_token=check, **options)
    call.checked = checked  # type: ignore[attr-defined]
    return call


def _started(**options: Any) -> TwilioCall:
    call = _call(**options)
    assert call.receive(_msg("connected", protocol="Call", version="1.0.0")) == []
    assert call.receive(_start()) == [StartCall("concierge", "CA1", SID)]
    return call


def test_call_start_media_dtmf_stop() -> None:
    call = _call()
    assert call.receive(_msg("connected", protocol="Call", version="1.0.0")) == []
    assert call.receive(_start(agent="billing")) == [StartCall("billing", "CA1", SID)]
    assert call.checked == [("t", "CA1", "billing")]  # type: ignore[attr-defined]
    ulaw = bytes(range(160))
    assert call.receive(_media(codec.b64encode(ulaw))) == [InputAudio(ulaw)]  # unchanged
    assert call.receive(_msg("dtmf", streamSid=SID, sequenceNumber="5",
                             dtmf={"track": "inbound_track", "digit": "7"})) == [Digit("7")]
    stop = {"accountSid": "AC1", "callSid": "CA1"}
    assert call.receive(_msg("stop", sequenceNumber="6", streamSid=SID, stop=stop)) == [Stopped()]
    assert call.receive(_media(codec.b64encode(ulaw))) == []  # the call is over


def test_call_without_an_agent_parameter_gets_the_default_agent() -> None:
    call = _call()
    assert call.receive(_start(agent=None)) == [StartCall("concierge", "CA1", SID)]


def test_call_refuses_a_stream_without_a_good_token() -> None:
    assert _call().receive(_start(token=None)) == [HangUp(
        "stream refused: start.customParameters.token is missing (streams come from /twilio/voice answers)")]
    assert _call().receive(_start(token="forged")) == [HangUp("stream refused: the stream token is malformed")]
    refused = _call()
    refused.receive(_start(token="forged"))
    assert refused.receive(_media(codec.b64encode(b"\xff" * 160))) == []


def test_call_refuses_other_audio_and_unknown_agents() -> None:
    assert _call().receive(_start(encoding="audio/x-alaw")) == [HangUp(
        "start.mediaFormat is ('audio/x-alaw', 8000, 1); only audio/x-mulaw 8000 Hz mono is supported")]
    assert _call().receive(_start(sampleRate=16000)) == [HangUp(
        "start.mediaFormat is ('audio/x-mulaw', 16000, 1); only audio/x-mulaw 8000 Hz mono is supported")]
    assert _call().receive(_start(agent="root")) == [HangUp(
        "start.customParameters.agent 'root' is not an agent here")]


@pytest.mark.parametrize(("frame", "error"), [
    (b"\x00\x01", "a binary frame (Twilio sends JSON text)"),
    ("{not json", "not JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    (json.dumps({"streamSid": SID}), "event is missing (or not a string)"),
    (_msg("hello"), "event 'hello' is not one of connected, start, media, mark, dtmf, stop"),
    (_msg("media", streamSid="MZother", media={"payload": ""}), "media: streamSid 'MZother' is not this stream's"),
    (_msg("media", streamSid=SID), "media is missing (or not an object)"),
    (_msg("media", streamSid=SID, media={"track": "inbound"}), "media.payload is missing (or not a string)"),
    (_media("@@@not base64@@@"), "media.payload is not base64"),
    (_media("AAAA", track="outbound"), "media.track 'outbound' is not 'inbound'"),
    (_mark("hello"), "mark.name 'hello' is not one of ours (e<epoch>:<samples>)"),
    (_mark(None), "mark.name None is not one of ours (e<epoch>:<samples>)"),
    (_mark("e5:160"), "mark.name 'e5:160' names epoch 5, still to come (now 0)"),
    (_msg("dtmf", streamSid=SID, dtmf={"digit": "x"}), "dtmf.digit 'x' is not one of 0-9, *, #, A-D"),
    (_msg("dtmf", streamSid=SID), "dtmf is missing (or not an object)"),
    (_start(), "start: the stream has already started"),
    ("x" * (tw.MAX_MESSAGE_BYTES + 1), f"{tw.MAX_MESSAGE_BYTES + 1} characters, more than the 65536 allowed"),
])
def test_call_names_what_is_wrong_in_a_bad_message(frame: str | bytes, error: str) -> None:
    call = _started()
    assert call.receive(frame) == [BadMessage(f"bad Twilio message #3: {error}")]
    assert not call.done  # the call goes on


def test_call_messages_before_start_are_errors() -> None:
    call = _call()
    assert call.receive(_media("AAAA")) == [BadMessage("bad Twilio message #1: media before start")]
    assert call.receive(_msg("start", streamSid=SID, start={"streamSid": SID})) == [
        BadMessage("bad Twilio message #2: start.callSid is missing (or not a string)")]


def test_call_hangs_up_after_too_many_bad_messages() -> None:
    call = _started(max_bad=3)
    for _ in range(3):
        assert call.receive("{") == [BadMessage(f"bad Twilio message #{call.received}: not JSON")]
    assert call.receive("{") == [BadMessage("bad Twilio message #6: not JSON"),
                                 HangUp("more than 3 bad messages from Twilio")]
    assert call.done and call.receive(_media("AAAA")) == []


# -- TwilioCall: assistant audio out, marks back ------------------------------------------------


def _frames(frames: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(f) for f in frames]


def test_audio_goes_out_in_20_ms_frames_each_followed_by_its_mark() -> None:
    call = _started()
    ulaw = bytes(range(256)) + bytes(144)  # 400 bytes: 160 + 160 + 80
    sent = _frames(call.audio(ulaw))
    assert [f["event"] for f in sent] == ["media", "mark"] * 3
    assert all(f["streamSid"] == SID for f in sent)
    payloads = [codec.b64decode(f["media"]["payload"]) for f in sent[::2]]
    assert [len(p) for p in payloads] == [160, 160, 80]
    assert b"".join(payloads) == ulaw  # unchanged
    assert [f["mark"]["name"] for f in sent[1::2]] == ["e0:160", "e0:320", "e0:400"]
    assert call.sent_samples == 400


def test_marks_report_what_was_played_and_a_clear_starts_the_next_epoch() -> None:
    call = _started()
    call.audio(bytes(480))
    assert call.receive(_mark("e0:160")) == [Played(0, 160)]
    assert json.loads(call.clear(1)) == {"event": "clear", "streamSid": SID}
    # Twilio echoes the marks still pending at once after a clear: dropped, not played.
    assert call.receive(_mark("e0:320")) == []
    assert call.receive(_mark("e0:480")) == []
    assert [f["mark"]["name"] for f in _frames(call.audio(bytes(160)))[1::2]] == ["e1:160"]
    assert call.receive(_mark("e1:160")) == [Played(1, 160)]


def test_no_audio_goes_out_before_start() -> None:
    assert _call().audio(bytes(160)) == []


# -- whole calls, end to end --------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
AUTH_TOKEN = "twilio-test-auth-token-0123456789"
SCENARIO = """\
name: concierge
turns:
  - greeting: true
    reply: Good evening, welcome to Hotel Aurora. How can I help?
  - audio: true
    transcript: What time is it in Tokyo?
    reply:
      - call: get_time
        arguments: {timezone: Asia/Tokyo}
      - say: "It is now {output.time} in Tokyo."
  - audio: true
    transcript: I have a question about my bill.
    reply:
      - handoff: billing
      - say: Billing desk here. How can I help?
"""
OBSERVER = """
    import realtalk

    EVENTS = []

    @realtalk.hookimpl
    def observe_session(session):
        return EVENTS.append
"""


class Phone:
    """A served ``agents/`` (concierge and billing) with Twilio calls on, against an emulator
    of our own (it keeps audio payloads, to compare bytes), and a plugin that sees every
    session event."""

    def __init__(self, base_url: str, hub: Any, emulator: Any, events: list[Any], folder: Path) -> None:
        self.base_url, self.hub, self.emulator, self.events, self.folder = base_url, hub, emulator, events, folder

    def call(self) -> Any:
        return _load_sim().Call(self.base_url, AUTH_TOKEN)

    async def dial(self, agent: str | None = None) -> Any:
        """A call whose webhook was answered and whose stream started."""
        sim = _load_sim()
        call = self.call()
        response = await call.ring("/twilio/voice" + (f"?agent={agent}" if agent else ""))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        stream = sim.parse_twiml(response.text)
        await call.connect(stream, url=sim.ws_url(self.base_url, stream.url))
        return call

    def kinds(self) -> list[str]:
        return [e.type for e in self.events]

    async def until(self, condition: Any, what: str, timeout: float = 20.0) -> None:
        """Until ``condition()`` holds, checked as the emulator records events (bounded)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{what}: not within {timeout} s; events: {self.kinds()[-12:]}")
            await asyncio.sleep(0.02)  # polling a condition, not waiting out a race


@contextlib.asynccontextmanager
async def _served(folder: Path, events: list[Any], serve_server: Any, **options: Any) -> AsyncIterator[Phone]:
    """A server of ``agents/`` (conftest's ``serve_server``: uvicorn on 127.0.0.1) with
    ``options`` for its ServeConfig, against an emulator of :data:`SCENARIO` that keeps
    audio payloads (to compare bytes)."""
    from realtalk.emulator import Emulator

    scenario = folder / "phone.scenario.yaml"
    scenario.write_text(SCENARIO)
    async with Emulator(scenario=scenario, fast=True, record_audio=True) as emulator:
        settings = {"twilio_auth_token": AUTH_TOKEN, **options}
        url = await serve_server(ROOT / "agents", agent="concierge", emulator=False, emulator_url=emulator.url,
                                 **settings)
        hub = serve_server.hub(url)
        try:
            yield Phone(url, hub, emulator, events, folder)
        finally:
            await hub.drain(0)  # before the emulator stops


@pytest.fixture
def observed(make_plugin: Any) -> Iterator[list[Any]]:
    """Every session event of the served sessions, as a plugin's ``observe_session`` sees them."""
    sys.modules.pop("realtalk_phone_observer", None)
    make_plugin("realtalk-phone-observer", OBSERVER)
    import realtalk_phone_observer  # type: ignore[import-not-found]

    yield realtalk_phone_observer.EVENTS
    sys.modules.pop("realtalk_phone_observer", None)


@pytest.fixture
async def phone(tmp_path: Path, observed: list[Any], serve_server: Any) -> AsyncIterator[Phone]:
    """A server taking Twilio calls (auth token ``AUTH_TOKEN``)."""
    async with _served(tmp_path, observed, serve_server) as served:
        yield served


@pytest.fixture
def espeak(require: Any) -> None:
    require(shutil.which("espeak-ng") is not None, "espeak-ng (apt-get install espeak-ng)")


def _emulator_audio(emulator: Any, kind: str) -> bytes:
    """Audio the emulator sent (``response.output_audio.delta``) or received
    (``input_audio_buffer.append``), decoded, in order."""
    if kind == "sent":
        return b"".join(codec.b64decode(e["delta"]) for e in emulator.server_events("response.output_audio.delta"))
    return b"".join(codec.b64decode(e["audio"]) for e in emulator.client_events("input_audio_buffer.append"))


async def test_a_call_hears_the_agent_uses_a_tool_hands_off_and_mulaw_passes_through(
        phone: Phone, espeak: None) -> None:
    sim = _load_sim()
    tokyo = sim.speech_ulaw("What time is it in Tokyo?", phone.folder)
    bill = sim.speech_ulaw("I have a question about my bill.", phone.folder)
    call = await phone.dial()
    try:
        # The agent greets; the caller waits until it has heard all of it.
        await call.played_out(at_least=8000)
        await call.speak(tokyo)
        await phone.until(lambda: "tool.finished" in phone.kinds() and phone.kinds()[-1] == "turn.done",
                          "the get_time turn")
        await call.played_out(at_least=len(_emulator_audio(phone.emulator, "sent")))
        await call.speak(bill)
        await phone.until(lambda: "handoff" in phone.kinds() and phone.kinds()[-1] == "turn.done"
                          and phone.kinds().count("turn.done") >= 3, "the handoff turn")
        await call.played_out(at_least=len(_emulator_audio(phone.emulator, "sent")))
    finally:
        await call.hang_up()

    finished = [e for e in phone.events if e.type == "tool.finished"]
    assert [(e.name, e.status) for e in finished] == [("get_time", "ok")]
    assert [(e.source, e.target) for e in phone.events if e.type == "handoff"] == [("concierge", "billing")]
    said = [e.text for e in phone.events if e.type == "assistant.done"]
    assert said[0] == "Good evening, welcome to Hotel Aurora. How can I help?"
    assert any(text.startswith("It is now ") and text.endswith(" in Tokyo.") for text in said)
    assert said[-1] == "Billing desk here. How can I help?"
    # mu-law 8 kHz both ways, passed through: the session asked for audio/pcmu in and out...
    [*_, updated] = phone.emulator.server_events("session.updated")
    audio = updated["session"]["audio"]
    assert audio["input"]["format"]["type"] == audio["output"]["format"]["type"] == "audio/pcmu"
    # ...the caller heard exactly the bytes the emulator sent, none lost, none changed
    # (the caller spoke only after playback ended: a clear may come, with nothing to drop)...
    assert bytes(call.audio) == _emulator_audio(phone.emulator, "sent") == bytes(call.played)
    # ...in 20 ms frames (a delta's tail may be shorter), each followed by its mark, which
    # names the epoch (one per clear) and the samples sent in it so far.
    epoch, samples, names, expected = 0, 0, [], []
    for message in call.received:
        if message["event"] == "clear":
            epoch, samples = epoch + 1, 0
        elif message["event"] == "media":
            chunk = codec.b64decode(message["media"]["payload"])
            assert 0 < len(chunk) <= 160
            samples += len(chunk)
            expected.append(f"e{epoch}:{samples}")
        elif message["event"] == "mark":
            names.append(message["mark"]["name"])
    assert names == expected and len(names) * 160 >= len(call.audio)
    # ...and the emulator got the caller's audio byte for byte (what was in flight at the
    # hang-up aside).
    appended = _emulator_audio(phone.emulator, "received")
    assert len(appended) > 8000 * 3 and bytes(call.spoken).startswith(appended)


def _mark_samples(name: str) -> tuple[int, int]:
    epoch, samples = name[1:].split(":")
    return int(epoch), int(samples)


async def test_barge_in_clears_the_call_and_truncates_to_what_the_marks_said_was_heard(
        phone: Phone, espeak: None) -> None:
    sim = _load_sim()
    words = sim.speech_ulaw("What time is it in Tokyo?", phone.folder)  # (espeak-ng runs now, not mid-call)
    call = await phone.dial()
    try:
        await call.until(lambda: len(call.played) >= 8000, "a second of the greeting heard")
        speech = asyncio.create_task(call.speak(words))
        await call.wait_for("clear")
        await speech
        [truncate] = [e for e in phone.emulator.client_events("conversation.item.truncate")]
    finally:
        await call.hang_up()
    # The truncation is where a mark the caller echoed says playback was: not a clock's guess.
    marks = [(e, *_mark_samples(e.name)) for e in call.echoes if not e.cleared and e.clears_before == 0]
    assert marks and all(epoch == 0 for _, epoch, _ in marks)
    assert truncate["content_index"] == 0
    assert truncate["audio_end_ms"] * 8 in {samples for _, _, samples in marks}
    # It is no earlier than what the caller had heard when it began to speak: the server
    # reads the stream in order, and Twilio's echoes before the first word were read
    # before the word that the emulator's VAD heard. It is no later than what the caller
    # had heard when the clear arrived. (On a quiet machine the two are a chunk or two
    # apart; the server cannot know of echoes still on their way.)
    before_speech = call.echoes[:call.echoes_before_speech[0]]
    lower = max(_mark_samples(e.name)[1] for e in before_speech if not e.cleared) // 8
    upper = marks[-1][2] // 8
    assert lower <= truncate["audio_end_ms"] <= upper
    [interrupted] = [e for e in phone.events if e.type == "interrupted"]
    assert interrupted.played_ms == truncate["audio_end_ms"]
    # Nothing of the cut reply was sent after the clear: what was queued was dropped.
    after = call.received[[m["event"] for m in call.received].index("clear") + 1:]
    assert all(not m["mark"]["name"].startswith("e0:") for m in after if m["event"] == "mark")


async def test_dtmf_is_a_session_event_and_stop_ends_the_session(phone: Phone, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="realtalk")
    call = await phone.dial()
    await phone.until(lambda: "connected" in phone.kinds(), "the session")
    assert phone.hub.active == 1
    await call.press("5")
    await call.press("#")
    dtmf = "dtmf: the caller pressed "
    await phone.until(lambda: len([e for e in phone.events if e.type == "warning" and dtmf in e.message]) == 2,
                      "two DTMF events")
    assert [e.message for e in phone.events if e.type == "warning" and dtmf in e.message] == [dtmf + "5", dtmf + "#"]
    await call.hang_up()  # stop
    await phone.until(lambda: phone.hub.active == 0, "the session ended")
    assert "session ended: completed" in caplog.messages  # the hub's word for a caller's goodbye


async def test_bad_stream_messages_get_their_errors_and_too_many_hang_up(phone: Phone) -> None:
    call = await phone.dial()
    await phone.until(lambda: "connected" in phone.kinds(), "the session")
    sid = call.stream_sid
    bad = [
        ("{not json", "not JSON"),
        (json.dumps({"event": "hello", "streamSid": sid}),
         "event 'hello' is not one of connected, start, media, mark, dtmf, stop"),
        (json.dumps({"event": "media", "streamSid": sid, "media": {"track": "inbound", "payload": "@@"}}),
         "media.payload is not base64"),
        (json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "ours?"}}),
         "mark.name 'ours?' is not one of ours (e<epoch>:<samples>)"),
        (json.dumps({"event": "dtmf", "streamSid": "MZelse", "dtmf": {"digit": "1"}}),
         "dtmf: streamSid 'MZelse' is not this stream's"),
    ]
    for frame, _ in bad:
        await call.send(frame)
    await phone.until(lambda: len(_warnings(phone)) == len(bad), "the errors")
    got = [message.split(": ", 1)[1] for message in _warnings(phone)]
    assert got == [error for _, error in bad]
    assert all(message.startswith("bad Twilio message #") for message in _warnings(phone))
    assert phone.hub.active == 1  # the call goes on
    for _ in range(tw.MAX_BAD_MESSAGES + 1 - len(bad)):
        await call.send("[]")
    await call.wait_closed()
    assert (call.close_code, call.close_reason) == (1008, f"more than {tw.MAX_BAD_MESSAGES} bad messages from Twilio")
    await phone.until(lambda: phone.hub.active == 0, "the session ended")
    await call.close()


def _warnings(phone: Phone) -> list[str]:
    return [e.message for e in phone.events if e.type == "warning" and e.message.startswith("bad Twilio")]


async def test_a_stream_needs_its_one_time_token(phone: Phone) -> None:
    sim = _load_sim()
    ringing = phone.call()
    response = await ringing.ring()
    stream = sim.parse_twiml(response.text)
    url = sim.ws_url(phone.base_url, stream.url)
    refusals = []
    for parameters in ({"agent": "concierge"}, {**stream.parameters, "token": "1.2.3"},
                       {**stream.parameters, "agent": "billing"}):
        call = phone.call()
        call.call_sid = ringing.call_sid
        await call.connect(stream, url=url, parameters=parameters)
        await call.wait_closed()
        refusals.append((call.close_code, call.close_reason))
        await call.close()
    assert refusals == [
        (1008, "stream refused: start.customParameters.token is missing (streams come from /twilio/voice answers)"),
        (1008, "stream refused: the stream token was not made for this call and agent by this server"),
        (1008, "stream refused: the stream token was not made for this call and agent by this server"),
    ]
    # The call the token was made for gets in once; a replay is refused.
    first = phone.call()
    first.call_sid = ringing.call_sid
    await first.connect(stream, url=url)
    await phone.until(lambda: "connected" in phone.kinds(), "the session")
    replay = phone.call()
    replay.call_sid = first.call_sid
    await replay.connect(stream, url=url)
    await replay.wait_closed()
    assert (replay.close_code, replay.close_reason) == (1008, "stream refused: the stream token was already used")
    await replay.close()
    await first.hang_up()
    await phone.until(lambda: phone.hub.active == 0, "the session ended")
    assert len([e for e in phone.events if e.type == "connected"]) == 1


async def test_webhook_refusals_say_why(phone: Phone) -> None:
    call = phone.call()
    cases = [
        (await call.ring(signature="RSOYDt4T1cUTdK1PDd93/VVr8B8="), 403,
         (f"X-Twilio-Signature does not match this request for {phone.base_url}/twilio/voice (is this the"
          " URL configured in Twilio? Behind a proxy, set --public-url)")),
        (await call.ring(sign=False), 403, "X-Twilio-Signature is missing: only Twilio may call this webhook"),
        (await call.ring("/twilio/voice?agent=nobody"), 404,
         "no agent 'nobody' here; agents: billing, concierge, weather"),
    ]
    for response, status, reason in cases:
        assert (response.status_code, response.text) == (status, reason + "\n")
    async with httpx.AsyncClient() as client:
        url = phone.base_url + "/twilio/voice"
        as_json = await client.post(url, json=call.form(), headers={"X-Twilio-Signature": "x"})
        assert (as_json.status_code, as_json.text) == (
            415, "the webhook body must be application/x-www-form-urlencoded, not 'application/json'\n")
        assert (await client.get(url)).status_code == 405
        metrics = (await client.get(phone.base_url + "/metrics")).text
    assert 'realtalk_sessions_total{kind="phone",outcome="refused"} 4.0' in metrics
    assert phone.hub.active == 0 and len(phone.emulator.connections) == 0


def _documented_twiml() -> str:
    """The TwiML answer shown in docs/serve.md ("What happens on a call")."""
    page = (ROOT / "docs" / "serve.md").read_text()
    marker = "tested by: tests/serve/test_twilio.py::test_webhook_answers_twiml_for_the_agent_asked_for"
    block = page[page.index(marker):].split("```xml\n", 1)[1].split("```", 1)[0]
    return textwrap.dedent(block).strip()


async def test_webhook_answers_twiml_for_the_agent_asked_for(tmp_path: Path, observed: list[Any],
                                                            serve_server: Any) -> None:
    sim = _load_sim()
    public = "https://voice.example.com"
    async with _served(tmp_path, observed, serve_server, public_url=public) as served:
        response = await served.call().ring("/twilio/voice?agent=billing",
                                            signed_url=public + "/twilio/voice?agent=billing")
    assert response.status_code == 200, response.text
    stream = sim.parse_twiml(response.text)
    assert stream.url == "wss://voice.example.com/twilio/stream"
    assert list(stream.parameters) == ["agent", "token"] and stream.parameters["agent"] == "billing"
    expiry, nonce, mac = stream.parameters["token"].split(".")
    assert expiry.isdigit() and len(nonce) == 16 and len(mac) == 43
    assert AUTH_TOKEN not in response.text
    # docs/serve.md shows this answer (its token made up).
    documented = sim.parse_twiml(_documented_twiml())
    assert (documented.url, documented.parameters["agent"]) == (stream.url, "billing")
    assert list(documented.parameters) == list(stream.parameters)
    assert response.text == tw.twiml(stream.url, stream.parameters)
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url=')


async def test_behind_a_proxy_the_public_url_is_what_twilio_signs(tmp_path: Path, observed: list[Any],
                                                                   serve_server: Any) -> None:
    sim = _load_sim()
    public = "https://voice.example.com/hotel"
    async with _served(tmp_path, observed, serve_server, public_url=public) as served:
        call = served.call()
        # Twilio signs the URL it was given: the public one, not the server's own.
        wrong = await call.ring()
        assert wrong.status_code == 403
        response = await call.ring(signed_url=public + "/twilio/voice")
        assert response.status_code == 200, response.text
        assert sim.parse_twiml(response.text).url == "wss://voice.example.com/hotel/twilio/stream"


async def test_without_an_auth_token_phone_calls_are_off(tmp_path: Path, observed: list[Any],
                                                        serve_server: Any) -> None:
    sim = _load_sim()
    async with _served(tmp_path, observed, serve_server, twilio_auth_token=None) as served:
        call = served.call()
        response = await call.ring()
        assert (response.status_code, response.text) == (
            503, ("Twilio calls are off: REALTALK_TWILIO_AUTH_TOKEN is not set, so Twilio's signature cannot"
                  " be checked\n"))
        stream = sim.Stream(served.base_url.replace("http", "ws") + "/twilio/stream",
                            {"agent": "concierge", "token": "1.2.3"})
        await call.connect(stream)
        await call.wait_closed()
        assert (call.close_code, call.close_reason) == (
            1008, "stream refused: Twilio calls are off (REALTALK_TWILIO_AUTH_TOKEN is not set)")
        await call.close()
        assert len(served.emulator.connections) == 0


async def test_a_stream_that_never_starts_is_closed(phone: Phone, monkeypatch: pytest.MonkeyPatch) -> None:
    from websockets.asyncio.client import connect

    monkeypatch.setattr(tw, "START_TIMEOUT_S", 0.3)
    async with connect(phone.base_url.replace("http", "ws") + "/twilio/stream") as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await asyncio.wait_for(ws.wait_closed(), 10)
    assert (ws.close_code, ws.close_reason) == (1008, "no start message within 0.3 s")


async def test_a_call_over_capacity_is_refused(tmp_path: Path, observed: list[Any], serve_server: Any) -> None:
    sim = _load_sim()
    async with _served(tmp_path, observed, serve_server, max_sessions=1) as served:
        first = await served.dial()
        await served.until(lambda: "connected" in served.kinds(), "the first call's session")
        second = served.call()
        response = await second.ring()
        stream = sim.parse_twiml(response.text)
        await second.connect(stream, url=sim.ws_url(served.base_url, stream.url))
        await second.wait_closed()
        assert (second.close_code, second.close_reason) == (
            1008, "the server is busy (1 sessions); try again later")
        await second.close()
        await first.hang_up()
        await served.until(lambda: served.hub.active == 0, "the first call ended")


async def test_the_server_ends_a_call_at_its_maximum_length(tmp_path: Path, observed: list[Any],
                                                          serve_server: Any) -> None:
    async with _served(tmp_path, observed, serve_server, max_session_s=1.0) as served:
        call = await served.dial()
        await call.wait_closed()
        assert (call.close_code, call.close_reason) == (1000, "the session reached its maximum length of 1 s")
        await call.close()
        await served.until(lambda: served.hub.active == 0, "the session ended")
