"""Which models the passes run: the decoders a profile's settings name.

A profile is configuration (:mod:`config`); :func:`build_decoders` loads the
models the settings name, reusing those that stay across a switch, and
:func:`load_model` knows where each model comes from. When models are loaded,
released and switched is :mod:`lifecycle`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .decoders import Decoder, PassOptions, WhisperDecoder
from .models import ModelSpec, load_whisper
from .moonshine import NAME as MOONSHINE
from .moonshine import MoonshineDecoder, load_moonshine

MULTILINGUAL_LIVE = "base"  # the multilingual model listend ships (embedded, nothing to download)

ModelLoader = Callable[[ModelSpec], Any]
"""Loads the model a :class:`ModelSpec` names (tests inject failing or slow ones)."""


@dataclass(frozen=True)
class DecoderSet:
    """The decoders of every pass: ``refine`` is None without a refine model."""

    live: Decoder
    final: Decoder  # what the live pass commits when it finalises an utterance itself
    refine: Decoder | None
    # Partials while the language in force is not English, where the live model speaks English only
    # (Moonshine base-en) and the user's set holds another language: Whisper base with the live options.
    live_multilingual: Decoder | None = None


def load_model(spec: ModelSpec) -> Any:
    """A Moonshine model for ``moonshine-base``, else a faster-whisper model (see :mod:`models`)."""
    if spec.name == MOONSHINE:
        # One thread: its matrices are small (two threads measured no faster), and the live and refine
        # passes share one model, each decoding on a core of its own.
        return load_moonshine(spec.cpu_threads or 1)
    return load_whisper(spec)


def build_decoders(settings: Settings, load_model: ModelLoader, reuse: DecoderSet | None = None) -> DecoderSet:
    """Load the models ``settings`` names, reusing the loaded ones of ``reuse`` where the name is the same."""
    m, d = settings.models, settings.decode
    moonshine: list[Any] = [reuse.live.model] if reuse and isinstance(reuse.live, MoonshineDecoder) else []

    def decoder(name: str, options: PassOptions, current: Decoder | None, threads: int) -> Decoder:
        if name == MOONSHINE:
            # An ONNX Runtime session runs from several threads at once: every pass shares one model.
            if not moonshine and isinstance(current, MoonshineDecoder):
                moonshine.append(current.model)
            if not moonshine:
                moonshine.append(load_model(ModelSpec(name, m.device, m.compute_type, m.cpu_threads)))
            return MoonshineDecoder(moonshine[0])
        if isinstance(current, WhisperDecoder) and current.model_name == name:
            return current.with_options(options)
        spec = ModelSpec(name, m.device, m.compute_type, m.cpu_threads or threads)
        return WhisperDecoder(load_model(spec), name, options)

    # Automatic threads for Whisper: the refine pass gets every core (the live pass
    # pauses while an utterance ends, which is when refining runs); the
    # live pass gets half of them beside a refine model, all without one.
    cores = os.cpu_count() or 2
    live = decoder(
        m.live, PassOptions.live(d), reuse.live if reuse else None, max(1, cores // 2) if m.refine else cores
    )
    refine = None
    if m.refine:
        # Never share one Whisper model between the two threads (faster-whisper #1055).
        current = reuse.refine if reuse and (m.refine != m.live or m.refine == MOONSHINE) else None
        refine = decoder(m.refine, PassOptions.refine(d), current, cores)
    final = live.with_options(PassOptions.final(d)) if isinstance(live, WhisperDecoder) else live
    multilingual = None
    if isinstance(live, MoonshineDecoder) and any(code != "en" for code in d.language_set):
        # A model of its own: never one Whisper model for two threads (faster-whisper #1055).
        current = reuse.live_multilingual if reuse else None
        multilingual = decoder(MULTILINGUAL_LIVE, PassOptions.live(d), current, max(1, cores // 2))
    return DecoderSet(live, final, refine, multilingual)
