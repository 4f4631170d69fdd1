"""Capture: the source, its reconnects, and the segmenter thread that feeds the router.

The segmenter thread reads the ring, runs the VAD, closes utterances (and
hands the router each pause that may end one, for a speculative refine), stamps
each with the wall time of its first sample (from the session it was heard
in, so a later reconnect cannot move it) and routes it. It also closes an utterance when a live source goes quiet
mid-word (a suspend, a stalled device), reopens a failed microphone, and beats
the heartbeat that the systemd watchdog follows.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .audio import Pause, Utterance
from .config import VadOptions
from .events import State
from .ringbuffer import RingBuffer
from .router import Router
from .segmenter import Segmenter
from .sources import AudioSource, SourceError, portaudio_restarts
from .supervision import Supervisor
from .units import SAMPLE_RATE
from .vad import CHUNK

log = logging.getLogger("listend.capture")

# Most audio taken from the ring in one step (bounds the work buffer; a
# backlog is worked off over several steps).
_MAX_STEP_S = 1.0
# A live source silent this long mid-utterance has stalled: close the utterance.
_GAP_CLOSE_S = 1.0
_REOPEN_EVERY_S = 1.0


@dataclass(frozen=True)
class CaptureStats:
    audio_seconds: float = 0.0
    ring_waiting_samples: int = 0
    ring_high_water_samples: int = 0
    ring_capacity_samples: int = 0
    dropped_samples: int = 0
    lost_samples: int = 0
    overflows: int = 0
    reopens: int = 0
    portaudio_restarts: int = 0
    gap_closes: int = 0
    vad_rejected: int = 0
    splits: int = 0
    segmenter_bytes: int = 0
    ring_bytes: int = 0


class Capture:
    """Owns the current source and the segmenter thread.

    Parameters
    ----------
    ring, segmenter, router
        The stages it feeds. How often the VAD runs (``hop_ms``) comes with
        the VAD options: at first the segmenter's, then :meth:`configure_vad`'s.
    on_state : callable
        ``on_state(state, reason)`` for ``listening`` / ``idle`` / ``error``;
        called with the capture lock held, so it must only record and queue.
    supervisor : Supervisor
        Told if the segmenter thread dies.

    Capture is also the router's :class:`~listend.router.Backpressure` for
    what it routes: a source that can wait is held up, a live one never.
    """

    def __init__(
        self,
        ring: RingBuffer,
        segmenter: Segmenter,
        router: Router,
        on_state: Callable[[State, str], None],
        supervisor: Supervisor,
    ):
        self._ring = ring
        self._segmenter = segmenter
        self._router = router
        self._on_state = on_state
        self._supervisor = supervisor
        self._lock = threading.Lock()  # guards source, reopen factory and session origins
        self._source: AudioSource | None = None
        self._reopen: Callable[[], AudioSource] | None = None
        self._reopen_at = 0.0
        self._reopen_failures = 0
        self._stop_requested = False
        self._done = threading.Event()
        self._done.set()
        self._closed = threading.Event()
        self._pending_vad: VadOptions | None = None
        self._hop_ms = segmenter.options.hop_ms  # how often this thread runs the VAD
        self._last_audio = 0.0
        self.clock_origin = 0  # segmenter clock at the session start
        self._wall_origin = 0.0
        self.heartbeat = time.monotonic()
        self.retry_error = ""
        self._overflows = 0
        self._lost = 0
        self.reopens = 0
        self.gap_closes = 0
        self._thread = threading.Thread(target=self._run, name="listend-segmenter", daemon=True)

    # -- control (any thread) -----------------------------------------------------

    def start_thread(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def listening(self) -> bool:
        return self._source is not None

    def start(
        self, source: AudioSource, reopen: Callable[[], AudioSource] | None = None, ring: RingBuffer | None = None
    ) -> None:
        """Start ``source`` and make it current; ``reopen`` replaces it after a failure.

        The reopen factory is set only once the source delivers, so the
        segmenter thread can never race a first start with a reconnect.
        A new ``ring`` (the profile's ``audio.ring_seconds`` changed) is
        taken here, while no source writes to the old one.
        """
        with self._lock:
            if self._source is not None:
                raise SourceError("already listening")
            self._reopen = None
            if ring is not None:
                self._ring = ring
            source.start(self._ring)
            self._begin_session(source)
            self._reopen = reopen
            self._on_state("listening", source.description)

    def request_stop(self) -> AudioSource | None:
        """Stop reconnecting and ask the current source to end; returns it (None if none)."""
        with self._lock:
            self._reopen = None
            self.retry_error = ""
            source = self._source
            if source is not None:
                self._stop_requested = True
        if source is not None:
            source.stop()
        return source

    def wait_done(self, timeout: float | None) -> bool:
        """Wait until the current source has ended and its last utterance was routed."""
        return self._done.wait(timeout)

    def configure_vad(self, options: VadOptions) -> None:
        """Apply new VAD options from the segmenter thread (it closes the open utterance first).

        The same options change nothing: a profile switch mid-sentence does not cut the sentence;
        nor does a new ``hop_ms`` alone, which only says how often the segmenter thread looks.
        """
        self._hop_ms = options.hop_ms
        if dataclasses.replace(options, hop_ms=self._segmenter.options.hop_ms) != self._segmenter.options:
            self._pending_vad = options

    def close(self, timeout: float) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def stats(self) -> CaptureStats:
        source, seg, ring = self._source, self._segmenter, self._ring
        lost = self._lost + (source.lost_samples if source is not None else 0)
        return CaptureStats(
            audio_seconds=seg.clock / SAMPLE_RATE,
            ring_waiting_samples=ring.available,
            ring_high_water_samples=ring.high_water,
            ring_capacity_samples=ring.capacity,
            dropped_samples=ring.dropped,
            lost_samples=lost,
            overflows=self._overflows + (source.overflows if source is not None else 0),
            reopens=self.reopens,
            portaudio_restarts=portaudio_restarts(),
            gap_closes=self.gap_closes,
            vad_rejected=seg.rejected,
            splits=seg.splits,
            segmenter_bytes=seg.nbytes,
            ring_bytes=ring.nbytes,
        )

    # -- the segmenter thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:
            log.exception("segmenter thread died")
            self._supervisor.died("segmenter", f"segmenter thread died: {type(e).__name__}: {e}")

    def _loop(self) -> None:
        work = np.zeros(int(_MAX_STEP_S * SAMPLE_RATE) // CHUNK * CHUNK, dtype=np.float32)
        while not self._closed.is_set():
            now = time.monotonic()
            if now - self.heartbeat > _GAP_CLOSE_S:
                # This thread itself was not running (the process was stopped): the
                # source may be about to deliver what it buffered meanwhile. Judge a
                # gap only by time we were awake to hear it.
                self._last_audio = now
            self.heartbeat = now
            if self._pending_vad is not None:
                self._apply_vad_options()
            hop_ms = self._hop_ms
            source = self._source
            if source is None:
                if self._reopen is not None and time.monotonic() >= self._reopen_at:
                    self._try_reopen()
                self._closed.wait(0.1)
                continue
            waiting = self._ring.available // CHUNK * CHUNK
            ending = self._stop_requested or source.finished
            if waiting < hop_ms * SAMPLE_RATE // 1000 and not ending:
                self._close_after_gap(source)
                self._closed.wait(hop_ms / 1000)
                continue
            n = self._ring.read_into(work[: min(waiting, len(work))])
            if n:
                self._last_audio = time.monotonic()
                for event in self._segmenter.feed(work[:n]):
                    if isinstance(event, Utterance):
                        self._route(event)
                    elif isinstance(event, Pause):
                        self._router.speculate(event, self.may_wait())
                    else:
                        self._router.resume(event.id)
            elif ending:
                self._end_source(source)

    def _begin_session(self, source: AudioSource) -> None:
        """Make ``source`` current (lock held): session clocks count from here."""
        self.clock_origin = self._segmenter.clock
        self._wall_origin = time.time()
        self._stop_requested = False
        self._done.clear()
        self._last_audio = time.monotonic()
        self._source = source

    def _route(self, utt: Utterance) -> None:
        utt.start_sample -= self.clock_origin
        utt.wall_start = self._wall_origin + utt.start
        self._router.route(utt, self)

    # -- Backpressure (the segmenter thread, inside route) --------------------------

    def may_wait(self) -> bool:
        source = self._source
        return source is not None and source.can_wait and not self._closed.is_set()

    def waiting(self) -> None:
        self.heartbeat = time.monotonic()  # waiting on purpose is not being stuck

    def _close_after_gap(self, source: AudioSource) -> None:
        """A live source went quiet mid-utterance (suspend, stalled device): close it.

        Without this, speech after the gap would be glued to speech before it.
        """
        if source.can_wait or self._segmenter.open_id is None:
            return
        if time.monotonic() - self._last_audio > _GAP_CLOSE_S:
            utt = self._segmenter.flush()
            if utt is not None:
                self.gap_closes += 1
                utt.cut = True
                self._route(utt)

    def _apply_vad_options(self) -> None:
        options, self._pending_vad = self._pending_vad, None
        if options is None:
            return
        utt = self._segmenter.flush()
        if utt is not None:
            self._route(utt)
        self._segmenter.configure(options)

    def _try_reopen(self) -> None:
        factory = self._reopen
        if factory is None:
            return
        self._reopen_failures += 1
        # Every second at first, then every 3 s: still within the 5 s users
        # expect after plugging a device back in, at a third of the cost.
        self._reopen_at = time.monotonic() + (_REOPEN_EVERY_S if self._reopen_failures <= 10 else 3.0)
        try:
            source = factory()
            source.start(self._ring)
        except SourceError as e:
            message = f"{e} (retrying)"
            if message != self.retry_error:  # say why, once per new reason
                self.retry_error = message
                with self._lock:
                    if self._reopen is factory:
                        self._on_state("error", message)
            return
        self._reopen_failures = 0
        with self._lock:
            if self._reopen is not factory:  # stopped meanwhile
                source.stop()
                return
            self._begin_session(source)
            self.retry_error = ""
            self.reopens += 1
            log.info("capture resumed: %s", source.description)
            self._on_state("listening", source.description)

    def _end_source(self, source: AudioSource) -> None:
        """The source ended or was stopped: flush the open utterance and go idle (or error)."""
        utt = self._segmenter.flush()
        if utt is not None:
            utt.cut = bool(source.error)  # a device that failed mid-speech, not a stop
            self._route(utt)
        # A partial sample block left in the ring (< 512) is below one VAD
        # decision; it is the tail of the input and carries no speech.
        self._ring.read_into(np.zeros(CHUNK, dtype=np.float32))
        error = source.error or ""
        with self._lock:
            self._overflows += source.overflows
            self._lost += source.lost_samples
            self._source = None
            failed = bool(error) and not self._stop_requested
            if failed:
                source.stop()
                self._reopen_at = time.monotonic() + _REOPEN_EVERY_S
                self._on_state("error", error + ("; retrying" if self._reopen else ""))
            else:
                self._reopen = None
                self._on_state("idle", "")
        self._done.set()
