"""The commit stage: id order, partials never after their final, coalescing, the publisher thread."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from listend.commit import Commit
from listend.events import Partial, Refined, Retracted
from tests.support.pipeline import NotedSupervisor, Recorder, utt


def test_finals_are_published_in_id_order_and_no_partial_after_its_final(commit: Commit) -> None:
    events = Recorder()
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
    assert events[2].live_text == "hel" and events[2].source == "refined"
    assert events[3].kind == "no-speech"
    stats = commit.stats()
    assert (stats.refined, stats.live_commits, stats.retracted) == (1, 1, 1)


def test_an_id_registered_when_allocated_holds_back_later_ids_until_it_is_final(commit: Commit) -> None:
    """Ids are registered when allocated (an utterance opens): recovery's later id waits for the open one."""
    events = Recorder()
    commit.subscribe(events)
    commit.register(2)  # an utterance opened and got id 2
    commit.register(3)  # kept audio recovered meanwhile: id 3, decoded at once
    commit.finish(utt(3), "recovered", "refined")
    commit.wait_drained(0.3)
    assert [e.id for e in events] == [] and commit.pending_ids() == [2]
    assert not commit.wait_final(2, 0.05) and commit.wait_final(3, 0.05)
    commit.finish(utt(2), "spoken", "refined")
    assert commit.wait_drained(5)
    assert [e.id for e in events] == [2, 3]


def test_a_retracted_id_releases_the_ids_after_it(commit: Commit) -> None:
    events = Recorder()
    commit.subscribe(events)
    commit.register(1)
    commit.register(2)
    commit.finish(utt(2), "second", "live")
    commit.retract(1, "lost with the segmenter thread")
    assert commit.wait_drained(5)
    assert [(type(e).__name__, e.id) for e in events] == [("Retracted", 1), ("Refined", 2)]
    assert events[0].kind == "lost"


def test_wall_time_is_the_utterance_s_not_now(commit: Commit) -> None:
    events = Recorder()
    commit.subscribe(events)
    commit.register(7)
    commit.finish(utt(7, seconds=2.0, wall=1_700_000_000.0), "text", "refined")
    commit.wait_drained(5)
    assert events[0].wall_start == 1_700_000_000.0 and events[0].wall_end == 1_700_000_002.0


def test_partials_a_slow_subscriber_has_not_taken_coalesce(commit: Commit) -> None:
    gate = threading.Event()
    events = Recorder()
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


def test_a_failing_subscriber_is_counted_and_others_still_get_events(commit: Commit) -> None:
    events = Recorder()
    commit.subscribe(lambda e: 1 / 0)
    commit.subscribe(events)
    commit.register(1)
    commit.finish(utt(1), "x", "refined")
    commit.wait_drained(5)
    assert len(events) == 1 and commit.stats().subscriber_failures == 1


def test_stats_are_a_frozen_snapshot(commit: Commit) -> None:
    before = commit.stats()
    commit.register(1)
    commit.finish(utt(1), "x", "refined")
    commit.wait_drained(5)
    assert before.refined == 0 and commit.stats().refined == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.refined = 5  # type: ignore[misc]


def test_a_dead_publisher_is_reported_to_the_supervisor() -> None:
    supervisor = NotedSupervisor()
    commit = Commit(supervisor)

    class Explodes(BaseException):
        pass

    def subscriber(event: object) -> None:
        raise Explodes()  # not an Exception: gets past the per-subscriber guard

    commit.subscribe(subscriber)
    commit.publish(Retracted(1, "x"))
    deadline = time.monotonic() + 5
    while not supervisor.deaths:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert supervisor.deaths[0][0] == "publisher"
