"""The transcription engine: a small state machine over the pipeline's stages.

source -> :mod:`capture` (segmenter thread) -> :mod:`router` (bounded queues,
overload policy) -> :mod:`workers` (live and refine passes) -> :mod:`commit`
(ordering, partial cache, the publisher thread) -> subscribers.

The engine builds the stages, hands each what it needs, and owns what spans
them: the state (``loading`` -> ``idle`` <-> ``listening``, ``error`` on a
capture failure or a dead worker), the stop budget, profile switches, and the
heartbeat the systemd watchdog follows. Threads and locks are described in
``docs/architecture.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from .capture import Capture, CaptureStats
from .commit import Commit, CommitStats
from .config import ConfigError, MemoryOptions, Settings, build_settings
from .decoders import Decoder, PassOptions
from .events import EngineEvent, ErrorReported, ProfileChanged, State, StateChanged
from .memory import MemoryStats, MemoryWatchdog
from .models import ModelSpec, load_whisper
from .ringbuffer import RingBuffer
from .router import QueueStats, Router
from .segmenter import SAMPLE_RATE, Segmenter, Utterance
from .sources import AudioSource, SourceError
from .unfinished import UnfinishedAudio
from .vad import StreamingVad
from .workers import LiveWorker, RefineWorker, SupervisedWorker, WorkerStats

log = logging.getLogger("listend.engine")

MB = 1024 * 1024


class EngineError(RuntimeError):
    """The engine cannot do what was asked (not loaded, already listening, a worker died, ...)."""


@dataclass(frozen=True)
class BufferStats:
    audio_buffer_bytes: int
    audio_buffer_limit_bytes: int


@dataclass(frozen=True)
class Thresholds:
    warn_bytes: int
    cleanup_bytes: int
    limit_bytes: int


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of every stage's counters and bounds (the D-Bus layer flattens it)."""

    state: str
    profile: str
    capture: CaptureStats
    queues: QueueStats
    commits: CommitStats
    memory: MemoryStats
    thresholds: Thresholds
    buffers: BufferStats
    workers: tuple[WorkerStats, ...]
    partials_skipped: int

    def flat(self) -> dict[str, object]:
        """Leaf name -> value; per-worker fields become ``<worker>_worker_<field>``."""
        return flatten(self)


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested stats dataclasses as one flat dict of their leaves."""
    out: dict[str, object] = {}
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            inner = getattr(value, f.name)
            if dataclasses.is_dataclass(inner) or isinstance(inner, tuple):
                out.update(flatten(inner, prefix))
            else:
                out[prefix + f.name] = inner
    elif isinstance(value, tuple):
        for item in value:
            out.update(flatten(item, f"{prefix}{item.name}_worker_"))
    return out


class Engine:
    """Live dictation engine.

    Parameters
    ----------
    settings : Settings
        Initial settings (profile, models, bounds, ...).
    overrides : mapping, optional
        The user's config-file values, kept to rebuild settings when the
        profile changes at run time.
    first_segment_id : int
        Ids continue from here (above the history's highest id).
    model_loader : callable, optional
        Loads a model for a :class:`ModelSpec` (tests inject failing or slow ones).
    unfinished : UnfinishedAudio, optional
        Where audio that cannot be decoded in time is kept (default: the
        state directory).

    Use :meth:`load` once, then :meth:`start`/:meth:`stop` any number of
    times, and :meth:`close` at the end. Subscribe to events with
    :meth:`subscribe`; callbacks run on the engine's publisher thread, one
    event at a time, in order.
    """

    def __init__(self, settings: Settings, overrides: Mapping | None = None, first_segment_id: int = 1,
                 model_loader: Callable[[ModelSpec], object] = load_whisper,
                 unfinished: UnfinishedAudio | None = None):
        self.settings = settings
        self._overrides = dict(overrides or {})
        self._load_model = model_loader
        self._unfinished = unfinished or UnfinishedAudio()
        self._state_lock = threading.Lock()  # guards state, reason, fatal, reported error
        self._state: State = "loading"
        self._reason = ""
        self._fatal = ""
        self._fatal_at = 0.0
        self._reported = ""
        self._id_lock = threading.Lock()
        self._next_id = first_segment_id
        self._profile_lock = threading.Lock()  # one profile switch at a time
        self._stop_lock = threading.Lock()  # one stop at a time
        self._giving_up = threading.Event()  # a stop deadline passed or a worker died
        self._closing = threading.Event()
        self._ring = RingBuffer(int(settings.audio.ring_seconds * SAMPLE_RATE))
        self._commit = Commit(on_publisher_death=lambda e: self._worker_died("publisher", f"publisher died: {e}"))
        self._router = Router(settings.queues, self._commit, bool(settings.models.refine), self._keep_audio,
                              self._giving_up.is_set)
        self._capture: Capture | None = None
        self._segmenter: Segmenter | None = None
        self._live: LiveWorker | None = None
        self._refine: RefineWorker | None = None
        self.memory = MemoryWatchdog(settings.memory, self._commit.publish, self._degrade)

    # -- public API -------------------------------------------------------------

    def subscribe(self, callback: Callable[[EngineEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns an unsubscribe function."""
        return self._commit.subscribe(callback)

    @property
    def state(self) -> State:
        return self._state

    @property
    def profile(self) -> str:
        return self.settings.profile

    @property
    def next_segment_id(self) -> int:
        return self._next_id

    @property
    def last_error(self) -> str:
        """Why the engine is in error, else the latest failure it went on after ('' if none)."""
        with self._state_lock:
            if self._fatal:
                return self._fatal
            if self._state == "error":
                return self._reason
            return self._reported

    @property
    def heartbeat(self) -> float:
        """Monotonic time of the pipeline's last sign of progress (the watchdog follows it).

        It stops when a worker died, and falls behind when a decode hangs.
        """
        if self._fatal:
            return self._fatal_at
        beat = self._capture.heartbeat if self._capture else time.monotonic()
        for worker in self._workers():
            stalled = worker.stalled_since
            if stalled is not None:
                beat = min(beat, stalled)
        return beat

    def load(self) -> None:
        """Load models and start the threads (state ``loading`` -> ``idle``)."""
        self._set_state("loading")
        live, refine = self._load_decoders(self.settings, reuse=None)
        s = self.settings
        self._segmenter = Segmenter(s.vad, StreamingVad(), self._allocate_id)
        self._capture = Capture(self._ring, self._segmenter, self._router, self._commit,
                                lambda: self.settings.vad.hop_ms, self._set_state)
        self._capture.on_death = lambda message: self._worker_died("segmenter", message)
        self._live = LiveWorker(self._router, self._commit, self._segmenter, live,
                                lambda: self.settings.decode, lambda: self._capture.clock_origin,
                                self._worker_failed, self._worker_died)
        self._refine = RefineWorker(self._router, self._commit, refine, s.decode.prompt_chars,
                                    self._worker_failed, self._worker_died)
        self._router.configure(s.queues, refine is not None)
        self._capture.start_thread()
        self._live.start()
        self._refine.start()
        self.memory.start()
        self._set_state("idle")

    def start(self, source: AudioSource, reopen: Callable[[], AudioSource] | None = None) -> None:
        """Begin capturing from ``source`` (state -> ``listening``).

        With ``reopen``, a source that fails (microphone unplugged, audio
        server restarted, a suspend) is replaced by ``reopen()`` as soon as
        that succeeds, retried every 1-3 s, without any call from outside.
        Each session starts without a prompt from earlier text.
        """
        if self._capture is None:
            raise EngineError("the engine is not loaded")
        if self._fatal:
            raise EngineError(self._fatal)
        if self._capture.listening:
            raise EngineError("already listening")
        self._refine.reset_context()
        self._giving_up.clear()
        self._report("")
        try:
            self._capture.start(source, reopen)
        except SourceError as e:
            self._set_state("error", str(e))
            raise

    def stop(self, budget: float | None = 10.0) -> bool:
        """Stop capturing and finish what was heard, all within ``budget`` seconds.

        The first part of the budget goes to refining what is queued; then
        what still waits is committed with its live text (or decoded by the
        fast model); what has no text when the budget is spent is kept as
        audio (see :mod:`unfinished`) -- nothing heard is lost. ``None``
        waits as long as it takes. Returns True when everything was refined.
        """
        if self._capture is None:
            return True
        with self._stop_lock:
            deadline = None if budget is None else time.monotonic() + budget
            source = self._capture.request_stop()
            if source is None and self._state == "error" and not self._fatal:
                self._set_state("idle", "stopped")  # stopping ends reconnecting
            self._capture.wait_done(_left(deadline, reserve=0.0))
            # Keep a third of the budget (at most 3 s) for the fast fallbacks.
            reserve = 0.0 if budget is None else min(3.0, budget / 3)
            refined = self._commit.wait_drained(_left(deadline, reserve))
            if refined:
                return True
            self._router.commit_refine_queue_with_live_text()
            if self._commit.wait_drained(_left(deadline, reserve=min(0.5, reserve))):
                return False
            self._giving_up.set()  # nothing waits on decoders any more
            self._keep_unfinished()
            self._commit.wait_drained(max(0.2, _left(deadline, 0.0) or 0.0))
            if not self._fatal:
                self._giving_up.clear()
            return False

    def wait_source_done(self, timeout: float | None = None) -> bool:
        """Wait until the current source has ended (end of file) and been flushed."""
        return self._capture.wait_done(timeout) if self._capture else True

    def wait_drained(self, timeout: float | None) -> bool:
        """Wait until every closed utterance is final and its event delivered."""
        return self._commit.wait_drained(timeout)

    def set_profile(self, profile: str, reason: str = "") -> None:
        """Switch profile at run time, loading or unloading models as needed.

        Raises :class:`ConfigError` if the user's settings do not fit the profile.
        """
        with self._profile_lock:
            new = build_settings(profile, self._overrides)
            old = self.settings
            if new.profile == old.profile and self._live is not None:
                return
            # Loading a model raises RSS: judge it by the more generous limits until the switch is done.
            self.memory.configure(_generous(old.memory, new.memory))
            live, refine = self._load_decoders(new, reuse=(self._live.decoder, self._refine.decoder))
            old_decoders = (self._live.decoder, self._refine.decoder)
            self._live.decoder, self._refine.decoder = live, refine
            self._refine.prompt_chars = new.decode.prompt_chars
            self.settings = new
            self._router.configure(new.queues, refine is not None)
            self._capture.configure_vad(new.vad)
            # The workers may be mid-decode with the old models: free them only after.
            self._live.wait_current_item()
            self._refine.wait_current_item()
            del old_decoders
            self.memory.configure(new.memory)
            self.memory.release()
        log.info("profile %s%s", profile, f" ({reason})" if reason else "")
        self._commit.publish(ProfileChanged(profile, reason))

    def recover_unfinished(self) -> int:
        """Queue audio kept by an earlier stop for decoding, as new segments; returns how many."""
        count = 0
        for path in self._unfinished.files():
            if self._closing.is_set():
                break
            kept = self._unfinished.load(path)
            if kept is None:
                continue
            utt = Utterance(self._allocate_id(), 0, kept.audio, kept.wall_start)
            self._commit.register(utt.id)
            self._router.route(utt, lambda: not self._closing.is_set(), lambda: None)
            while not self._commit.wait_drained(0.5):
                if self._closing.is_set():
                    return count  # the file stays: decoded at the next start
            self._unfinished.remove(path)
            count += 1
        if count:
            log.info("decoded %d utterance(s) kept from an earlier stop", count)
        return count

    def stats(self) -> EngineStats:
        s = self.settings
        capture = self._capture.stats() if self._capture else CaptureStats()
        queues = self._router.stats()
        max_utterance = int(s.vad.max_utterance_s * SAMPLE_RATE) * 4
        m = self.memory.stats
        return EngineStats(
            state=self._state, profile=s.profile, capture=capture, queues=queues,
            commits=self._commit.stats, memory=m,
            thresholds=Thresholds(s.memory.warn_mb * MB, s.memory.cleanup_mb * MB, s.memory.limit_mb * MB),
            buffers=BufferStats(
                capture.ring_bytes + capture.segmenter_bytes + queues.queued_bytes,
                # open utterance + queues + one in each decoder + a live snapshot + the speculation
                capture.ring_bytes + max_utterance * (1 + s.queues.refine + s.queues.live_final + 4)),
            workers=tuple(w.stats() for w in self._workers()),
            partials_skipped=self._live.partials_skipped if self._live else 0,
        )

    def close(self, budget: float | None = 10.0) -> None:
        """Stop capture, drain within ``budget``, and end all threads."""
        if self._capture is None:
            self._commit.close()
            return
        deadline = None if budget is None else time.monotonic() + budget
        self._closing.set()
        self.stop(budget)
        self._capture.close(_left(deadline, 0.0) or 1.0)
        for worker in self._workers():
            worker.close(_left(deadline, 0.0) or 1.0)
        self._commit.close(max(1.0, _left(deadline, 0.0) or 1.0))
        self.memory.stop()

    # -- internals ----------------------------------------------------------------

    def _workers(self) -> list[SupervisedWorker]:
        return [w for w in (self._live, self._refine) if w is not None]

    def _allocate_id(self) -> int:
        with self._id_lock:
            seg_id = self._next_id
            self._next_id += 1
            return seg_id

    def _load_decoders(self, s: Settings, reuse) -> tuple[Decoder, Decoder | None]:
        m = s.models

        def get(name: str, options: PassOptions, current: Decoder | None, threads: int) -> Decoder:
            if current is not None and current.model_name == name:
                return Decoder(current.model, name, options)
            spec = ModelSpec(name, m.device, m.compute_type, m.cpu_threads or threads)
            return Decoder(self._load_model(spec), name, options)

        # Automatic threads: the refine pass gets every core (the live pass
        # pauses while an utterance ends, which is when refining runs); the
        # live pass gets half of them beside a refine model, all without one.
        cores = os.cpu_count() or 2
        cur_live, cur_refine = reuse or (None, None)
        live = get(m.live, PassOptions.live(s.decode), cur_live, max(1, cores // 2) if m.refine else cores)
        refine = None
        if m.refine:
            # Never share one model between the two threads (faster-whisper #1055).
            refine = get(m.refine, PassOptions.refine(s.decode), cur_refine if m.refine != m.live else None, cores)
        return live, refine

    def _keep_audio(self, utt: Utterance) -> None:
        self._commit.keep_as_audio(utt, self._unfinished.keep(utt))

    def _keep_unfinished(self) -> None:
        """Keep as audio every utterance still queued or being decoded that has no final text."""
        for utt in self._router.take_unfinished():
            if self._commit.is_pending(utt.id):
                self._keep_audio(utt)

    def _degrade(self) -> tuple[bool, str]:
        """Memory over limit: shed the refine model by switching to lightweight."""
        if self.settings.profile == "lightweight":
            return False, "already lightweight; cleaned up"
        if self._profile_lock.locked():
            return False, "a profile switch is under way; cleaned up"
        try:
            build_settings("lightweight", self._overrides)
        except ConfigError as e:
            self._report(f"memory limit: cannot switch to lightweight: {e}")
            return False, f"cannot switch to lightweight: {e}"

        def switch() -> None:
            try:
                self.set_profile("lightweight", "memory limit")
            except Exception as e:  # reported, never a silent thread death
                log.exception("switching to lightweight failed")
                self._report(f"memory limit: switching to lightweight failed: {e}")

        threading.Thread(target=switch, name="listend-degrade", daemon=True).start()
        return True, "switching to the lightweight profile (refine model unloaded)"

    # -- state ------------------------------------------------------------------

    def _set_state(self, state: State, reason: str = "") -> None:
        with self._state_lock:
            if self._fatal and state != "error":
                return  # a dead worker is final until restart
            if state == self._state and reason == self._reason:
                return
            self._state, self._reason = state, reason
            log.info("state %s%s", state, f": {reason}" if reason else "")
            self._commit.publish(StateChanged(state, reason))

    def _report(self, message: str) -> None:
        with self._state_lock:
            if message == self._reported:
                return
            self._reported = message
        self._commit.publish(ErrorReported(message))

    def _worker_failed(self, worker: str, message: str) -> None:
        self._report(message)

    def _worker_died(self, worker: str, message: str) -> None:
        with self._state_lock:
            if not self._fatal:
                self._fatal, self._fatal_at = message, time.monotonic()
        self._giving_up.set()
        self._set_state("error", message)

        def wind_down() -> None:
            # Nothing will decode what waits: keep it as audio now, so no wait for it can hang.
            if self._capture is not None and worker != "segmenter":
                self._capture.request_stop()
                self._capture.wait_done(5)
            self._keep_unfinished()

        threading.Thread(target=wind_down, name="listend-wind-down", daemon=True).start()


def _left(deadline: float | None, reserve: float) -> float | None:
    """Seconds until ``deadline`` less ``reserve`` (None: no deadline)."""
    if deadline is None:
        return None
    return max(0.0, deadline - reserve - time.monotonic())


def _generous(a: MemoryOptions, b: MemoryOptions) -> MemoryOptions:
    return MemoryOptions(max(a.warn_mb, b.warn_mb), max(a.cleanup_mb, b.cleanup_mb), max(a.limit_mb, b.limit_mb),
                         min(a.sample_interval_s, b.sample_interval_s), min(a.trim_interval_s, b.trim_interval_s))
