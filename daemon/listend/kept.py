"""Kept audio in the engine: what a stop (or a dead stage, or models that cannot load) leaves undecoded.

:class:`KeptAudio` stands between the engine and :mod:`unfinished`'s files:
an utterance that has no final text when nothing can decode it any more is
written as audio and announced as ``Retracted(kind="kept-as-audio")``; at the
next start, :meth:`KeptAudio.recover` decodes the files again as new
segments, and each file goes once the text of its segment is durable
(:meth:`KeptAudio.settle`) or its audio held no speech.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from .audio import Utterance
from .commit import Commit
from .events import EngineEvent, Retracted
from .router import Backpressure
from .unfinished import UnfinishedAudio

log = logging.getLogger("listend.engine")


class _UntilClosing:
    """Backpressure for recovery: wait for the pipeline, but not past the engine's close."""

    def __init__(self, closing: threading.Event):
        self._closing = closing

    def may_wait(self) -> bool:
        return not self._closing.is_set()

    def waiting(self) -> None:
        pass


class KeptAudio:
    """Keeps undecodable utterances as audio files and recovers them later.

    Parameters
    ----------
    unfinished : UnfinishedAudio
        The files.
    commit : Commit
        Told of each utterance kept (its final event), and asked which ids still wait for text.
    """

    def __init__(self, unfinished: UnfinishedAudio, commit: Commit):
        self._unfinished = unfinished
        self._commit = commit
        commit.subscribe(self._on_event)

    def keep(self, utt: Utterance) -> None:
        """Write ``utt``'s audio and make that its final event (what the disk said, if it refused)."""
        kept = self._unfinished.keep(utt)
        if kept:
            self._unfinished.settle(utt.id)  # recovered audio kept again: the new file replaces the old
        self._commit.keep_as_audio(utt, kept.detail)

    def keep_all(self, utterances: Iterable[Utterance]) -> None:
        """Keep every one of ``utterances`` that has no final text yet."""
        for utt in utterances:
            if self._commit.is_pending(utt.id):
                self.keep(utt)

    def settle(self, seg_id: int) -> None:
        """The final text of ``seg_id`` is durable: audio kept for it can go."""
        self._unfinished.settle(seg_id)

    def recover(
        self,
        allocate: Callable[[], int],
        route: Callable[[Utterance, Backpressure], None],
        closing: threading.Event,
    ) -> int:
        """Decode the kept files again, one after another, as new segments; returns how many were decoded.

        Each waits for its final before the next is routed, and none is started once ``closing`` is set:
        what is queued then is finished (or kept again) by the close.
        """
        count = 0
        backpressure = _UntilClosing(closing)
        for path in self._unfinished.files():
            if closing.is_set():
                break
            kept = self._unfinished.load(path)
            if kept is None:
                continue
            seg_id = allocate()
            self._unfinished.decoding(seg_id, path)
            route(Utterance(seg_id, 0, kept.audio, kept.wall_start), backpressure)
            while not self._commit.wait_final(seg_id, 0.5):
                if closing.is_set():
                    return count
            count += 1
        if count:
            log.info("decoded %d utterance(s) kept from an earlier stop", count)
        return count

    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, Retracted) and event.kind == "no-speech":
            self._unfinished.settle(event.id)  # nothing to keep: the audio held no speech
