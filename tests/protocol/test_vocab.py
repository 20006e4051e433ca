"""The shared Realtime vocabulary: formats, the G.711 codec, defaults, ids and builders."""

from __future__ import annotations

import ast
import inspect
import re
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from realtalk.protocol import vocab
from realtalk.protocol.vocab import (
    PCM,
    PCMA,
    PCMU,
    AudioFormat,
    audio_format,
)

ALL_PCM16 = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


# -- an independent ITU-T G.711 reference (the numpy tables audio/g711.py used to build) ------


def _reference_encode(law: str) -> npt.NDArray[np.int64]:
    if law == "ulaw":
        pcm = np.arange(-32768, 32768, dtype=np.int64) >> 2
        mask = np.where(pcm < 0, 0x7F, 0xFF)
        mag = np.minimum(np.abs(pcm), 8159) + 0x21
        ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
        seg = np.searchsorted(ends, mag)
        code = (seg << 4) | ((mag >> (seg + 1)) & 0x0F)
    else:
        pcm = np.arange(-32768, 32768, dtype=np.int64) >> 3
        mask = np.where(pcm >= 0, 0xD5, 0x55)
        mag = np.where(pcm >= 0, pcm, -pcm - 1)
        ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
        seg = np.searchsorted(ends, mag)
        code = (seg << 4) | ((mag >> np.where(seg < 2, 1, seg)) & 0x0F)
    return np.asarray(np.where(seg >= 8, 0x7F, code) ^ mask)  # by sample, -32768 first


def _reference_decode(law: str) -> npt.NDArray[np.int64]:
    if law == "ulaw":
        u = ~np.arange(256, dtype=np.int64) & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        return np.asarray(np.where(u & 0x80, 0x84 - t, t - 0x84))
    a = np.arange(256, dtype=np.int64) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.asarray(np.where(a & 0x80, t, -t))


CODECS = [
    ("ulaw", vocab.ulaw_encode, vocab.ulaw_decode),
    ("alaw", vocab.alaw_encode, vocab.alaw_decode),
]


@pytest.mark.parametrize(("law", "encode", "decode"), CODECS)
def test_codec_agrees_with_the_reference_on_every_sample_and_code(law, encode, decode) -> None:  # type: ignore[no-untyped-def]
    codes = np.frombuffer(encode(ALL_PCM16), dtype=np.uint8)
    mismatched = np.flatnonzero(codes != _reference_encode(law)) - 32768
    assert mismatched.tolist() == []
    samples = np.frombuffer(decode(ALL_CODES), dtype="<i2")
    assert (samples == _reference_decode(law)).all()


@pytest.mark.parametrize(("law", "encode", "decode"), CODECS)
def test_codec_agrees_with_audioop(law, encode, decode) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    assert encode(ALL_PCM16) == getattr(audioop, f"lin2{law}")(ALL_PCM16, 2)
    assert decode(ALL_CODES) == getattr(audioop, f"{law}2lin")(ALL_CODES, 2)


def test_codec_known_values_from_the_standard() -> None:
    pcm = np.array([0, 32767, -32768], dtype="<i2").tobytes()
    assert vocab.ulaw_encode(pcm) == bytes([0xFF, 0x80, 0x00])
    assert vocab.alaw_encode(pcm) == bytes([0xD5, 0xAA, 0x2A])
    assert vocab.ulaw_decode(bytes([0xFF, 0x80])) == np.array([0, 32124], "<i2").tobytes()
    assert vocab.alaw_decode(bytes([0xD5, 0x2A])) == np.array([8, -32256], "<i2").tobytes()


def test_codec_accepts_any_buffer_and_any_length() -> None:
    pcm = np.array([1000, -1000, 0], dtype="<i2").tobytes()
    assert vocab.ulaw_encode(bytearray(pcm)) == vocab.ulaw_encode(memoryview(pcm))
    assert vocab.alaw_encode(pcm[:2]) == vocab.alaw_encode(pcm)[:1]  # one sample
    assert vocab.ulaw_encode(b"") == b"" and vocab.alaw_decode(b"") == b""
    assert vocab.ulaw_decode(memoryview(b"\xff\x80")) == vocab.ulaw_decode(b"\xff\x80")


def test_codec_rejects_half_a_sample() -> None:
    with pytest.raises(ValueError, match="even number of bytes, got 3"):
        vocab.ulaw_encode(b"\x00\x01\x02")


def test_encode_tables_are_indexed_by_the_uint16_view() -> None:
    table = vocab.ulaw_encode_table()
    assert len(table) == 65536 and len(vocab.alaw_encode_table()) == 65536
    assert table[0] == 0xFF and table[0xFFFF] == 0x7E  # 0, then -1 (>> 2 stays -1)
    assert table[0x8000] == 0x00  # -32768: the loudest negative code
    assert len(vocab.ULAW_DECODE) == len(vocab.ALAW_DECODE) == 256


# -- audio formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, PCM),
        ("audio/pcm", PCM),
        ("pcm16", PCM),
        ({"type": "audio/pcm", "rate": 24000}, PCM),
        ({}, PCM),
        ("audio/pcmu", PCMU),
        ("g711_ulaw", PCMU),
        ({"type": "audio/pcmu"}, PCMU),
        ("audio/pcma", PCMA),
        ("g711_alaw", PCMA),
        ({"type": "audio/pcma"}, PCMA),
        (PCMA, PCMA),
    ],
)
def test_audio_format_parses_every_spelling(spec: Any, expected: AudioFormat) -> None:
    assert audio_format(spec) == expected


