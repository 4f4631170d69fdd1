"""The router: bounded queues, the overload policy, and the one speculative refine."""

from __future__ import annotations

import threading

from listend.commit import Commit
from listend.events import Refined
from listend.router import MAY_WAIT, NEVER_WAIT
from tests.support.pipeline import Recorder, make_router, pause_of, route, utt


def test_overload_with_a_live_source_commits_the_oldest_with_its_partial(commit: Commit) -> None:
    events = Recorder()
    commit.subscribe(events)
    router, _ = make_router(commit, refine=2)
    for i in (1, 2):
        route(router, commit, utt(i))
        commit.partial(i, False, f"live {i}", 1.0)
    route(router, commit, utt(3))  # full: 1 leaves with its live text
    commit.wait_drained(0.2)
    finals = [e for e in events if isinstance(e, Refined)]
    assert [(e.id, e.text, e.source) for e in finals] == [(1, "live 1", "live")]
    assert router.stats().queue_refine == 2 == router.refine_queue_length


def test_overload_without_a_partial_goes_to_the_live_final_queue(commit: Commit) -> None:
    router, _ = make_router(commit, refine=1)
    route(router, commit, utt(1))
    route(router, commit, utt(2))
    s = router.stats()
    assert s.queue_refine == 1 and s.queue_live == 1
    final = router.take_final()
    assert final is not None and final.id == 1


def test_a_source_that_can_wait_waits_instead_of_degrading(commit: Commit) -> None:
    router, _ = make_router(commit, refine=1)
    route(router, commit, utt(1), can_wait=True)
    done = threading.Event()
    threading.Thread(target=lambda: (route(router, commit, utt(2), can_wait=True), done.set()), daemon=True).start()
    assert not done.wait(0.3)  # waiting on the refine worker
    job = router.take_refine(0)
    assert job is not None and job.utt.id == 1
    assert done.wait(2)
    assert router.stats().backpressure_waits >= 1 and commit.stats().live_commits == 0


def test_waiting_calls_the_backpressure_s_waiting_hook(commit: Commit) -> None:
    router, _ = make_router(commit, refine=1)
    route(router, commit, utt(1))
    beats: list[int] = []

    class Beating:
        def may_wait(self) -> bool:
            return len(beats) < 3

        def waiting(self) -> None:
            beats.append(1)

    commit.register(2)
    router.route(utt(2), Beating())  # waits three times, then degrades
    assert len(beats) == 3 and router.stats().queue_live == 1


def test_giving_up_keeps_audio_instead_of_waiting_forever(commit: Commit) -> None:
    giving_up = threading.Event()
    router, kept = make_router(commit, live=1, refine_enabled=False, giving_up=giving_up.is_set)
    route(router, commit, utt(1))
    done = threading.Event()
    threading.Thread(target=lambda: (route(router, commit, utt(2)), done.set()), daemon=True).start()
    assert not done.wait(0.3)  # no partial to fall back on, live worker busy: waits
    giving_up.set()  # a worker died
    assert done.wait(2) and kept == [2]


def test_a_speculation_is_used_when_the_utterance_closes_at_its_pause(commit: Commit) -> None:
    router, _ = make_router(commit)
    closed = utt(1, seconds=2.0)
    router.speculate(pause_of(closed), can_wait=False)
    assert router.speculating_on(1)
    job = router.take_refine(0)
    assert job is not None and job.speculative and job.utt.id == 1 and job.text is None
    router.speculation_done(job.utt, "hello there")
    route(router, commit, closed)  # closes with the same audio: no second decode
    job = router.take_refine(0)
    assert job is not None and job.text == "hello there" and job.utt is closed and not job.speculative
    s = router.stats()
    assert (s.speculations, s.speculations_used, s.speculations_discarded, s.queue_refine) == (1, 1, 0, 0)


def test_a_closed_utterance_waits_for_the_speculation_in_flight_and_gets_its_text(commit: Commit) -> None:
    router, _ = make_router(commit)
    closed = utt(1, seconds=2.0)
    router.speculate(pause_of(closed), can_wait=False)
    job = router.take_refine(0)
    assert job is not None
    route(router, commit, closed)  # the close comes while the pause is being decoded
    assert router.take_refine(0) is None  # nothing to decode again
    router.speculation_done(job.utt, "its text")
    job = router.take_refine(0)
    assert job is not None and job.utt is closed and job.text == "its text"
    assert router.stats().speculations_used == 1


