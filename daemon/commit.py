"""Commit: the only place events leave the pipeline.

Workers finish utterances out of order (an evicted utterance is committed
before older ones are refined); clients are promised increasing ids and never
a partial after its own final. :class:`Commit` holds each final until its
predecessors are done, keeps the newest partial of each utterance (the text
an overloaded pipeline falls back on), and hands events to subscribers on
one publisher thread, so that a subscriber that writes to disk (the history's
fsync) never holds up capture or decoding.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .events import EngineEvent, Partial, Refined, Retracted
from .segmenter import Utterance

log = logging.getLogger("listend.commit")

Subscriber = Callable[[EngineEvent], None]


@dataclass
class CommitStats:
    """What the commit stage has published."""

    partials: int = 0
    refined: int = 0
    live_commits: int = 0
    retracted: int = 0
    kept_as_audio: int = 0
    subscriber_failures: int = 0


class Commit:
    """Sequencer, partial cache and publisher.

    Parameters
    ----------
    on_publisher_death : callable
        Called with the exception if the publisher thread dies (it should not:
        a failing subscriber is counted and skipped).
    """

    def __init__(self, on_publisher_death: Callable[[BaseException], None] = lambda e: None):
        self._lock = threading.Lock()  # guards _pending, _partials, _outbox
        self._changed = threading.Condition(self._lock)
        self._pending: collections.OrderedDict[int, EngineEvent | None] = collections.OrderedDict()
        self._partials: dict[int, str] = {}
        # Bounded by what is in flight: one final per pending id, partials
        # coalesced to the newest per id, plus rare state events.
        self._outbox: collections.deque[EngineEvent] = collections.deque()
        self._publishing = False
        self._subscribers: list[Subscriber] = []
        self._subscribers_lock = threading.Lock()
        self.stats = CommitStats()
        self._closed = False
        self._on_death = on_publisher_death
        self._thread = threading.Thread(target=self._run, name="listend-publish", daemon=True)
        self._thread.start()

    # -- subscribers ------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._subscribers_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._subscribers_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- from the pipeline ------------------------------------------------------

    def register(self, seg_id: int) -> None:
        """An utterance got its final place in the order (it was closed)."""
        with self._lock:
            self._pending[seg_id] = None

    def is_pending(self, seg_id: int) -> bool:
        with self._lock:
            return self._pending.get(seg_id, 0) is None

    def live_text(self, seg_id: int) -> str:
        """The newest partial of ``seg_id`` ('' if none)."""
        with self._lock:
            return self._partials.get(seg_id, "")

    def partial(self, seg_id: int, is_open: bool, text: str, audio_end: float) -> bool:
        """Publish a partial unless its utterance already has its final text."""
        with self._lock:
            if not is_open and self._pending.get(seg_id, 0) is not None:
                return False
            self._partials[seg_id] = text
            self.stats.partials += 1
            last = self._outbox[-1] if self._outbox else None
            if isinstance(last, Partial) and last.id == seg_id:
                self._outbox[-1] = Partial(seg_id, text, audio_end)  # newer text wins
            else:
                self._outbox.append(Partial(seg_id, text, audio_end))
            self._changed.notify_all()
            return True

    def finish(self, utt: Utterance, text: str, source: str) -> None:
        """Final text of ``utt`` (``source`` "refined" or "live"); '' means no speech."""
        if not text:
            event: EngineEvent = Retracted(utt.id, "no speech")
        else:
            event = Refined(utt.id, utt.start, utt.end, text, self.live_text(utt.id), source,  # type: ignore[arg-type]
                            utt.wall_start, utt.wall_start + utt.duration)
        self._resolve(utt.id, event)

    def keep_as_audio(self, utt: Utterance, where: str) -> None:
        """``utt`` could not be decoded in time; its audio was saved at ``where``."""
        with self._lock:
            self.stats.kept_as_audio += 1
        self._resolve(utt.id, Retracted(utt.id, f"kept as audio: {where}"))

    def publish(self, event: EngineEvent) -> None:
        """Publish an event outside the segment order (state, memory, profile)."""
        with self._lock:
            self._outbox.append(event)
            self._changed.notify_all()

    def _resolve(self, seg_id: int, event: EngineEvent) -> None:
        with self._lock:
            if self._pending.get(seg_id, 0) is not None:
                return  # unknown or already final (e.g. kept as audio at a deadline)
            self._pending[seg_id] = event
            while self._pending:
                first_id, first = next(iter(self._pending.items()))
                if first is None:
                    break
                del self._pending[first_id]
                self._partials.pop(first_id, None)
                if isinstance(first, Refined):
                    if first.source == "refined":
                        self.stats.refined += 1
                    else:
                        self.stats.live_commits += 1
                else:
                    self.stats.retracted += 1
                self._outbox.append(first)
            self._changed.notify_all()

    # -- draining ---------------------------------------------------------------

    def wait_drained(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._pending or self._outbox or self._publishing:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(0.1 if remaining is None else min(0.1, remaining))
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.wait_drained(timeout)
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout)

    # -- publisher thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._outbox and not self._closed:
                        self._changed.wait()
                    if not self._outbox:
                        return
                    event = self._outbox.popleft()
                    self._publishing = True
                try:
                    self._deliver(event)
                finally:
                    with self._lock:
                        self._publishing = False
                        self._changed.notify_all()
        except BaseException as e:  # noqa: BLE001 - reported, then the engine is in error
            log.exception("publisher thread died")
            self._on_death(e)

    def _deliver(self, event: EngineEvent) -> None:
        with self._subscribers_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not stop the pipeline
                self.stats.subscriber_failures += 1
                log.exception("event subscriber failed on %s", type(event).__name__)
