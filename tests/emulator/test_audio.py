"""Audio: energy VAD with the server_vad knobs, barge-in, pacing, G.711 lengths."""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np
import pytest

from .conftest import make_pcm as pcm

RATE = 24000


async def send_audio(client: Any, data: bytes, chunk_ms: int = 100) -> None:
    step = RATE * 2 * chunk_ms // 1000
    for start in range(0, len(data), step):
        await client.send(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(data[start : start + step]).decode(),
            }
        )


SPEECH = pcm(("silence", 500, 0), ("tone", 800, 0.3), ("silence", 700, 0))
AUDIO_SCENARIO = {
    "turns": [
        {"audio": True, "transcript": "book a room", "reply": "Which dates?"},
        {"audio": True, "reply": "A long answer that takes a while to say out loud, really."},
        {"audio": True, "reply": "Okay."},
    ]
}


async def test_vad_turn(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(AUDIO_SCENARIO)
    async with open_client(emu) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
                },
            }
        )
        await client.until("session.updated")
        await send_audio(client, SPEECH)
        # As live, the transcription is asynchronous: it comes after the response began.
        events = await client.until("conversation.item.input_audio_transcription.completed")
    types = [e["type"] for e in events]
    assert types.index("response.created") < types.index(
        "conversation.item.input_audio_transcription.delta"
    )
    started = events[types.index("input_audio_buffer.speech_started")]
    stopped = events[types.index("input_audio_buffer.speech_stopped")]
    committed = events[types.index("input_audio_buffer.committed")]
    assert started["audio_start_ms"] == 500 - 300  # prefix padding
    assert stopped["audio_end_ms"] == 1300
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert types.index("input_audio_buffer.committed") < types.index("response.created")
    user_item = events[types.index("conversation.item.added")]["item"]
    assert user_item["id"] == committed["item_id"]
    assert user_item["content"][0]["type"] == "input_audio"
    transcription = events[types.index("conversation.item.input_audio_transcription.completed")]
    assert transcription["transcript"] == "book a room"
    deltas = [
        e["delta"] for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"
    ]
    assert deltas == ["book", " a", " room"]  # a word at a time
    assert types.index("conversation.item.input_audio_transcription.delta") < types.index(
        "conversation.item.input_audio_transcription.completed"
    )
    transcript = [
        e["transcript"] for e in events if e["type"] == "response.output_audio_transcript.done"
    ]
    assert transcript == ["Which dates?"]


async def test_vad_threshold_honoured(make_emulator: Any, open_client: Any) -> None:
    quiet = pcm(("silence", 300, 0), ("tone", 600, 0.008), ("silence", 500, 0))  # about -45 dBFS
    emu = await make_emulator()
    async with open_client(emu) as client:
        await send_audio(client, quiet)  # default threshold 0.5 = -40 dBFS: nothing heard
        await client.send({"type": "input_audio_buffer.clear"})
        assert (await client.recv())["type"] == "input_audio_buffer.cleared"
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "turn_detection": {
                                "type": "server_vad",
                                "threshold": 0.3,
                                "silence_duration_ms": 400,
                            }
                        }
                    },
                },
            }
        )
        await client.until("session.updated")
        await send_audio(client, quiet)
        events = await client.until("input_audio_buffer.speech_stopped")
    assert [e["type"] for e in events][-2:] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
    ]
    assert events[-1]["audio_end_ms"] == 1400 + 900  # second file; the clock keeps running


async def test_turn_detection_null_manual_commit(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(AUDIO_SCENARIO)
    async with open_client(emu) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            }
        )
        assert (await client.recv())["session"]["audio"]["input"]["turn_detection"] is None
        await client.send({"type": "input_audio_buffer.commit", "event_id": "c0"})
        error = (await client.recv())["error"]
        assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "c0")
        await send_audio(client, SPEECH)
        await client.send({"type": "input_audio_buffer.commit"})
        events = await client.until("conversation.item.done")
        assert events[0]["type"] == "input_audio_buffer.committed"  # no VAD events before it
        await client.send({"type": "response.create"})
        events = await client.until("rate_limits.updated")
    assert [
        e["transcript"] for e in events if e["type"] == "response.output_audio_transcript.done"
    ] == ["Which dates?"]


