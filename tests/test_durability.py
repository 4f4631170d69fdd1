"""Nothing heard and acknowledged is lost: a history that cannot be written, kept audio and its recovery.

Each test drives the real daemon on a real bus, with real models, through
the faults the third attack round found (issue 17, items 1-7).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import sys
import time
import wave
from pathlib import Path

import numpy as np
import psutil

from tests.support.audio import SENTENCES, concat, silence, speak, wav_samples, words
from tests.support.bus import BusClient, ctl, daemon_env
from tests.support.history import history_dir, history_rows
from tests.support.processes import BIN, listend
from tests.support.waiting import until, wait_until


def keep(unfinished: Path, wav: Path, name: str) -> Path:
    """Put ``wav`` where a stop deadline keeps audio, under the name listend gives such files."""
    unfinished.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = unfinished / name
    path.write_bytes(wav.read_bytes())
    return path


def refined_ids(c: BusClient) -> list[int]:
    return [m.body[0] for m in c.named("SegmentRefined")]


def test_segments_the_history_refused_are_saved_at_exit_and_written_at_the_next_start(
    start_daemon, private_bus, tmp_path, two_utterances_wav
):
    """The history's disk is not there (a link to an unmounted disk): announced segments survive SIGTERM."""
    state = tmp_path / "state"
    disk = tmp_path / "disk"  # not mounted yet
    (state / "listend").mkdir(parents=True)
    (state / "listend" / "history").symlink_to(disk / "history")
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--source", str(two_utterances_wav), "--start", env=env)

    async def two_announced():
        async with BusClient(private_bus.address) as c:
            await c.wait_for(lambda: len(c.named("SegmentRefined")) >= 2, timeout=120)
            assert "cannot write history" in await c.prop("LastError")  # said, not hidden
            return [(m.body[0], m.body[3]) for m in c.named("SegmentRefined")]

    announced = asyncio.run(two_announced())
    assert daemon.terminate() == 3, daemon.log()  # not 0: the history did not take them
    log = daemon.log()
    assert "2 segment(s) the history refused" in log and "saved to" in log and "Traceback" not in log
    saved = list((state / "listend" / "unwritten").glob("history-*.jsonl"))
    assert len(saved) == 1 and saved[0].stat().st_mode & 0o777 == 0o600

    (disk / "history").mkdir(parents=True)  # the disk is back (mounted, with its folder)
    daemon = start_daemon(env=env)
    transcript = ctl(env, "transcript", "--json")
    rows = [json.loads(line) for line in transcript.stdout.splitlines()]
    assert [(r["id"], r["text"]) for r in rows] == announced
    assert [(r["id"], r["text"]) for r in history_rows(disk / "history")] == announced
    assert not list((state / "listend" / "unwritten").glob("history-*.jsonl"))
    assert daemon.terminate() == 0


def test_a_history_path_that_can_never_be_a_directory_is_a_start_up_error(start_daemon, private_bus, tmp_path):
    for path in ("/dev/null", str(tmp_path / "a-file")):
        (tmp_path / "a-file").write_text("not a directory")
        config = tmp_path / "config.toml"
        config.write_text(f"[history]\ndirectory = '{path}'\n")
        daemon = start_daemon("--config", str(config), env=daemon_env(private_bus, tmp_path / "state"), ready=False)
        assert daemon.proc.wait(60) == 2
        lines = daemon.log().strip().splitlines()
        assert len(lines) == 1 and "is not a directory" in lines[0] and path in lines[0], lines


