"""The segmenter: utterances from a stream of samples, pauses with exactly the audio a close keeps."""

from __future__ import annotations

import numpy as np

from listend.audio import Pause, Resume
from listend.config import build_settings
from listend.segmenter import Segmenter
from listend.units import SAMPLE_RATE
from listend.vad import CHUNK
from tests.support.pipeline import loud_is_speech, tone


def counter(start: int):  # type: ignore[no-untyped-def]
    ids = iter(range(start, start + 1000))
    return lambda: next(ids)


def test_utterances_close_after_silence_with_increasing_ids() -> None:
    seg = Segmenter(build_settings("full").vad, loud_is_speech, counter(100))
    audio = np.concatenate([tone(1, 0), tone(1, 0.5), tone(1, 0), tone(1, 0.5), tone(1, 0)])
    closed = Segmenter.utterances(seg.feed(audio))
    assert [u.id for u in closed] == [100, 101]
    assert all(0.9 < u.duration < 2.0 for u in closed)


def test_a_pause_carries_exactly_the_audio_the_close_keeps_and_a_resume_voids_it() -> None:
    seg = Segmenter(build_settings("full").vad, loud_is_speech, counter(7))
    ramp = np.linspace(0.2, 0.9, int(1.0 * SAMPLE_RATE) // CHUNK * CHUNK, dtype=np.float32)  # distinguishable
    events = seg.feed(np.concatenate([tone(0.5, 0), ramp, tone(0.45, 0)]))  # silence: past the pad, not the close
    pauses = [e for e in events if isinstance(e, Pause)]
    assert len(pauses) == 1 and pauses[0].id == 7 and not Segmenter.utterances(events)
    assert seg.paused_at == pauses[0].start_sample + len(pauses[0].audio)
    first = pauses[0]
    # Speech resumes before the close: the pause is void, the utterance goes on.
    events = seg.feed(np.concatenate([tone(0.5, 0.5), tone(1.0, 0)]))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Resume", "Pause", "Utterance"], kinds
    resume, pause, closed = events
    assert isinstance(resume, Resume) and resume.id == 7 and seg.paused_at is None
    assert isinstance(pause, Pause)
    assert closed.id == pause.id == 7 and closed.start_sample == pause.start_sample == first.start_sample
    assert np.array_equal(closed.audio, pause.audio) and len(closed.audio) > len(first.audio)


def test_a_blip_shorter_than_min_speech_gets_no_id_and_is_counted() -> None:
    allocated: list[int] = []

    def next_id() -> int:
        allocated.append(len(allocated) + 1)
        return allocated[-1]

    seg = Segmenter(build_settings("full").vad, loud_is_speech, next_id)
    events = seg.feed(np.concatenate([tone(0.5, 0), tone(0.1, 0.5), tone(1.0, 0)]))
    assert not events and allocated == [] and seg.rejected == 1


def test_every_allocated_id_ends_in_exactly_one_utterance() -> None:
    """The commit stage waits for every allocated id: none may vanish (split, flush, close)."""
    allocated: list[int] = []

    def next_id() -> int:
        allocated.append(len(allocated) + 1)
        return allocated[-1]

    options = build_settings("full", {"vad": {"max_utterance_s": 2.0}}).vad
    seg = Segmenter(options, loud_is_speech, next_id)
    rng = np.random.default_rng(3)
    emitted = []
    for _ in range(200):
        emitted += Segmenter.utterances(seg.feed(tone(float(rng.uniform(0.05, 1.5)), float(rng.choice([0, 0.5])))))
    final = seg.flush()
    emitted += [final] if final else []
    assert sorted(u.id for u in emitted) == allocated and seg.splits > 0


def test_a_long_utterance_is_split_at_its_quietest_chunk() -> None:
    options = build_settings("full", {"vad": {"max_utterance_s": 3.0}}).vad
    seg = Segmenter(options, loud_is_speech, counter(1))
    speech = tone(4.0, 0.5)
    speech[int(2.5 * SAMPLE_RATE) : int(2.5 * SAMPLE_RATE) + CHUNK] = 0  # one quiet chunk, a word gap
    closed = Segmenter.utterances(seg.feed(np.concatenate([tone(0.5, 0), speech, tone(1.0, 0)])))
    assert seg.splits == 1 and [u.id for u in closed] == [1, 2]
    assert 2.5 < closed[0].duration <= 3.0


def test_quietest_looks_only_at_the_open_utterance_it_names() -> None:
    seg = Segmenter(build_settings("full").vad, loud_is_speech, counter(1))
    seg.feed(np.concatenate([tone(0.3, 0), tone(1.0, 0.5)]))
    assert seg.quietest(1, 0, 8000) is not None
    assert seg.quietest(2, 0, 8000) is None
