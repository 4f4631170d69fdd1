"""The workers' scheduling: when partials run, how much audio each decodes, when a final becomes context."""

from __future__ import annotations

import threading

import numpy as np

from listend.audio import Pause, Utterance
from listend.commit import Commit
from listend.config import DecodeOptions, build_settings
from listend.decoders import Decoded
from listend.segmenter import Segmenter
from listend.units import SAMPLE_RATE
from listend.workers import LiveWorker, RefineWorker
from tests.support.pipeline import (
    CountingDecoder,
    NotedSupervisor,
    Recorder,
    loud_is_speech,
    make_router,
    route,
    tone,
    utt,
)


def live_worker(commit: Commit, options: DecodeOptions) -> tuple[LiveWorker, Segmenter, CountingDecoder]:
    ids = iter(range(1, 100))

    def next_id() -> int:
        seg_id = next(ids)
        commit.register(seg_id)
        return seg_id

    seg = Segmenter(build_settings("full").vad, loud_is_speech, next_id)
    router, _ = make_router(commit)
    decoder = CountingDecoder()
    ready = threading.Event()
    ready.set()
    live = LiveWorker(router, commit, seg, decoder, decoder, options, lambda: 0, NotedSupervisor(), ready)
    return live, seg, decoder


def partial_now(live: LiveWorker) -> None:
    live._next_due = 0.0
    live.step()


def test_the_live_pass_stops_re_decoding_a_paused_utterance_once_a_partial_heard_all_its_speech(
    commit: Commit,
) -> None:
    live, seg, decoder = live_worker(commit, DecodeOptions(partial_interval_s=0.1))
    seg.feed(np.concatenate([tone(0.2, 0), tone(1.0, 0.5)]))
    partial_now(live)
    assert len(decoder.calls) == 1  # speaking: partials run
    seg.feed(tone(0.35, 0))  # paused; this partial is the first to hear all the speech
    assert seg.paused_at is not None
    partial_now(live)
    assert len(decoder.calls) == 2
    for _ in range(3):  # only silence is added now: nothing more to decode
        seg.feed(tone(0.064, 0))
        partial_now(live)
    assert len(decoder.calls) == 2
    seg.feed(tone(0.2, 0.5))  # speech resumes: partials resume
    partial_now(live)
    assert len(decoder.calls) == 3
    # This time the refine pass starts on the pause: the live pass leaves it the CPU at once.
    events = seg.feed(tone(0.35, 0))
    live._router.speculate(next(e for e in events if isinstance(e, Pause)), can_wait=False)
    partial_now(live)
    assert len(decoder.calls) == 3


def test_no_partial_decodes_more_than_the_window_however_far_behind_it_is(commit: Commit) -> None:
    """Partials that fell behind (a busy CPU) find much new audio: still no decode exceeds the window."""
    window_s = 2.0
    live, seg, decoder = live_worker(commit, DecodeOptions(partial_interval_s=0.1, partial_window_s=window_s))
    speech = tone(19.0, 0.5)
    for k in range(1, 19):  # a quiet chunk every second: pauses between words
        speech[k * SAMPLE_RATE : k * SAMPLE_RATE + 512] = 0
    cut = 3 * SAMPLE_RATE // 512 * 512
    seg.feed(np.concatenate([tone(0.3, 0), speech[:cut]]))
    partial_now(live)
    seg.feed(speech[cut : len(speech) // 512 * 512])  # 16 s more before the next partial
    partial_now(live)
    assert decoder.calls and max(decoder.calls) <= window_s * SAMPLE_RATE, [c / SAMPLE_RATE for c in decoder.calls]
    # The pieces cover the whole utterance, each once (the head is kept).
    assert sum(decoder.calls[1:]) >= 18 * SAMPLE_RATE


class _ContextFails:
    """A session decoder whose taking of context fails (as an encoder pass for language detection may)."""

    model_name = "session"

    def __init__(self, commit: Commit) -> None:
        self._commit = commit
        self.pending_when_heard: list[bool] = []

    def decode(self, audio: np.ndarray, prompt: str = "", cancelled: object = None) -> Decoded:
        return Decoded("Hello there.", 1, 0)

    def decode_next(self, utt: Utterance, prompt: str = "", cancelled: object = None) -> Decoded:
        return Decoded("Hello there.", 1, 0)

    def heard(self, utt: Utterance, text: str) -> None:
        self.pending_when_heard.append(self._commit.is_pending(utt.id))
        raise MemoryError("the detection's encoder pass")

    def new_session(self) -> None:
        pass


def test_the_refined_text_is_out_before_it_becomes_context_and_a_failing_context_loses_nothing(
    commit: Commit,
) -> None:
    """Taking a final as context may cost an encoder pass (the language under a pin): the user's text does not wait
    for it, and when it fails the failure is counted and the worker goes on."""
    events = Recorder()
    commit.subscribe(events)
    router, _ = make_router(commit)
    supervisor = NotedSupervisor()
    decoder = _ContextFails(commit)
    ready = threading.Event()
    ready.set()
    refine = RefineWorker(router, commit, decoder, 0, supervisor, ready)
    for seg_id in (1, 2):
        route(router, commit, utt(seg_id))
        refine.step()
    assert commit.wait_drained(5)
    assert [(type(e).__name__, e.id, getattr(e, "text", "")) for e in events] == [
        ("Refined", 1, "Hello there."),
        ("Refined", 2, "Hello there."),
    ]
    assert decoder.pending_when_heard == [False, False]  # each final was out before it was taken as context
    assert refine.failures == 2 and refine.items == 2  # two decodes; the context failures counted, not fatal
    assert [stage for stage, _ in supervisor.failures] == ["refine", "refine"]
