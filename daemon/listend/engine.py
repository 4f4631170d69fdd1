"""The transcription engine: a small state machine over the pipeline's stages.

source -> :mod:`capture` (segmenter thread) -> :mod:`router` (bounded queues,
overload policy) -> :mod:`workers` (live and refine passes) -> :mod:`commit`
(ordering, partial cache, the publisher thread) -> subscribers.

The engine is the facade: it builds the stages, wires them, and owns only
what spans them -- the state (``loading`` -> ``idle`` <-> ``listening``,
``error`` on a capture failure, a dead stage or models that cannot load), the
stop budget, and the heartbeat the systemd watchdog follows. The rest is
delegated to objects that own their state: segment ids to
:class:`~listend.commit.SegmentIds`, the models, the settings in force and
profile switches to :class:`~listend.lifecycle.ModelLifecycle`, audio that
cannot be decoded to :class:`~listend.kept.KeptAudio`. Threads and locks are
described in ``docs/architecture.md``.

This module is one thing on purpose, although it is near 500 lines: the
state machine and its transitions (load, start, stop within a budget, a
dead stage, models that fail, close) all read and write the one state under
its lock (and stop one at a time under the stop lock), and the small helpers
at the end exist only for them. Each stage's own work already lives in the
modules above; cutting the transitions apart would spread those locks'
invariants over several files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .audio import Audio
from .capture import Capture, CaptureStats
from .commit import Commit, SegmentIds
from .config import Settings, command_table, replacements
from .decoders import RELEASED
from .events import EngineEvent, ErrorReported, State, StateChanged
from .kept import KeptAudio
from .languages import SessionLanguages
from .lifecycle import DecoderFactory, ModelLifecycle
from .memory import MemoryWatchdog
from .outcome import Outcome
from .profiles import DecoderSet, ModelLoader, build_decoders, load_model
from .ringbuffer import RingBuffer
from .router import Router
from .segmenter import Segmenter
from .sources import AudioSource, SourceError
from .stats import BufferStats, EngineStats, Thresholds
from .unfinished import UnfinishedAudio
from .units import MIB, SAMPLE_RATE
from .vad import StreamingVad
from .workers import LiveWorker, RefineWorker, SupervisedWorker

log = logging.getLogger("listend.engine")


class EngineError(RuntimeError):
    """The engine cannot do what was asked (not loaded, already listening, a worker died, ...)."""


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
        Loads a model for a :class:`~listend.models.ModelSpec` (tests inject failing or slow ones).
    unfinished : UnfinishedAudio, optional
        Where audio that cannot be decoded in time is kept (default: the
        state directory).
    decoders : callable, optional
        Builds the decoders for settings instead of loading models with
        ``model_loader`` (unit tests inject stand-in decoders).
    vad : callable, optional
        The speech probability of each 512-sample chunk (default: Silero, :class:`~listend.vad.StreamingVad`).

    Use :meth:`load` once, then :meth:`start`/:meth:`stop` any number of
    times, and :meth:`close` at the end. Subscribe to events with
    :meth:`subscribe`; callbacks run on the engine's publisher thread, one
    event at a time, in order of their segment ids.
    """

    def __init__(
        self,
        settings: Settings,
        overrides: Mapping[str, Any] | None = None,
        first_segment_id: int = 1,
        model_loader: ModelLoader = load_model,
        unfinished: UnfinishedAudio | None = None,
        decoders: DecoderFactory | None = None,
        vad: Callable[[Audio], npt.NDArray[np.float32]] | None = None,
        hotwords: Callable[[], Sequence[str]] | None = None,
    ):
        self._state_lock = threading.Lock()  # guards state, reason, fatal, reported error
        self._state: State = "loading"
        self._reason = ""
        self._fatal = ""
        self._fatal_at = 0.0
        self._reported = ""
        self._stop_lock = threading.Lock()  # one stop at a time
        self._giving_up = threading.Event()  # a stop deadline passed or a stage died
        self._closing = threading.Event()
        self._last_active = time.monotonic()  # the idle clock: the last start, stop or decode
        self._ring = RingBuffer(int(settings.audio.ring_seconds * SAMPLE_RATE))
        self._commit = Commit(_Supervision(self))
        self._kept = KeptAudio(unfinished or UnfinishedAudio(), self._commit)
        self._ids = SegmentIds(first_segment_id, self._commit.register)
        self._commit.configure_voice(command_table(settings), replacements(settings))
        self._router = Router(
            settings.queues, self._commit, bool(settings.models.refine), self._kept.keep, self._giving_up.is_set
        )
        self._capture: Capture | None = None
        self._segmenter: Segmenter | None = None
        self._live: LiveWorker | None = None
        self._refine: RefineWorker | None = None
        self.memory = MemoryWatchdog(settings.memory, self._commit.publish, self._degrade)
        build = decoders or (lambda s, reuse: build_decoders(s, model_loader, reuse))
        self._models = ModelLifecycle(settings, overrides or {}, build, self.memory, self._commit.publish, self._report)
        self._vad = vad
        if hotwords is not None:
            self._models.hotwords = hotwords  # the user's vocabulary, for the refine pass

    # -- public API -------------------------------------------------------------

    def subscribe(self, callback: Callable[[EngineEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns an unsubscribe function."""
        return self._commit.subscribe(callback)

    @property
    def settings(self) -> Settings:
        return self._models.settings

    @property
    def state(self) -> State:
        return self._state

    @property
    def profile(self) -> str:
        return self.settings.profile

    @property
    def languages(self) -> SessionLanguages:
        """The language in force, the user's set and a pin (``listenctl language``)."""
        return self._models.languages

    @property
    def next_segment_id(self) -> int:
        return self._ids.next

    @property
    def decoders(self) -> DecoderSet | None:
        """The decoders in use (None before the first load and while released after idle)."""
        return self._models.decoders

    @property
    def refine_queue_length(self) -> int:
        return self._router.refine_queue_length

    @property
    def pending_segments(self) -> int:
        """Segments with an id and no final text yet (what a stop still owes its listeners)."""
        return len(self._commit.pending_ids())

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

        It stops when a stage died, and falls behind when a decode hangs.
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
        decoders = self._models.load()
        s = self.settings
        supervision = _Supervision(self)
        self._segmenter = Segmenter(s.vad, self._vad or StreamingVad(), self._ids.allocate)
        capture = self._capture = Capture(self._ring, self._segmenter, self._router, self._set_state, supervision)
        ready = self._models.ready
        self._live = LiveWorker(
            self._router,
            self._commit,
            self._segmenter,
            decoders.live,
            decoders.final,
            s.decode,
            lambda: capture.clock_origin,
            supervision,
            ready,
        )
        self._live.multilingual = decoders.live_multilingual
        self._refine = RefineWorker(
            self._router, self._commit, decoders.refine, s.decode.prompt_chars, supervision, ready
        )
        self._router.configure(s.queues, decoders.refine is not None)
        self._models.attach(_DecodingStages(self._router, capture, self._live, self._refine, self._commit))
        capture.start_thread()
        self._live.start()
        self._refine.start()
        self.memory.start()
        self._models.release_when_idle(self._idle_since, self._closing)
        self._set_state("idle")

    def start(self, source: AudioSource, reopen: Callable[[], AudioSource] | None = None) -> None:
        """Begin capturing from ``source`` (state -> ``listening``).

        With ``reopen``, a source that fails (microphone unplugged, audio
        server restarted, a suspend) is replaced by ``reopen()`` as soon as
        that succeeds, retried every 1-3 s, without any call from outside.
        Each session starts without a prompt from earlier text. If the models
        were released while idle, capture starts at once and they load beside
        it: what is said meanwhile waits in the queues and is decoded as soon
        as they are there.
        """
        if self._capture is None or self._refine is None or self._live is None:
            raise EngineError("the engine is not loaded")
        if self._fatal:
            raise EngineError(self._fatal)
        if self._capture.listening:
            raise EngineError("already listening")
        self._refine.reset_context()
        self._live.new_session()
        self._commit.new_session(self._ids.next)
        self._giving_up.clear()
        self._report("")
        self._last_active = time.monotonic()
        # The ring is sized by the profile (audio.ring_seconds); a switch takes effect here, where no source writes.
        samples = int(self.settings.audio.ring_seconds * SAMPLE_RATE)
        ring = RingBuffer(samples) if samples != self._ring.capacity else None
        try:
            self._capture.start(source, reopen, ring)
            self._ring = ring or self._ring
        except SourceError as e:
            self._set_state("error", str(e))
            raise
        self._models.ensure_loaded(self._models_failed)

    def release_models(self) -> bool:
        """Release the models now (the idle timer does after ``models.unload_after_s``); False if not loaded."""
        capture = self._capture
        return capture is not None and self._models.release(lambda: not capture.listening)

    def _idle_since(self) -> float | None:
        """When the engine last did something (a start, a stop, a decode); None while it is busy."""
        capture = self._capture
        if capture is None or capture.listening or self._fatal or self._commit.pending_ids():
            return None
        return max([self._last_active, *(w.last_done for w in self._workers())])

    def _models_failed(self, message: str) -> None:
        """The models could not be loaded again for a start: keep what is heard as audio, let a start retry.

        Not a dead stage: the next start loads again (a rebuilt cache, a freed disk).
        """

        def wind_down() -> None:
            self._giving_up.set()  # nothing will decode: what waits is kept as audio
            self.stop(budget=1.0)
            capture = self._capture
            if capture is None or not capture.listening:  # a Start meanwhile is a new try: its state stands
                self._set_state("error", message)

        self._report(message)
        threading.Thread(target=wind_down, name="listend-wind-down", daemon=True).start()

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
            try:
                return self._stop_within(budget)
            finally:
                self._last_active = time.monotonic()

    def _stop_within(self, budget: float | None) -> bool:
        assert self._capture is not None
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
        """Wait until every allocated id is final and its event delivered."""
        return self._commit.wait_drained(timeout)

    def set_profile(self, profile: str, reason: str = "") -> None:
        """Switch profile at run time, loading or unloading models as needed.

        Raises :class:`~listend.config.ConfigError` if the user's settings do not fit the profile.
        """
        self._models.switch(profile, reason)

    def recover_unfinished(self) -> int:
        """Queue audio kept by an earlier stop for decoding, as new segments; returns how many were decoded.

        Each file is deleted once :meth:`settle` is called with its segment's
        id (the daemon does when the history has written the text), or at
        once when it holds no speech; until then it stays, and a process that
        ends first decodes it again at its next start.
        """
        return self._kept.recover(self._ids.allocate, self._router.route, self._closing)

    def settle(self, seg_id: int) -> None:
        """The final text of ``seg_id`` is durable: audio kept for it can go."""
        self._kept.settle(seg_id)

    def stats(self) -> EngineStats:
        s = self.settings
        capture = self._capture.stats() if self._capture else CaptureStats()
        queues = self._router.stats()
        max_utterance = int(s.vad.max_utterance_s * SAMPLE_RATE) * 4
        m = s.memory
        return EngineStats(
            state=self._state,
            profile=s.profile,
            capture=capture,
            queues=queues,
            commits=self._commit.stats(),
            memory=self.memory.stats(),
            thresholds=Thresholds(m.warn_mb * MIB, m.cleanup_mb * MIB, m.limit_mb * MIB),
            buffers=BufferStats(
                capture.ring_bytes + capture.segmenter_bytes + queues.queued_bytes,
                # open utterance + queues + one in each decoder + a live snapshot + the speculation
                capture.ring_bytes + max_utterance * (1 + s.queues.refine + s.queues.live_final + 4),
            ),
            workers=tuple(w.stats() for w in self._workers()),
            partials_skipped=self._live.partials_skipped if self._live else 0,
            models=self._models.stats(),
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

    def _keep_unfinished(self) -> None:
        """Keep as audio every utterance still queued or being decoded that has no final text.

        With the segmenter thread dead, the utterance it had open is kept too.
        """
        self._kept.keep_all(self._router.take_unfinished())
        if self._capture is not None and self._segmenter is not None and not self._capture.alive:
            open_utterance = self._segmenter.flush()
            if open_utterance is not None:
                self._kept.keep(open_utterance)

    def _degrade(self) -> Outcome:
        return self._models.degrade()

    # -- state ------------------------------------------------------------------

    def _set_state(self, state: State, reason: str = "") -> None:
        with self._state_lock:
            if self._fatal and state != "error":
                return  # a dead stage is final until restart
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

    def _stage_died(self, stage: str, message: str) -> None:
        with self._state_lock:
            if not self._fatal:
                self._fatal, self._fatal_at = message, time.monotonic()
        self._giving_up.set()
        self._set_state("error", message)

        def wind_down() -> None:
            # Nothing will decode what waits: keep it as audio now, so no wait for it can hang.
            if self._capture is not None and stage != "segmenter":
                self._capture.request_stop()
                self._capture.wait_done(5)
            self._keep_unfinished()

        threading.Thread(target=wind_down, name="listend-wind-down", daemon=True).start()


class _Supervision:
    """The engine as its stages' :class:`~listend.supervision.Supervisor`."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def failed(self, stage: str, message: str) -> None:
        self._engine._report(message)

    def died(self, stage: str, message: str) -> None:
        self._engine._stage_died(stage, message)


class _DecodingStages:
    """The stages that decode, as the model life cycle's :class:`~listend.lifecycle.Stages`."""

    def __init__(self, router: Router, capture: Capture, live: LiveWorker, refine: RefineWorker, commit: Commit):
        self._router, self._capture, self._live, self._refine = router, capture, live, refine
        self._commit = commit

    def use(self, settings: Settings, decoders: DecoderSet) -> None:
        self._commit.configure_voice(command_table(settings), replacements(settings))
        self._router.configure(settings.queues, decoders.refine is not None)
        self._capture.configure_vad(settings.vad)
        # Each returns once its worker no longer decodes with the old models: the caller frees them after.
        self._live.use(decoders.live, decoders.final, settings.decode, decoders.live_multilingual)
        self._refine.use(decoders.refine, settings.decode.prompt_chars)

    def release(self) -> None:
        self._live.wait_current_item()  # a decode under way ends with the model it began with
        self._refine.wait_current_item()
        self._live.use(RELEASED, RELEASED, self._live.options)
        self._refine.use(RELEASED, self._refine.prompt_chars)


def _left(deadline: float | None, reserve: float) -> float | None:
    """Seconds until ``deadline`` less ``reserve`` (None: no deadline)."""
    if deadline is None:
        return None
    return max(0.0, deadline - reserve - time.monotonic())
