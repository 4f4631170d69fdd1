"""Fast tests of the pure parts: router policy, commit ordering, config merging, memory levels, history parsing."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from listend.commit import Commit
from listend.config import ConfigError, DecodeOptions, MemoryOptions, QueueOptions, build_settings, load_settings
from listend.decoders import Decoded
from listend.events import Partial, Refined, Retracted
from listend.history import MAX_ID, Segment, TranscriptStore
from listend.memory import pressure_level
from listend.ringbuffer import RingBuffer
from listend.router import Router
from listend.segmenter import SAMPLE_RATE, Pause, Resume, Segmenter, Utterance
from listend.vad import CHUNK
from listend.workers import LiveWorker


def utt(seg_id: int, seconds: float = 1.0, wall: float = 1000.0) -> Utterance:
    return Utterance(seg_id, 0, np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32), wall)


class Events(list):
    def __call__(self, event):
        self.append(event)

    def wait(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self) < count:
            assert time.monotonic() < deadline, self
            time.sleep(0.01)


@pytest.fixture
def commit():
    c = Commit()
    yield c
    c.close(1)


# -- commit -------------------------------------------------------------------------


def test_commit_publishes_finals_in_id_order_and_no_partial_after_its_final(commit):
    events = Events()
    commit.subscribe(events)
    for i in (1, 2, 3):
        commit.register(i)
    assert commit.partial(2, True, "hel", 0.5)
    commit.finish(utt(2), "hello", "refined")  # 2 before 1: held back
    assert not commit.partial(2, False, "late partial", 0.9)  # 2 is final (waiting on 1): refused
    commit.finish(utt(1), "first", "live")
    commit.finish(utt(3), "", "refined")  # no speech
    assert commit.wait_drained(5)
    kinds = [(type(e).__name__, e.id) for e in events]
    assert kinds == [("Partial", 2), ("Refined", 1), ("Refined", 2), ("Retracted", 3)]
    refined_2 = events[2]
    assert refined_2.live_text == "hel" and refined_2.source == "refined"
    assert commit.stats.refined == 1 and commit.stats.live_commits == 1 and commit.stats.retracted == 1


def test_commit_stamps_wall_time_from_the_utterance_not_from_now(commit):
    events = Events()
    commit.subscribe(events)
    commit.register(7)
    commit.finish(utt(7, seconds=2.0, wall=1_700_000_000.0), "text", "refined")
    commit.wait_drained(5)
    assert events[0].wall_start == 1_700_000_000.0 and events[0].wall_end == 1_700_000_002.0


def test_commit_coalesces_partials_a_slow_subscriber_has_not_taken(commit):
    gate = threading.Event()
    events = Events()
    commit.subscribe(lambda e: (gate.wait(5), events(e)))
    commit.register(1)
    commit.publish(Retracted(0, "first event holds the publisher"))
    time.sleep(0.1)
    for n in range(50):
        commit.partial(1, True, f"partial {n}", n)
    gate.set()
    commit.finish(utt(1), "final", "refined")
    commit.wait_drained(5)
    partials = [e for e in events if isinstance(e, Partial)]
    assert len(partials) == 1 and partials[0].text == "partial 49"
    assert isinstance(events[-1], Refined)


def test_a_failing_subscriber_is_counted_and_others_still_get_events(commit):
    events = Events()
    commit.subscribe(lambda e: 1 / 0)
    commit.subscribe(events)
    commit.register(1)
    commit.finish(utt(1), "x", "refined")
    commit.wait_drained(5)
    assert len(events) == 1 and commit.stats.subscriber_failures == 1


# -- router -------------------------------------------------------------------------


def make_router(commit, refine=2, live=2, refine_enabled=True, giving_up=lambda: False):
    kept = []
    router = Router(QueueOptions(refine=refine, live_final=live), commit, refine_enabled,
                    lambda u: (kept.append(u.id), commit.keep_as_audio(u, "test")), giving_up)
    return router, kept


def route(router, commit, u, can_wait=False):
    commit.register(u.id)
    router.route(u, lambda: can_wait, lambda: None)


def test_overload_with_a_live_source_commits_the_oldest_with_its_partial(commit):
    events = Events()
    commit.subscribe(events)
    router, _ = make_router(commit, refine=2)
    for i in (1, 2):
        route(router, commit, utt(i))
        commit.partial(i, False, f"live {i}", 1.0)
    route(router, commit, utt(3))  # full: 1 leaves with its live text
    commit.wait_drained(0.5)
    finals = [e for e in events if isinstance(e, Refined)]
    assert [(e.id, e.text, e.source) for e in finals] == [(1, "live 1", "live")]
    assert router.stats().queue_refine == 2


def test_overload_without_a_partial_goes_to_the_live_final_queue(commit):
    router, _ = make_router(commit, refine=1)
    route(router, commit, utt(1))
    route(router, commit, utt(2))
    s = router.stats()
    assert s.queue_refine == 1 and s.queue_live == 1
    assert router.take_final().id == 1


def test_a_file_source_waits_instead_of_degrading(commit):
    router, _ = make_router(commit, refine=1)
    route(router, commit, utt(1), can_wait=True)
    done = threading.Event()
    threading.Thread(target=lambda: (route(router, commit, utt(2), can_wait=True), done.set()), daemon=True).start()
    assert not done.wait(0.3)  # waiting on the refine worker
    assert router.take_refine(0).utt.id == 1
    assert done.wait(2)
    assert router.stats().backpressure_waits >= 1 and commit.stats.live_commits == 0


def test_giving_up_keeps_audio_instead_of_waiting_forever(commit):
    giving_up = threading.Event()
    router, kept = make_router(commit, live=1, refine_enabled=False, giving_up=giving_up.is_set)
    route(router, commit, utt(1))
    done = threading.Event()
    threading.Thread(target=lambda: (route(router, commit, utt(2)), done.set()), daemon=True).start()
    assert not done.wait(0.3)  # no partial to fall back on, live worker busy: waits
    giving_up.set()  # a worker died
    assert done.wait(2) and kept == [2]


def pause_of(u: Utterance) -> Pause:
    return Pause(u.id, u.start_sample, u.audio.copy())


def test_speculative_refine_is_used_when_the_utterance_closes_at_its_pause(commit):
    router, _ = make_router(commit)
    closed = utt(1, seconds=2.0)
    router.speculate(pause_of(closed), can_wait=False)
    job = router.take_refine(0)
    assert job.speculative and job.utt.id == 1 and job.text is None
    router.speculation_done(job.utt, "hello there")
    route(router, commit, closed)  # closes with the same audio: no second decode
    job = router.take_refine(0)
    assert job.text == "hello there" and job.utt is closed and not job.speculative
    s = router.stats()
    assert (s.speculations, s.speculations_used, s.speculations_discarded, s.queue_refine) == (1, 1, 0, 0)


def test_a_closed_utterance_waits_for_the_speculation_in_flight(commit):
    router, _ = make_router(commit)
    closed = utt(1, seconds=2.0)
    router.speculate(pause_of(closed), can_wait=False)
    job = router.take_refine(0)
    route(router, commit, closed)  # the close comes while the pause is being decoded
    assert router.take_refine(0) is None and [u.id for u in router.take_unfinished()] == [1]


def test_speculative_refine_is_discarded_when_speech_resumes(commit):
    router, _ = make_router(commit)
    router.speculate(pause_of(utt(1, seconds=2.0)), can_wait=False)
    job = router.take_refine(0)
    router.resume(1)  # speech came back while the pause was being decoded
    router.speculation_done(job.utt, "half a sentence")
    longer = utt(1, seconds=3.0)
    route(router, commit, longer)
    job = router.take_refine(0)
    assert job.utt is longer and job.text is None and not job.speculative  # decoded afresh
    s = router.stats()
    assert (s.speculations, s.speculations_used, s.speculations_discarded) == (1, 0, 1)


def test_no_speculation_while_the_refine_pass_is_busy_or_for_a_file_replay(commit):
    router, _ = make_router(commit, refine=3)
    router.speculate(pause_of(utt(1)), can_wait=True)  # a fast replay closes it at once
    route(router, commit, utt(2))
    router.speculate(pause_of(utt(3)), can_wait=False)  # 2 waits for refining
    assert router.stats().speculations == 0
    assert not router.take_refine(0).speculative


def test_take_unfinished_returns_queued_and_in_progress_in_order(commit):
    router, _ = make_router(commit, refine=3)
    for i in (1, 2, 3):
        route(router, commit, utt(i))
    router.take_refine(0)  # 1 being decoded
    assert [u.id for u in router.take_unfinished()] == [1, 2, 3]


# -- segmenter ------------------------------------------------------------------------


def test_segmenter_closes_after_silence_and_gives_increasing_ids():
    ids = iter(range(100, 200))
    # A fake VAD: loud chunks are speech.
    seg = Segmenter(build_settings("full").vad, lambda a: (np.abs(a.reshape(-1, CHUNK)).max(axis=1) > 0.1) * 1.0,
                    lambda: next(ids))
    speech = np.full(SAMPLE_RATE, 0.5, dtype=np.float32)
    quiet = np.zeros(SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate([quiet, speech, quiet, speech, quiet])[: 5 * SAMPLE_RATE // CHUNK * CHUNK]
    closed = Segmenter.utterances(seg.feed(audio))
    assert [u.id for u in closed] == [100, 101]
    assert all(0.9 < u.duration < 2.0 for u in closed)


def _loud_is_speech(a):
    return (np.abs(a.reshape(-1, CHUNK)).max(axis=1) > 0.1) * 1.0


def _tone(seconds: float, level: float) -> np.ndarray:
    return np.full(int(seconds * SAMPLE_RATE) // CHUNK * CHUNK, level, dtype=np.float32)


def test_segmenter_reports_a_pause_with_exactly_the_audio_the_close_keeps():
    ids = iter(range(7, 100))
    seg = Segmenter(build_settings("full").vad, _loud_is_speech, lambda: next(ids))
    ramp = np.linspace(0.2, 0.9, int(1.0 * SAMPLE_RATE) // CHUNK * CHUNK, dtype=np.float32)  # distinguishable samples
    events = seg.feed(np.concatenate([_tone(0.5, 0), ramp, _tone(0.45, 0)]))  # silence: past the pad, not the close
    pauses = [e for e in events if isinstance(e, Pause)]
    assert len(pauses) == 1 and pauses[0].id == 7 and not Segmenter.utterances(events)
    assert seg.paused_at == pauses[0].start_sample + len(pauses[0].audio)
    first = pauses[0]
    # Speech resumes before the close: the pause is void, the utterance goes on.
    events = seg.feed(np.concatenate([_tone(0.5, 0.5), _tone(1.0, 0)]))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Resume", "Pause", "Utterance"], kinds
    resume, pause, closed = events
    assert isinstance(resume, Resume) and resume.id == 7 and seg.paused_at is None
    assert closed.id == pause.id == 7 and closed.start_sample == pause.start_sample == first.start_sample
    assert np.array_equal(closed.audio, pause.audio) and len(closed.audio) > len(first.audio)


class _CountingDecoder:
    """Stands in for Whisper where only *whether* a decode runs matters."""

    model_name = "counting"

    def __init__(self):
        self.calls: list[int] = []

    def decode(self, audio, prompt=""):
        self.calls.append(len(audio))
        return Decoded(f"words {len(self.calls)}", 1, 0)


def test_live_pass_stops_re_decoding_a_paused_utterance_once_a_partial_heard_all_its_speech(commit):
    ids = iter(range(1, 100))
    seg = Segmenter(build_settings("full").vad, _loud_is_speech, lambda: next(ids))
    router, _ = make_router(commit)
    decoder = _CountingDecoder()
    options = DecodeOptions(partial_interval_s=0.1)
    live = LiveWorker(router, commit, seg, decoder, lambda: options, lambda: 0, lambda *a: None, lambda *a: None)
    commit.register(1)

    def partial_now():
        live._next_due = 0.0
        live.step()

    seg.feed(np.concatenate([_tone(0.2, 0), _tone(1.0, 0.5)]))
    partial_now()
    assert len(decoder.calls) == 1  # speaking: partials run
    seg.feed(_tone(0.35, 0))  # paused; this partial is the first to hear all the speech
    assert seg.paused_at is not None
    partial_now()
    assert len(decoder.calls) == 2
    for _ in range(3):  # only silence is added now: nothing more to decode
        seg.feed(_tone(0.064, 0))
        partial_now()
    assert len(decoder.calls) == 2
    seg.feed(_tone(0.2, 0.5))  # speech resumes: partials resume
    partial_now()
    assert len(decoder.calls) == 3
    # This time the refine pass starts on the pause: the live pass leaves it the CPU at once.
    events = seg.feed(_tone(0.35, 0))
    router.speculate(next(e for e in events if isinstance(e, Pause)), can_wait=False)
    partial_now()
    assert len(decoder.calls) == 3


def test_ring_counts_what_does_not_fit():
    ring = RingBuffer(1000)
    assert ring.write(np.ones(800, dtype=np.float32)) == 800
    assert ring.write(np.ones(800, dtype=np.float32)) == 200
    assert ring.dropped == 600


# -- config ---------------------------------------------------------------------------


def write_config(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_value_that_breaks_another_profile_is_an_error_at_load_naming_file_and_preset(tmp_path):
    path = write_config(tmp_path, "[memory]\nwarn_mb = 500\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    message = str(e.value)
    assert str(path) in message and "lightweight preset" in message and "warn_mb = 500" in message
    assert "[lightweight.memory]" in message


def test_per_profile_sections_apply_to_their_profile_only(tmp_path):
    path = write_config(tmp_path, "[memory]\nwarn_mb = 500\n[lightweight.memory]\nwarn_mb = 380\n"
                                  "[full.decode]\nrefine_beam_size = 2\n")
    full, overrides = load_settings(path)
    light = build_settings("lightweight", overrides)
    assert full.memory.warn_mb == 500 and light.memory.warn_mb == 380
    assert full.decode.refine_beam_size == 2 and light.decode.refine_beam_size == 5
    assert light.memory.cleanup_mb == 450  # the preset, where the user said nothing


def test_unknown_per_profile_section_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown key lightweight.'bogus'"):
        load_settings(write_config(tmp_path, "[lightweight.bogus]\nx = 1\n"))


# -- memory levels --------------------------------------------------------------------


def test_memory_levels_have_hysteresis():
    o = MemoryOptions(warn_mb=500, cleanup_mb=600, limit_mb=700)
    mb = 1024 * 1024
    assert pressure_level(499 * mb, o, "normal") == "normal"
    assert pressure_level(500 * mb, o, "normal") == "warn"
    assert pressure_level(495 * mb, o, "warn") == "warn"  # just below: stays
    assert pressure_level(470 * mb, o, "warn") == "normal"  # well below: leaves
    assert pressure_level(590 * mb, o, "cleanup") == "cleanup"
    assert pressure_level(560 * mb, o, "cleanup") == "warn"
    # RSS wobbling around a threshold gives one level change, not one per sample.
    level, changes = "normal", 0
    for rss in [499, 501, 498, 502, 497, 503] * 10:
        new = pressure_level(rss * mb, o, level)
        changes += new != level
        level = new
    assert changes == 1


# -- history --------------------------------------------------------------------------


def record(seg_id, text="hello", start=1_700_000_000.0) -> str:
    return json.dumps({"id": seg_id, "start": start, "end": start + 1, "text": text})


def test_history_skips_hostile_lines_and_continues_above_the_highest_valid_id(tmp_path):
    d = tmp_path / "history"
    d.mkdir()
    (d / "2026-11-01.jsonl").write_text("\n".join([
        record(5), '{"id": 1e999, "start": 1, "end": 2, "text": "x"}', "[" * 100_000,
        record(2**64 - 1), record(-3), '{"id": true, "start": 1, "end": 2, "text": "x"}',
        '{"id": 9, "start": NaN, "end": 2, "text": "x"}', record(40), '{"id": 41, "text": "torn']) + "\n")
    (d / "2099-01-01.jsonl").write_text(record(7) + "\n")  # future-dated file, lower id
    os.chmod(d / "2026-11-01.jsonl", 0o644)
    store = TranscriptStore(d)
    assert store.last_id() == 40 and store.next_id() == 41
    assert store.skipped_lines == 7
    assert sorted(s.id for s in store.since(0, 100)) == [5, 7, 40]
    assert os.stat(d / "2026-11-01.jsonl").st_mode & 0o777 == 0o600
    store.append(Segment(41, time.time(), time.time() + 1, "new"))
    assert TranscriptStore(d).next_id() == 42


def test_history_skips_an_oversized_line_without_failing(tmp_path):
    d = tmp_path / "history"
    d.mkdir()
    (d / "2026-11-01.jsonl").write_text(record(1) + "\n" + "x" * (3 << 20) + "\n" + record(2) + "\n")
    store = TranscriptStore(d)
    assert [s.id for s in store.since(0, 10)] == [1, 2] and store.skipped_lines == 1


def test_history_id_bound_is_within_dbus_and_json():
    assert MAX_ID == 2**53 - 1 < 2**64 - 1


def test_symlinked_history_dir_is_followed_without_changing_its_modes(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    (target / "2026-11-01.jsonl").write_text(record(3) + "\n")
    os.chmod(target / "2026-11-01.jsonl", 0o644)
    link = tmp_path / "history"
    link.symlink_to(target)
    store = TranscriptStore(link)
    assert store.next_id() == 4
    store.append(Segment(4, time.time(), time.time() + 1, "kept"))
    assert os.stat(target).st_mode & 0o777 == 0o755
    assert os.stat(target / "2026-11-01.jsonl").st_mode & 0o777 == 0o644
    assert TranscriptStore(link).last_id() == 4


def test_history_bound_while_the_disk_refuses_is_counted(tmp_path, monkeypatch):
    import listend.history as h

    monkeypatch.setattr(h, "_UNWRITTEN_MAX", 3)
    store = TranscriptStore(tmp_path / "history")
    monkeypatch.setattr(store, "_write", lambda seg: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    for i in range(1, 6):
        store.append(Segment(i, time.time(), time.time(), "t"))
    assert store.unwritten == 3 and store.dropped == 2
    assert "No space left" in store.last_error


def test_near_a_deadline_the_utterance_being_refined_gets_live_text_or_a_fast_decode(commit):
    events = Events()
    commit.subscribe(events)
    router, _ = make_router(commit, refine=3)
    for i in (1, 2, 3):
        route(router, commit, utt(i))
    commit.partial(1, False, "live one", 1.0)
    assert router.take_refine(0).utt.id == 1  # 1 and then 2 would be refined...
    router.commit_refine_queue_with_live_text()  # ...but the stop deadline is near
    # 1 goes out with its live text; 2 and 3 have none: the fast model decodes them.
    assert router.take_final().id == 2 and router.take_final().id == 3
    commit.wait_drained(0.5)
    assert [(e.id, e.source) for e in events if isinstance(e, Refined)] == [(1, "live")]
    commit.finish(utt(1), "late refined text", "refined")  # the refine pass finishing later is ignored
    commit.wait_drained(0.5)
    assert [e.text for e in events if isinstance(e, Refined)] == ["live one"]


def test_client_hands_out_typed_events():
    from dbus_next import Message, MessageType, Variant

    from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH
    from listend.client import PartialEvent, PresenceEvent, PropertiesEvent, SegmentEvent, event_of

    def sig(member, signature, body, interface=INTERFACE, path=OBJECT_PATH):
        return Message(message_type=MessageType.SIGNAL, path=path, interface=interface, member=member,
                       signature=signature, body=body)

    assert event_of(sig("PartialText", "ts", [3, "hel"])) == PartialEvent(3, "hel")
    seg = event_of(sig("SegmentRefined", "tdds", [4, 1.0, 2.0, "hello"]))
    assert isinstance(seg, SegmentEvent) and (seg.entry.id, seg.entry.text) == (4, "hello")
    props = event_of(sig("PropertiesChanged", "sa{sv}as", [INTERFACE, {"State": Variant("s", "idle")}, []],
                         interface="org.freedesktop.DBus.Properties"))
    assert props == PropertiesEvent({"State": "idle"})
    gone = event_of(sig("NameOwnerChanged", "sss", [BUS_NAME, ":1.5", ""], interface="org.freedesktop.DBus",
                        path="/org/freedesktop/DBus"))
    assert gone == PresenceEvent(False)
    assert event_of(sig("NameOwnerChanged", "sss", ["other.name", "", ":1.9"], interface="org.freedesktop.DBus",
                        path="/org/freedesktop/DBus")) is None
