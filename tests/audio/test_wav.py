"""WAV reading (every common encoding, downmix) and writing."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from realtalk.audio import WavWriter, g711, read_wav, write_wav
from realtalk.exceptions import ConfigError


def _riff(
    fmt_tag: int, channels: int, rate: int, bits: int, data: bytes, *, extensible: bool = False
) -> bytes:
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", fmt_tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd-sized chunk: padding byte
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_write_then_read_round_trip(tmp_path: Path, make_sine) -> None:  # type: ignore[no-untyped-def]
    x = make_sine(440.0, 24000, 0.5)
    p = tmp_path / "a.wav"
    write_wav(p, x, 24000)
    with wave.open(str(p)) as w:  # readable by the standard library too
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
    got = read_wav(p)
    assert got.rate == 24000 and got.channels == 1 and got.sample_width == 2
    assert np.array_equal(got.samples, x)
    assert got.duration_s == pytest.approx(0.5)


def test_incremental_writer_accepts_bytes_and_arrays(tmp_path: Path) -> None:
    p = tmp_path / "b.wav"
    with WavWriter(p, 16000) as w:
        w.write(np.array([1, 2, 3], dtype=np.int16))
        w.write(np.array([4, 5], dtype=np.int16).tobytes())
        assert w.frames_written == 5
    got = read_wav(p)
    assert got.rate == 16000
    assert got.samples.tolist() == [1, 2, 3, 4, 5]


def test_stereo_is_downmixed_by_averaging(tmp_path: Path) -> None:
    left = np.array([1000, -2000, 32767, -32768], dtype=np.int16)
    right = np.array([3000, 2000, 32767, -32768], dtype=np.int16)
    p = tmp_path / "s.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())
    got = read_wav(p)
    assert got.channels == 2 and got.rate == 44100
    assert got.samples.tolist() == [2000, 0, 32767, -32768]


def test_8_bit_unsigned(tmp_path: Path) -> None:
    p = tmp_path / "u8.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes([128, 255, 0, 192]))
    assert read_wav(p).samples.tolist() == [0, 127 * 256, -32768, 64 * 256]


def test_24_and_32_bit_integer(tmp_path: Path) -> None:
    vals = np.array([0, 1 << 22, -(1 << 22), (1 << 23) - 1, -(1 << 23)], dtype=np.int64)
    raw24 = b"".join(int(v & 0xFFFFFF).to_bytes(3, "little") for v in vals)
    p24 = tmp_path / "i24.wav"
    p24.write_bytes(_riff(1, 1, 48000, 24, raw24))
    assert read_wav(p24).samples.tolist() == [0, 16384, -16384, 32767, -32768]
    p32 = tmp_path / "i32.wav"
    p32.write_bytes(_riff(1, 1, 48000, 32, (vals << 8).astype("<i4").tobytes()))
    got = read_wav(p32)
    assert got.sample_width == 4
    assert got.samples.tolist() == [0, 16384, -16384, 32767, -32768]


def test_float32_extensible_multichannel(tmp_path: Path) -> None:
    frames = np.array([[0.5, 0.5, 0.5], [-1.0, -1.0, -1.0], [2.0, 2.0, 2.0]], dtype="<f4")
    p = tmp_path / "f32.wav"
    p.write_bytes(_riff(3, 3, 96000, 32, frames.tobytes(), extensible=True))
    got = read_wav(p)
    assert (got.channels, got.rate) == (3, 96000)
    assert got.samples.tolist() == [16384, -32767, 32767]  # clipped at full scale


@pytest.mark.parametrize(("tag", "law"), [(7, "pcmu"), (6, "pcma")])
def test_g711_wav(tmp_path: Path, tag: int, law: str) -> None:
    x = np.array([0, 1000, -1000, 30000], dtype=np.int16)
    codes = g711.ulaw_encode(x) if law == "pcmu" else g711.alaw_encode(x)
    p = tmp_path / f"{law}.wav"
    p.write_bytes(_riff(tag, 1, 8000, 8, codes.tobytes()))
    dec = g711.ulaw_decode(codes) if law == "pcmu" else g711.alaw_decode(codes)
    assert read_wav(p).samples.tolist() == dec.tolist()


def test_speech_from_espeak_reads_at_its_own_rate(speech_wav: Path) -> None:
    got = read_wav(speech_wav)
    assert got.rate == 22050
    assert 1.0 < got.duration_s < 4.0
    assert np.abs(got.samples).max() > 3000  # real speech, not silence


def test_errors_are_one_line_and_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(ConfigError) as e:
        read_wav(missing)
    assert str(e.value).startswith(f"{missing}: cannot read WAV file")
    assert "\n" not in str(e.value)

    text = tmp_path / "notes.wav"
    text.write_text("hello, not audio")
    with pytest.raises(ConfigError, match=r"notes\.wav: not a WAV file.*use a PCM WAV file"):
        read_wav(text)

    adpcm = tmp_path / "adpcm.wav"
    adpcm.write_bytes(_riff(0x11, 1, 8000, 4, b"\x00" * 16))
    with pytest.raises(ConfigError, match=r"unsupported WAV encoding \(IMA ADPCM\)"):
        read_wav(adpcm)

    nodata = tmp_path / "nodata.wav"
    nodata.write_bytes(_riff(1, 1, 8000, 16, b"")[:-8])
    with pytest.raises(ConfigError, match="no 'data' chunk"):
        read_wav(nodata)

    with pytest.raises(ConfigError, match="cannot write WAV file"):
        write_wav(tmp_path / "no" / "such" / "dir.wav", np.zeros(4, np.int16))
