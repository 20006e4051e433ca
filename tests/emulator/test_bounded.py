"""A long session costs the emulator a constant amount of memory: measured in bytes.

The emulator is a load target (hundreds of sessions, each hours of audio), so nothing a
session streams may pile up: the record keeps audio as its length and a bounded number
of events, the input buffer keeps only the prefix padding while nobody speaks, and the
committed audio kept for ``conversation.item.retrieve`` is capped. What still grows is
the conversation itself: two small items a turn.
"""

from __future__ import annotations

import math
import struct
import tracemalloc
from typing import Any

import orjson
from realtalk.emulator import load_scenario
from realtalk.emulator.protocol import MAX_KEPT_INPUT_AUDIO, Send, ServerProtocol
from realtalk.emulator.state import ConnectionRecord, ScenarioProgress
from realtalk.emulator.voice import ToneAudio
from realtalk.protocol import codec

RATE = 24_000
SILENCE = codec.b64encode(bytes(4800))  # 100 ms of PCM16 at 24 kHz
TONE = codec.b64encode(
    struct.pack("<2400h", *(int(9000 * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(2400)))
)
REPLY = "Yes, how can I help?"  # 1.3 s of voice


class Session:
    """A ServerProtocol driven as the adapter drives it (fast), its events recorded."""

    def __init__(self) -> None:
        progress = ScenarioProgress(load_scenario({"fallback": REPLY, "turns": []}))
        self.protocol = ServerProtocol(model="gpt-realtime", progress=progress, audio=ToneAudio())
        self.record = ConnectionRecord(path="/v1/realtime", headers={}, max_events=500)
        self.now = 0.0
        self.types: list[str] = []
        self._take()

    def _take(self) -> None:
        for action in self.protocol.actions_to_send():
            assert isinstance(action, Send)
            self.record.add("server", action.event)
            orjson.dumps(action.event)  # every event the emulator sends encodes, on the fast path
            self.types.append(action.event["type"])

    def append(self, audio: str) -> None:
        event = {"type": "input_audio_buffer.append", "audio": audio}
        self.record.add("client", event)
        self.now += 0.1
        self.protocol.receive_event(event, self.now)
        self._take()
        deadline = self.protocol.next_deadline()
        while deadline is not None and deadline <= self.now:
            self.protocol.receive_tick(self.now)
            self._take()
            deadline = self.protocol.next_deadline()

    def turn(self) -> None:
        """Half a second of speech, then silence until the spoken reply is done."""
        done = self.types.count("response.done")
        for _ in range(5):
            self.append(TONE)
        while self.types.count("response.done") == done:
            self.append(SILENCE)
        self.types.clear()


def test_silence_keeps_only_the_prefix_padding() -> None:
    session = Session()
    padding = 300 * 48  # prefix_padding_ms of the default server_vad, in PCM16 bytes
    for _ in range(600):  # a minute of silence
        session.append(SILENCE)
        assert len(session.protocol.buffer) <= padding
    session.turn()  # speech after the silence is still heard and answered
    [committed] = [
        a for a in session.record.server_events("input_audio_buffer.committed")
    ]
    audio = session.protocol.item_audio[committed["item_id"]]
    # The segment: its padding, the half second of speech, the silence that ended it.
    assert padding + 5 * 4800 <= len(audio) <= padding + 5 * 4800 + 300 * 48


def test_kept_input_audio_is_capped() -> None:
    session = Session()
    for _ in range(100):  # 100 turns of about 0.8 s of committed audio each: 3.8 MB
        session.turn()
    kept = session.protocol.item_audio
    assert sum(len(a) for a in kept.values()) <= MAX_KEPT_INPUT_AUDIO
    assert len(kept) < 100
    # The newest are kept: the latest user item's audio is there.
    users = [i for i in session.protocol.items if i["role"] == "user"]
    assert users[-1]["id"] in kept and users[0]["id"] not in kept


def test_memory_per_turn_is_the_conversation_only() -> None:
    # Each turn streams about 2.2 s of audio: 0.8 s in (38 KB of PCM, 51 KB of base64)
    # and 1.4 s out (67 KB, 90 KB of base64), some 40 events. Once the record is full
    # and the kept audio at its cap, a turn leaves only its two conversation items behind.
    # Traced from the start: memory allocated before tracing would not count when freed.
    tracemalloc.start()
    try:
        session = Session()
        for _ in range(80):  # past the cap on kept audio (about 60 turns)
            session.turn()
        before = tracemalloc.get_traced_memory()[0]
        turns = 40
        for _ in range(turns):
            session.turn()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_turn = grown / turns
    assert per_turn < 4_000, f"{per_turn:.0f} bytes kept per turn"
    assert session.record.discarded > 0 and len(session.record.events) == 500


def test_every_event_of_a_session_encodes_as_the_codec_does() -> None:
    # orjson refuses keys that are not strings and integers over 64 bits; what the
    # emulator sends must never hold one, whatever the client sent.
    session = Session()
    weird: dict[str, Any] = {
        "type": "session.update",
        "session": {"type": "realtime", "instructions": "héllo ✓ \u2028 \U0001f600"},
    }
    session.protocol.receive_event(codec.loads(codec.dumps(weird)), 0.0)
    session._take()
    session.turn()
    for record in session.record.events:
        assert codec.loads(codec.dumps(record.event)) == record.event
    [updated] = session.record.server_events("session.updated")
    assert updated["session"]["instructions"] == "héllo ✓ \u2028 \U0001f600"
