"""RemoteSink: audio sent at once, played time from the player's reports, epochs on barge-in."""

from __future__ import annotations

import asyncio
import base64

import pytest
from realtalk.audio.bridge import AudioBridge
from realtalk.audio.g711 import ulaw_encode
from realtalk.audio.remote import MAX_SEGMENTS, RemoteSink


class Player:
    """The transport side: what the sink sent."""

    def __init__(self) -> None:
        self.audio: list[bytes] = []
        self.clears: list[int] = []

    def sink(self, audio_format: str = "audio/pcm") -> RemoteSink:
        return RemoteSink(self.audio.append, self.clears.append, audio_format=audio_format)


def pcm(ms: int) -> bytes:
    return b"\x01\x00" * (24 * ms)


def test_audio_is_sent_at_once_and_counted_received() -> None:
    player = Player()
    sink = player.sink()
    sink.feed("item_a", pcm(40))
    sink.feed("item_a", pcm(60))
    assert player.audio == [pcm(40), pcm(60)]
    assert sink.sent_samples == 2400
    assert sink.tracker.received_ms("item_a") == 100
    assert sink.tracker.played_ms("item_a") == 0


def test_reports_are_attributed_to_items_in_send_order() -> None:
    sink = Player().sink()
    sink.feed("item_a", pcm(100))
    sink.feed("item_b", pcm(100))
    sink.played(0, 24 * 150)
    assert sink.tracker.played_ms("item_a") == 100
    assert sink.tracker.played_ms("item_b") == 50
    sink.played(0, 24 * 120)  # older than the newest report: nothing changes
    assert sink.tracker.played_ms("item_b") == 50
    sink.played(0, 24 * 999)  # past what was sent: clamped
    assert sink.tracker.played_ms("item_b") == 100
    assert sink.played_samples == sink.sent_samples


def test_interrupt_clears_the_player_and_starts_the_next_epoch() -> None:
    player = Player()
    sink = player.sink()
    sink.feed("item_a", pcm(300))
    sink.played(0, 24 * 120)
    assert sink.interrupt() == 180
    assert player.clears == [1]
    assert sink.epoch == 1 and sink.sent_samples == 0
    assert sink.tracker.truncate_point("item_a") == 120
    # A late report of epoch 0 (audio played before the player heard of the clear) is
    # not counted against the new epoch's audio.
    sink.feed("item_a", pcm(20))  # a delta of the cut response: counted, not sent
    assert len(player.audio) == 1
    sink.feed("item_c", pcm(50))
    sink.played(0, 24 * 200)
    assert sink.tracker.played_ms("item_c") == 0
    sink.played(1, 24 * 30)
    assert sink.tracker.played_ms("item_c") == 30
    assert sink.tracker.played_ms("item_a") == 120


def test_g711_passes_through_unchanged_and_counts_8khz_samples() -> None:
    player = Player()
    sink = player.sink("audio/pcmu")
    assert sink.passthrough and sink.rate == 8000
    bridge = AudioBridge(sink, "audio/pcmu")
    ulaw = ulaw_encode(b"\x01\x00" * 8 * 40).tobytes()  # 40 ms at 8 kHz
    bridge.on_delta("item_a", base64.b64encode(ulaw).decode())
    assert player.audio == [ulaw]
    assert sink.tracker.received_ms("item_a") == 40
    sink.played(0, 8 * 25)
    cut = bridge.interrupt()
    assert cut is not None and (cut.item_id, cut.played_ms, cut.dropped_ms) == ("item_a", 25, 15)
    assert bridge.wire_input_ms(ulaw) == 40


def test_a_passthrough_sink_refuses_a_session_in_another_format() -> None:
    with pytest.raises(ValueError, match="takes audio/pcmu unchanged, but the session's audio is audio/pcm"):
        AudioBridge(Player().sink("audio/pcmu"), "audio/pcm")


def test_odd_pcm16_chunks_are_refused() -> None:
    with pytest.raises(ValueError, match="2 bytes per sample; got 3 bytes for item_a"):
        Player().sink().feed("item_a", b"abc")


def test_a_player_that_never_reports_holds_a_bounded_number_of_segments() -> None:
    sink = Player().sink()
    for _ in range(MAX_SEGMENTS * 2):
        sink.feed("item_a", pcm(1))
    assert len(sink._segments) <= MAX_SEGMENTS


async def test_drain_waits_for_the_players_report() -> None:
    sink = Player().sink()
    sink.feed("item_a", pcm(40))
    waiter = asyncio.ensure_future(sink.drain(timeout=30))
    await asyncio.sleep(0)
    assert not waiter.done()
    sink.played(0, 24 * 40)
    assert await waiter is True
    sink.feed("item_b", pcm(40))
    assert await sink.drain(timeout=0.01) is False  # no report: the bound holds
    sink.close()
    assert await sink.drain(timeout=30) is False
    sink.feed("item_c", pcm(40))  # after close: ignored
    assert sink.sent_samples == 24 * 80


def test_speaking_after_the_whole_reply_was_heard_cuts_nothing() -> None:
    player = Player()
    sink = player.sink()
    bridge = AudioBridge(sink, "audio/pcm")
    bridge.on_delta("item_a", base64.b64encode(pcm(100)).decode())
    sink.played(0, 24 * 100)
    assert bridge.interrupt() is not None  # all played, but more audio could still come
    bridge.on_delta("item_b", base64.b64encode(pcm(100)).decode())
    bridge.on_done("item_b")
    sink.played(1, 24 * 100)
    assert bridge.interrupt() is None and player.clears == [1]
    bridge.on_delta("item_c", base64.b64encode(pcm(100)).decode())
    bridge.on_done("item_c")
    sink.played(1, 24 * 150)  # half of item_c heard
    cut = bridge.interrupt()
    assert cut is not None and (cut.item_id, cut.played_ms) == ("item_c", 50)
