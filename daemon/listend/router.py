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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from .audio import Pause, Utterance
from .commit import Commit
from .config import QueueOptions


class Backpressure(Protocol):
    """What whoever routes an utterance does when a queue is full."""

    def may_wait(self) -> bool:
        """True while the caller can be held up (a file read as fast as possible can; a microphone cannot)."""
        ...

    def waiting(self) -> None:
        """Called on every wait (the segmenter beats its heartbeat: waiting on purpose is not being stuck)."""
        ...


class _NeverWait:
    def may_wait(self) -> bool:
        return False

    def waiting(self) -> None:
        pass


class _MayWait(_NeverWait):
    def may_wait(self) -> bool:
        return True


NEVER_WAIT: Backpressure = _NeverWait()
"""Never hold the caller up: degrade instead (commit live text, keep audio)."""
MAY_WAIT: Backpressure = _MayWait()
"""The caller can always wait (a worker handing back an utterance)."""


@dataclass(frozen=True)
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
class _Counters:
    queue_live_high_water: int = 0
    queue_refine_high_water: int = 0
    backpressure_waits: int = 0
    speculations: int = 0
    speculations_used: int = 0
    speculations_discarded: int = 0


SpeculationPhase = Literal["waiting", "decoding", "decoded"]


@dataclass
class Speculation:
    """The one speculative refine: a pause's audio on its way through the refine pass.

    ``waiting`` for the refine worker, ``decoding`` by it, or ``decoded``
    (``text`` is set) while the utterance is still open. ``void`` once speech
    resumed during the decode; ``closed`` is the utterance that closed with
    exactly this audio while it was being decoded, waiting for its text.
    """

    utt: Utterance
    phase: SpeculationPhase = "waiting"
    void: bool = False
    text: str = ""
    closed: Utterance | None = None

    @property
    def id(self) -> int:
        return self.utt.id

    def covers(self, utt: Utterance) -> bool:
        """``utt`` closed with the very audio speculated on (same id, same length)."""
        return self.utt.id == utt.id and len(self.utt.audio) == len(utt.audio)


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

    def __init__(
        self,
        queues: QueueOptions,
        commit: Commit,
        refine_enabled: bool,
        keep_audio: Callable[[Utterance], None],
        giving_up: Callable[[], bool],
    ):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._commit = commit
        self._keep_audio = keep_audio
        self._giving_up = giving_up
        self._refine_q: collections.deque[Utterance] = collections.deque()
        self._final_q: collections.deque[Utterance] = collections.deque()
        self._refining: dict[int, Utterance] = {}  # taken by the refine worker, not done
        self._finalising: dict[int, Utterance] = {}  # taken by the live worker, not done
        self._spec: Speculation | None = None  # at most one, for the open utterance
        # Closed utterances whose speculative text has arrived, to be committed by the refine worker.
        self._ready: collections.deque[tuple[Utterance, str]] = collections.deque()
        self._counts = _Counters()
        self._bounds = queues
        self._refine_enabled = refine_enabled

    def configure(self, queues: QueueOptions, refine_enabled: bool) -> None:
        with self._cond:
            self._bounds = queues
            self._refine_enabled = refine_enabled
            self._cond.notify_all()

    # -- from the segmenter thread ----------------------------------------------

    def speculate(self, pause: Pause, can_wait: bool) -> None:
        """The open utterance paused: let an idle refine pass start on it."""
        with self._cond:
            decoding = self._spec is not None and self._spec.phase == "decoding"
            idle = not (self._refine_q or self._refining or self._ready or decoding)
            if not self._refine_enabled or can_wait or not idle:
                return  # a busy refine pass gains nothing; a fast file replay closes it at once
            self._drop_speculation()
            self._spec = Speculation(Utterance(pause.id, pause.start_sample, pause.audio))
            self._counts.speculations += 1
            self._cond.notify_all()

    def speculating_on(self, utt_id: int) -> bool:
        """The refine pass has (or is about to start) a speculation on open utterance ``utt_id``."""
        with self._lock:
            return self._spec is not None and self._spec.id == utt_id

    def resume(self, utt_id: int) -> None:
        """Speech came back in utterance ``utt_id``: its speculation is void."""
        with self._cond:
            if self._spec is not None and self._spec.id == utt_id:
                self._void_speculation()

    def _void_speculation(self) -> None:
        """Discard the speculation; one being decoded is discarded when its decode returns."""
        if self._spec is not None and self._spec.phase == "decoding":
            self._spec.void = True
        else:
            self._drop_speculation()

    def _drop_speculation(self) -> None:
        if self._spec is not None and self._spec.phase != "decoding":
            self._counts.speculations_discarded += 1
            self._spec = None

    def _use_speculation(self, utt: Utterance) -> bool:
        """``utt`` just closed: True if a speculation on exactly its audio covers it."""
        spec = self._spec
        if spec is None:
            return False
        if not spec.covers(utt) or spec.void or spec.phase == "waiting":
            # Not taken yet (an ordinary refine of the same audio), or closed elsewhere.
            self._void_speculation()
            return False
        if spec.phase == "decoding":
            spec.closed = utt  # its text is on its way
        else:
            self._ready.append((utt, spec.text))
            self._spec = None
            self._counts.speculations_used += 1
        self._refining[utt.id] = utt
        return True

    def route(self, utt: Utterance, backpressure: Backpressure) -> None:
        """Queue a closed utterance (already registered with the commit stage)."""
        with self._cond:
            if not self._refine_enabled:
                self._void_speculation()  # left from before the refine model was shed
                self._enqueue_final(utt, backpressure)
                return
            if self._use_speculation(utt):
                self._cond.notify_all()
                return
            while len(self._refine_q) >= self._bounds.refine:
                if backpressure.may_wait() and not self._giving_up():
                    self._counts.backpressure_waits += 1
                    backpressure.waiting()
                    self._cond.wait(0.1)
                    continue
                # Overload with a live source: never drop, commit live text instead.
                self._to_live(self._refine_q.popleft(), backpressure)
            self._refine_q.append(utt)
            self._counts.queue_refine_high_water = max(self._counts.queue_refine_high_water, len(self._refine_q))
            self._cond.notify_all()

    def _enqueue_final(self, utt: Utterance, backpressure: Backpressure) -> None:
        while len(self._final_q) >= self._bounds.live_final:
            oldest = self._final_q[0]
            text = self._commit.live_text(oldest.id)
            if text and not backpressure.may_wait():
                self._final_q.popleft()
                self._commit.finish(oldest, text, "live")
                continue
            if self._giving_up():
                self._keep_audio(utt)
                return
            self._counts.backpressure_waits += 1
            backpressure.waiting()
            self._cond.wait(0.1)
        self._final_q.append(utt)
        self._counts.queue_live_high_water = max(self._counts.queue_live_high_water, len(self._final_q))
        self._cond.notify_all()

    def _to_live(self, utt: Utterance, backpressure: Backpressure) -> None:
        """Commit with the newest partial if there is one, else queue a final decode by the live model."""
        text = self._commit.live_text(utt.id)
        if text:
            self._commit.finish(utt, text, "live")
        else:
            self._enqueue_final(utt, backpressure)

    # -- from the workers -------------------------------------------------------

    def take_refine(self, timeout: float) -> RefineJob | None:
        """The next job: a speculative text to commit, a closed utterance, or a pause to decode."""
        with self._cond:
            if not (self._ready or self._refine_q or self._speculation_waiting()):
                self._cond.wait(timeout)
            if self._ready:
                utt, text = self._ready.popleft()
                return RefineJob(utt, text=text)
            if self._refine_q:
                utt = self._refine_q.popleft()
                self._refining[utt.id] = utt
                self._cond.notify_all()
                return RefineJob(utt)
            spec = self._spec
            if spec is not None and spec.phase == "waiting":
                spec.phase = "decoding"
                return RefineJob(spec.utt, speculative=True)
            return None

    def _speculation_waiting(self) -> bool:
        return self._spec is not None and self._spec.phase == "waiting"

    def speculation_void(self, utt: Utterance) -> bool:
        """The speculation on ``utt`` is no longer wanted (speech resumed, or it was abandoned)."""
        with self._lock:
            spec = self._spec
            return spec is None or spec.utt is not utt or (spec.void and spec.closed is None)

    def speculation_done(self, utt: Utterance, text: str | None) -> None:
        """The refine worker decoded a pause's audio ``utt`` (``text`` None: the decode failed)."""
        with self._cond:
            spec = self._spec
            if spec is None or spec.utt is not utt:
                return  # abandoned meanwhile (a stop deadline took what was queued)
            if spec.closed is not None:
                closed, self._spec = spec.closed, None
                if text is None:  # refine the closed utterance the ordinary way
                    self._refining.pop(closed.id, None)
                    self._refine_q.appendleft(closed)
                    self._counts.speculations_discarded += 1
                else:
                    self._ready.append((closed, text))
                    self._counts.speculations_used += 1
            elif spec.void or text is None:
                self._spec = None
                self._counts.speculations_discarded += 1
            else:
                spec.phase, spec.text = "decoded", text
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
            self._to_live(utt, MAY_WAIT)

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

    @property
    def refine_queue_length(self) -> int:
        with self._lock:
            return len(self._refine_q)

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
                    self._to_live(utt, NEVER_WAIT)
            while self._refine_q:
                self._to_live(self._refine_q.popleft(), NEVER_WAIT)
            self._cond.notify_all()

    def take_unfinished(self) -> list[Utterance]:
        """Empty the queues and return them with what is being decoded (the stop deadline passed)."""
        with self._cond:
            by_id = {
                u.id: u for u in [*self._refine_q, *self._final_q, *self._refining.values(), *self._finalising.values()]
            }
            self._refine_q.clear()
            self._final_q.clear()
            self._ready.clear()
            self._spec = None
            self._cond.notify_all()
            return [by_id[i] for i in sorted(by_id)]

    def holds(self, seg_id: int) -> bool:
        """``seg_id`` is queued here or being decoded."""
        with self._lock:
            return any(
                u.id == seg_id
                for u in [*self._refine_q, *self._final_q, *self._refining.values(), *self._finalising.values()]
            )

    def stats(self) -> QueueStats:
        with self._lock:
            c = self._counts
            queued = list(
                {
                    u.id: u
                    for u in [*self._refine_q, *self._final_q, *self._refining.values(), *self._finalising.values()]
                }.values()
            )
            if self._spec is not None:
                queued.append(self._spec.utt)
            return QueueStats(
                len(self._final_q),
                self._bounds.live_final,
                c.queue_live_high_water,
                len(self._refine_q),
                self._bounds.refine,
                c.queue_refine_high_water,
                c.backpressure_waits,
                sum(u.nbytes for u in queued),
                c.speculations,
                c.speculations_used,
                c.speculations_discarded,
            )
