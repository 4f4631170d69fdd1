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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .audio import Audio
from .config import DecodeOptions

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
        )


class WhisperDecoder:
    """Runs one faster-whisper model with one pass's options."""

    def __init__(self, model: Any, model_name: str, options: PassOptions):
        self.model = model  # a faster_whisper.WhisperModel (or a stand-in with its transcribe())
        self._name = model_name
        self.options = options

    @property
    def model_name(self) -> str:
        return self._name

    def with_options(self, options: PassOptions) -> WhisperDecoder:
        """The same model with another pass's options (shares the loaded model)."""
        return WhisperDecoder(self.model, self._name, options)

    def decode(self, audio: Audio, prompt: str = "", cancelled: Cancelled | None = None) -> Decoded:
        o = self.options
        segments, _info = self.model.transcribe(
            audio,
            language=o.language,
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

    def _is_non_speech(self, seg: Any) -> bool:
        o = self.options
        if seg.no_speech_prob > o.no_speech_threshold and seg.avg_logprob < o.logprob_threshold:
            return True
        if seg.compression_ratio > o.compression_ratio_threshold:
            return True
        return bool(_HALLUCINATIONS.match(seg.text.strip())) and seg.no_speech_prob > _HALLUCINATION_NO_SPEECH
