"""Decoders: one small interface, one implementation per model family.

A pass (live, refine, final) is a model plus a set of options. Whisper
passes differ only in options: the live pass decodes greedily with no
timestamps and no fallback; the refine pass uses beam search, the previous
refined text as prompt and temperature fallback; the final pass (what the
live model commits when there is no refine model) decodes exactly as an
offline ``transcribe`` does. Every Whisper pass drops segments that Whisper
itself scores as non-speech or as degenerate (repetition loops), so silence
never turns into text such as "Thanks for watching". Moonshine
(:mod:`moonshine`) implements the same interface.

A Whisper model decodes through :mod:`whisper_window` (CTranslate2 directly,
a window that follows the audio) unless ``decode.window_floor_s`` is 0 or the
model object has no CTranslate2 Whisper model: then through faster-whisper's
``transcribe`` and its 30 s window, as before. The refine pass's decoder is
also a :class:`SessionDecoder`: it keeps what preceded in the dictation
session and decodes each utterance after it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .audio import Audio, Utterance
from .config import DecodeOptions
from .languages import SessionLanguages
from .units import SAMPLE_RATE
from .whisper_window import NO_CONTEXT, Attempt, DecodeSettings, SessionContext, WindowedWhisper, WindowOptions

# Phrases Whisper is known to invent on near-silence (WhisperLive #185 and
# others). Dropped only when Whisper is itself unsure the segment is speech.
_HALLUCINATIONS = re.compile(
    r"^\W*(thanks? (you )?for watching|please subscribe|subtitles? by|transcribed by|you)\W*$", re.IGNORECASE
)
_HALLUCINATION_NO_SPEECH = 0.2
# faster-whisper's own defaults for transcribe(): what "offline" means here.
_OFFLINE_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class Decoded:
    text: str
    kept_segments: int
    dropped_segments: int
    cancelled: bool = False  # the caller said stop before the decode was done (``text`` is then incomplete)


Cancelled = Callable[[], bool]
"""Asked while a decode runs: True once its result is no longer wanted (a voided speculation)."""


class Decoder(Protocol):
    """What a worker needs from a model. Each decoder is used from one thread only."""

    @property
    def model_name(self) -> str: ...

    def decode(self, audio: Audio, prompt: str = "", cancelled: Cancelled | None = None) -> Decoded:
        """Text of ``audio`` (16 kHz mono); ``prompt`` is preceding text, where the model takes one.

        A decoder that can stop early checks ``cancelled`` as it goes (Moonshine, every token);
        Whisper decodes in one call and ignores it.
        """
        ...


@runtime_checkable
class SessionDecoder(Decoder, Protocol):
    """A decoder that hears each utterance after what preceded it in the dictation session.

    The refine worker tells it each utterance's final text (:meth:`heard`) and
    when a session starts (:meth:`new_session`); the decoder decides what of
    it is context. Data flows one way: text goes in after it was committed.
    """

    def decode_next(self, utt: Utterance, prompt: str = "", cancelled: Cancelled | None = None) -> Decoded:
        """Text of ``utt`` alone, decoded after the session's context that precedes it."""
        ...

    def heard(self, utt: Utterance, text: str) -> None:
        """``utt`` was committed with ``text`` (refined): context for what follows."""
        ...

    def new_session(self) -> None:
        """Forget the context (a session starts)."""
        ...


class _Released:
    """Where a decoder was before the models were released (workers wait; nothing decodes with this)."""

    model_name = "(released)"

    def decode(self, audio: Audio, prompt: str = "", cancelled: Cancelled | None = None) -> Decoded:
        raise RuntimeError("the models are released")


RELEASED: Decoder = _Released()


@dataclass(frozen=True)
class PassOptions:
    """How one pass calls Whisper."""

    beam_size: int
    language: str | None
    temperatures: tuple[float, ...]
    timestamps: bool
    no_speech_threshold: float
    logprob_threshold: float
    compression_ratio_threshold: float
    window: WindowOptions | None = None  # None: faster-whisper's 30 s window
    uses_context: bool = False  # decodes each utterance after the session's preceding speech

    def settings(self) -> DecodeSettings:
        return DecodeSettings(
            self.beam_size,
            self.language,
            self.temperatures,
            self.no_speech_threshold,
            self.logprob_threshold,
            self.compression_ratio_threshold,
            window=self.window or WindowOptions(),
        )

    @classmethod
    def live(cls, d: DecodeOptions) -> PassOptions:
        return cls(
            d.live_beam_size,
            d.language or None,
            (0.0,),
            False,
            d.no_speech_threshold,
            d.logprob_threshold,
            d.compression_ratio_threshold,
            _window(d),
        )

    @classmethod
    def refine(cls, d: DecodeOptions) -> PassOptions:
        return cls(
            d.refine_beam_size,
            d.language or None,
            (0.0, 0.2, 0.4, 0.6),
            False,
            d.no_speech_threshold,
            d.logprob_threshold,
            d.compression_ratio_threshold,
            _window(d),
            uses_context=d.context_s > 0,
        )

    @classmethod
    def final(cls, d: DecodeOptions) -> PassOptions:
        """An offline transcription's options (faster-whisper's defaults): beam search, full fallback."""
        return cls(
            d.refine_beam_size,
            d.language or None,
            _OFFLINE_TEMPERATURES,
            True,
            d.no_speech_threshold,
            d.logprob_threshold,
            d.compression_ratio_threshold,
            _window(d),
            uses_context=d.context_s > 0,
        )


