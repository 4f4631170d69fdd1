"""Commit: the only place events leave the pipeline.

Workers finish utterances out of order (an evicted utterance is committed
before older ones are refined); clients are promised strictly increasing ids
and never a partial after its own final. Every id is registered here the
moment it is allocated -- when an utterance opens, or when kept audio is
recovered -- so the order is the order of the ids, whoever finishes first.
:class:`Commit` holds each final until every lower id is final, keeps the
newest partial of each utterance (the text an overloaded pipeline falls back
on), and hands events to subscribers on one publisher thread, so that a
subscriber that writes to disk (the history's fsync) never holds up capture
or decoding.

Voice control happens here too, because this is the one place that sees
finals in id order: a final whose whole text is a command phrase gets its
action and target (:class:`~listend.commands.CommandSession`); the user's
replacements apply to every other final and to every partial.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .audio import Utterance
from .commands import CommandSession, CommandTable
from .events import EngineEvent, Partial, Refined, Retracted, Source
from .replacements import Replacements
from .supervision import Supervisor

log = logging.getLogger("listend.commit")

Subscriber = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class CommitStats:
    """What the commit stage has published (a snapshot)."""

    partials: int = 0
    refined: int = 0
    live_commits: int = 0
    commands: int = 0
    retracted: int = 0
    kept_as_audio: int = 0
    subscriber_failures: int = 0


class Commit:
    """Sequencer, partial cache and publisher.

    Parameters
    ----------
    supervisor : Supervisor
        Told if the publisher thread dies (it should not: a failing
        subscriber is counted and skipped).
    """

    def __init__(self, supervisor: Supervisor):
        self._lock = threading.Lock()  # guards _pending, _partials, _outbox, _stats
        self._changed = threading.Condition(self._lock)
        # Registered ids in allocation order (= id order); None until final.
        self._pending: collections.OrderedDict[int, EngineEvent | None] = collections.OrderedDict()
        self._partials: dict[int, str] = {}  # newest partial per id, as decoded (before replacements)
        self._commands = CommandTable({})  # none until configured
        self._replacements = Replacements()
        self._session = CommandSession()
        self._session_starts_at = -1  # first id of a new session still owed behind older ones (-1: none)
        # Bounded by what is in flight: one final per pending id, partials
        # coalesced to the newest per id, plus rare state events.
        self._outbox: collections.deque[EngineEvent] = collections.deque()
        self._publishing = False
        self._subscribers: list[Subscriber] = []
        self._subscribers_lock = threading.Lock()
        self._stats = CommitStats()
        self._closed = False
        self._supervisor = supervisor
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

    # -- voice control --------------------------------------------------------

    def configure_voice(self, commands: CommandTable, replacements: Replacements) -> None:
        """The command phrases and replacements in force from the next segment on (a settings change)."""
        with self._lock:
            self._commands, self._replacements = commands, replacements

    @property
    def commands(self) -> CommandTable:
        return self._commands

    def new_session(self, first_id: int) -> None:
        """A dictation session begins at ``first_id``: its commands do not act on earlier sessions' segments.

        Finals of an earlier session still owed are published before it and
        still count as that session's.
        """
        with self._lock:
            if self._pending:
                self._session_starts_at = first_id
            else:
                self._session.reset()
                self._session_starts_at = -1

    # -- from the pipeline ------------------------------------------------------

    def register(self, seg_id: int) -> None:
        """``seg_id`` was allocated: its final is published after every lower id's, before any higher.

        Call in allocation order (ids increase).
        """
        with self._lock:
            self._pending[seg_id] = None

    def is_pending(self, seg_id: int) -> bool:
        """``seg_id`` is registered and has no final yet."""
        with self._lock:
            return self._pending.get(seg_id, 0) is None

    def pending_ids(self) -> list[int]:
        """Registered ids without a final, oldest first."""
        with self._lock:
            return [i for i, event in self._pending.items() if event is None]

    def stats(self) -> CommitStats:
        with self._lock:
            return self._stats

    def _count(self, **deltas: int) -> None:
        """Add to the counters (lock held)."""
        self._stats = dataclasses.replace(self._stats, **{k: getattr(self._stats, k) + v for k, v in deltas.items()})

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
            self._count(partials=1)
            text = self._replacements.apply(text)
            last = self._outbox[-1] if self._outbox else None
            if isinstance(last, Partial) and last.id == seg_id:
                self._outbox[-1] = Partial(seg_id, text, audio_end)  # newer text wins
            else:
                self._outbox.append(Partial(seg_id, text, audio_end))
            self._changed.notify_all()
            return True

    def finish(self, utt: Utterance, text: str, source: Source) -> None:
        """Final text of ``utt`` (``source`` "refined" or "live"); '' means no speech."""
        if not text:
            event: EngineEvent = Retracted(utt.id, "no speech")
        else:
            event = Refined(
                utt.id,
                utt.start,
                utt.end,
                text,
                self.live_text(utt.id),
                source,
                utt.wall_start,
                utt.wall_start + utt.duration,
            )
        self._resolve(utt.id, event)

    def keep_as_audio(self, utt: Utterance, where: str) -> None:
        """``utt`` could not be decoded in time; what happened to its audio is ``where``."""
        with self._lock:
            self._count(kept_as_audio=1)
        self._resolve(utt.id, Retracted(utt.id, f"kept as audio: {where}", "kept-as-audio"))

    def retract(self, seg_id: int, reason: str) -> None:
        """``seg_id`` will have no text (its audio was lost with a dead thread): release the ids after it."""
        self._resolve(seg_id, Retracted(seg_id, reason, "lost"))

    def wait_final(self, seg_id: int, timeout: float | None) -> bool:
        """Wait until ``seg_id`` has its final (or was never registered)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._pending.get(seg_id, 0) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(0.1 if remaining is None else min(0.1, remaining))
        return True

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
                if first_id >= self._session_starts_at >= 0:
                    self._session.reset()
                    self._session_starts_at = -1
                if isinstance(first, Refined):
                    first = self._with_meaning(first)
                    self._count(**{"refined" if first.source == "refined" else "live_commits": 1})
                else:
                    self._count(retracted=1)
                self._outbox.append(first)
            self._changed.notify_all()

    def _with_meaning(self, final: Refined) -> Refined:
        """``final`` with its command and target, or with the replacements applied to its text (lock held)."""
        replaced = self._replacements.apply(final.text)
        action, target = self._session.meaning(final.id, final.text, self._commands, replaced)
        if action is not None:
            self._count(commands=1)
            amended = self._session.amended(target) if action.mark and target else ""
            return dataclasses.replace(final, command=action.value, target=target, amended=amended)
        return final if replaced == final.text else dataclasses.replace(final, text=replaced)

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
        except BaseException as e:
            log.exception("publisher thread died")
            self._supervisor.died("publisher", f"publisher died: {type(e).__name__}: {e}")

    def _deliver(self, event: EngineEvent) -> None:
        with self._subscribers_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not stop the pipeline
                with self._lock:
                    self._count(subscriber_failures=1)
                log.exception("event subscriber failed on %s", type(event).__name__)


class SegmentIds:
    """Segment ids in order: each registered with the commit stage as it is allocated.

    Registering at allocation is what lets commit publish in id order: an id
    is owed before any stage can finish it.
    """

    def __init__(self, first: int, register: Callable[[int], None]):
        self._lock = threading.Lock()  # allocation and registration, together
        self._next = first
        self._register = register

    @property
    def next(self) -> int:
        return self._next

    def allocate(self) -> int:
        with self._lock:
            seg_id = self._next
            self._next += 1
            self._register(seg_id)
            return seg_id
