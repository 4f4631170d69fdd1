"""Workers: one supervised thread per decoding pass, each owning its decoder.

A failure on one item (a decode that raises) is caught, counted and reported
to the :class:`~listend.supervision.Supervisor` as a failure, and the worker
goes on with the next item. A worker whose loop itself dies reports that it
died; the engine then goes to ``error`` and stops feeding the watchdog. A
worker busy on one item for longer than its stall limit is reported by
:attr:`SupervisedWorker.stalled_since`, so a hung decode is not hidden by a
live capture thread either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .audio import OpenSnapshot, Utterance
from .commit import Commit
from .config import DecodeOptions
from .decoders import Decoder, SessionDecoder, WhisperDecoder
from .router import RefineJob, Router
from .segmenter import Segmenter
from .supervision import Supervisor
from .units import SAMPLE_RATE
from .vad import CHUNK

T = TypeVar("T")

log = logging.getLogger("listend.workers")

# A single decode taking longer than this is a hang, not a slow CPU: a 30 s
# utterance decodes in ~10 s with base on one starved core.
STALL_LIMIT_S = 120.0


@dataclass(frozen=True)
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
    supervisor : Supervisor
        Told of each failed item, and if the loop itself dies.
    """

    def __init__(self, name: str, supervisor: Supervisor, ready: threading.Event):
        self.name = name
        self._supervisor = supervisor
        self._ready = ready  # clear while the models are released or loading: nothing to decode with
        self.last_done = time.monotonic()  # when the last item ended (the engine's idle clock)
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
                if self._ready.wait(0.2):
                    self.step()
        except BaseException as e:  # a dead worker is reported, never silent
            log.exception("%s worker died", self.name)
            self.alive = False
            self._supervisor.died(self.name, f"{self.name} worker died: {type(e).__name__}: {e}")
            return
        self.alive = False

    def _item(self, what: str, work: Callable[[], T], *, decode: bool = True) -> T | None:
        """Run one item's work and return its result; None if it failed (counted and reported).

        ``work`` never returns None itself. ``decode`` False: bookkeeping that
        uses the model (not counted as an item, but guarded and swapped around
        like one).
        """
        self._busy_since = time.monotonic()
        try:
            with self._decoder_in_use:
                result = work()
            self.items += 1 if decode else 0
            return result
        except Exception as e:
            self.failures += 1
            self.last_failure = f"{self.name} pass failed on {what}: {type(e).__name__}: {e}"[:300]
            log.exception("%s pass failed on %s", self.name, what)
            self._supervisor.failed(self.name, self.last_failure)
            return None
        finally:
            self._busy_since = 0.0
            self.last_done = time.monotonic()

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

    def __init__(
        self,
        router: Router,
        commit: Commit,
        decoder: Decoder | None,
        prompt_chars: int,
        supervisor: Supervisor,
        ready: threading.Event,
    ):
        super().__init__("refine", supervisor, ready)
        self._router = router
        self._commit = commit
        self.decoder = decoder
        self.prompt_chars = prompt_chars
        self._context = ""

    def use(self, decoder: Decoder | None, prompt_chars: int) -> None:
        """Decode with ``decoder`` (None: no refine model) from now on; returns once no decode uses the old one."""
        self.decoder, self.prompt_chars = decoder, prompt_chars
        self.wait_current_item()

    def reset_context(self) -> None:
        self._context = ""
        decoder = self.decoder
        if isinstance(decoder, SessionDecoder):
            decoder.new_session()

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
        # A speculation stops as soon as speech resumes (where the model can stop early): the refine
        # pass is then free for the utterance's real close instead of finishing a decode nobody wants.
        cancelled = (lambda: self._router.speculation_void(utt)) if job.speculative else None
        if isinstance(decoder, SessionDecoder):  # decoded after what preceded it in this session
            decoded = self._item(what, lambda: decoder.decode_next(utt, self.prompt(), cancelled))
        else:
            decoded = self._item(what, lambda: decoder.decode(utt.audio, self.prompt(), cancelled))
        if decoded is None or decoded.cancelled:
            self._give_up(job)
        elif job.speculative:
            self._router.speculation_done(utt, decoded.text)
        else:
            self._finish(utt, decoded.text)

    def _give_up(self, job: RefineJob) -> None:
        if job.speculative:
            self._router.speculation_done(job.utt, None)
        else:
            self._router.refine_failed(job.utt)

    def _finish(self, utt: Utterance, text: str) -> None:
        if text:
            self._context = (self._context + " " + text)[-1000:]
        self._commit.finish(utt, text, "refined")
        self._router.refined(utt)
        decoder = self.decoder
        if isinstance(decoder, SessionDecoder):
            # After the text is out: taking it as context may detect its language (an encoder pass under a pin).
            self._item(f"context of segment {utt.id}", lambda: _heard(decoder, utt, text), decode=False)


