"""The history: hostile lines, ids that never go back, bad wall times, a disk that refuses, what is saved at exit."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import listend.history as h
from listend.history import MAX_ID, HistoryUnusable, Segment, TranscriptStore, day_of


def record(seg_id: object, text: str = "hello", start: float = 1_700_000_000.0) -> str:
    return json.dumps({"id": seg_id, "start": start, "end": start + 1, "text": text})


def test_hostile_lines_are_skipped_and_ids_continue_above_the_highest_valid_one(tmp_path: Path) -> None:
    d = tmp_path / "history"
    d.mkdir()
    (d / "2026-11-01.jsonl").write_text(
        "\n".join(
            [
                record(5),
                '{"id": 1e999, "start": 1, "end": 2, "text": "x"}',
                "[" * 100_000,
                record(2**64 - 1),
                record(-3),
                '{"id": true, "start": 1, "end": 2, "text": "x"}',
                '{"id": 9, "start": NaN, "end": 2, "text": "x"}',
                record(40),
                '{"id": 41, "text": "torn',
            ]
        )
        + "\n"
    )
    (d / "2099-01-01.jsonl").write_text(record(7) + "\n")  # future-dated file, lower id
    os.chmod(d / "2026-11-01.jsonl", 0o644)
    store = TranscriptStore(d, retention_days=0)
    assert store.last_id() == 40 and store.next_id() == 41
    assert store.skipped_lines == 7
    assert [s.id for s in store.since(0, 100)] == [5, 7, 40]  # oldest first, whatever the file order
    assert os.stat(d / "2026-11-01.jsonl").st_mode & 0o777 == 0o600
    assert store.append(Segment(41, time.time(), time.time() + 1, "new")) == [41]
    assert TranscriptStore(d).next_id() == 42


def test_an_oversized_line_is_skipped_without_failing(tmp_path: Path) -> None:
    d = tmp_path / "history"
    d.mkdir()
    (d / "2026-11-01.jsonl").write_text(record(1) + "\n" + "x" * (3 << 20) + "\n" + record(2) + "\n")
    store = TranscriptStore(d, retention_days=0)
    assert [s.id for s in store.since(0, 10)] == [1, 2] and store.skipped_lines == 1


def test_the_id_bound_is_within_dbus_and_json() -> None:
    assert MAX_ID == 2**53 - 1 < 2**64 - 1


def test_a_symlinked_history_dir_is_followed_without_changing_its_modes(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    (target / "2026-11-01.jsonl").write_text(record(3) + "\n")
    os.chmod(target / "2026-11-01.jsonl", 0o644)
    link = tmp_path / "history"
    link.symlink_to(target)
    store = TranscriptStore(link, retention_days=0)
    assert store.next_id() == 4
    store.append(Segment(4, time.time(), time.time() + 1, "kept"))
    assert os.stat(target).st_mode & 0o777 == 0o755
    assert os.stat(target / "2026-11-01.jsonl").st_mode & 0o777 == 0o644
    assert TranscriptStore(link).last_id() == 4


def test_the_bound_while_the_disk_refuses_is_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h, "_UNWRITTEN_MAX", 3)
    store = TranscriptStore(tmp_path / "history")

    def refuse(seg: Segment) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_write", refuse)
    for i in range(1, 6):
        assert store.append(Segment(i, time.time(), time.time(), "t")) == []
    assert store.unwritten == 3 and store.dropped == 2
    assert "No space left" in store.last_error


@pytest.mark.parametrize("wall", [1e17, 1e20, -5.0, float(2**62)])
def test_a_wall_time_no_clock_shows_files_the_segment_under_today_and_blocks_nothing(
    tmp_path: Path, wall: float
) -> None:
    """localtime(1e17) raises EOVERFLOW, 1e20 OverflowError: once taken for a disk error, it blocked all after it."""
    assert day_of(wall) == time.strftime("%Y-%m-%d")
    store = TranscriptStore(tmp_path / "history")
    assert store.append(Segment(1, wall, wall + 1, "from a strange file")) == [1]
    assert store.append(Segment(2, time.time(), time.time() + 1, "after it")) == [2]
    assert store.unwritten == 0 and store.last_error == ""
    assert [s.id for s in TranscriptStore(tmp_path / "history").since(0)] == [1, 2]


@pytest.mark.parametrize("kind", ["file", "dev-null", "under-a-file"])
def test_a_history_path_that_can_never_be_a_directory_is_refused(tmp_path: Path, kind: str) -> None:
    path = {"file": tmp_path / "plain", "dev-null": Path("/dev/null"), "under-a-file": tmp_path / "plain" / "h"}[kind]
    (tmp_path / "plain").write_text("not a directory")
    with pytest.raises(HistoryUnusable):
        TranscriptStore(path)


def test_a_link_to_a_disk_that_is_not_mounted_is_accepted_and_waits(tmp_path: Path) -> None:
    link = tmp_path / "history"
    link.symlink_to(tmp_path / "unmounted" / "history")
    store = TranscriptStore(link)
    assert store.append(Segment(1, time.time(), time.time(), "waits")) == [] and store.unwritten == 1


def test_what_the_history_refuses_at_exit_is_saved_and_taken_back_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    link = tmp_path / "history"
    link.symlink_to(tmp_path / "disk")  # the disk is not there
    store = TranscriptStore(link)
    for i in (1, 2):
        store.append(Segment(i, time.time(), time.time() + 1, f"said {i}"))
    ids, where = store.save_unwritten()
    assert ids == [1, 2] and where.startswith(str(tmp_path / "state" / "listend" / "unwritten"))
    assert Path(where).stat().st_mode & 0o777 == 0o600
    (tmp_path / "disk").mkdir()  # the disk is back
    later = TranscriptStore(link)
    assert [s.text for s in later.since(0)] == ["said 1", "said 2"] and later.unwritten == 0
    assert later.next_id() == 3 and not Path(where).exists()
    assert [s.id for s in TranscriptStore(link).since(0)] == [1, 2]  # written once, not twice


def test_ids_never_restart_when_retention_has_removed_every_day_file(tmp_path: Path) -> None:
    d = tmp_path / "history"
    d.mkdir()
    old = d / "2020-01-01.jsonl"
    old.write_text(record(500, start=1_577_836_800.0) + "\n")
    os.utime(old, (1_577_836_800, 1_577_836_800))
    store = TranscriptStore(d, retention_days=30)
    assert not old.exists() and store.next_id() == 501
    assert TranscriptStore(d, retention_days=30).next_id() == 501


def test_a_day_file_written_recently_outlives_its_old_date(tmp_path: Path) -> None:
    """Audio kept long ago and decoded today goes to an old day file; retention must not take it at once."""
    d = tmp_path / "history"
    store = TranscriptStore(d, retention_days=30)
    long_ago = time.time() - 60 * 86400
    store.append(Segment(1, long_ago, long_ago + 1, "kept audio from long ago"))
    assert [s.id for s in TranscriptStore(d, retention_days=30).since(0)] == [1]