def test_audio_format_properties() -> None:
    assert (PCM.name, PCM.rate, PCM.width, PCM.bytes_per_ms, PCM.beta) == (
        "audio/pcm", 24000, 2, 48, "pcm16",
    )
    assert (PCMU.rate, PCMU.width, PCMU.bytes_per_ms, PCMU.beta) == (8000, 1, 8, "g711_ulaw")
    assert PCMA.beta == "g711_alaw"
    assert PCM.ga_object() == {"type": "audio/pcm", "rate": 24000}
    assert PCMU.ga_object() == {"type": "audio/pcmu"}
    assert PCM.ms(4800) == 100 and PCM.ms(47) == 0 and PCMA.ms(8) == 1
    assert PCMU.is_g711 and PCMA.is_g711 and not PCM.is_g711
    with pytest.raises(AttributeError):
        PCM.rate = 8000  # type: ignore[misc]


def test_pcm_object_keeps_another_rate() -> None:
    fmt = audio_format({"type": "audio/pcm", "rate": 16000})
    assert (fmt.rate, fmt.bytes_per_ms) == (16000, 32)
    assert fmt.ga_object() == {"type": "audio/pcm", "rate": 16000}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("audio/wav", "unknown audio format 'audio/wav': expected audio/pcm, audio/pcmu or audio/pcma (GA), or pcm16, g711_ulaw or g711_alaw (beta)"),
        ({"type": "opus"}, "unknown audio format type 'opus': expected"),
        ({"type": 5}, "unknown audio format type 5: expected"),
        ({"type": "audio/pcm", "rate": "fast"}, "audio format rate 'fast' is not a positive integer"),
        ({"type": "audio/pcm", "rate": 0}, "audio format rate 0 is not a positive integer"),
        (48, "audio format 48 is not a string, a format object or None"),
    ],
)
def test_audio_format_says_what_is_unknown(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        audio_format(spec)


# -- turn detection ------------------------------------------------------------------------------


def test_vad_defaults() -> None:
    assert dict(vocab.SERVER_VAD_DEFAULTS) == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
        "silence_duration_ms": 500, "create_response": True, "interrupt_response": True,
    }
    live = dict(vocab.LIVE_SERVER_VAD_DEFAULTS)
    assert live["silence_duration_ms"] == 200 and live["idle_timeout_ms"] is None
    assert dict(vocab.SEMANTIC_VAD_DEFAULTS) == {
        "type": "semantic_vad", "eagerness": "auto",
        "create_response": True, "interrupt_response": True,
    }
    with pytest.raises(TypeError):
        vocab.SERVER_VAD_DEFAULTS["threshold"] = 0.9  # type: ignore[index]


# -- ids --------------------------------------------------------------------------------------------


def test_ids_have_the_documented_shape_and_are_unique() -> None:
    items = {vocab.new_item_id() for _ in range(100)}
    assert len(items) == 100
    assert all(re.fullmatch(r"item_rt[0-9a-f]{16}", i) for i in items)
    assert max(map(len, items)) <= vocab.ITEM_ID_MAX == 32
    event = vocab.new_event_id()
    assert re.fullmatch(r"event_[0-9a-f]{22}", event) and len(event) <= vocab.EVENT_ID_MAX
    assert vocab.new_event_id() != event
    assert re.fullmatch(r"call_[0-9a-f]{16}", vocab.new_id("call", 8))


# -- items and events ---------------------------------------------------------------------------


def test_item_builders() -> None:
    assert vocab.user_text_item("hi") == {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}],
    }
    with_id = vocab.user_text_item("hi", id="item_rt1")
    assert list(with_id) == ["id", "type", "role", "content"] and with_id["id"] == "item_rt1"
    assert vocab.assistant_text_item("ok") == {
        "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}],
    }
    assert vocab.function_call_item("c1", "clock", "{}") == {
        "type": "function_call", "call_id": "c1", "name": "clock", "arguments": "{}",
    }
    assert vocab.function_call_output_item("c1", '{"ok": 1}') == {
        "type": "function_call_output", "call_id": "c1", "output": '{"ok": 1}',
    }
    item = vocab.function_call_output_item("c1", "x")
    assert vocab.item_create(item) == {"type": "conversation.item.create", "item": item}
    assert vocab.item_create(item, previous_item_id="item_a")["previous_item_id"] == "item_a"


def test_error_event_and_its_summary() -> None:
    event = vocab.error_event(
        "invalid_request_error", "invalid_value", "Invalid value: 'x'.", "session.voice", "evt_1"
    )
    assert event == {
        "type": "error",
        "error": {
            "type": "invalid_request_error", "code": "invalid_value",
            "message": "Invalid value: 'x'.", "param": "session.voice", "event_id": "evt_1",
        },
    }
    assert vocab.error_summary(event) == (
        "invalid_value: Invalid value: 'x'. (param session.voice, caused by evt_1)"
    )
    bare = vocab.error_event("server_error", None, "The server had an error")
    assert bare["error"]["param"] is None and bare["error"]["event_id"] is None
    assert vocab.error_summary(bare) == "server_error: The server had an error"
    assert vocab.error_summary({"type": "error"}) == "server error without details"


def test_error_line() -> None:
    assert vocab.error_line({"code": "rate_limited", "message": " slow down "}) == (
        "rate_limited: slow down"
    )
    assert vocab.error_line({"type": "server_error"}) == "server_error"
    assert vocab.error_line({}) == "error"
    assert vocab.error_line("boom") == "error"


# -- purity -------------------------------------------------------------------------------------


def test_vocab_imports_only_the_standard_library() -> None:
    tree = ast.parse(inspect.getsource(vocab))
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {"__future__", "array", "collections", "dataclasses", "functools",
                        "operator", "secrets", "sys", "types", "typing"}