async def test_barge_in_cancels_with_turn_detected(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator(AUDIO_SCENARIO, fast=False)
    async with open_client(emu) as client:
        await send_audio(client, SPEECH)
        await client.until("response.done")  # turn 1
        await send_audio(client, SPEECH)
        await client.until("response.output_audio.delta")  # turn 2 is being spoken
        await send_audio(client, pcm(("tone", 300, 0.3)))  # the user talks over it
        events = await client.until("response.done")
    types = [e["type"] for e in events]
    assert "input_audio_buffer.speech_started" in types
    assert types.index("input_audio_buffer.speech_started") < types.index("response.done")
    response = events[-1]["response"]
    assert response["status"] == "cancelled"
    assert response["status_details"]["reason"] == "turn_detected"


async def _audio_span(
    make_emulator: Any, open_client: Any, fast: bool, **options: Any
) -> tuple[float, float]:
    text = "x" * 30  # two seconds of audio
    emu = await make_emulator({"turns": [{"user": "go", "reply": text}]}, fast=fast, **options)
    async with open_client(emu) as client:
        await client.user_text("go")
        await client.send({"type": "response.create"})
        await client.until("response.output_audio.delta")
        start = time.monotonic()
        await client.until("response.output_audio.done")
        span = time.monotonic() - start
    data = b"".join(
        base64.b64decode(e["delta"])
        for e in client.received
        if e["type"] == "response.output_audio.delta"
    )
    return span, len(data) / (RATE * 2)


async def test_pacing_real_time(make_emulator: Any, open_client: Any) -> None:
    span, duration = await _audio_span(make_emulator, open_client, fast=False, audio_speed=1.0)
    assert duration == 2.0
    assert span >= 0.8 * duration - 0.1  # first chunk is immediate, the rest at 100 ms steps


async def test_pacing_live_like_by_default(make_emulator: Any, open_client: Any) -> None:
    # As live: faster than real time (DEFAULT_AUDIO_SPEED, 4x), so a reply's audio is all
    # sent long before it has been heard.
    span, duration = await _audio_span(make_emulator, open_client, fast=False)
    assert duration == 2.0
    assert duration / 4 - 0.1 <= span < 0.8 * duration - 0.1  # not real time (above)


async def test_pacing_fast(make_emulator: Any, open_client: Any) -> None:
    span, duration = await _audio_span(make_emulator, open_client, fast=True)
    assert duration == 2.0
    assert span < 0.5 * duration


async def test_g711_output_length(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator({"turns": [{"user": "hi", "reply": "Hi there!"}]})
    async with open_client(emu) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"output": {"format": {"type": "audio/pcmu"}}},
                },
            }
        )
        await client.until("session.updated")
        events = await client.turn("hi")
        data = b"".join(
            base64.b64decode(e["delta"])
            for e in events
            if e["type"] == "response.output_audio.delta"
        )
        assert len(data) == 9 * (8000 // 15)  # 1 byte per sample at 8 kHz
        item_id = events[-2]["response"]["output"][0]["id"]
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 700,
            }
        )
        assert (await client.recv())["error"]["message"] == (
            "Audio content of 599ms is already shorter than 700ms"
        )


async def test_g711_input_vad(make_emulator: Any, open_client: Any) -> None:
    emu = await make_emulator()
    async with open_client(emu) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcma"}}},
                },
            }
        )
        await client.until("session.updated")
        # A-law: 0xD5 is silence, 0xAA/0x2A are large positive/negative values.
        loud = bytes([0xAA, 0x2A] * 4000)  # 1 s of a loud square wave at 8 kHz
        silence = bytes([0xD5]) * 8000
        for data in (silence[:4000], loud, silence):
            await client.send(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()}
            )
        events = await client.until("input_audio_buffer.committed")
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    assert (started["audio_start_ms"], stopped["audio_end_ms"]) == (500 - 300, 1500)


async def test_created_input_audio_item_matches_audio_turn(
    make_emulator: Any, open_client: Any
) -> None:
    emu = await make_emulator(AUDIO_SCENARIO)
    async with open_client(emu) as client:
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "audio": base64.b64encode(SPEECH).decode()}
                    ],
                },
            }
        )
        await client.send({"type": "response.create"})
        events = await client.until("rate_limits.updated")
    transcript = [
        e["transcript"] for e in events if e["type"] == "response.output_audio_transcript.done"
    ]
    assert transcript == ["Which dates?"]


