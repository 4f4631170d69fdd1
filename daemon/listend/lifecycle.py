"""The engine's models over their life: loaded, released when idle, loaded again, switched with the profile.

:class:`ModelLifecycle` owns the settings in force, the decoders built from
them (:func:`~listend.profiles.build_decoders`) and ``ready``, the event the
workers wait on before they take work: it is set only while there are
decoders. Every change of models -- the first load, a release after
``models.unload_after_s`` idle, the load again at the next start, a profile
switch (``SetProfile``, the memory watchdog's degrade) -- happens under one
lock, one at a time, and hands the decoders to the stages that use them
through :class:`Stages`; the old ones are freed only once no decode uses
them.

A load again that fails (a damaged model cache that cannot be rebuilt, a
full disk) is not the end of the service: the engine is told, keeps what
was captured as audio, and the next start tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .config import MULTILINGUAL_FOR, PROFILE_PRESETS, ConfigError, MemoryOptions, Settings, build_settings
from .decoders import WhisperDecoder
from .events import LanguageChanged, ProfileChanged
from .languages import LanguageState, SessionLanguages
from .memory import MemoryWatchdog
from .outcome import Outcome
from .profiles import DecoderSet
from .stats import ModelStats

log = logging.getLogger("listend.lifecycle")

DecoderFactory = Callable[[Settings, DecoderSet | None], DecoderSet]
"""Builds the decoders ``settings`` name, reusing those of the second argument where it can
(:func:`~listend.profiles.build_decoders` with a model loader; unit tests inject stand-ins)."""


class Stages(Protocol):
    """The stages that decode, as the model life cycle sees them."""

    def use(self, settings: Settings, decoders: DecoderSet) -> None:
        """Hand the stages new settings and decoders; returns once no decode uses the old ones."""
        ...

    def release(self) -> None:
        """Drop the decoders; returns once no decode uses them."""
        ...


class ModelLifecycle:
    """Owns the settings in force and the decoders, and changes them one change at a time.

    Parameters
    ----------
    settings : Settings
        The settings to start with.
    overrides : mapping
        The user's config-file values, to rebuild settings for another profile.
    build : callable
        Builds the decoders for settings (a :data:`DecoderFactory`).
    memory : MemoryWatchdog
        Judged by the more generous limits while models load; trimmed after models go.
    publish : callable
        Where :class:`~listend.events.ProfileChanged` goes.
    report : callable
        Told of failures the engine goes on after (shown on ``LastError``).
    """

    def __init__(
        self,
        settings: Settings,
        overrides: Mapping[str, Any],
        build: DecoderFactory,
        memory: MemoryWatchdog,
        publish: Callable[[ProfileChanged | LanguageChanged], None],
        report: Callable[[str], None],
    ):
        self._settings = settings
        self._overrides = dict(overrides)
        self._build = build
        self._memory = memory
        self._publish = publish
        self._report = report
        self._lock = threading.Lock()  # one change of models at a time
        self.ready = threading.Event()  # set while there are decoders: the workers decode only then
        self._stages: Stages | None = None
        self._decoders: DecoderSet | None = None
        self._releases = self._loads = 0
        # The user's vocabulary, read by the refine and final decoders at each decode (it outlives every model).
        self.hotwords: Callable[[], Sequence[str]] = lambda: ()
        # The language in force, the user's set and a pin: outlives every model (a pin stays across a switch).
        self.languages = SessionLanguages(
            settings.decode.language_set,
            changed=lambda state, why: publish(_language_changed(state, why)),
        )

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def decoders(self) -> DecoderSet | None:
        """The decoders in use; None before the first load and while released."""
        return self._decoders

    @property
    def released(self) -> bool:
        return self._stages is not None and self._decoders is None

    def stats(self) -> ModelStats:
        return ModelStats(self._decoders is not None and self.ready.is_set(), self._releases, self._loads)

    def load(self) -> DecoderSet:
        """The first load: the decoders of the current settings, for the caller to build the stages with."""
        with self._lock:
            self._decoders = self._built(self._settings, None)
            return self._decoders

    def attach(self, stages: Stages) -> None:
        """The stages built with :meth:`load`'s decoders: from now on, changes go to them; decoding may begin."""
        with self._lock:
            self._stages = stages
            self.ready.set()

    def release(self, allowed: Callable[[], bool] = lambda: True) -> bool:
        """Release the models (idle) if ``allowed()`` says so under the lock; False if not loaded or not allowed."""
        with self._lock:
            if self._stages is None or self._decoders is None or not allowed():
                return False
            self.ready.clear()  # the workers stop taking work
            self._stages.release()
            self._decoders = None
            self._releases += 1
            self._memory.release()
        log.info("models released (idle)")
        return True

    def ensure_loaded(self, failed: Callable[[str], None]) -> None:
        """After a release: load the models again beside the caller; ``failed(message)`` if that fails.

        Called after capture started: a release that runs meanwhile sees it
        listening and refuses, and one already under way is waited for.
        """
        if self._decoders is not None and not self._lock.locked():
            return

        def reload() -> None:
            try:
                self.reload()
            except Exception as e:  # nothing can decode what is heard: the engine keeps it as audio
                message = f"cannot load the models again: {_one_line(e)}"
                log.error("%s", message)
                failed(message)

        threading.Thread(target=reload, name="listend-load", daemon=True).start()

    def reload(self) -> None:
        """Load the models of the current settings again (after :meth:`release`)."""
        with self._lock:
            if self._decoders is not None or self._stages is None:
                return
            decoders = self._built(self._settings, None)
            self._stages.use(self._settings, decoders)
            self._decoders = decoders
            self._loads += 1
            self.ready.set()
        log.info("models loaded again")

    def switch(self, profile: str, reason: str = "") -> None:
        """Switch to ``profile``, loading and unloading models as needed.

        Raises :class:`ConfigError` if the user's settings do not fit the profile.
        """
        with self._lock:
            new = build_settings(profile, self._overrides)
            old, current, stages = self._settings, self._decoders, self._stages
            if new.profile == old.profile and current is not None:
                return
            if stages is None:  # not loaded yet: the first load uses the new settings
                self._settings = new
            else:
                # Loading a model raises RSS: judge it by the more generous limits until the switch is done.
                self._memory.configure(_generous(old.memory, new.memory))
                decoders = self._built(new, current)
                self._settings = new
                stages.use(new, decoders)
                if current is None:
                    self._loads += 1  # released when idle: loaded again by the switch
                self._decoders = decoders
                self.ready.set()
                del current  # the old models go with the last reference
                self._memory.configure(new.memory)
                self._memory.release()
        log.info("profile %s%s", profile, f" ({reason})" if reason else "")
        self._publish(ProfileChanged(profile, reason))
        # The languages are announced again, changed or not: a client that follows the profile
        # (the tray's menu, the input method's spacing) reads them at the same moment.
        self._publish(_language_changed(self.languages.state(), f"profile {profile}"))

    def _built(self, settings: Settings, reuse: DecoderSet | None) -> DecoderSet:
        """The decoders ``settings`` name, every Whisper one choosing its language with :attr:`languages`."""
        decoders = self._build(settings, reuse)
        preset = PROFILE_PRESETS.get(settings.profile, {}).get("models", {}).get("live", "")
        if MULTILINGUAL_FOR.get(preset) == settings.models.live:  # one line at each load and switch: why this model
            others = ", ".join(code for code in settings.decode.language_set if code != "en")[:60] or "any language"
            log.info(
                "profile %s: its one model is %s (%s writes English only; the languages set hold %s)",
                settings.profile,
                settings.models.live,
                preset,
                others,
            )
        self.languages.reconfigure(settings.decode.language_set)
        for decoder in (decoders.live, decoders.final, decoders.refine, decoders.live_multilingual):
            if isinstance(decoder, WhisperDecoder):
                decoder.languages = self.languages
        for decoder in (decoders.final, decoders.refine):  # not the live pass: no false corrections while typing
            if isinstance(decoder, WhisperDecoder):
                decoder.hotwords = self.hotwords
        return decoders

    def degrade(self) -> Outcome:
        """Memory over limit: shed the refine model by switching to lightweight (in the background)."""
        if self._settings.profile == "lightweight":
            return Outcome.failed("already lightweight; cleaned up")
        if self._lock.locked():
            return Outcome.failed("a profile switch is under way; cleaned up")
        try:
            build_settings("lightweight", self._overrides)
        except ConfigError as e:
            self._report(f"memory limit: cannot switch to lightweight: {e}")
            return Outcome.failed(f"cannot switch to lightweight: {e}")

        def switch() -> None:
            try:
                self.switch("lightweight", "memory limit")
            except Exception as e:  # reported, never a silent thread death
                log.exception("switching to lightweight failed")
                self._report(f"memory limit: switching to lightweight failed: {e}")

        threading.Thread(target=switch, name="listend-degrade", daemon=True).start()
        return Outcome.done("switching to the lightweight profile (refine model unloaded)")

    def release_when_idle(self, idle_since: Callable[[], float | None], closing: threading.Event) -> None:
        """Start the idle timer: release the models ``models.unload_after_s`` after ``idle_since()``.

        ``idle_since()`` is None while the engine is busy (listening, owing text, in error); it is asked
        again under the lock before the release.
        """

        def idle() -> bool:
            after = self._settings.models.unload_after_s
            since = idle_since()
            return bool(after) and since is not None and time.monotonic() - since >= after

        def run() -> None:
            while not closing.wait(1.0):
                if self._decoders is not None and idle():
                    self.release(idle)

        threading.Thread(target=run, name="listend-idle", daemon=True).start()


def _language_changed(state: LanguageState, why: str) -> LanguageChanged:
    return LanguageChanged(state.language, state.pinned or "", why, state.languages)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def _generous(a: MemoryOptions, b: MemoryOptions) -> MemoryOptions:
    return MemoryOptions(
        max(a.warn_mb, b.warn_mb),
        max(a.cleanup_mb, b.cleanup_mb),
        max(a.limit_mb, b.limit_mb),
        min(a.sample_interval_s, b.sample_interval_s),
        min(a.trim_interval_s, b.trim_interval_s),
    )
