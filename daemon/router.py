"""Router: the bounded queues between the segmenter and the decoders, and the overload policy.

Closed utterances go to the refine queue (full profile) or the live-final
queue (no refine model). Both are bounded. When the refine queue is full:

* a source that can wait (a file read as fast as possible) waits;
* a live source never waits and never drops: the oldest waiting utterance is
  committed with its newest partial, or, without one, queued for a final
  decode by the fast model.

When the live-final queue is full, the oldest utterance that has a partial is
committed with it; otherwise the segmenter waits (the capture ring absorbs the
pause, and anything it cannot hold is counted as dropped), unless the engine is
giving up (a dead worker, a stop deadline): then the utterance is kept as
audio.

Speculative refine: when the open utterance pauses (:class:`Pause`) and the
refine pass has nothing else to do, the pause's audio is handed to the refine
worker before the utterance closes. If the utterance then closes with exactly
that audio (same id, same length), the speculative text is its refined text,
identical to what a decode after the close would give (same audio, same
prompt); if speech resumes first, or the close cut elsewhere, the result is
discarded and counted. At most one speculation exists at a time.

Plain logic under one lock; no I/O, no threads of its own.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Callable

from .commit import Commit
from .config import QueueOptions
from .segmenter import Pause, Utterance


@dataclass
class QueueStats:
    queue_live: int = 0
    queue_live_max: int = 0
    queue_live_high_water: int = 0
    queue_refine: int = 0
    queue_refine_max: int = 0
    queue_refine_high_water: int = 0
    backpressure_waits: int = 0
    queued_bytes: int = 0  # audio waiting in queues or being decoded
    speculations: int = 0  # pauses handed to the refine pass before their utterance closed
    speculations_used: int = 0  # ... whose text became the refined text
    speculations_discarded: int = 0  # ... voided: speech resumed, or the utterance closed elsewhere


@dataclass
class RefineJob:
    """One piece of work for the refine worker.

    ``speculative``: decode a pause's audio; the utterance may still go on, so
    hand the text back with :meth:`Router.speculation_done` instead of
    committing it. ``text``: already decoded speculatively; commit it.
    """

    utt: Utterance
    speculative: bool = False
    text: str | None = None


class Router:
    """Bounded refine and live-final queues with the overload policy.

    Parameters
    ----------
    queues : QueueOptions
        The bounds.
    commit : Commit
        Where utterances committed with live text go.
    refine_enabled : bool
        False when no refine model is loaded (lightweight, or shed).
    keep_audio : callable
        Called with an utterance that cannot be decoded (the engine is giving up).
    giving_up : callable
        True once waiting for a decoder is pointless (a worker died, a stop
        deadline passed): then nothing waits, and what cannot be decoded is
        kept as audio.
    """

    def __init__(self, queues: QueueOptions, commit: Commit, refine_enabled: bool,
                 keep_audio: Callable[[Utterance], None], giving_up: Callable[[], bool]):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._commit = commit
        self._keep_audio = keep_audio
        self._giving_up = giving_up
        self._refine_q: collections.deque[Utterance] = collections.deque()
        self._final_q: collections.deque[Utterance] = collections.deque()
        self._refining: dict[int, Utterance] = {}  # taken by the refine worker, not done
        self._finalising: dict[int, Utterance] = {}  # taken by the live worker, not done
        # Speculative refine (at most one of these is set, all for the same open utterance):
        self._pause: Utterance | None = None  # a pause's audio waiting for the refine worker
        self._speculating: Utterance | None = None  # ... being decoded
        self._speculated: tuple[Utterance, str] | None = None  # ... decoded, the utterance still open
        self._speculation_void = False  # speech resumed while it was being decoded
        # Closed utterances whose speculative text arrives (awaiting) or has arrived (ready).
        self._awaiting: dict[int, Utterance] = {}
        self._ready: collections.deque[tuple[Utterance, str]] = collections.deque()
        self._stats = QueueStats()
        self.configure(queues, refine_enabled)

    def configure(self, queues: QueueOptions, refine_enabled: bool) -> None:
        with self._cond:
            self._bounds = queues
            self._refine_enabled = refine_enabled
            self._cond.notify_all()

    # -- from the segmenter thread ----------------------------------------------

    def speculate(self, pause: Pause, can_wait: bool) -> None:
        """The open utterance paused: let an idle refine pass start on it."""
        with self._cond:
            idle = not (self._refine_q or self._refining or self._ready or self._speculating)
            if not self._refine_enabled or can_wait or not idle:
                return  # a busy refine pass gains nothing; a fast file replay closes it at once
            self._drop_speculation()
            self._pause = Utterance(pause.id, pause.start_sample, pause.audio)
            self._stats.speculations += 1
            self._cond.notify_all()

    def speculating_on(self, utt_id: int) -> bool:
        """The refine pass has (or is about to start) a speculation on open utterance ``utt_id``."""
        with self._lock:
            spec = self._speculation()
            return spec is not None and spec.id == utt_id

    def _speculation(self) -> Utterance | None:
        """The pause being speculated on, at whichever step it is."""
        return self._speculated[0] if self._speculated is not None else self._pause or self._speculating

    def resume(self, utt_id: int) -> None:
        """Speech came back in utterance ``utt_id``: its speculation is void."""
        with self._cond:
            if self._speculating is not None and self._speculating.id == utt_id:
                self._speculation_void = True
            elif ((self._pause is not None and self._pause.id == utt_id)
                  or (self._speculated is not None and self._speculated[0].id == utt_id)):
                self._drop_speculation()

    def _drop_speculation(self) -> None:
        if self._pause is not None or self._speculated is not None:
            self._stats.speculations_discarded += 1
        self._pause = None
        self._speculated = None

    def _use_speculation(self, utt: Utterance) -> bool:
        """``utt`` just closed: True if a speculation on exactly its audio covers it."""
        def same(spec: Utterance | None) -> bool:  # same id and length: the very same audio
            return spec is not None and spec.id == utt.id and len(spec.audio) == len(utt.audio)

        if same(self._pause):  # not taken yet: an ordinary refine of the same audio
            self._pause = None
            self._stats.speculations_discarded += 1
            return False
        if same(self._speculating) and not self._speculation_void:
            self._awaiting[utt.id] = utt
        elif self._speculated is not None and same(self._speculated[0]):
            self._ready.append((utt, self._speculated[1]))
            self._speculated = None
            self._stats.speculations_used += 1
        else:
            self._drop_speculation()
            return False
        self._refining[utt.id] = utt
        return True

    def route(self, utt: Utterance, can_wait: Callable[[], bool], beat: Callable[[], None]) -> None:
        """Queue a closed utterance (already registered with the commit stage)."""
        with self._cond:
            if not self._refine_enabled:
                self._drop_speculation()  # left from before the refine model was shed
                self._enqueue_final(utt, can_wait, beat)
                return
            if self._use_speculation(utt):
                self._cond.notify_all()
                return
            while len(self._refine_q) >= self._bounds.refine:
                if can_wait() and not self._giving_up():
                    self._stats.backpressure_waits += 1
                    beat()  # waiting on purpose is not being stuck
                    self._cond.wait(0.1)
                    continue
                # Overload with a live source: never drop, commit live text instead.
                self._to_live(self._refine_q.popleft(), can_wait, beat)
            self._refine_q.append(utt)
            self._stats.queue_refine_high_water = max(self._stats.queue_refine_high_water, len(self._refine_q))
            self._cond.notify_all()

    def _enqueue_final(self, utt: Utterance, can_wait, beat) -> None:
        while len(self._final_q) >= self._bounds.live_final:
            oldest = self._final_q[0]
            text = self._commit.live_text(oldest.id)
            if text and not can_wait():
                self._final_q.popleft()
                self._commit.finish(oldest, text, "live")
                continue
            if self._giving_up():
                self._keep_audio(utt)
                return
            self._stats.backpressure_waits += 1
            beat()
            self._cond.wait(0.1)
        self._final_q.append(utt)
        self._stats.queue_live_high_water = max(self._stats.queue_live_high_water, len(self._final_q))
        self._cond.notify_all()

    def _to_live(self, utt: Utterance, can_wait, beat) -> None:
        """Commit with the newest partial if there is one, else queue a final decode by the live model."""
        text = self._commit.live_text(utt.id)
        if text:
            self._commit.finish(utt, text, "live")
        else:
            self._enqueue_final(utt, can_wait, beat)

    # -- from the workers -------------------------------------------------------

    def take_refine(self, timeout: float) -> RefineJob | None:
        """The next job: a speculative text to commit, a closed utterance, or a pause to decode."""
        with self._cond:
            if not (self._ready or self._refine_q or self._pause):
                self._cond.wait(timeout)
            if self._ready:
                utt, text = self._ready.popleft()
                return RefineJob(utt, text=text)
            if self._refine_q:
                utt = self._refine_q.popleft()
                self._refining[utt.id] = utt
                self._cond.notify_all()
                return RefineJob(utt)
            if self._pause is not None:
                self._speculating, self._pause = self._pause, None
                self._speculation_void = False
                return RefineJob(self._speculating, speculative=True)
            return None

    def speculation_done(self, spec: Utterance, text: str | None) -> None:
        """The refine worker decoded a pause (``text`` None: the decode failed)."""
        with self._cond:
            self._speculating = None
            waiting = self._awaiting.pop(spec.id, None)
            if waiting is not None:
                if text is None:  # refine the closed utterance the ordinary way
                    self._refining.pop(spec.id, None)
                    self._refine_q.appendleft(waiting)
                    self._stats.speculations_discarded += 1
                else:
                    self._ready.append((waiting, text))
                    self._stats.speculations_used += 1
            elif self._speculation_void or text is None:
                self._stats.speculations_discarded += 1
            else:
                self._speculated = (spec, text)
            self._speculation_void = False
            self._cond.notify_all()

    def take_final(self) -> Utterance | None:
        with self._cond:
            if not self._final_q:
                return None
            utt = self._final_q.popleft()
            self._finalising[utt.id] = utt
            self._cond.notify_all()
            return utt

    def refined(self, utt: Utterance) -> None:
        """The refine worker is done with ``utt``."""
        with self._cond:
            self._refining.pop(utt.id, None)
            self._cond.notify_all()

    def finalised(self, utt: Utterance) -> None:
        """The live worker is done with ``utt``."""
        with self._cond:
            self._finalising.pop(utt.id, None)
            self._cond.notify_all()

    def refine_failed(self, utt: Utterance) -> None:
        """The refine pass could not decode ``utt`` (or its model was shed): fall back to live text."""
        with self._cond:
            self._refining.pop(utt.id, None)
            self._to_live(utt, lambda: True, lambda: None)

    def wait_for_final(self, timeout: float) -> None:
        with self._cond:
            if not self._final_q:
                self._cond.wait(timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def refine_backlogged(self) -> bool:
        """Half the refine queue is full: partials should leave the CPU to refining."""
        with self._lock:
            return self._refine_enabled and len(self._refine_q) * 2 >= self._bounds.refine

    # -- stopping ---------------------------------------------------------------

    def commit_refine_queue_with_live_text(self) -> None:
        """A stop deadline is near: what waits for refining gets its live text (or a fast decode).

        So does the utterance being refined right now: its live text is final
        at once, or the fast model decodes it beside the refine pass and
        whichever finishes first is committed (the commit stage takes the
        first final of an id and ignores the second).
        """
        with self._cond:
            queued_final = {u.id for u in self._final_q}
            has_text = {u.id for u, _ in self._ready}
            for utt in list(self._refining.values()):
                if utt.id not in self._finalising and utt.id not in queued_final and utt.id not in has_text:
                    self._to_live(utt, lambda: False, lambda: None)
            while self._refine_q:
                self._to_live(self._refine_q.popleft(), lambda: False, lambda: None)
            self._cond.notify_all()

    def take_unfinished(self) -> list[Utterance]:
        """Empty the queues and return them with what is being decoded (the stop deadline passed)."""
        with self._cond:
            by_id = {u.id: u for u in [*self._refine_q, *self._final_q, *self._refining.values(),
                                        *self._finalising.values()]}
            self._refine_q.clear()
            self._final_q.clear()
            self._ready.clear()
            self._awaiting.clear()
            self._pause = self._speculated = None
            self._cond.notify_all()
            return [by_id[i] for i in sorted(by_id)]

    def stats(self) -> QueueStats:
        with self._lock:
            s = self._stats
            queued = list({u.id: u for u in [*self._refine_q, *self._final_q, *self._refining.values(),
                                             *self._finalising.values()]}.values())
            speculation = self._speculation()
            if speculation is not None:
                queued.append(speculation)
            return QueueStats(len(self._final_q), self._bounds.live_final, s.queue_live_high_water,
                              len(self._refine_q), self._bounds.refine, s.queue_refine_high_water,
                              s.backpressure_waits, sum(u.nbytes for u in queued),
                              s.speculations, s.speculations_used, s.speculations_discarded)

