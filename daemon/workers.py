"""Workers: one supervised thread per decoding pass, each owning its decoder.

A failure on one item (a decode that raises) is caught, counted and reported
through ``on_failure``, and the worker goes on with the next item. A worker
whose loop itself dies reports through ``on_death``; the engine then goes to
``error`` and stops feeding the watchdog. A worker busy on one item for longer
than its stall limit is reported by :attr:`SupervisedWorker.stalled_since`, so
a hung decode is not hidden by a live capture thread either.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .commit import Commit
from .decoders import Decoder
from .router import Router
from .config import DecodeOptions
from .segmenter import SAMPLE_RATE, OpenSnapshot, Segmenter

log = logging.getLogger("listend.workers")

# A single decode taking longer than this is a hang, not a slow CPU: a 30 s
# utterance decodes in ~10 s with base on one starved core.
STALL_LIMIT_S = 120.0


@dataclass
class WorkerStats:
    name: str
    alive: bool
    items: int
    failures: int
    last_failure: str


class SupervisedWorker:
    """A thread that runs :meth:`step` until closed, catching per-item failures.

    Parameters
    ----------
    name : str
        Short name ("live", "refine") used in thread names, logs and errors.
    on_failure : callable
        ``on_failure(worker_name, message)`` after a failed item.
    on_death : callable
        ``on_death(worker_name, message)`` when the loop itself dies.
    """

    def __init__(self, name: str, on_failure: Callable[[str, str], None], on_death: Callable[[str, str], None]):
        self.name = name
        self._on_failure = on_failure
        self._on_death = on_death
        self._closed = threading.Event()
        self._decoder_in_use = threading.Lock()  # held while a decode runs: swapping waits on it
        self._busy_since = 0.0
        self.items = 0
        self.failures = 0
        self.last_failure = ""
        self.alive = False
        self._thread = threading.Thread(target=self._run, name=f"listend-{name}", daemon=True)

    def start(self) -> None:
        self.alive = True
        self._thread.start()

    def close(self, timeout: float) -> None:
        self._closed.set()
        self.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def stalled_since(self) -> float | None:
        """When the current item started, if it has run longer than the stall limit."""
        since = self._busy_since
        if since and time.monotonic() - since > STALL_LIMIT_S:
            return since
        return None

    def stats(self) -> WorkerStats:
        return WorkerStats(self.name, self.alive, self.items, self.failures, self.last_failure)

    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                self.step()
        except BaseException as e:  # noqa: BLE001 - a dead worker is reported, never silent
            log.exception("%s worker died", self.name)
            self.alive = False
            self._on_death(self.name, f"{self.name} worker died: {type(e).__name__}: {e}")
            return
        self.alive = False

    def _item(self, what: str, work: Callable[[], None]) -> bool:
        """Run one item's work; a failure is counted and reported. Returns True on success."""
        self._busy_since = time.monotonic()
        try:
            with self._decoder_in_use:
                work()
            self.items += 1
            return True
        except Exception as e:
            self.failures += 1
            self.last_failure = f"{self.name} pass failed on {what}: {type(e).__name__}: {e}"[:300]
            log.exception("%s pass failed on %s", self.name, what)
            self._on_failure(self.name, self.last_failure)
            return False
        finally:
            self._busy_since = 0.0

    def wait_current_item(self) -> None:
        """Return once no decode started before this call is still running."""
        with self._decoder_in_use:
            pass

    def step(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        pass


class RefineWorker(SupervisedWorker):
    """Decodes closed utterances with the accurate model; failures fall back to live text.

    The prompt is the tail of this session's refined text (Whisper reads it as
    preceding context); :meth:`reset_context` forgets it at a session start.
    """

    def __init__(self, router: Router, commit: Commit, decoder: Decoder | None, prompt_chars: int,
                 on_failure, on_death):
        super().__init__("refine", on_failure, on_death)
        self._router = router
        self._commit = commit
        self.decoder = decoder
        self.prompt_chars = prompt_chars
        self._context = ""

    def reset_context(self) -> None:
        self._context = ""

    def prompt(self) -> str:
        """The tail of the refined text, cut at a word boundary.

        Short on purpose: a long prompt of unrelated earlier sentences biases
        Whisper (measured: 4 errors more in 66 words with 200 characters).
        """
        limit, context = self.prompt_chars, self._context
        if not limit or not context:
            return ""
        tail = context[-limit:]
        if len(context) > limit and " " in tail:
            tail = tail.split(" ", 1)[1]
        return tail.strip()

    def wake(self) -> None:
        self._router.wake()

    def step(self) -> None:
        job = self._router.take_refine(0.2)
        if job is None:
            return
        utt = job.utt
        if job.text is not None:  # decoded speculatively at its pause
            self._finish(utt, job.text)
            return
        decoder = self.decoder
        if decoder is None:  # refine model shed (profile switch, memory limit)
            self._give_up(job)
            return
        what = f"{'pause of ' if job.speculative else ''}segment {utt.id}"
        result: list[str] = []
        if not self._item(what, lambda: result.append(decoder.decode(utt.audio, self.prompt()).text)):
            self._give_up(job)
        elif job.speculative:
            self._router.speculation_done(utt, result[0])
        else:
            self._finish(utt, result[0])

    def _give_up(self, job) -> None:
        if job.speculative:
            self._router.speculation_done(job.utt, None)
        else:
            self._router.refine_failed(job.utt)

    def _finish(self, utt, text: str) -> None:
        if text:
            self._context = (self._context + " " + text)[-1000:]
        self._commit.finish(utt, text, "refined")
        self._router.refined(utt)


@dataclass(frozen=True)
class _Head:
    """The decoded head of a long open utterance: its text is kept, only what follows is re-decoded."""

    id: int | None
    offset: int  # samples into the open utterance
    text: str


class LiveWorker(SupervisedWorker):
    """The fast model: final decodes when asked, otherwise partials of the open utterance.

    Partials are re-decoded every ``partial_interval_s`` while the open
    utterance grows, skipped (and counted) while the refine pass is backlogged
    or a decode took longer than the interval. Once the utterance pauses, none
    follow: its refined text is on its way (the refine pass started on the
    pause and has the CPU to itself), or, if the refine pass is busy with
    earlier speech, after one partial that heard all its speech only silence
    is being added.

    A partial re-decodes at most ``partial_window_s`` of audio, so its cost
    stays flat however long the utterance gets: when the part after the head
    outgrows the window, the head is extended to the quietest moment of it
    (a pause between words), decoded once, and its text kept.
    """

    def __init__(self, router: Router, commit: Commit, segmenter: Segmenter, decoder: Decoder,
                 options: Callable[[], DecodeOptions], clock_origin: Callable[[], int], on_failure, on_death):
        super().__init__("live", on_failure, on_death)
        self._router = router
        self._commit = commit
        self._segmenter = segmenter
        self.decoder = decoder
        self._options = options
        self._clock_origin = clock_origin
        self._next_due = 0.0
        self._seen_version = -1
        self._covered = (None, 0)  # (id, audio-clock end) of the newest partial's audio
        self._head = _Head(None, 0, "")
        self.partials_skipped = 0

    def wake(self) -> None:
        self._router.wake()

    def step(self) -> None:
        utt = self._router.take_final()
        if utt is not None:
            self._final(utt)
            return
        seg, options, now = self._segmenter, self._options(), time.monotonic()
        interval = options.partial_interval_s
        if seg.open_id is not None and seg.version != self._seen_version and now >= self._next_due \
                and not self._paused_and_done(seg):
            self._next_due = now + interval
            if self._router.refine_backlogged():
                self.partials_skipped += 1  # leave the CPU to the refine pass
                return
            snap = seg.snapshot()
            if snap is None:
                return
            self._seen_version = seg.version
            self._covered = (snap.id, snap.end_sample)
            result: list[str] = []
            window = int(options.partial_window_s * SAMPLE_RATE)
            if self._item(f"partial of segment {snap.id}", lambda: result.append(self._partial_text(snap, window))):
                self._commit.partial(snap.id, seg.open_id == snap.id, result[0],
                                     (snap.end_sample - self._clock_origin()) / SAMPLE_RATE)
            late = time.monotonic() - now
            if late > interval:  # decoding took longer than the interval: newer audio wins
                self.partials_skipped += int(late // interval)
            return
        wait = self._next_due - now if self._next_due > now else interval
        self._router.wait_for_final(max(0.01, min(interval, wait)))

    def _partial_text(self, snap: OpenSnapshot, window: int) -> str:
        """Decode the open utterance: its kept head's text, then the rest (at most ``window`` samples)."""
        decoder, head = self.decoder, self._head
        if head.id != snap.id:
            head = self._head = _Head(snap.id, 0, "")
        if len(snap.audio) - head.offset > window:
            # Keep at least 2 s after the cut for the re-decoded part: context for its first words.
            cut = self._segmenter.quietest(snap.id, head.offset + window // 3, len(snap.audio) - 2 * SAMPLE_RATE)
            if cut is not None:
                text = decoder.decode(snap.audio[head.offset:cut]).text
                head = self._head = _Head(snap.id, cut, f"{head.text} {text}".strip())
        rest = decoder.decode(snap.audio[head.offset:]).text
        return f"{head.text} {rest}".strip()

    def _paused_and_done(self, seg: Segmenter) -> bool:
        """The open utterance is paused, and its refine started or the newest partial heard all its speech."""
        paused_at, open_id = seg.paused_at, seg.open_id
        if paused_at is None:
            return False
        return (self._covered[0] == open_id and self._covered[1] >= paused_at) or self._router.speculating_on(open_id)

    def _final(self, utt) -> None:
        decoder = self.decoder
        result: list[str] = []
        if not self._item(f"segment {utt.id}", lambda: result.append(decoder.decode(utt.audio).text)):
            result = [self._commit.live_text(utt.id)]  # what the user already saw, rather than nothing
        self._commit.finish(utt, result[0], "live")
        self._router.finalised(utt)