def test_a_failed_speculation_sends_the_closed_utterance_to_an_ordinary_refine(commit: Commit) -> None:
    router, _ = make_router(commit)
    closed = utt(1, seconds=2.0)
    router.speculate(pause_of(closed), can_wait=False)
    job = router.take_refine(0)
    assert job is not None
    route(router, commit, closed)
    router.speculation_done(job.utt, None)  # the decode raised
    job = router.take_refine(0)
    assert job is not None and job.utt is closed and job.text is None and not job.speculative
    assert router.stats().speculations_discarded == 1


def test_a_speculation_is_discarded_when_speech_resumes(commit: Commit) -> None:
    router, _ = make_router(commit)
    router.speculate(pause_of(utt(1, seconds=2.0)), can_wait=False)
    job = router.take_refine(0)
    assert job is not None
    router.resume(1)  # speech came back while the pause was being decoded
    router.speculation_done(job.utt, "half a sentence")
    longer = utt(1, seconds=3.0)
    route(router, commit, longer)
    job = router.take_refine(0)
    assert job is not None and job.utt is longer and job.text is None and not job.speculative  # decoded afresh
    s = router.stats()
    assert (s.speculations, s.speculations_used, s.speculations_discarded) == (1, 0, 1)


def test_a_speculation_not_taken_yet_is_an_ordinary_refine_of_the_closed_utterance(commit: Commit) -> None:
    router, _ = make_router(commit)
    closed = utt(1, seconds=2.0)
    router.speculate(pause_of(closed), can_wait=False)
    route(router, commit, closed)
    job = router.take_refine(0)
    assert job is not None and job.utt is closed and not job.speculative
    assert not router.speculating_on(1) and router.stats().speculations_discarded == 1


def test_no_speculation_while_the_refine_pass_is_busy_or_for_a_file_replay(commit: Commit) -> None:
    router, _ = make_router(commit, refine=3)
    router.speculate(pause_of(utt(1)), can_wait=True)  # a fast replay closes it at once
    route(router, commit, utt(2))
    router.speculate(pause_of(utt(3)), can_wait=False)  # 2 waits for refining
    assert router.stats().speculations == 0
    job = router.take_refine(0)
    assert job is not None and not job.speculative


def test_the_speculation_s_audio_counts_in_queued_bytes(commit: Commit) -> None:
    router, _ = make_router(commit)
    pause = pause_of(utt(1, seconds=2.0))
    router.speculate(pause, can_wait=False)
    assert router.stats().queued_bytes == pause.audio.nbytes


def test_take_unfinished_returns_queued_and_in_progress_in_order(commit: Commit) -> None:
    router, _ = make_router(commit, refine=3)
    for i in (1, 2, 3):
        route(router, commit, utt(i))
    router.take_refine(0)  # 1 being decoded
    assert router.holds(1) and router.holds(3) and not router.holds(4)
    assert [u.id for u in router.take_unfinished()] == [1, 2, 3]


def test_near_a_deadline_the_utterance_being_refined_gets_live_text_or_a_fast_decode(commit: Commit) -> None:
    events = Recorder()
    commit.subscribe(events)
    router, _ = make_router(commit, refine=3)
    for i in (1, 2, 3):
        route(router, commit, utt(i))
    commit.partial(1, False, "live one", 1.0)
    job = router.take_refine(0)
    assert job is not None and job.utt.id == 1  # 1 and then 2 would be refined...
    router.commit_refine_queue_with_live_text()  # ...but the stop deadline is near
    # 1 goes out with its live text; 2 and 3 have none: the fast model decodes them.
    assert [router.take_final().id, router.take_final().id] == [2, 3]  # type: ignore[union-attr]
    commit.wait_drained(0.2)
    assert [(e.id, e.source) for e in events if isinstance(e, Refined)] == [(1, "live")]
    commit.finish(utt(1), "late refined text", "refined")  # the refine pass finishing later is ignored
    commit.wait_drained(0.2)
    assert [e.text for e in events if isinstance(e, Refined)] == ["live one"]


def test_policies_say_whether_to_wait() -> None:
    assert MAY_WAIT.may_wait() and not NEVER_WAIT.may_wait()