def _window(d: DecodeOptions) -> WindowOptions | None:
    if not d.window_floor_s:
        return None
    return WindowOptions(floor_s=d.window_floor_s, context_s=d.context_s)


def _no_words() -> Sequence[str]:
    return ()


_NO_WORDS = _no_words


_WORD = re.compile(r"\w+")


def _spaced_words(text: str) -> str:
    return " " + " ".join(_WORD.findall(text.casefold())) + " "


def hotword_prompt(words: Sequence[str]) -> str:
    """The vocabulary as the decoder's previous text: a sentence-like list ("Okonkwo, Anneliese.").

    Measured on three espeak-ng sentences with seven names (Whisper base): joined by commas or by spaces, names
    not said were echoed into a sentence ("..., Anneliese, Tiramisu, The Kubernetes cluster."); as a list
    ending in a full stop, none were and 5 of 7 names came out right (0 of 7 without a vocabulary).
    """
    return ", ".join(words) + "." if words else ""


def _echo(text: str, plain: str, words: Sequence[str]) -> bool:
    """``text`` is vocabulary alone where the decode without it heard something else (a hallucination on noise,
    "Thank you." without the vocabulary and "Ngozi," with it): not one word besides the vocabulary's, and a
    word count more than one off the plain decode's (a name said alone comes out as about as many words)."""
    rest = _spaced_words(text)
    for word in words:
        rest = rest.replace(_spaced_words(word), " ")
    return not rest.strip() and abs(len(_WORD.findall(text)) - len(_WORD.findall(plain))) > 1


def mentions(text: str, words: Sequence[str]) -> bool:
    """``text`` holds one of ``words`` as whole words, case-insensitive."""
    folded = _spaced_words(text)
    return any(_spaced_words(w) in folded for w in words if _WORD.search(w))


