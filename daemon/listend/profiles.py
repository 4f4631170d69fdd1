"""Profiles at run time: which models the passes run, and switching between profiles.

A profile is configuration (:mod:`config`); switching one means building the
new settings, loading the models the new settings name (reusing those that
stay), handing them to the running pipeline, and freeing the old ones once
no decode uses them. :class:`ProfileSwitcher` does that, one switch at a
time, for ``SetProfile`` and for the memory watchdog's degrade.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .config import ConfigError, MemoryOptions, Settings, build_settings
from .decoders import Decoder, PassOptions, WhisperDecoder
from .events import ProfileChanged
from .memory import MemoryWatchdog
from .models import ModelSpec, load_whisper
from .moonshine import NAME as MOONSHINE
from .moonshine import MoonshineDecoder, load_moonshine
from .outcome import Outcome

log = logging.getLogger("listend.profiles")

ModelLoader = Callable[[ModelSpec], Any]
"""Loads the model a :class:`ModelSpec` names (tests inject failing or slow ones)."""


@dataclass(frozen=True)
class DecoderSet:
    """The decoders of every pass: ``refine`` is None without a refine model."""

    live: Decoder
    final: Decoder  # what the live pass commits when it finalises an utterance itself
    refine: Decoder | None


class Pipeline(Protocol):
    """What a profile switch changes in the running engine."""

    def decoders(self) -> DecoderSet | None:
        """The decoders in use (None before the first load)."""
        ...

    def apply(self, settings: Settings, decoders: DecoderSet) -> None:
        """Hand the pipeline new settings and decoders; returns once no decode uses the old ones."""
        ...

    def release(self) -> None:
        """Drop the decoders once no decode uses them; decoding waits until :meth:`apply` hands new ones."""
        ...

    def publish(self, event: ProfileChanged) -> None: ...

    def report(self, message: str) -> None:
        """A failure the engine goes on after (shown on ``LastError``)."""
        ...


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
    return DecoderSet(live, final, refine)


class ProfileSwitcher:
    """Owns the current settings and switches profiles, one switch at a time.

    Parameters
    ----------
    settings : Settings
        The settings to start with.
    overrides : mapping
        The user's config-file values, to rebuild settings for another profile.
    load_model : callable
        Loads a model for a :class:`ModelSpec`.
    memory : MemoryWatchdog
        Judged by the more generous limits while models load.
    """

    def __init__(
        self, settings: Settings, overrides: Mapping[str, Any], load_model: ModelLoader, memory: MemoryWatchdog
    ):
        self.settings = settings
        self._overrides = overrides
        self._load_model = load_model
        self._memory = memory
        self._lock = threading.Lock()  # one switch at a time

    def load(self) -> DecoderSet:
        """The decoders of the current settings (the first load)."""
        return build_decoders(self.settings, self._load_model)

    def switch(self, pipeline: Pipeline, profile: str, reason: str = "") -> None:
        """Switch to ``profile``, loading and unloading models as needed.

        Raises :class:`ConfigError` if the user's settings do not fit the profile.
        """
        with self._lock:
            new = build_settings(profile, self._overrides)
            old = self.settings
            current = pipeline.decoders()
            if new.profile == old.profile and current is not None:
                return
            # Loading a model raises RSS: judge it by the more generous limits until the switch is done.
            self._memory.configure(_generous(old.memory, new.memory))
            decoders = build_decoders(new, self._load_model, reuse=current)
            self.settings = new
            pipeline.apply(new, decoders)
            del current  # the old models go with the last reference
            self._memory.configure(new.memory)
            self._memory.release()
        log.info("profile %s%s", profile, f" ({reason})" if reason else "")
        pipeline.publish(ProfileChanged(profile, reason))

    def release(self, pipeline: Pipeline) -> bool:
        """Release the models (idle); returns False if they were not loaded."""
        with self._lock:
            if pipeline.decoders() is None:
                return False
            pipeline.release()
            self._memory.release()
        log.info("models released (idle)")
        return True

    def reload(self, pipeline: Pipeline) -> None:
        """Load the models of the current settings again (after :meth:`release`)."""
        with self._lock:
            if pipeline.decoders() is not None:
                return
            pipeline.apply(self.settings, build_decoders(self.settings, self._load_model))
        log.info("models loaded again")

    def degrade(self, pipeline: Pipeline) -> Outcome:
        """Memory over limit: shed the refine model by switching to lightweight (in the background)."""
        if self.settings.profile == "lightweight":
            return Outcome.failed("already lightweight; cleaned up")
        if self._lock.locked():
            return Outcome.failed("a profile switch is under way; cleaned up")
        try:
            build_settings("lightweight", self._overrides)
        except ConfigError as e:
            pipeline.report(f"memory limit: cannot switch to lightweight: {e}")
            return Outcome.failed(f"cannot switch to lightweight: {e}")

        def switch() -> None:
            try:
                self.switch(pipeline, "lightweight", "memory limit")
            except Exception as e:  # reported, never a silent thread death
                log.exception("switching to lightweight failed")
                pipeline.report(f"memory limit: switching to lightweight failed: {e}")

        threading.Thread(target=switch, name="listend-degrade", daemon=True).start()
        return Outcome.done("switching to the lightweight profile (refine model unloaded)")


def _generous(a: MemoryOptions, b: MemoryOptions) -> MemoryOptions:
    return MemoryOptions(
        max(a.warn_mb, b.warn_mb),
        max(a.cleanup_mb, b.cleanup_mb),
        max(a.limit_mb, b.limit_mb),
        min(a.sample_interval_s, b.sample_interval_s),
        min(a.trim_interval_s, b.trim_interval_s),
    )
