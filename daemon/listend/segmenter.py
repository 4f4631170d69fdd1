"""Voice-activity segmentation: a stream of samples in, utterances out.

The segmenter is plain logic with preallocated buffers and no threads; the
engine's segmenter thread feeds it. An utterance opens when a chunk's speech
probability reaches ``threshold``, gets its id once it holds ``min_speech_ms``
of speech (shorter blips are discarded and counted), closes after
``silence_close_ms`` below ``neg_threshold``, and is split at the quietest
chunk of its last seconds when it reaches ``max_utterance_s``.

Between the end of speech and the close, the segmenter reports a
:class:`Pause` as soon as ``speech_pad_ms`` of silence follow the speech: its
audio is exactly what the utterance will hold if it closes at this pause, so
the refine pass can start on it ~0.4 s before the close. Speech that comes
back before the close is reported as :class:`Resume`, and the speculative
decode is discarded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .audio import Audio, OpenSnapshot, Pause, Resume, SegmenterEvent, Utterance
from .config import VadOptions
from .units import SAMPLE_RATE
from .vad import CHUNK


class Segmenter:
    """Split 16 kHz mono audio into utterances with a VAD.

    Parameters
    ----------
    options : VadOptions
        Thresholds and durations.
    vad : callable
        Maps audio (a multiple of 512 samples) to one speech probability per chunk.
    next_id : callable
        Allocates the next segment id (ids increase across restarts). An id
        is allocated once an utterance holds ``min_speech_ms`` of speech, and
        every allocated id ends in exactly one :class:`Utterance`.
    """

    def __init__(
        self, options: VadOptions, vad: Callable[[Audio], npt.NDArray[np.float32]], next_id: Callable[[], int]
    ):
        self._vad = vad
        self._next_id = next_id
        self._lock = threading.Lock()  # guards the open-utterance buffer against live snapshots
        self.clock = 0  # samples consumed so far: the audio clock
        self.rejected = 0  # speech blips too short to become utterances
        self.splits = 0  # utterances cut at max length
        self.configure(options)

    def configure(self, options: VadOptions) -> None:
        """Apply new options; an open utterance is closed first by the caller."""
        with self._lock:
            self.options = options
            self._pad = int(options.speech_pad_ms * SAMPLE_RATE / 1000) // CHUNK * CHUNK
            self._close = max(CHUNK, int(options.silence_close_ms * SAMPLE_RATE / 1000))
            self._min_speech = int(options.min_speech_ms * SAMPLE_RATE / 1000)
            self._max = int(options.max_utterance_s * SAMPLE_RATE) // CHUNK * CHUNK
            self._buf = np.zeros(self._max, dtype=np.float32)
            self._probs = np.zeros(self._max // CHUNK, dtype=np.float32)
            self._preroll = np.zeros(max(self._pad, CHUNK), dtype=np.float32)
            self._preroll_len = 0
            self._n = 0  # samples in the open utterance; 0 = none open
            self._id: int | None = None
            self._start = 0
            self._speech = 0
            self._silence = 0
            # Set while the open utterance is paused (a Pause reported, speech not resumed):
            # the audio-clock sample where its kept audio ends.
            self._pause_end: int | None = None
            # Silence after which the kept audio is complete (speech + pad): a Pause is due.
            self._pause_at = max(self._pad, CHUNK)
            self._version = 0  # bumps whenever the open audio changes

    @property
    def nbytes(self) -> int:
        return self._buf.nbytes + self._probs.nbytes + self._preroll.nbytes

    @property
    def open_id(self) -> int | None:
        return self._id

    @property
    def version(self) -> int:
        return self._version

    @property
    def paused_at(self) -> int | None:
        """While the open utterance is paused: the audio-clock sample where its kept audio ends."""
        return self._pause_end

    def snapshot(self) -> OpenSnapshot | None:
        """Copy the open utterance (only once it has an id) for the live pass."""
        with self._lock:
            if self._id is None or self._n == 0:
                return None
            return OpenSnapshot(self._id, self._buf[: self._n].copy(), self._start + self._n)

    def quietest(self, utt_id: int, lo: int, hi: int) -> int | None:
        """The middle of the quietest VAD chunk in ``[lo, hi)`` samples into open utterance ``utt_id``.

        None if that utterance is no longer open (closed, or split: the rest has a new id).
        """
        with self._lock:
            if self._id != utt_id:
                return None
            a, b = max(0, lo // CHUNK), min(self._n, hi) // CHUNK
            if b <= a:
                return None
            region = self._probs[a:b]
            latest_minimum = len(region) - 1 - int(np.argmin(region[::-1]))
            return (a + latest_minimum) * CHUNK + CHUNK // 2

    def feed(self, audio: Audio) -> list[SegmenterEvent]:
        """Consume ``audio`` (a multiple of 512 samples).

        Returns, in order, the utterances it closed and the pauses and resumes
        it saw; :meth:`utterances` keeps only the first.
        """
        events: list[SegmenterEvent] = []
        probs = self._vad(audio)
        for i, p in enumerate(probs):
            chunk = audio[i * CHUNK : (i + 1) * CHUNK]
            with self._lock:
                self._step(chunk, float(p), events)
            self.clock += CHUNK
        return events

    @staticmethod
    def utterances(events: list[SegmenterEvent]) -> list[Utterance]:
        return [e for e in events if isinstance(e, Utterance)]

    def flush(self) -> Utterance | None:
        """Close the open utterance now (end of input, stop, profile switch)."""
        with self._lock:
            if self._n == 0:
                return None
            return self._emit(self._n, keep_rest=False)

    # -- internals (called with the lock held) -------------------------------

    def _step(self, chunk: Audio, p: float, events: list[SegmenterEvent]) -> None:
        o = self.options
        if self._n == 0:
            if p >= o.threshold:
                self._open(chunk)
            else:
                self._remember(chunk)
            return
        if self._n + CHUNK > self._max:
            self._add(events, self._split())
        self._buf[self._n : self._n + CHUNK] = chunk
        self._probs[self._n // CHUNK] = p
        self._n += CHUNK
        self._version += 1
        if p >= o.threshold:
            self._speech += CHUNK
        if p >= o.neg_threshold:
            self._silence = 0
            if self._pause_end is not None:
                self._pause_end = None
                if self._id is not None:
                    events.append(Resume(self._id))
        else:
            self._silence += CHUNK
        if self._id is None and self._speech >= self._min_speech:
            self._id = self._next_id()
        keep = min(self._n, self._n - self._silence + self._pad)  # speech + pad: what a close keeps
        if self._silence >= self._close:
            self._add(events, self._emit(keep, keep_rest=False))
            self._remember(chunk)
        elif self._silence == self._pause_at and self._id is not None:
            # The same cut the close will make, known 0.4 s earlier.
            self._pause_end = self._start + keep
            events.append(Pause(self._id, self._start, self._buf[:keep].copy()))

    @staticmethod
    def _add(events: list[SegmenterEvent], utt: Utterance | None) -> None:
        if utt is not None:
            events.append(utt)

    def _remember(self, chunk: Audio) -> None:
        """Keep the last ``speech_pad_ms`` of non-speech as the next utterance's lead-in."""
        size = len(self._preroll)
        self._preroll[:-CHUNK] = self._preroll[CHUNK:]
        self._preroll[-CHUNK:] = chunk
        self._preroll_len = min(size, self._preroll_len + CHUNK)

    def _open(self, chunk: Audio) -> None:
        lead = min(self._pad, self._preroll_len)
        if lead:
            self._buf[:lead] = self._preroll[-lead:]
            self._probs[: lead // CHUNK] = 0.0
        self._buf[lead : lead + CHUNK] = chunk
        self._probs[lead // CHUNK] = 1.0
        self._n = lead + CHUNK
        self._start = self.clock - lead
        self._speech = CHUNK
        self._silence = 0
        self._preroll_len = 0
        self._version += 1
        if self._speech >= self._min_speech:
            self._id = self._next_id()

    def _split(self) -> Utterance | None:
        """The buffer is full: cut at the quietest chunk of the last third (at most 3 s)."""
        chunks = self._n // CHUNK
        window = max(1, min(chunks // 3, int(3 * SAMPLE_RATE / CHUNK)))
        region = self._probs[chunks - window : chunks]
        # Latest minimum: keeps as much as possible in the utterance being closed.
        quietest = chunks - window + (window - 1 - int(np.argmin(region[::-1])))
        cut = (quietest + 1) * CHUNK
        self.splits += 1
        return self._emit(cut, keep_rest=True)

    def _emit(self, keep: int, keep_rest: bool) -> Utterance | None:
        utt = None
        keep = max(0, min(keep, self._n))
        if self._id is not None and keep == 0:
            keep = self._n  # an allocated id always ends in an utterance (the commit stage waits for it)
        if self._id is not None and keep > 0:
            utt = Utterance(self._id, self._start, self._buf[:keep].copy())
        elif self._id is None:
            self.rejected += 1
        rest = self._n - keep
        if keep_rest:  # the utterance goes on after the cut
            self._buf[:rest] = self._buf[keep : self._n]
            self._probs[: rest // CHUNK] = self._probs[keep // CHUNK : self._n // CHUNK]
            self._start += keep
            self._n = rest
            self._speech = int(np.count_nonzero(self._probs[: rest // CHUNK] >= self.options.threshold)) * CHUNK
            self._id = self._next_id() if self._speech >= self._min_speech else None
        else:
            self._n = 0
            self._id = None
            self._speech = 0
            self._silence = 0
        self._pause_end = None
        self._version += 1
        return utt
