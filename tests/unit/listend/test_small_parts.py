"""Small pure parts: the ring, memory levels, outcomes, seen ids, variant flattening, sd_notify."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
from dbus_next import Variant

from listend.config import MemoryOptions
from listend.ids import SeenIds
from listend.memory import pressure_level
from listend.outcome import Outcome
from listend.ringbuffer import RingBuffer
from listend.sdnotify import Notifier
from listend.service import to_variants
from listend.stats import EngineStats, ModelStats, flatten
from listend.units import MIB
from listend_ctl.plot import nice_ticks


def test_the_ring_counts_what_does_not_fit() -> None:
    ring = RingBuffer(1000)
    assert ring.write(np.ones(800, dtype=np.float32)) == 800
    assert ring.write(np.ones(800, dtype=np.float32)) == 200
    assert ring.dropped == 600 and ring.high_water == 1000
    out = np.zeros(300, dtype=np.float32)
    assert ring.read_into(out) == 300 and ring.available == 700


def test_memory_levels_have_hysteresis() -> None:
    o = MemoryOptions(warn_mb=500, cleanup_mb=600, limit_mb=700)
    assert pressure_level(499 * MIB, o, "normal") == "normal"
    assert pressure_level(500 * MIB, o, "normal") == "warn"
    assert pressure_level(495 * MIB, o, "warn") == "warn"  # just below: stays
    assert pressure_level(470 * MIB, o, "warn") == "normal"  # well below: leaves
    assert pressure_level(590 * MIB, o, "cleanup") == "cleanup"
    assert pressure_level(560 * MIB, o, "cleanup") == "warn"
    # RSS wobbling around a threshold gives one level change, not one per sample.
    level, changes = "normal", 0
    for rss in [499, 501, 498, 502, 497, 503] * 10:
        new = pressure_level(rss * MIB, o, level)  # type: ignore[arg-type]
        changes += new != level
        level = new
    assert changes == 1


def test_an_outcome_reads_as_a_boolean_and_says_why() -> None:
    assert Outcome.done("typed") and Outcome.done().detail == ""
    failed = Outcome.failed("no display")
    assert not failed and failed.detail == "no display"


def test_seen_ids_hand_out_each_id_once_whatever_the_order() -> None:
    seen = SeenIds(floor=10, keep=3)
    assert not seen.first_time(10) and seen.first_time(12) and seen.first_time(11) and not seen.first_time(12)
    assert seen.first_time(2**64 - 1)  # a huge id does not mute the ones after it
    assert seen.first_time(13)
    assert seen.first_time(14) and seen.floor >= 11  # bounded: the oldest fold into the floor
    assert not seen.first_time(11)
    assert 11 in seen and 14 in seen and 15 not in seen  # asking does not remember
    assert 15 not in seen and seen.first_time(15)


def test_nested_stats_flatten_to_variants_with_per_worker_names() -> None:
    from listend.capture import CaptureStats
    from listend.commit import CommitStats
    from listend.memory import MemoryStats
    from listend.router import QueueStats
    from listend.stats import BufferStats, Thresholds
    from listend.workers import WorkerStats

    stats = EngineStats(
        "idle",
        "full",
        CaptureStats(audio_seconds=1.5),
        QueueStats(queue_refine=2),
        CommitStats(),
        MemoryStats(level="warn"),
        Thresholds(1, 2, 3),
        BufferStats(4, 5),
        (WorkerStats("live", True, 3, 1, "boom"),),
        7,
        ModelStats(True, 2, 1),
    )
    flat = flatten(stats)
    assert flat["audio_seconds"] == 1.5 and flat["queue_refine"] == 2 and flat["live_worker_items"] == 3
    assert flat["live_worker_last_failure"] == "boom" and flat["partials_skipped"] == 7
    assert flat["models_loaded"] is True and flat["model_releases"] == 2
    variants = to_variants({**flat, "negative": -5})
    assert variants["audio_seconds"] == Variant("d", 1.5) and variants["live_worker_alive"] == Variant("b", True)
    assert variants["level"] == Variant("s", "warn") and variants["negative"] == Variant("t", 0)


def test_sd_notify_speaks_the_protocol_on_a_real_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    notifier = Notifier(str(path), watchdog_usec=2_000_000)
    notifier.ready("idle")
    assert sock.recv(4096).decode().split("\n")[:2] == ["READY=1", "STATUS=idle"]
    assert notifier.watchdog_if_alive(heartbeat=100.0, now=100.5)
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert not notifier.watchdog_if_alive(heartbeat=100.0, now=100.6)  # not due yet
    assert not notifier.watchdog_if_alive(heartbeat=100.0, now=105.0)  # the engine stopped beating: no ping
    assert not Notifier(None).enabled and not Notifier(None).send("READY=1")
    sock.close()


def test_the_watchdog_pings_only_its_own_pid(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    monkeypatch.setenv("NOTIFY_SOCKET", "@nowhere")
    assert Notifier.from_environment().watchdog_interval == 0.0
    monkeypatch.delenv("WATCHDOG_PID")
    assert Notifier.from_environment().watchdog_interval == 0.5


def test_chart_ticks_are_round_numbers_inside_the_range() -> None:
    assert nice_ticks(0.0002778, 1.0) == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 1155) == [0, 200, 400, 600, 800, 1000]
    assert nice_ticks(357, 452) == [360, 380, 400, 420, 440]
    assert nice_ticks(3, 3) == [3]
    assert all(len(nice_ticks(0, hi)) <= 6 for hi in (0.7, 1, 9.9, 13, 47, 101, 4.2e6))
