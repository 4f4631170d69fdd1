"""Whisper through CTranslate2 with a window that follows the utterance, filled with what came before it.

faster-whisper pads every decode to Whisper's 30 s window, so a 2 s
utterance costs as much as a 30 s one. CTranslate2's Whisper takes shorter
windows; this module decodes with

* a window of ``max(floor, speech_ratio * speech + margin)`` (speech: the
  context and the utterance), at most 30 s: without the floor Whisper loops
  on short clips ("5 5 5 5 ..."); with speech filling the window nearly to
  its end it repeats the last phrase (real speech, 10 s in a window of
  10.5-15.9 s: "Fail better. Fail better. ..."; from 16.5 s on it ends where
  the speech does, with one thread or two);
* an output cap of ``tokens_per_s`` per second of audio plus a few: a decode
  that does not end by itself stops there instead of running to 448 tokens;
* a repetition guard: a unit of tokens repeated back to back (a loop) is cut
  to its first occurrence, and the decode counts as failed for the
  temperature fallback, like one that compresses too well;
* acoustic context: the room below the floor holds the speech that preceded
  the utterance in the same dictation session, and the refined text of that
  speech is forced as the decoder's prefix; only the tokens after the prefix
  are the utterance's text. A short phrase decoded alone ("scratch that" ->
  "Crash mat") is decoded right with the speech before it.

faster-whisper's feature extractor and tokenizer are reused, never its
module globals. Plain functions for the arithmetic (unit-tested without a
model), one class per loaded model for the decode.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .audio import Audio
from .units import EXTRA_TOKENS, SAMPLE_RATE, TOKENS_PER_SECOND, token_budget

FRAMES_PER_S = 100  # Whisper's log-mel hop is 10 ms
MAX_WINDOW_S = 30.0  # Whisper's positional embeddings end here
MAX_TOKENS = 448  # Whisper's decoder context, prompt included
_LEADING_MARKS = re.compile(r"^[.,;:!?]+\s*")
# Context older than this is another thought, not the same sentence.
MAX_CONTEXT_GAP_S = 30.0


@dataclass(frozen=True)
class WindowOptions:
    """How long a window is, how many tokens a decode may emit, how much context it holds."""

    floor_s: float = 10.0
    speech_ratio: float = 1.5
    margin_s: float = 2.0
    tokens_per_s: float = TOKENS_PER_SECOND
    tokens_extra: int = EXTRA_TOKENS
    context_s: float = 8.0  # the most preceding audio held (0: none)
    max_gap_s: float = MAX_CONTEXT_GAP_S


def window_seconds(audio_s: float, context_s: float, options: WindowOptions) -> float:
    """The window for ``audio_s`` of utterance after ``context_s`` of context: never beyond 30 s."""
    return min(MAX_WINDOW_S, max(options.speech_ratio * (context_s + audio_s) + options.margin_s, options.floor_s))


def context_room(audio_s: float, options: WindowOptions) -> float:
    """Seconds of preceding speech a window for ``audio_s`` holds.

    What the floor leaves, and for a short utterance more: context and
    utterance together up to ``context_s`` (a command of 1.5 s decoded after
    3.8 s of the sentence before it, all the floor leaves, still went wrong
    where 6.5 s put it right; the window grows to 14 s at the most).
    """
    below_floor = (options.floor_s - options.margin_s) / options.speech_ratio - audio_s
    return max(0.0, min(options.context_s, max(below_floor, options.context_s - audio_s)))


def token_cap(audio_s: float, options: WindowOptions) -> int:
    """The most tokens a decode of ``audio_s`` seconds may emit (text tokens, the prefix not counted)."""
    return token_budget(audio_s, options.tokens_per_s, options.tokens_extra)


def cut_loop(
    tokens: Sequence[int], min_repeats: int = 3, min_span: int = 8, max_unit: int = 24
) -> tuple[list[int], bool]:
    """``tokens`` with a loop cut to its first unit, and whether one was cut.

    A loop is a unit of 1..``max_unit`` tokens repeated back to back at least
    ``min_repeats`` times (its first occurrence included) over at least
    ``min_span`` tokens: "no, no, no" stays, "Fail better. Fail better. Fail
    better." goes. The earliest loop found is cut, with everything after it
    (what follows a loop is more of it, or noise).
    """
    n = len(tokens)
    for start in range(n):
        for unit in range(1, max_unit + 1):
            if start + unit * min_repeats > n:
                break
            head = tokens[start : start + unit]
            repeats, at = 1, start + unit
            while at + unit <= n and tokens[at : at + unit] == head:
                repeats += 1
                at += unit
            if repeats >= min_repeats and repeats * unit >= min_span:
                return list(tokens[: start + unit]), True
    return list(tokens), False


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class Context:
    """Speech that preceded an utterance in its session, and its refined text."""

    audio: Audio
    text: str

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


NO_CONTEXT = Context(np.zeros(0, np.float32), "")


@dataclass(frozen=True)
class _Heard:
    id: int
    start_sample: int
    audio: Audio
    text: str

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.audio)


class SessionContext:
    """What was said before, in this dictation session: whole refined utterances, newest last, bounded.

    Only a continuous run of refined utterances is context: an utterance
    whose predecessor was not refined (committed with live text under load,
    or not decoded at all), one after a pause longer than ``max_gap_s``, and
    the first of a session start without any. Used from the refine thread only.
    It holds speech of one language: the decoder clears it when the language an
    utterance is decoded in changes (detection switched, the user pinned
    another), since another language's text forced as prefix pulls the decode
    into that language (:meth:`listend.decoders.WhisperDecoder._decode_windowed`).
    """

    def __init__(self, options: WindowOptions):
        self._options = options
        self._heard: list[_Heard] = []

    def clear(self) -> None:
        self._heard = []

    def add(self, utt_id: int, start_sample: int, audio: Audio, text: str) -> None:
        """``audio`` (utterance ``utt_id``) was refined to ``text``."""
        last = self._heard[-1] if self._heard else None
        if last is not None and not self._follows(last, utt_id, start_sample):
            self._heard = []
        if not text.strip():  # nothing to force as prefix: the run of context ends here
            self._heard = []
            return
        self._heard.append(_Heard(utt_id, start_sample, audio, text.strip()))
        keep = 0.0
        for i in range(len(self._heard) - 1, -1, -1):  # keep what the largest room could hold
            keep += len(self._heard[i].audio) / SAMPLE_RATE
            if keep > self._options.context_s:
                del self._heard[:i]
                break

    def before(self, utt_id: int, start_sample: int, audio_s: float) -> Context:
        """The context for utterance ``utt_id``: the newest whole utterances that fit its window's room."""
        if not self._heard or not self._follows(self._heard[-1], utt_id, start_sample):
            return NO_CONTEXT
        room = int(context_room(audio_s, self._options) * SAMPLE_RATE)
        taken: list[_Heard] = []
        used = 0
        for heard in reversed(self._heard):
            if used + len(heard.audio) > room:
                break
            taken.append(heard)
            used += len(heard.audio)
        if not taken:
            return NO_CONTEXT
        taken.reverse()
        return Context(np.concatenate([h.audio for h in taken]), " ".join(h.text for h in taken))

    def _follows(self, last: _Heard, utt_id: int, start_sample: int) -> bool:
        gap = (start_sample - last.end_sample) / SAMPLE_RATE
        # A negative gap is another session's clock (capture counts each session from 0).
        return utt_id == last.id + 1 and 0 <= gap <= self._options.max_gap_s