class WhisperDecoder:
    """Runs one faster-whisper model with one pass's options.

    Through :class:`~listend.whisper_window.WindowedWhisper` where the pass
    has a window and the model a CTranslate2 Whisper model; else through the
    model's ``transcribe``. Owns the session context of its pass (used from
    one thread only, like every decoder).
    """

    def __init__(self, model: Any, model_name: str, options: PassOptions):
        self.model = model  # a faster_whisper.WhisperModel (or a stand-in with its transcribe())
        self._name = model_name
        self.options = options
        self.windowed: WindowedWhisper | None = None
        if options.window is not None:
            try:
                self.windowed = WindowedWhisper(model)
            except TypeError:
                self.windowed = None  # no CTranslate2 model to decode with directly: transcribe() as before
        self._session = SessionContext(options.window or WindowOptions())
        self.last_attempt: Attempt | None = None  # the newest windowed decode (what tests and the bench read)
        # The daemon's language chooser (set by the model life cycle): a session decode detects within
        # the user's set when it must, any other decode uses the language in force. None: options.language.
        self.languages: SessionLanguages | None = None
        self.last_language: str | None = None  # the language of the newest decode (what tests and the bench read)
        self._context_language: str | None = None  # the language the session context was spoken in
        # The user's vocabulary, read at each decode (set by the model life cycle on the refine and final
        # passes; it changes at run time with `listenctl vocabulary`). Empty: no hotwords.
        self.hotwords: Callable[[], Sequence[str]] = _NO_WORDS

    @property
    def model_name(self) -> str:
        return self._name

    def with_options(self, options: PassOptions) -> WhisperDecoder:
        """The same model with another pass's options (shares the loaded model; a session of its own)."""
        return WhisperDecoder(self.model, self._name, options)

    def decode(self, audio: Audio, prompt: str = "", cancelled: Cancelled | None = None) -> Decoded:
        return self._decode(audio, prompt, None)

    def _language(self, audio: Audio, session: bool) -> str | None:
        """The language to decode ``audio`` in: chosen within the user's set for a session decode, else in force."""
        languages = self.languages
        if languages is None:
            return self.options.language
        if not session:
            return languages.current
        return languages.decide(lambda: self._detect(audio), len(audio) / SAMPLE_RATE).language

    def _detect(self, audio: Audio) -> dict[str, float]:
        if self.windowed is not None:
            return self.windowed.detect_language(audio, self.options.window or WindowOptions())
        if not getattr(getattr(self.model, "model", None), "is_multilingual", True):
            return {"en": 1.0}
        _language, _probability, ranked = self.model.detect_language(audio)
        return dict(ranked)

    def _decode(self, audio: Audio, prompt: str, where: tuple[int, int] | None) -> Decoded:
        language = self.last_language = self._language(audio, where is not None)
        if self.windowed is not None:
            return self._decode_windowed(audio, prompt, where, language)
        o = self.options
        segments, _info = self.model.transcribe(
            audio,
            language=language,
            task="transcribe",  # listend never translates
            beam_size=o.beam_size,
            temperature=list(o.temperatures),
            without_timestamps=not o.timestamps,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
            compression_ratio_threshold=o.compression_ratio_threshold,
            log_prob_threshold=o.logprob_threshold,
            no_speech_threshold=o.no_speech_threshold,
        )
        kept: list[str] = []
        dropped = 0
        for seg in segments:
            if self._is_non_speech(seg):
                dropped += 1
                continue
            text = seg.text.strip()
            if text:
                kept.append(text)
        return Decoded(" ".join(kept).strip(), len(kept), dropped)

    # -- the session (refine pass) ---------------------------------------------------

    def decode_next(self, utt: Utterance, prompt: str = "", cancelled: Cancelled | None = None) -> Decoded:
        return self._decode(utt.audio, prompt, (utt.id, utt.start_sample))

    def heard(self, utt: Utterance, text: str) -> None:
        if self.windowed is not None and self.options.uses_context:
            if utt.cut:  # its text may stop mid-sentence: forced as a prefix it bent the next words
                self._session.clear()
                return
            if self._spoken_in_another_language(utt):  # no context for the next utterance, even under a pin
                self._session.clear()
                return
            self._session.add(utt.id, utt.start_sample, utt.audio, text)

    def _spoken_in_another_language(self, utt: Utterance) -> bool:
        """Pinned in a set of several: ``utt`` was clearly said in another language of the set than decoded in.

        Detection only here (a language of the set pinned, the user speaks
        several): the utterance is decoded in the pinned language whatever was
        said, but another language's speech is no context (SessionContext).
        """
        languages, decoded_in = self.languages, self.last_language
        if languages is None or decoded_in is None or not languages.judges_context:
            return False
        other = languages.clearly_other(self._detect(utt.audio), len(utt.audio) / SAMPLE_RATE, decoded_in)
        return other is not None

    def new_session(self) -> None:
        self._session.clear()
        if self.languages is not None:
            self.languages.new_session()

    def _decode_windowed(
        self, audio: Audio, prompt: str, where: tuple[int, int] | None, language: str | None
    ) -> Decoded:
        assert self.windowed is not None
        context = NO_CONTEXT
        if where is not None and self.options.uses_context:
            if language != self._context_language:
                # Speech in another language is no context: its text forced as prefix pulls the decode
                # into that language (measured: German after English context came out half English).
                self._session.clear()
                self._context_language = language
            context = self._session.before(where[0], where[1], len(audio) / SAMPLE_RATE)
        settings = dataclasses.replace(self.options.settings(), language=language)
        words = self.hotwords()
        hotwords = hotword_prompt(words)
        attempt = self.last_attempt = self.windowed.decode(audio, settings, context, prompt, hotwords)
        if self._is_non_speech(attempt):
            return Decoded("", 0, 1)
        if words and (mentions(attempt.text, words) or attempt.no_speech_prob > _HALLUCINATION_NO_SPEECH):
            # A vocabulary in the prompt is echoed on noise (hotwords copied verbatim when the model
            # hallucinates), and it talks Whisper into text where it doubts there is speech (measured, the VAD
            # bypassed: 64 s of silence and noise gave "Thank you very much." and "I'm sorry. I'm sorry." at a
            # no-speech probability of 0.55-0.71 with seven names in force, nothing without them; speech scored
            # 0.00-0.04, a short command 0.38). Such text counts only when the same audio is speech without it.
            plain = self.windowed.decode(audio, settings, context, prompt)
            if self._is_non_speech(plain) or not plain.text.strip() or _echo(attempt.text, plain.text, words):
                self.last_attempt = plain
                return Decoded("", 0, 1)
        return Decoded(attempt.text, 1 if attempt.text else 0, 0)

    def _is_non_speech(self, seg: Any) -> bool:
        """faster-whisper's segment, or a windowed :class:`Attempt`: both have these four fields."""
        o = self.options
        if seg.no_speech_prob > o.no_speech_threshold and seg.avg_logprob < o.logprob_threshold:
            return True
        if seg.compression_ratio > o.compression_ratio_threshold:
            return True
        return bool(_HALLUCINATIONS.match(seg.text.strip())) and seg.no_speech_prob > _HALLUCINATION_NO_SPEECH