def test_g711_round_trip_and_threshold_mapping() -> None:
    from realtalk.emulator.audio import AudioFormat, encode, synthesize, threshold_dbfs

    signal_ = np.linspace(-1.0, 1.0, 4001)
    for kind in ("audio/pcmu", "audio/pcma"):
        fmt = AudioFormat(kind, 8000, 1)
        decoded = fmt.decode(encode(signal_, fmt))
        error = np.abs(decoded - signal_) / np.maximum(np.abs(signal_), 0.01)
        assert error.max() < 0.05, kind  # G.711 keeps about 3% relative precision
    assert (threshold_dbfs(0.0), threshold_dbfs(0.5), threshold_dbfs(1.0)) == (-70, -40, -10)
    pcm24 = AudioFormat.from_session({"type": "audio/pcm", "rate": 24000})
    assert len(b"".join(synthesize("abc", pcm24))) == 3 * 1600 * 2  # 15 characters a second


def _synthesize_whole(text: str, fmt: Any) -> bytes:
    # The voice as it was made before it streamed: the whole reply in one array.
    from realtalk.emulator.audio import CHARS_PER_SECOND, encode

    per_char = int(fmt.rate / CHARS_PER_SECOND)
    total = max(per_char * len(text), fmt.rate // 10)
    out = np.zeros(total, dtype=np.float64)
    t = np.arange(per_char, dtype=np.float64) / fmt.rate
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) * 200.0)
    for index, char in enumerate(text):
        if char.isspace():
            continue
        pitch = 220.0 + (ord(char) % 32) * 15.0
        out[index * per_char : (index + 1) * per_char] = (
            0.2 * envelope * np.sin(2 * np.pi * pitch * t)
        )
    return encode(out, fmt)


@pytest.mark.parametrize(
    ("kind", "rate", "width"),
    [("audio/pcm", 24000, 2), ("audio/pcmu", 8000, 1), ("audio/pcma", 8000, 1)],
)
def test_synthesis_streams_the_same_bytes_chunk_by_chunk(kind: str, rate: int, width: int) -> None:
    from realtalk.emulator.audio import AudioFormat, synthesize
    from realtalk.emulator.voice import ToneAudio

    fmt = AudioFormat(kind, rate, width)
    chunk = rate // 10 * width
    for text in ("", "a", "Hi there!", "Welcome to Hotel Aurora. How can I help?", "x y  z" * 40):
        whole = _synthesize_whole(text, fmt)
        chunks = list(synthesize(text, fmt))  # 100 ms each
        assert b"".join(chunks) == whole, text
        assert {len(c) for c in chunks[:-1]} <= {chunk} and 0 < len(chunks[-1]) <= chunk
        assert list(ToneAudio().speech(text, fmt, 100)) == chunks
        for chunk_ms in (7, 20, 1000):  # chunks that cut characters anywhere
            assert b"".join(synthesize(text, fmt, chunk_ms)) == whole, (text, chunk_ms)


def test_synthesis_is_lazy_and_refuses_an_empty_chunk() -> None:
    from realtalk.emulator.audio import AudioFormat, synthesize

    fmt = AudioFormat("audio/pcm", 24000, 2)
    chunks = synthesize("x" * 1_000_000, fmt)  # 18 hours of speech: only asked for is made
    assert len(next(chunks)) == 4800
    with pytest.raises(ValueError, match="shorter than one sample"):
        next(synthesize("hi", fmt, 0))


def test_emulator_g711_is_the_vocabulary_codec() -> None:
    from realtalk.emulator.audio import AudioFormat, encode
    from realtalk.protocol import vocab

    codes = bytes(range(256))
    pcm16 = np.arange(-32768, 32768, dtype="<i2")  # the old emulator codec missed 381 + 127
    for kind, enc, dec in (
        ("audio/pcmu", vocab.ulaw_encode, vocab.ulaw_decode),
        ("audio/pcma", vocab.alaw_encode, vocab.alaw_decode),
    ):
        fmt = AudioFormat.from_session({"type": kind})
        assert (fmt.kind, fmt.rate, fmt.width, fmt.bytes_per_ms) == (kind, 8000, 1, 8)
        decoded = fmt.decode(codes)
        assert (decoded * 32768).astype("<i2").tobytes() == dec(codes)
        # Exact integers survive the float scaling, so encoding is the vocabulary's, bit for bit.
        assert encode(pcm16 / 32767, fmt) == enc(pcm16.tobytes())
    assert AudioFormat.from_session(None) == AudioFormat.from_session({"type": "opus"})
    assert AudioFormat.from_session(None).bytes_per_ms == 48