@dataclass(frozen=True)
class _Head:
    """The decoded head of a long open utterance: its text is kept, only what follows is re-decoded."""

    id: int | None
    offset: int  # samples into the open utterance
    text: str


class LiveWorker(SupervisedWorker):
    """The fast model: final decodes when asked, otherwise partials of the open utterance.

    Finals are decoded by ``final_decoder`` (the same model with the options
    of an offline transcription: beam search and temperature fallback), so
    an utterance the live pass finalises reads as it would offline.

    Partials are re-decoded every ``partial_interval_s`` while the open
    utterance grows, skipped (and counted) while the refine pass is backlogged
    or a decode took longer than the interval. Once the utterance pauses, none
    follow: its refined text is on its way (the refine pass started on the
    pause and has the CPU to itself), or, if the refine pass is busy with
    earlier speech, after one partial that heard all its speech only silence
    is being added.

    No decode of a partial takes more than ``partial_window_s`` of audio,
    so its cost stays flat however long the utterance gets: while the part
    after the head is longer than the window, the head is extended to the
    quietest moment within the next window (a pause between words), that
    piece is decoded once, and its text kept.
    """

    def __init__(
        self,
        router: Router,
        commit: Commit,
        segmenter: Segmenter,
        decoder: Decoder,
        final_decoder: Decoder,
        options: DecodeOptions,
        clock_origin: Callable[[], int],
        supervisor: Supervisor,
        ready: threading.Event,
    ):
        super().__init__("live", supervisor, ready)
        self._router = router
        self._commit = commit
        self._segmenter = segmenter
        self.decoder = decoder
        self.final_decoder = final_decoder
        self._options = options
        self._clock_origin = clock_origin
        self._next_due = 0.0
        self._seen_version = -1
        self._covered: tuple[int | None, int] = (None, 0)  # (id, audio-clock end) of the newest partial's audio
        self._head = _Head(None, 0, "")
        self.partials_skipped = 0
        self.multilingual: Decoder | None = None  # partials in another language than English (see use())

    @property
    def options(self) -> DecodeOptions:
        return self._options

    def use(
        self, decoder: Decoder, final_decoder: Decoder, options: DecodeOptions, multilingual: Decoder | None = None
    ) -> None:
        """Decode with these decoders and options from now on; returns once no decode uses the old ones."""
        self.decoder, self.final_decoder, self._options = decoder, final_decoder, options
        self.multilingual = multilingual
        self.wait_current_item()

    def _partial_decoder(self) -> Decoder:
        """The live model, or where the language in force is not English and it speaks English only, Whisper."""
        other = self.multilingual
        if isinstance(other, WhisperDecoder) and other.languages is not None and other.languages.current != "en":
            return other
        return self.decoder

    def wake(self) -> None:
        self._router.wake()

    def step(self) -> None:
        utt = self._router.take_final()
        if utt is not None:
            self._final(utt)
            return
        seg, options, now = self._segmenter, self._options, time.monotonic()
        interval = options.partial_interval_s
        if (
            seg.open_id is not None
            and seg.version != self._seen_version
            and now >= self._next_due
            and not self._paused_and_done(seg)
        ):
            self._next_due = now + interval
            if self._router.refine_backlogged():
                self.partials_skipped += 1  # leave the CPU to the refine pass
                return
            snap = seg.snapshot()
            if snap is None:
                return
            self._seen_version = seg.version
            self._covered = (snap.id, snap.end_sample)
            window = int(options.partial_window_s * SAMPLE_RATE)
            text = self._item(f"partial of segment {snap.id}", lambda: self._partial_text(snap, window))
            if text is not None:
                self._commit.partial(
                    snap.id, seg.open_id == snap.id, text, (snap.end_sample - self._clock_origin()) / SAMPLE_RATE
                )
            late = time.monotonic() - now
            if late > interval:  # decoding took longer than the interval: newer audio wins
                self.partials_skipped += int(late // interval)
            return
        wait = self._next_due - now if self._next_due > now else interval
        self._router.wait_for_final(max(0.01, min(interval, wait)))

    def _partial_text(self, snap: OpenSnapshot, window: int) -> str:
        """Decode the open utterance: its kept head's text, then the rest; no decode exceeds ``window``."""
        decoder, head = self._partial_decoder(), self._head
        if head.id != snap.id:
            head = self._head = _Head(snap.id, 0, "")
        while len(snap.audio) - head.offset > window:
            # Cut within the next window, at least a third of it in, and where possible 2 s before the
            # end: the re-decoded part keeps some context for its first words.
            lo = head.offset + window // 3
            hi = max(lo + CHUNK, min(head.offset + window, len(snap.audio) - 2 * SAMPLE_RATE))
            hi = min(hi, head.offset + window)
            cut = self._segmenter.quietest(snap.id, lo, hi) or hi  # None: closed meanwhile, cut anywhere
            text = decoder.decode(snap.audio[head.offset : cut]).text
            head = self._head = _Head(snap.id, cut, f"{head.text} {text}".strip())
        rest = decoder.decode(snap.audio[head.offset :]).text
        return f"{head.text} {rest}".strip()

    def _paused_and_done(self, seg: Segmenter) -> bool:
        """The open utterance is paused, and its refine started or the newest partial heard all its speech."""
        paused_at, open_id = seg.paused_at, seg.open_id
        if paused_at is None or open_id is None:
            return False
        return (self._covered[0] == open_id and self._covered[1] >= paused_at) or self._router.speculating_on(open_id)

    def new_session(self) -> None:
        """A dictation session starts: finals decoded from now on have no context from before."""
        decoder = self.final_decoder
        if isinstance(decoder, SessionDecoder):
            decoder.new_session()

    def _final(self, utt: Utterance) -> None:
        decoder = self.final_decoder
        if isinstance(decoder, SessionDecoder):  # lightweight: finals after the session's preceding speech
            text = self._item(f"segment {utt.id}", lambda: decoder.decode_next(utt).text)
        else:
            text = self._item(f"segment {utt.id}", lambda: decoder.decode(utt.audio).text)
        decoded = text
        if text is None:
            text = self._commit.live_text(utt.id)  # what the user already saw, rather than nothing
        self._commit.finish(utt, text, "live")
        self._router.finalised(utt)
        if isinstance(decoder, SessionDecoder) and decoded is not None:
            # After the text is out: taking it as context may detect its language (an encoder pass under a pin).
            self._item(f"context of segment {utt.id}", lambda: _heard(decoder, utt, decoded), decode=False)


def _heard(decoder: SessionDecoder, utt: Utterance, text: str) -> bool:
    """``decoder`` takes ``utt`` and its published text as context for the next decode (True: done)."""
    decoder.heard(utt, text)
    return True
