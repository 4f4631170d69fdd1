"""One decoder class for both passes; the pass is a set of options.

The live pass decodes greedily with no timestamps and no fallback; the
refine pass uses beam search, the previous refined text as prompt and
temperature fallback. Both drop segments that Whisper itself scores as
non-speech or as degenerate (repetition loops), so silence never turns into
text such as "Thanks for watching".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .config import DecodeOptions

# Phrases Whisper is known to invent on near-silence (WhisperLive #185 and
# others). Dropped only when Whisper is itself unsure the segment is speech.
_HALLUCINATIONS = re.compile(
    r"^\W*(thanks? (you )?for watching|please subscribe|subtitles? by|transcribed by|you)\W*$", re.I
)
_HALLUCINATION_NO_SPEECH = 0.2


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
    def live(cls, d: DecodeOptions) -> "PassOptions":
        return cls(d.live_beam_size, d.language or None, (0.0,), False,
                   d.no_speech_threshold, d.logprob_threshold, d.compression_ratio_threshold)

    @classmethod
    def refine(cls, d: DecodeOptions) -> "PassOptions":
        return cls(d.refine_beam_size, d.language or None, (0.0, 0.2, 0.4, 0.6), False,
                   d.no_speech_threshold, d.logprob_threshold, d.compression_ratio_threshold)


@dataclass(frozen=True)
class Decoded:
    text: str
    kept_segments: int
    dropped_segments: int


class Decoder:
    """Runs one Whisper model with one pass's options. Use from one thread only."""

    def __init__(self, model, model_name: str, options: PassOptions):
        self.model = model
        self.model_name = model_name
        self.options = options

    def decode(self, audio: np.ndarray, prompt: str = "") -> Decoded:
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

    def _is_non_speech(self, seg) -> bool:
        o = self.options
        if seg.no_speech_prob > o.no_speech_threshold and seg.avg_logprob < o.logprob_threshold:
            return True
        if seg.compression_ratio > o.compression_ratio_threshold:
            return True
        return bool(_HALLUCINATIONS.match(seg.text.strip())) and seg.no_speech_prob > _HALLUCINATION_NO_SPEECH