def test_kept_audio_whose_text_was_not_written_is_not_deleted(start_daemon, private_bus, tmp_path, audio_dir):
    """History on a missing disk + one kept file: once the disk is back, the text is there, once."""
    state = tmp_path / "state"
    disk = tmp_path / "disk"
    (state / "listend").mkdir(parents=True)
    (state / "listend" / "history").symlink_to(disk / "history")
    wall = time.time() - 3600
    kept = keep(
        state / "listend" / "unfinished", speak(audio_dir / "kept-undurable.wav", SENTENCES[2]), f"{wall:.3f}-7.wav"
    )
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--lightweight", env=env)

    async def recovered():
        async with BusClient(private_bus.address) as c:
            await c.wait_for(lambda: c.named("SegmentRefined"), timeout=120)
            await asyncio.sleep(1.0)
            return c.named("SegmentRefined")[0].body

    seg_id, start, _end, text = asyncio.run(recovered())
    assert {"milk", "bread"} <= set(words(text)) and abs(start - wall) < 1
    assert kept.exists()  # its text is in memory only: the audio stays
    assert daemon.terminate() == 3  # the text is saved elsewhere at exit, and the audio may go then
    (disk / "history").mkdir(parents=True)
    daemon = start_daemon("--lightweight", env=env)
    rows = [json.loads(line) for line in ctl(env, "transcript", "--json").stdout.splitlines()]
    assert [(r["id"], r["text"]) for r in rows] == [(seg_id, text)]  # there, and not twice
    time.sleep(2.0)  # nothing is decoded again
    assert [r["id"] for r in history_rows(disk / "history")] == [seg_id]
    assert not kept.exists()
    assert daemon.terminate() == 0


