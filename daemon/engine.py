"""The transcription engine: source -> segmenter -> live/refine decoders -> events.

Threads (see ``docs/architecture.md``):

* **capture** -- the PortAudio callback or the file reader; writes the ring.
* **segmenter** -- reads the ring, runs the VAD, closes utterances, routes
  them to the refine or live-final queue, and beats the heartbeat that the
  systemd watchdog follows.
* **live** -- finalises utterances with the fast model when asked to, and
  otherwise re-decodes the open utterance every ``partial_interval_s``.
* **refine** -- decodes closed utterances with the accurate model.
* **memory** -- the watchdog.

Every queue is bounded. When the refine queue is full and the source cannot
wait (a microphone), the oldest waiting utterance is committed with its live
text instead of being dropped. A file read as fast as possible makes the
pipeline wait instead. All such events are counted in :class:`EngineStats`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .config import Settings, build_settings
from .decoders import Decoder, PassOptions
from .events import (EngineEvent, Partial, ProfileChanged, Refined, Retracted, State,
                     StateChanged)
from .memory import MemoryWatchdog
from .models import ModelSpec, load_whisper
from .ringbuffer import RingBuffer
from .segmenter import SAMPLE_RATE, Segmenter, Utterance
from .sources import AudioSource, SourceError
from .vad import CHUNK, StreamingVad

log = logging.getLogger("listend.engine")

# Most audio the segmenter takes from the ring in one step (bounds its work
# buffer; a backlog is worked off over several steps).
_MAX_STEP_S = 1.0
# A live source silent this long mid-utterance has stalled: close the utterance.
_GAP_CLOSE_S = 1.0
_REOPEN_EVERY_S = 1.0


class EngineError(RuntimeError):
    """The engine cannot do what was asked (not loaded, already listening, ...)."""


@dataclass(frozen=True)
class EngineStats:
    """A consistent-enough snapshot of the engine's counters and bounds."""

    state: str
    profile: str
    audio_seconds: float
    audio_buffer_bytes: int
    audio_buffer_limit_bytes: int
    ring_waiting_samples: int
    ring_high_water_samples: int
    ring_capacity_samples: int
    dropped_samples: int
    overflows: int
    queue_live: int
    queue_live_max: int
    queue_live_high_water: int
    queue_refine: int
    queue_refine_max: int
    queue_refine_high_water: int
    partials: int
    partials_skipped: int
    refined: int
    live_commits: int
    retracted: int
    vad_rejected: int
    splits: int
    backpressure_waits: int
    reopens: int
    gap_closes: int
    rss_bytes: int
    peak_rss_bytes: int
    memory_level: str
    warn_bytes: int
    cleanup_bytes: int
    limit_bytes: int
    cleanups: int
    degradations: int