@dataclass(frozen=True)
class Attempt:
    """One decode of a window at one temperature."""

    tokens: list[int]  # the utterance's tokens (the prefix left out), a loop already cut
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    looped: bool  # a loop was cut
    capped: bool  # the cap stopped it
    context_s: float = 0.0  # seconds of preceding speech decoded before it (its text the prefix)

    @property
    def degenerate(self) -> bool:
        return self.looped or self.capped


@dataclass(frozen=True)
class DecodeSettings:
    """One pass's decoding options (what :class:`listend.decoders.PassOptions` holds for Whisper)."""

    beam_size: int
    language: str | None
    temperatures: tuple[float, ...]
    no_speech_threshold: float
    logprob_threshold: float
    compression_ratio_threshold: float
    best_of: int = 5
    window: WindowOptions = field(default_factory=WindowOptions)


class WindowedWhisper:
    """Decodes clips with one loaded faster-whisper model's CTranslate2 model, window by window.

    ``model`` is a ``faster_whisper.WhisperModel``: its ``model`` (the
    ``ctranslate2.models.Whisper``), ``feature_extractor`` and
    ``hf_tokenizer`` are used; nothing of it is changed. Raises
    :class:`TypeError` for an object without them.
    """

    def __init__(self, model: Any):
        import ctranslate2

        ct2 = getattr(model, "model", None)
        if not isinstance(ct2, ctranslate2.models.Whisper) or not hasattr(model, "feature_extractor"):
            raise TypeError(f"{type(model).__name__} has no CTranslate2 Whisper model")
        self._model = model
        self._ct2 = ct2
        self._tokenizers: dict[str | None, Any] = {}

    def tokenizer(self, language: str | None) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            multilingual = self._ct2.is_multilingual
            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer,
                multilingual,
                task="transcribe",
                language=(language or "en") if multilingual else "en",
            )
        return self._tokenizers[language]

    def encode(self, audio: Audio, window_s: float) -> Any:
        """The encoder output of ``audio`` in a window of ``window_s`` (log-mel features padded with zeros)."""
        import ctranslate2

        frames = int(round(window_s * FRAMES_PER_S))
        features = self._model.feature_extractor(audio)[:, :-1]
        features = features[:, :frames]
        if features.shape[1] < frames:
            # Padded as faster-whisper pads its 30 s window: zeros in the features.
            features = np.pad(features, ((0, 0), (0, frames - features.shape[1])))
        return self._ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])))

    def detect_language(self, audio: Audio, options: WindowOptions) -> dict[str, float]:
        """Whisper's language probabilities for ``audio`` alone (its own window; no context); English-only: en."""
        if not self._ct2.is_multilingual:
            return {"en": 1.0}
        encoded = self.encode(audio, window_seconds(len(audio) / SAMPLE_RATE, 0.0, options))
        return {token.strip("<|>"): prob for token, prob in self._ct2.detect_language(encoded)[0]}

    def decode(
        self,
        audio: Audio,
        settings: DecodeSettings,
        context: Context = NO_CONTEXT,
        prompt: str = "",
        hotwords: str = "",
    ) -> Attempt:
        """Decode ``audio`` after ``context``, with temperature fallback; the utterance's text only.

        ``prompt`` is previous text (Whisper's ``<|startofprev|>``), used only
        without context: the context's text is the preceding text already, and
        a prompt would put it before the decoder twice (measured: without any
        prompt the refined text was as good or better on every bench file).
        ``hotwords`` (the user's vocabulary) go into the same previous-text slot
        as faster-whisper's ``hotwords`` do, before a prompt, with or without
        context: the decoder expects those spellings. The caller guards against
        them being produced from noise.
        """
        w = settings.window
        audio_s = len(audio) / SAMPLE_RATE
        tokenizer = self.tokenizer(settings.language)
        cap = token_cap(audio_s, w)
        prefix = tokenizer.encode(" " + context.text) if context.text else []
        if len(prefix) + cap > MAX_TOKENS // 2:  # no room for the text after the context's
            prefix, context = [], NO_CONTEXT
        start: list[int] = []
        previous = " ".join(p for p in (hotwords.strip(), "" if prefix else prompt.strip()) if p)
        if previous:
            start = [tokenizer.sot_prev, *tokenizer.encode(" " + previous)[-(MAX_TOKENS // 2 - 1) :]]
        start += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        window = window_seconds(audio_s, context.seconds, w)
        encoded = self.encode(np.concatenate([context.audio, audio]) if prefix else audio, window)
        # CTranslate2 counts the forced prefix as generated and allows at most half the total length
        # (``min(max_length / 2, max_length - prompt)``, CTranslate2 #1856): ask for what gives prefix + cap.
        wanted = len(prefix) + cap
        max_length = min(MAX_TOKENS, max(2 * wanted, wanted + len(start)))
        attempt = self._with_fallback(encoded, start, prefix, cap, max_length, tokenizer, settings)
        if prefix:
            attempt = dataclasses.replace(attempt, context_s=context.seconds)
        if prefix and not attempt.text:
            # Whisper may take the context for all there is and end at once: an utterance the
            # VAD heard as speech is then decoded alone rather than lost.
            return self.decode(audio, settings, NO_CONTEXT, prompt, hotwords)
        return attempt

    def _with_fallback(
        self,
        encoded: Any,
        start: list[int],
        prefix: list[int],
        cap: int,
        max_length: int,
        tokenizer: Any,
        settings: DecodeSettings,
    ) -> Attempt:
        attempts: list[Attempt] = []
        for temperature in settings.temperatures:
            attempt = self._generate(encoded, start, prefix, cap, max_length, tokenizer, settings, temperature)
            attempts.append(attempt)
            if not self._needs_fallback(attempt, settings):
                return attempt
        # Every temperature failed: the best-scoring result that is not degenerate, else the best.
        usable = [
            a for a in attempts if not a.degenerate and a.compression_ratio <= settings.compression_ratio_threshold
        ]
        return max(usable or attempts, key=lambda a: a.avg_logprob)

    def _generate(
        self,
        encoded: Any,
        start: list[int],
        prefix: list[int],
        cap: int,
        max_length: int,
        tokenizer: Any,
        settings: DecodeSettings,
        temperature: float,
    ) -> Attempt:
        if temperature > 0:
            kwargs: dict[str, Any] = {
                "beam_size": 1,
                "num_hypotheses": settings.best_of,
                "sampling_topk": 0,
                "sampling_temperature": temperature,
            }
        else:
            kwargs = {"beam_size": settings.beam_size}
        result = self._ct2.generate(
            encoded,
            [start + prefix],
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=not prefix,  # a blank after a forced prefix is an ordinary space
            suppress_tokens=[-1],
            **kwargs,
        )[0]
        sequence = list(result.sequences_ids[0])
        # CTranslate2 returns the forced prefix with the text; the utterance is what follows it.
        new = sequence[len(prefix) :] if sequence[: len(prefix)] == prefix else sequence
        capped = len(new) >= cap
        new = [t for t in new[:cap] if t < tokenizer.eot]
        kept, looped = cut_loop(new)
        text = tokenizer.decode(kept).strip()
        if prefix:
            # A context whose text ends without its full stop gets it first (". The weather ..."):
            # that mark closes the context's sentence, not this utterance's.
            text = _LEADING_MARKS.sub("", text)
        # faster-whisper's average: the cumulative score over the emitted tokens plus the end token.
        avg_logprob = result.scores[0] * len(sequence) / (len(sequence) + 1)
        return Attempt(
            kept, text, avg_logprob, result.no_speech_prob, compression_ratio(text), temperature, looped, capped
        )

    @staticmethod
    def _needs_fallback(a: Attempt, s: DecodeSettings) -> bool:
        """faster-whisper's rule, plus: a decode the cap stopped with no loop found in it.

        A loop that was cut is not a reason to sample: what precedes it is the
        text (measured: the repeated unit is the last phrase said), and every
        further temperature would cost a decode to the cap.
        """
        if a.no_speech_prob > s.no_speech_threshold and a.avg_logprob < s.logprob_threshold:
            return False  # silence: no temperature will find words in it
        runaway = a.capped and not a.looped
        return runaway or a.compression_ratio > s.compression_ratio_threshold or a.avg_logprob < s.logprob_threshold
