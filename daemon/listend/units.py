"""Constants every part of listend shares, and the one output cap of a decode (:func:`token_budget`)."""

from __future__ import annotations

SAMPLE_RATE = 16_000
"""Samples per second everywhere after the source: the pipeline is 16 kHz mono float32."""

MIB = 1 << 20
"""Bytes in a MiB. Every size listend shows or takes is in MiB (settings say ``_mb``, the unit is 2**20)."""

MAX_SEGMENT_ID = 2**53 - 1
"""Highest segment id: exact as a JSON number (2**53) and far inside D-Bus ``t``."""

TOKENS_PER_SECOND = 6.5
"""The most text tokens a decode emits per second of audio (Moonshine's own limit; speech rarely exceeds ~4)."""

EXTRA_TOKENS = 10
"""Tokens a decode may emit beyond :data:`TOKENS_PER_SECOND` (a second of speech can still hold a few short words)."""


def token_budget(audio_s: float, per_s: float = TOKENS_PER_SECOND, extra: int = EXTRA_TOKENS) -> int:
    """The most tokens a decode of ``audio_s`` seconds may emit: ``per_s`` a second plus ``extra``, at least 1.

    Whisper (:func:`listend.whisper_window.token_cap`) and Moonshine
    (:func:`listend.moonshine.max_tokens`) both stop here: a decode that does
    not end by itself stops instead of looping to the model's limit.
    """
    return max(1, int(per_s * audio_s + extra))