class CommitSequencer:
    """Publishes final results strictly in segment-id order.

    The refine and live threads finish utterances out of order (an evicted
    utterance is committed before older ones are refined); clients are
    promised increasing ids, so each result waits for its predecessors.
    """

    def __init__(self, publish: Callable[[EngineEvent], None]):
        self._publish = publish
        self._lock = threading.Lock()
        self._pending: collections.OrderedDict[int, EngineEvent | None] = collections.OrderedDict()

    def register(self, seg_id: int) -> None:
        with self._lock:
            self._pending[seg_id] = None

    def resolve(self, seg_id: int, result: EngineEvent) -> None:
        with self._lock:
            if seg_id not in self._pending:
                return
            self._pending[seg_id] = result
            while self._pending:
                first_id, first = next(iter(self._pending.items()))
                if first is None:
                    break
                del self._pending[first_id]
                self._publish(first)

    def publish_partial(self, seg_id: int, is_open: bool, event: EngineEvent, remember: Callable[[], None]) -> bool:
        """Publish a partial only while its utterance is open or unresolved.

        Checked under the same lock as :meth:`resolve`, so a partial can never
        follow the final text of its own id.
        """
        with self._lock:
            if not is_open and self._pending.get(seg_id, 0) is not None:
                return False
            remember()
            self._publish(event)
            return True

    @property
    def in_flight(self) -> int:
        return len(self._pending)


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
        Ids continue from here (the history's last id + 1).
    model_loader : callable, optional
        Loads a model for a :class:`ModelSpec` (tests inject slow decoders).

    Use :meth:`load` once, then :meth:`start`/:meth:`stop` any number of
    times, and :meth:`close` at the end. Subscribe to events with
    :meth:`subscribe`; callbacks run on engine threads and must be quick.
    """

    def __init__(self, settings: Settings, overrides: Mapping | None = None, first_segment_id: int = 1,
                 model_loader: Callable[[ModelSpec], object] = load_whisper):
        self.settings = settings
        self._overrides = dict(overrides or {})
        self._load_model = model_loader
        self._subscribers: list[Callable[[EngineEvent], None]] = []
        self._lock = threading.RLock()  # guards decoders, queues and source
        self._cond = threading.Condition(self._lock)
        self._profile_lock = threading.Lock()
        self._next_id = first_segment_id
        self._state: State = "loading"
        self.last_error = ""
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self.heartbeat = time.monotonic()

        self._live: Decoder | None = None
        self._refine: Decoder | None = None
        self._refine_q: collections.deque[Utterance] = collections.deque()
        self._final_q: collections.deque[Utterance] = collections.deque()
        self._in_flight_bytes = 0
        self._partials: dict[int, str] = {}
        self._last_refined = ""
        self._source: AudioSource | None = None
        self._stop_requested = False
        self._source_done = threading.Event()
        self._source_done.set()
        self._pending_vad = None
        self._reopen: Callable[[], AudioSource] | None = None
        self._reopen_at = 0.0
        self._reopen_failures = 0
        self._last_audio = 0.0
        self._clock_origin = 0
        self._wall_origin = 0.0

        self._ring = RingBuffer(int(settings.audio.ring_seconds * SAMPLE_RATE))
        self._segmenter: Segmenter | None = None
        self._sequencer = CommitSequencer(self._publish)
        self._counts = collections.Counter()
        self._q_high = {"refine": 0, "live": 0}
        self.memory = MemoryWatchdog(settings.memory, self._publish, self._degrade)

    # -- public API -------------------------------------------------------------

    def subscribe(self, callback: Callable[[EngineEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    @property
    def state(self) -> State:
        return self._state

    @property
    def profile(self) -> str:
        return self.settings.profile

    @property
    def next_segment_id(self) -> int:
        return self._next_id

    def load(self) -> None:
        """Load models and start the worker threads (state ``loading`` -> ``idle``)."""
        self._set_state("loading")
        live, refine = self._load_decoders(self.settings, reuse=None)
        self._live, self._refine = live, refine
        self._segmenter = Segmenter(self.settings.vad, StreamingVad(), self._allocate_id)
        for name, target in (("segmenter", self._segment_loop), ("live", self._live_loop),
                             ("refine", self._refine_loop)):
            t = threading.Thread(target=target, name=f"listend-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self.memory.start()
        self._set_state("idle")

    def start(self, source: AudioSource, reopen: Callable[[], AudioSource] | None = None) -> None:
        """Begin capturing from ``source`` (state -> ``listening``).

        With ``reopen``, a source that fails (microphone unplugged, audio
        server restarted, a suspend) is replaced by ``reopen()`` as soon as
        that succeeds, retried every 1-3 s, without any call from outside.
        """
        with self._lock:
            if self._segmenter is None:
                raise EngineError("the engine is not loaded")
            if self._source is not None:
                raise EngineError("already listening")
            self._reopen = reopen
            try:
                source.start(self._ring)
            except SourceError as e:
                self.last_error = str(e)
                self._set_state("error", str(e))
                raise
            self._begin_session(source)
        self._set_state("listening", source.description)

    def _begin_session(self, source: AudioSource) -> None:
        """Make ``source``, already delivering into the ring, the current one (lock held).

        Timestamps of this session count from here: seconds of audio for
        ``start``/``end``, and the wall clock now for ``wall_start``/``wall_end``.
        """
        self._clock_origin = self._segmenter.clock
        self._wall_origin = time.time()
        self._stop_requested = False
        self._source_done.clear()
        self._last_audio = time.monotonic()
        self._source = source
        self.last_error = ""

    def stop(self, drain_timeout: float = 10.0) -> bool:
        """Stop capturing and finish what was heard.

        Waits up to ``drain_timeout`` seconds for queued utterances to be
        refined; whatever is still waiting then is committed with live text.
        Returns True when everything was refined in time.
        """
        with self._lock:
            source = self._source
            self._reopen = None
            if source is None:
                if self._state == "error":  # stopping clears a capture error (and ends reconnecting)
                    self.last_error = ""
                    self._set_state("idle", "stopped")
                return self.wait_drained(drain_timeout)
            self._stop_requested = True
            self._cond.notify_all()
        source.stop()
        self._source_done.wait()
        drained = self.wait_drained(drain_timeout)
        if not drained:
            self._commit_waiting_with_live_text()
            self.wait_drained(None)
        return drained

    def wait_source_done(self, timeout: float | None = None) -> bool:
        """Wait until the current source has ended (end of file) and been flushed."""
        return self._source_done.wait(timeout)

    def wait_drained(self, timeout: float | None) -> bool:
        """Wait until no utterance is queued or being decoded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._sequencer.in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.05 if remaining is None else min(0.05, remaining))
        return True

    def set_profile(self, profile: str, reason: str = "") -> None:
        """Switch profile at run time, loading or unloading models as needed."""
        with self._profile_lock:
            new = build_settings(profile, self._overrides)
            if new.profile == self.settings.profile and self._live is not None:
                return
            live, refine = self._load_decoders(new, reuse=(self._live, self._refine))
            with self._lock:
                old = (self._live, self._refine)
                self._live, self._refine = live, refine
                self.settings = new
                self._pending_vad = new.vad
                self.memory.configure(new.memory)
                self._cond.notify_all()
            del old
            self.memory.release()
        log.info("profile %s%s", profile, f" ({reason})" if reason else "")
        self._publish(ProfileChanged(profile, reason))

    def stats(self) -> EngineStats:
        s = self.settings
        with self._lock:
            queued = sum(u.nbytes for u in self._refine_q) + sum(u.nbytes for u in self._final_q)
            seg = self._segmenter
            max_utt = int(s.vad.max_utterance_s * SAMPLE_RATE) * 4
            m = self.memory.stats
            mb = 1024 * 1024
            return EngineStats(
                state=self._state, profile=s.profile,
                audio_seconds=(seg.clock / SAMPLE_RATE) if seg else 0.0,
                audio_buffer_bytes=self._ring.nbytes + (seg.nbytes if seg else 0) + queued + self._in_flight_bytes,
                audio_buffer_limit_bytes=self._ring.nbytes + max_utt * (1 + s.queues.refine + s.queues.live_final + 3),
                ring_waiting_samples=self._ring.available, ring_high_water_samples=self._ring.high_water,
                ring_capacity_samples=self._ring.capacity, dropped_samples=self._ring.dropped,
                overflows=self._counts["overflows"] + (self._source.overflows if self._source else 0),
                queue_live=len(self._final_q), queue_live_max=s.queues.live_final,
                queue_live_high_water=self._q_high["live"],
                queue_refine=len(self._refine_q), queue_refine_max=s.queues.refine,
                queue_refine_high_water=self._q_high["refine"],
                partials=self._counts["partials"], partials_skipped=self._counts["partials_skipped"],
                refined=self._counts["refined"], live_commits=self._counts["live_commits"],
                retracted=self._counts["retracted"], vad_rejected=seg.rejected if seg else 0,
                splits=seg.splits if seg else 0, backpressure_waits=self._counts["backpressure_waits"],
                reopens=self._counts["reopens"], gap_closes=self._counts["gap_closes"],
                rss_bytes=m.rss_bytes, peak_rss_bytes=m.peak_rss_bytes, memory_level=m.level,
                warn_bytes=s.memory.warn_mb * mb, cleanup_bytes=s.memory.cleanup_mb * mb,
                limit_bytes=s.memory.limit_mb * mb, cleanups=m.cleanups, degradations=m.degradations,
            )

    def close(self, drain_timeout: float = 10.0) -> None:
        """Stop capture, drain, and end all threads."""
        if self._closed.is_set():
            return
        self.stop(drain_timeout)
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=drain_timeout + 5)
        self.memory.stop()
        self._live = self._refine = None

    # -- internals: models -----------------------------------------------------

    def _load_decoders(self, s: Settings, reuse) -> tuple[Decoder, Decoder | None]:
        m = s.models

        def get(name: str, options: PassOptions, current: Decoder | None) -> Decoder:
            if current is not None and current.model_name == name:
                return Decoder(current.model, name, options)
            spec = ModelSpec(name, m.device, m.compute_type, m.cpu_threads)
            return Decoder(self._load_model(spec), name, options)

        cur_live, cur_refine = reuse or (None, None)
        live = get(m.live, PassOptions.live(s.decode), cur_live)
        refine = None
        if m.refine:
            # Never share one model between the two threads (faster-whisper #1055).
            refine = get(m.refine, PassOptions.refine(s.decode), cur_refine if m.refine != m.live else None)
        return live, refine

    def _degrade(self) -> str:
        """Memory over limit: shed the refine model by switching to lightweight."""
        if self.settings.profile == "lightweight":
            return "already lightweight; cleaned up"
        threading.Thread(target=self.set_profile, args=("lightweight", "memory limit"),
                         name="listend-degrade", daemon=True).start()
        return "switching to the lightweight profile (refine model unloaded)"

    # -- internals: events and state ------------------------------------------

    def _publish(self, event: EngineEvent) -> None:
        if isinstance(event, Refined):
            self._counts["refined" if event.source == "refined" else "live_commits"] += 1
            self._partials.pop(event.id, None)
        elif isinstance(event, Retracted):
            self._counts["retracted"] += 1
            self._partials.pop(event.id, None)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a broken subscriber must not stop the pipeline
                log.exception("event subscriber failed on %s", type(event).__name__)

    def _set_state(self, state: State, reason: str = "") -> None:
        if state == self._state:
            return
        self._state = state
        log.info("state %s%s", state, f": {reason}" if reason else "")
        self._publish(StateChanged(state, reason))

    def _allocate_id(self) -> int:
        seg_id = self._next_id
        self._next_id += 1
        return seg_id

    # -- internals: segmenter thread -------------------------------------------

    def _segment_loop(self) -> None:
        hop = int(self.settings.vad.hop_ms * SAMPLE_RATE / 1000)
        work = np.zeros(int(_MAX_STEP_S * SAMPLE_RATE) // CHUNK * CHUNK, dtype=np.float32)
        while not self._closed.is_set():
            self.heartbeat = time.monotonic()
            source = self._source
            if self._pending_vad is not None:
                self._apply_vad_options()
            if source is None:
                if self._reopen is not None and time.monotonic() >= self._reopen_at:
                    self._try_reopen()
                self._closed.wait(0.1)
                continue
            waiting = self._ring.available // CHUNK * CHUNK
            ending = self._stop_requested or source.finished
            if waiting < hop and not ending:
                self._close_after_gap(source)
                self._closed.wait(self.settings.vad.hop_ms / 1000)
                continue
            n = self._ring.read_into(work[: min(waiting, len(work))])
            if n:
                self._last_audio = time.monotonic()
                for utt in self._segmenter.feed(work[:n]):
                    self._route(utt)
                with self._cond:
                    self._cond.notify_all()
            elif ending:
                self._end_source(source)

    def _close_after_gap(self, source: AudioSource) -> None:
        """A live source went quiet mid-utterance (suspend, stalled device): close it.

        Without this, speech after the gap would be glued to speech before it.
        """
        if source.can_wait or self._segmenter.open_id is None:
            return
        if time.monotonic() - self._last_audio > _GAP_CLOSE_S:
            utt = self._segmenter.flush()
            if utt is not None:
                self._counts["gap_closes"] += 1
                self._route(utt)

    def _try_reopen(self) -> None:
        factory = self._reopen
        self._reopen_failures += 1
        # Every second at first, then every 3 s: still within the 5 s users
        # expect after plugging a device back in, at a third of the cost.
        self._reopen_at = time.monotonic() + (_REOPEN_EVERY_S if self._reopen_failures <= 10 else 3.0)
        try:
            source = factory()
            source.start(self._ring)
        except SourceError as e:
            self.last_error = f"{e} (retrying)"
            return
        self._reopen_failures = 0
        with self._cond:
            if self._reopen is not factory:  # stopped meanwhile
                source.stop()
                return
            self._begin_session(source)
            self._counts["reopens"] += 1
        log.info("capture resumed: %s", source.description)
        self._set_state("listening", source.description)

    def _apply_vad_options(self) -> None:
        options, self._pending_vad = self._pending_vad, None
        utt = self._segmenter.flush()
        if utt is not None:
            self._route(utt)
        self._segmenter.configure(options)

    def _end_source(self, source: AudioSource) -> None:
        """The source ended or was stopped: flush the open utterance and go idle."""
        utt = self._segmenter.flush()
        if utt is not None:
            self._route(utt)
        # A partial sample block left in the ring (< 512) is below one VAD
        # decision; it is the tail of the input and carries no speech.
        self._ring.read_into(np.zeros(CHUNK, dtype=np.float32))
        error = source.error
        with self._cond:
            self._counts["overflows"] += source.overflows
            self._source = None
            self._cond.notify_all()
        self._source_done.set()
        if error and not self._stop_requested:
            source.stop()
            self.last_error = error + ("; retrying" if self._reopen else "")
            self._reopen_at = time.monotonic() + _REOPEN_EVERY_S
            self._set_state("error", self.last_error)
        else:
            self._reopen = None
            self._set_state("idle")

    def _route(self, utt: Utterance) -> None:
        """Send a closed utterance to the refine queue, or to the live-final queue."""
        utt.start_sample -= self._clock_origin
        self._sequencer.register(utt.id)
        with self._cond:
            if self._refine is None:
                self._enqueue_final(utt)
                return
            bound = self.settings.queues.refine
            while len(self._refine_q) >= bound:
                if self._may_wait():
                    self._counts["backpressure_waits"] += 1
                    self.heartbeat = time.monotonic()  # waiting on purpose is not being stuck
                    self._cond.wait(0.1)
                    continue
                # Overload with a live source: never drop, commit live text instead.
                self._commit_live(self._refine_q.popleft())
            self._refine_q.append(utt)
            self._q_high["refine"] = max(self._q_high["refine"], len(self._refine_q))
            self._cond.notify_all()

    def _may_wait(self) -> bool:
        source = self._source
        return source is not None and source.can_wait and not self._closed.is_set()

    def _enqueue_final(self, utt: Utterance) -> None:
        """Queue for a final decode by the live model (called with the lock held)."""
        bound = self.settings.queues.live_final
        while len(self._final_q) >= bound:
            oldest = self._final_q[0]
            if oldest.id in self._partials and not self._may_wait():
                self._final_q.popleft()
                self._resolve(oldest, self._partials[oldest.id], "live")
                continue
            # Nothing to fall back on: wait for the live thread (the ring absorbs
            # the pause; anything it cannot hold is counted as dropped).
            self._counts["backpressure_waits"] += 1
            self.heartbeat = time.monotonic()
            self._cond.wait(0.1)
        self._final_q.append(utt)
        self._q_high["live"] = max(self._q_high["live"], len(self._final_q))
        self._cond.notify_all()

    def _commit_live(self, utt: Utterance) -> None:
        """Commit with the newest partial if there is one, else decode with the live model."""
        text = self._partials.get(utt.id)
        if text:
            self._resolve(utt, text, "live")
        else:
            self._enqueue_final(utt)

    def _commit_waiting_with_live_text(self) -> None:
        with self._cond:
            while self._refine_q:
                self._commit_live(self._refine_q.popleft())
            self._cond.notify_all()

    def _resolve(self, utt: Utterance, text: str, source: str) -> None:
        if not text:
            self._sequencer.resolve(utt.id, Retracted(utt.id, "no speech"))
            return
        if source == "refined":
            self._last_refined = (self._last_refined + " " + text)[-1000:]
        wall = self._wall_origin
        event = Refined(utt.id, utt.start, utt.end, text, self._partials.get(utt.id, ""), source,  # type: ignore[arg-type]
                        wall + utt.start, wall + utt.end)
        self._sequencer.resolve(utt.id, event)
        with self._cond:
            self._cond.notify_all()

    # -- internals: live thread ------------------------------------------------

    def _live_loop(self) -> None:
        next_due = 0.0
        seen_version = -1
        while not self._closed.is_set():
            with self._cond:
                item = self._final_q.popleft() if self._final_q else None
                decoder = self._live
                if item is not None:
                    self._in_flight_bytes += item.nbytes
                    self._cond.notify_all()
            if item is not None:
                self._decode_final(decoder, item)
                continue
            seg = self._segmenter
            interval = self.settings.decode.partial_interval_s
            now = time.monotonic()
            if seg is not None and seg.open_id is not None and seg.version != seen_version and now >= next_due:
                if self._refine_backlogged():
                    self._counts["partials_skipped"] += 1  # leave the CPU to the refine pass
                    next_due = now + interval
                    continue
                snap = seg.snapshot()
                if snap is not None:
                    seen_version = seg.version
                    text = decoder.decode(snap.audio).text
                    self._emit_partial(snap.id, seg.open_id == snap.id, text,
                                       (snap.end_sample - self._clock_origin) / SAMPLE_RATE)
                    late = time.monotonic() - now
                    if late > interval:  # decoding took longer than the interval: newer audio wins
                        self._counts["partials_skipped"] += int(late // interval)
                    next_due = now + interval
                continue
            with self._cond:
                if not self._final_q and not self._closed.is_set():
                    self._cond.wait(max(0.01, min(interval, next_due - now)) if next_due > now else interval)

    def _emit_partial(self, seg_id: int, is_open: bool, text: str, audio_end: float) -> None:
        def remember() -> None:
            self._partials[seg_id] = text
            self._counts["partials"] += 1

        self._sequencer.publish_partial(seg_id, is_open, Partial(seg_id, text, audio_end), remember)

    def _refine_backlogged(self) -> bool:
        source = self._source
        if source is None or source.can_wait or self._refine is None:
            return False
        return len(self._refine_q) * 2 >= self.settings.queues.refine

    def _decode_final(self, decoder: Decoder, utt: Utterance) -> None:
        try:
            text = decoder.decode(utt.audio).text
        except Exception as e:
            log.exception("live decode failed for segment %d", utt.id)
            text = self._partials.get(utt.id, "")
            self.last_error = f"decode failed: {e}"
        finally:
            with self._cond:
                self._in_flight_bytes -= utt.nbytes
        self._resolve(utt, text, "live")

    # -- internals: refine thread ----------------------------------------------

    def _prompt(self) -> str:
        """The tail of the refined text, cut at a word boundary.

        Short on purpose: a long prompt of unrelated earlier sentences biases
        Whisper (measured: 4 errors more in 66 words with 200 characters).
        """
        limit = self.settings.decode.prompt_chars
        if not limit or not self._last_refined:
            return ""
        tail = self._last_refined[-limit:]
        if len(self._last_refined) > limit and " " in tail:
            tail = tail.split(" ", 1)[1]
        return tail.strip()

    def _refine_loop(self) -> None:
        while not self._closed.is_set():
            with self._cond:
                if not self._refine_q:
                    self._cond.wait(0.2)
                    continue
                utt = self._refine_q.popleft()
                decoder = self._refine
                self._cond.notify_all()
                if decoder is None:  # refine model shed (profile switch, memory limit)
                    self._commit_live(utt)
                    continue
                self._in_flight_bytes += utt.nbytes
            try:
                text = decoder.decode(utt.audio, prompt=self._prompt()).text
                source = "refined"
            except Exception as e:
                log.exception("refine failed for segment %d; committing live text", utt.id)
                self.last_error = f"refine failed: {e}"
                text, source = None, "live"
            finally:
                with self._cond:
                    self._in_flight_bytes -= utt.nbytes
            if text is None:
                with self._cond:
                    self._commit_live(utt)
            else:
                self._resolve(utt, text, source)
