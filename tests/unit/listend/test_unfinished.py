"""Kept audio: what is read back, what is set aside unread, and when a recovered file may go."""

from __future__ import annotations

import os
import struct
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from listend.unfinished import MAX_FILES, UnfinishedAudio
from listend.units import SAMPLE_RATE
from tests.support.pipeline import utt


def write_wav(path: Path, seconds: float = 1.0, rate: int = SAMPLE_RATE, channels: int = 1) -> Path:
    samples = (np.sin(np.arange(int(seconds * rate) * channels) / 7) * 10_000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture
def kept(tmp_path: Path) -> UnfinishedAudio:
    store = UnfinishedAudio(tmp_path / "unfinished")
    store.directory.mkdir(mode=0o700)
    return store


def test_kept_audio_round_trips_with_its_wall_time(kept: UnfinishedAudio) -> None:
    outcome = kept.keep(utt(7, seconds=2.0, wall=1_750_000_000.5))
    assert outcome and outcome.detail.endswith("1750000000.500-7.wav")
    (path,) = kept.files()
    loaded = kept.load(path)
    assert loaded is not None and loaded.wall_start == 1_750_000_000.5 and len(loaded.audio) == 2 * SAMPLE_RATE
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_fifo_named_like_kept_audio_is_set_aside_without_blocking(kept: UnfinishedAudio) -> None:
    fifo = kept.directory / "1750000000.000-1.wav"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert kept.load(fifo) is None
    assert time.monotonic() - started < 1
    assert (kept.directory / "1750000000.000-1.wav.damaged").exists() and not fifo.exists()


def test_a_header_claiming_far_more_audio_than_listend_keeps_is_set_aside_unread(kept: UnfinishedAudio) -> None:
    path = write_wav(kept.directory / "1750000000.000-2.wav", seconds=1.0)
    data = bytearray(path.read_bytes())
    data[40:44] = struct.pack("<I", 200_000_000)  # the data chunk claims 200 MB
    path.write_bytes(bytes(data))
    assert kept.load(path) is None


def test_a_huge_sparse_file_is_set_aside_without_being_read(kept: UnfinishedAudio) -> None:
    path = kept.directory / "1750000000.000-3.wav"
    with open(path, "wb") as f:
        f.truncate(2 << 30)  # 2 GB of nothing: reading it whole was an OOM kill at every start
    assert kept.load(path) is None and (kept.directory / (path.name + ".damaged")).exists()


@pytest.mark.parametrize("wall", ["100000000000000000.000", "99999999999999999999.000", "000000000001.000"])
def test_a_wall_time_that_is_no_real_time_is_replaced_by_the_file_s(kept: UnfinishedAudio, wall: str) -> None:
    path = write_wav(kept.directory / f"{wall}-4.wav")
    os.utime(path, (1_760_000_000, 1_760_000_000))
    loaded = kept.load(path)
    assert loaded is not None and loaded.wall_start == 1_760_000_000


@pytest.mark.parametrize("rate, channels", [(8000, 1), (16000, 2), (48000, 2)])
def test_other_rates_and_channel_counts_are_converted_not_lost(kept: UnfinishedAudio, rate: int, channels: int) -> None:
    path = write_wav(kept.directory / "1750000000.000-5.wav", seconds=1.5, rate=rate, channels=channels)
    loaded = kept.load(path)
    assert loaded is not None and abs(len(loaded.audio) - 1.5 * SAMPLE_RATE) <= 2
    assert float(np.abs(loaded.audio).max()) > 0.1


def test_a_file_cut_mid_sample_keeps_its_whole_samples(kept: UnfinishedAudio) -> None:
    path = write_wav(kept.directory / "1750000000.000-6.wav", seconds=1.0)
    path.write_bytes(path.read_bytes()[:-3])  # an odd length: cut mid-sample
    loaded = kept.load(path)
    assert loaded is not None and len(loaded.audio) == SAMPLE_RATE - 2


def test_a_recovered_file_goes_only_when_settled(kept: UnfinishedAudio) -> None:
    path = Path(kept.keep(utt(9)).detail)
    kept.decoding(42, path)
    assert path.exists()
    kept.settle(41)
    assert path.exists()
    kept.settle(42)
    assert not path.exists()


def test_at_most_max_files_are_decoded_per_start_but_a_stop_can_still_keep_audio(
    kept: UnfinishedAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    import listend.unfinished as unfinished

    monkeypatch.setattr(unfinished, "MAX_FILES", 5)
    for i in range(7):
        assert kept.keep(utt(i + 1, wall=1_750_000_000 + i))
    assert len(kept.files()) == 5 and kept.files()[0].name.startswith("1750000000.000")
    assert MAX_FILES == 1000


def test_set_aside_files_follow_the_history_s_retention(kept: UnfinishedAudio) -> None:
    old = kept.directory / "1.000-1.wav.damaged"
    new = kept.directory / "2.000-2.wav.damaged"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (time.time() - 40 * 86400,) * 2)
    assert kept.prune_set_aside(30) == 1 and not old.exists() and new.exists()
    assert kept.prune_set_aside(0) == 0 and new.exists()