def test_kept_files_with_wall_times_no_clock_shows_block_nothing(start_daemon, private_bus, tmp_path, audio_dir):
    """1e17 made localtime raise EOVERFLOW (every later segment stayed unwritten); 1e20 killed the tick."""
    state = tmp_path / "state"
    unfinished = state / "listend" / "unfinished"
    first = keep(unfinished, speak(audio_dir / "bad-time-1.wav", SENTENCES[0]), "100000000000000000.000-1.wav")
    second = keep(unfinished, speak(audio_dir / "bad-time-2.wav", SENTENCES[1]), "100000000000000000000.000-2.wav")
    for path in (first, second):
        os.utime(path, (time.time() - 60, time.time() - 60))
    notify = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(0.2)
    env = daemon_env(private_bus, state, {"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "2000000"})
    daemon = start_daemon("--lightweight", env=env)

    async def both():
        async with BusClient(private_bus.address) as c:
            await c.wait_for(lambda: len(c.named("SegmentRefined")) >= 2, timeout=120)
            return c.named("SegmentRefined"), await c.prop("LastError")

    segments, last_error = asyncio.run(both())
    assert last_error == ""
    assert all(abs(m.body[1] - (time.time() - 60)) < 120 for m in segments)  # the files' times
    rows = history_rows(history_dir(state))
    assert len(rows) == 2 and {"quarterly", "weather"} <= set(words(" ".join(r["text"] for r in rows)))
    pings = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # the tick still feeds the watchdog
        try:
            pings += listener.recv(4096) == b"WATCHDOG=1"
        except TimeoutError:
            pass
    listener.close()
    assert pings >= 2
    assert daemon.terminate() == 0 and "Traceback" not in daemon.log()


def _huge_header(path: Path, wav: Path) -> None:
    data = bytearray(wav.read_bytes())
    data[40:44] = struct.pack("<I", 200_000_000)  # the data chunk claims 200 MB
    path.write_bytes(bytes(data))


def test_huge_and_hostile_kept_files_are_set_aside_unread_and_the_rest_is_decoded(
    start_daemon, private_bus, tmp_path, audio_dir
):
    state = tmp_path / "state"
    unfinished = state / "listend" / "unfinished"
    unfinished.mkdir(parents=True, mode=0o700)
    speech = speak(audio_dir / "kept-normal.wav", SENTENCES[3])
    _huge_header(unfinished / f"{time.time() - 300:.3f}-1.wav", speech)
    with open(unfinished / f"{time.time() - 200:.3f}-2.wav", "wb") as f:
        f.truncate(2 << 30)  # a 2 GB sparse file: read whole, it was an OOM kill at every start
    os.mkfifo(unfinished / f"{time.time() - 150:.3f}-3.wav")  # a FIFO wedged recovery for good
    keep(unfinished, speech, f"{time.time() - 100:.3f}-4.wav")
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--lightweight", env=env)
    peak = 0

    async def decoded():
        async with BusClient(private_bus.address) as c:

            def refined():
                nonlocal peak
                peak = max(peak, psutil.Process(daemon.proc.pid).memory_info().rss)
                return c.named("SegmentRefined")

            return (await until(refined, 120, daemon.log))[0].body[3]

    text = asyncio.run(decoded())
    assert {"meeting", "design"} <= set(words(text)), text
    assert peak < 600 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
    set_aside = sorted(p.name for p in unfinished.glob("*.damaged"))
    assert len(set_aside) == 3, set_aside
    started = time.monotonic()
    assert daemon.terminate() == 0 and time.monotonic() - started < 25
    assert "Traceback" not in daemon.log()


def test_ids_strictly_increase_when_recovery_overlaps_dictation_and_followers_miss_nothing(
    start_daemon, spawn, private_bus, tmp_path, audio_dir
):
    """Three kept files + dictation: announced once as 1 3 4 2 5 ..., and the follower skipped 2."""
    state = tmp_path / "state"
    unfinished = state / "listend" / "unfinished"
    for i, sentence in enumerate(SENTENCES[:3]):
        keep(unfinished, speak(audio_dir / f"overlap-kept-{i}.wav", sentence), f"{time.time() - 600 + i:.3f}-{i}.wav")
    parts = [speak(audio_dir / f"overlap-live-{i}.wav", s) for i, s in enumerate(SENTENCES)]
    gap = silence(audio_dir / "overlap-gap.wav", 1.0)
    live = concat(
        tmp_path / "overlap-live.wav",
        silence(audio_dir / "overlap-lead.wav", 0.3),
        *[p for part in parts for p in (part, gap)],
    )
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--source", str(live), env=env)
    follower = spawn(
        [str(BIN / "listenctl"), "transcript", "--follow", "--since", "0", "--json"], env=env, log="follow"
    )

    async def scenario():
        async with BusClient(private_bus.address) as c:
            await asyncio.sleep(1.0)  # the follower subscribed
            await c.call("Start")  # dictation starts while the kept files are being decoded
            await c.wait_for(lambda: len(c.named("SegmentRefined")) >= 7, timeout=240)
            transcript = (await c.call("GetTranscript", "tu", [0, 0])).body[0]
            return refined_ids(c), [row[0] for row in transcript]

    announced, listed = asyncio.run(scenario())
    assert announced == sorted(announced) and len(set(announced)) == len(announced) == 7, announced
    assert listed == announced  # oldest first
    wait_until(lambda: len((tmp_path / "follow.log").read_text().splitlines()) >= 7, 30, "the follower's lines")
    followed = [json.loads(line)["id"] for line in (tmp_path / "follow.log").read_text().splitlines()]
    assert followed == announced
    assert follower.poll() is None
    assert daemon.terminate() == 0


SLOW_RECOVERY = """
import sys, time
import threading
import listend.decoders as d
inside = threading.local()
def slowed(original):
    # Whichever way a pass decodes (decode, or decode_next after the session's speech, which may call
    # decode): one sleep per decode.
    def slow(self, *args, **kwargs):
        if not getattr(inside, "decoding", False):
            time.sleep(6.0)  # the kept file is still being decoded when SIGTERM comes
        inside.decoding = True
        try:
            return original(self, *args, **kwargs)
        finally:
            inside.decoding = False
    return slow
for name in ("decode", "decode_next"):
    if hasattr(d.WhisperDecoder, name):
        setattr(d.WhisperDecoder, name, slowed(getattr(d.WhisperDecoder, name)))
from listend.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_a_kept_file_is_decoded_leaves_no_duplicate(start_daemon, private_bus, tmp_path, audio_dir):
    state = tmp_path / "state"
    kept = keep(
        state / "listend" / "unfinished",
        speak(audio_dir / "kept-sigterm.wav", SENTENCES[1]),
        f"{time.time() - 60:.3f}-3.wav",
    )
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--lightweight", env=env, command=[sys.executable, "-c", SLOW_RECOVERY, "run"])
    time.sleep(2.0)  # recovery has started its decode
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0, daemon.log()
    first = history_rows(history_dir(state))
    # Either its text was committed in the drain (and the file went), or the file stays for next time.
    assert len(first) + kept.exists() == 1, (first, kept.exists())
    daemon = start_daemon("--lightweight", env=env)
    wait_until(lambda: history_rows(history_dir(state)), 120, "the kept file's text")
    time.sleep(3.0)
    rows = history_rows(history_dir(state))
    assert len(rows) == 1 and "weather" in words(rows[0]["text"]), rows
    assert not kept.exists()
    assert daemon.terminate() == 0


def test_ids_continue_after_retention_removed_every_day_file(start_daemon, private_bus, tmp_path, speech_wav):
    history = tmp_path / "state" / "listend" / "history"
    history.mkdir(parents=True)
    old = history / "2020-01-01.jsonl"
    old.write_text(json.dumps({"id": 500, "start": 1_577_836_800.0, "end": 1_577_836_801.0, "text": "old"}) + "\n")
    os.utime(old, (1_577_836_800, 1_577_836_800))
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--lightweight", "--source", str(speech_wav), "--start", env=env)

    async def first_id():
        async with BusClient(private_bus.address) as c:
            await c.wait_for(lambda: c.named("SegmentRefined"), timeout=120)
            return c.named("SegmentRefined")[0].body[0]

    assert asyncio.run(first_id()) == 501  # a client holding since_id = 500 sees it
    assert not old.exists()
    assert daemon.terminate() == 0


def test_kept_audio_of_other_rates_channels_and_cut_files_is_salvaged(tmp_path, audio_dir):
    """Kept files that are 8 kHz, stereo or cut mid-sample are decoded (once set aside unread)."""
    from listend.config import build_settings
    from listend.engine import Engine
    from listend.events import Refined
    from listend.unfinished import UnfinishedAudio

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir(mode=0o700)
    samples = (wav_samples(speak(audio_dir / "salvage.wav", SENTENCES[0])) * 32767).astype("<i2")
    with wave.open(str(unfinished / f"{time.time() - 30:.3f}-1.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.repeat(samples[::2], 2).tobytes())
    cut = unfinished / f"{time.time() - 20:.3f}-2.wav"
    with wave.open(str(cut), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    cut.write_bytes(cut.read_bytes()[:-1])  # an odd length
    kept = UnfinishedAudio(unfinished)
    engine = Engine(build_settings("lightweight"), unfinished=kept)
    finals: list[Refined] = []
    engine.subscribe(lambda e: finals.append(e) if isinstance(e, Refined) else None)
    engine.load()
    try:
        assert engine.recover_unfinished() == 2
    finally:
        engine.close(10)
    assert len(finals) == 2 and all({"quarterly", "report"} <= set(words(f.text)) for f in finals), finals


def test_an_unusable_model_cache_is_one_line(tmp_path):
    """An unwritable cache made the base model's join raise a PermissionError traceback."""
    (tmp_path / "not-a-directory").write_text("")
    result = listend(
        "transcribe", str(tmp_path / "x.wav"), env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "not-a-directory")}
    )
    assert result.returncode == 2  # the file is checked first
    speech = speak(tmp_path / "speech.wav", SENTENCES[0])
    result = listend("transcribe", str(speech), env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "not-a-directory")})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot prepare the embedded" in lines[0] and "Traceback" not in result.stderr
