"""PlaybackTracker: counts from the output, truncation clamped to what was received."""

from __future__ import annotations

import threading

from realtalk.audio import PlaybackTracker


def test_received_and_played_are_counted_per_item() -> None:
    t = PlaybackTracker()
    t.add_received("a", 48_000)  # 1 s of PCM16 at 24 kHz
    t.add_received("b", 4_800)  # 100 ms
    t.add_played("a", 12_000)  # 500 ms
    assert t.received_ms("a") == 1000
    assert t.received_ms("b") == 100
    assert t.played_ms("a") == 500
    assert t.played_ms("b") == 0
    assert t.truncate_point("a") == 500


def test_nothing_played_means_delete_not_truncate() -> None:
    t = PlaybackTracker()
    t.add_received("a", 9600)
    assert t.truncate_point("a") is None
    assert t.truncate_point("never-seen") is None
    t.add_played("a", 23)  # under 1 ms rounds down to 0 ms: still nothing to keep
    assert t.truncate_point("a") is None


def test_truncate_point_is_clamped_to_received() -> None:
    t = PlaybackTracker()
    t.add_received("a", 4800)  # 100 ms
    t.add_played("a", 24_000)  # claims 1 s played (e.g. padding): clamp
    assert t.played_ms("a") == 1000
    assert t.truncate_point("a") == 100


def test_played_frames_at_another_rate_are_scaled() -> None:
    t = PlaybackTracker()
    t.add_received("a", 96_000)  # 2 s
    for _ in range(100):
        t.add_played("a", 441, rate=44_100)  # 100 x 10 ms at 44.1 kHz
    assert t.played_ms("a") == 1000
    t.add_played("a", 480, rate=48_000)
    assert t.played_ms("a") == 1010


def test_g711_bytes_per_sample() -> None:
    t = PlaybackTracker(rate=8000, bytes_per_sample=1)
    t.add_received("a", 8000)
    assert t.received_ms("a") == 1000  # G.711: ms = bytes / 8


def test_forget_and_snapshot() -> None:
    t = PlaybackTracker()
    t.add_received("a", 480)
    t.add_received("b", 960)
    t.add_played("b", 240)
    snap = t.snapshot()
    assert [(s.item_id, s.received_ms, s.played_ms) for s in snap] == [
        ("a", 10, 0),
        ("b", 20, 10),
    ]
    t.forget("a")
    assert [s.item_id for s in t.snapshot()] == ["b"]
    assert t.received_ms("a") == 0


def test_concurrent_writers_lose_no_counts() -> None:
    t = PlaybackTracker()

    def play() -> None:
        for _ in range(10_000):
            t.add_played("a", 24)

    def receive() -> None:
        for _ in range(10_000):
            t.add_received("a", 48)

    threads = [threading.Thread(target=f) for f in (play, play, receive, receive)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.played_ms("a") == 20_000
    assert t.received_ms("a") == 20_000


def test_a_long_session_keeps_only_the_newest_items() -> None:
    t = PlaybackTracker(max_items=3)
    for n in range(10):
        t.add_received(f"item_{n}", 4800)
        t.add_played(f"item_{n}", 1200)
    assert [i.item_id for i in t.snapshot()] == ["item_7", "item_8", "item_9"]
    assert t.received_ms("item_0") == 0 and t.truncate_point("item_0") is None
    assert t.truncate_point("item_9") == 50


def test_readers_of_played_time_ask_the_sink_first() -> None:
    t = PlaybackTracker()
    t.add_received("a", 4800)
    asked = []

    def catch_up() -> None:  # what a lazily counting sink does when asked
        asked.append(True)
        t.add_played("a", 240)

    t.on_read = catch_up
    assert t.played_ms("a") == 10
    assert t.truncate_point("a") == 20
    assert t.snapshot()[0].played_ms == 30
    assert t.received_ms("a") == 100 and len(asked) == 3  # received needs no catching up
