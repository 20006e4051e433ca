"""G.711 against values from the standard, audioop's reference implementation, and round trips."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from realtalk.audio import g711

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def test_known_values_from_the_standard() -> None:
    # G.711 Table 2a/2b: zero and full-scale code words (character signals after
    # even-bit inversion for A-law).
    assert g711.ulaw_encode([0]).tolist() == [0xFF]
    assert g711.alaw_encode([0]).tolist() == [0xD5]
    assert g711.ulaw_encode([32767, -32768]).tolist() == [0x80, 0x00]
    assert g711.alaw_encode([32767, -32768]).tolist() == [0xAA, 0x2A]
    assert g711.ulaw_decode([0xFF, 0x7F, 0x80, 0x00]).tolist() == [0, 0, 32124, -32124]
    assert g711.alaw_decode([0xD5, 0x55, 0xAA, 0x2A]).tolist() == [8, -8, 32256, -32256]


def test_decode_tables_are_odd_symmetric_and_monotonic() -> None:
    mu = g711.ulaw_decode(np.arange(256)).astype(int)
    a = g711.alaw_decode(np.arange(256)).astype(int)
    # mu-law: codes 0x00..0x7F negative, 0x80..0xFF positive, mirrored.
    assert (mu[:128] == -mu[128:]).all()
    assert (np.diff(mu[128:]) < 0).all()  # 0x80 loudest, 0xFF zero
    assert sorted(set(a)) == sorted(set(-a))
    assert len(set(a)) == 256 and len(set(mu)) == 255  # mu-law has +0 and -0


def test_encode_matches_the_reference_implementation_for_every_sample() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    pcm = ALL_INT16.tobytes()
    assert g711.ulaw_encode(pcm).tobytes() == audioop.lin2ulaw(pcm, 2)
    assert g711.alaw_encode(pcm).tobytes() == audioop.lin2alaw(pcm, 2)
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes).astype("<i2").tobytes() == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes).astype("<i2").tobytes() == audioop.alaw2lin(codes, 2)


@pytest.mark.parametrize(
    ("enc", "dec"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_round_trip_error_is_within_half_a_quantisation_step(enc, dec) -> None:  # type: ignore[no-untyped-def]
    back = dec(enc(ALL_INT16)).astype(np.int64)
    err = np.abs(back - ALL_INT16.astype(np.int64))
    mag = np.abs(ALL_INT16.astype(np.int64))
    # Segmented log companding: the step doubles per segment, so the error is relative.
    # Small signals: absolute bound (first segments have steps of 16 and 4 on 16-bit).
    assert err[mag < 256].max() <= 16
    big = mag >= 256
    assert (err[big] / mag[big]).max() <= 0.0625
    # Decoding then re-encoding is exact: each code decodes to its own interval.
    codes = np.arange(256, dtype=np.uint8)
    again = enc(dec(codes))
    assert (again == codes).sum() >= 255  # mu-law 0x7F (-0) re-encodes as 0xFF (+0)


def test_accepts_bytes_and_arrays_alike() -> None:
    x = np.array([1000, -1000, 0, 12345], dtype=np.int16)
    assert (g711.ulaw_encode(x.tobytes()) == g711.ulaw_encode(x)).all()
    assert (g711.alaw_decode(bytes([0xD5, 0xAA])) == g711.alaw_decode([0xD5, 0xAA])).all()


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
def test_24k_conversion_keeps_pitch_and_length(law, make_sine, measure_freq) -> None:  # type: ignore[no-untyped-def]
    pcm = make_sine(1000.0, 24000, 1.0).tobytes()
    codes = g711.pcm24k_to_g711(pcm, law)
    assert len(codes) == 8000  # 1 s at 8 kHz, one byte per sample: ms = bytes / 8
    back = np.frombuffer(g711.g711_to_pcm24k(codes, law), dtype="<i2")
    assert len(back) == 24000
    assert measure_freq(back, 24000) == pytest.approx(1000.0, rel=0.01)
    # Level survives within a dB (companding noise and the resampling filters).
    rms_in = np.sqrt(np.mean(np.frombuffer(pcm, "<i2").astype(float) ** 2))
    rms_out = np.sqrt(np.mean(back[2400:-2400].astype(float) ** 2))
    assert abs(20 * np.log10(rms_out / rms_in)) < 1.0


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
def test_streaming_codec_in_odd_chunks(law, make_sine, measure_freq) -> None:  # type: ignore[no-untyped-def]
    pcm = make_sine(440.0, 24000, 1.0).tobytes()
    enc = g711.G711Encoder(law)
    wire = b"".join(enc.encode(pcm[i : i + 962]) for i in range(0, len(pcm), 962))
    wire += enc.flush()
    assert abs(len(wire) - 8000) <= 1
    # Same as the one-shot conversion, give or take one quantisation step.
    one_shot = g711.pcm24k_to_g711(pcm, law)
    dec = g711.ulaw_decode if law == "pcmu" else g711.alaw_decode
    a = dec(wire[:7990]).astype(int)
    b = dec(one_shot[:7990]).astype(int)
    assert np.abs(a - b).max() <= np.abs(b).max() // 16
    d = g711.G711Decoder(law)
    back = b"".join(d.decode(wire[i : i + 160]) for i in range(0, len(wire), 160)) + d.flush()
    y = np.frombuffer(back, dtype="<i2")
    assert abs(len(y) - 24000) <= 3
    assert measure_freq(y, 24000) == pytest.approx(440.0, rel=0.01)


def test_unknown_law_is_rejected() -> None:
    with pytest.raises(ValueError, match="'pcmu' or 'pcma'"):
        g711.G711Encoder("g722")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'pcmu' or 'pcma'"):
        g711.pcm24k_to_g711(b"", "ulaw")  # type: ignore[arg-type]


def test_numpy_codec_is_the_vocabulary_codec_for_every_sample_and_code() -> None:
    from realtalk.protocol import vocab

    pcm = ALL_INT16.astype("<i2").tobytes()
    assert g711.ulaw_encode(ALL_INT16).tobytes() == vocab.ulaw_encode(pcm)
    assert g711.alaw_encode(pcm).tobytes() == vocab.alaw_encode(pcm)
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes).astype("<i2").tobytes() == vocab.ulaw_decode(codes)
    assert g711.alaw_decode(np.arange(256)).astype("<i2").tobytes() == vocab.alaw_decode(codes)
