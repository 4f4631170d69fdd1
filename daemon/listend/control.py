"""The daemon's glue between engine, history and bus (:class:`Daemon`): what the D-Bus interface controls.

Engine events are stored (fsynced on the engine's publisher thread, durable
before announced) and handed to the asyncio loop with
``call_soon_threadsafe``, where :meth:`Daemon.announce` turns them into
signals. Blocking engine calls run in worker threads so the bus keeps
answering. The process around it -- start-up, single instance, signals,
shutdown -- is :mod:`server`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbus_next import MessageType

from . import sdnotify
from .bus import (
    notification,
)
from .commands import Action
from .config import DELIVERY_METHODS, ConfigError, Settings, command_table
from .dbusio import MessageBus
from .engine import Engine
from .events import (
    EngineEvent,
    ErrorReported,
    LanguageChanged,
    MemoryPressure,
    Partial,
    ProfileChanged,
    Refined,
    Retracted,
    StateChanged,
)
from .history import Segment, TranscriptStore
from .service import DictationInterface
from .sources import AudioSource, FileSource, MicrophoneSource
from .unfinished import UnfinishedAudio
from .units import MIB
from .vocabulary import Vocabulary

log = logging.getLogger("listend.server")

# The whole stop path -- capture, refining, live fallbacks, keeping what is
# left as audio, the last history writes -- fits in this, and the unit's
# TimeoutStopSec (25 s) leaves room above it.
STOP_BUDGET_S = 15.0
EXIT_HISTORY_UNSAVED = 3  # segments the history refused were saved elsewhere (or, if nowhere took them, lost)


@dataclass(frozen=True)
class DaemonOptions:
    """What the command line chose for this run (the rest is settings: config file and profile)."""

    config: str | None = None  # --config: the TOML file (None: the default place)
    lightweight: bool = False  # --lightweight: start with that profile
    source: str | None = None  # --source: replay this file instead of the microphone
    device: str | None = None  # --device: this input instead of audio.device
    start: bool = False  # --start: listen at once
    verbose: int = 0  # -v count: more log output

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DaemonOptions:
        return cls(args.config, args.lightweight, args.source, args.device, args.start, args.verbose)


class Daemon:
    """Glue between the engine, the history and the bus. Lives on the asyncio loop.

    It is the :class:`~listend.service.DaemonControl` the D-Bus interface translates to.
    It keeps no settings of its own: the engine's are the ones in force (they change
    with the profile), and it reads them where it needs them.
    """

    def __init__(
        self, options: DaemonOptions, settings: Settings, overrides: Mapping[str, Any], history: TranscriptStore
    ):
        self.options = options
        self.history = history
        unfinished = UnfinishedAudio()
        unfinished.prune_set_aside(settings.history.retention_days)
        self.words = Vocabulary(settings.vocabulary.words)
        self.engine = Engine(
            settings,
            overrides,
            first_segment_id=history.next_id(),
            unfinished=unfinished,
            hotwords=lambda: self.words.words,
        )
        self.interface = DictationInterface(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.bus: MessageBus | None = None
        self.live_text = ""
        self._live_id = 0
        self.rss_bytes = 0
        self.session_first_id = 0  # first segment id of the current (or last) listening session
        self.delivery = settings.delivery.method
        self._last_state = "loading"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._busy = asyncio.Lock()
        self._tick_failure = ""
        self.notifier = sdnotify.Notifier.from_environment()

    # -- what the D-Bus interface reads (DaemonControl) ----------------------------

    @property
    def state(self) -> str:
        return self.engine.state

    @property
    def profile(self) -> str:
        return self.engine.profile

    @property
    def last_error(self) -> str:
        return self.engine.last_error or self.history.last_error

    @property
    def last_segment_id(self) -> int:
        return self.history.last_id()

    @property
    def queue_refine(self) -> int:
        return self.engine.refine_queue_length

    @property
    def pending_segments(self) -> int:
        return self.engine.pending_segments

    def set_delivery(self, method: str) -> None:
        """Change where clients deliver text, for this run (``[delivery] method`` is the lasting choice)."""
        if method not in DELIVERY_METHODS:
            raise ConfigError(f"unknown delivery method {method[:40]!r} (one of {', '.join(DELIVERY_METHODS)})")
        if method != self.delivery:
            self.delivery = method
            if self.bus is not None:
                self.interface.emit_properties_changed({"Delivery": method})

    @property
    def language(self) -> str:
        """The language in force."""
        return self.engine.languages.current

    @property
    def languages(self) -> list[str]:
        return list(self.engine.languages.state().languages)

    @property
    def pinned_language(self) -> str:
        return self.engine.languages.state().pinned or ""

    def pin_language(self, language: str) -> None:
        """Pin ``language`` for now (``''``: detect within the set again); ValueError for one outside the set."""
        self.engine.languages.pin(language or None)

    def command_phrases(self) -> list[tuple[str, str]]:
        """``(action, phrase)`` of every command phrase in force, in table order."""
        return [(action.value, phrase) for phrase, action in command_table(self.engine.settings).phrases.items()]

    @property
    def vocabulary(self) -> list[str]:
        return self.words.words

    def add_vocabulary(self, word: str) -> None:
        if self.words.add(word):
            self._vocabulary_changed()

    def remove_vocabulary(self, word: str) -> None:
        if not self.words.remove(word):
            raise ValueError(f"{' '.join(word.split())[:64]!r} is not in the vocabulary")
        self._vocabulary_changed()

    def _follow_vocabulary(self) -> None:
        """The config's words of the profile in force ([<profile>.vocabulary] words), after a switch (loop thread)."""
        before = self.words.words
        self.words.configure(self.engine.settings.vocabulary.words)
        if self.words.words != before:
            self._vocabulary_changed()

    def _vocabulary_changed(self) -> None:
        if self.bus is not None:
            self.interface.emit_properties_changed({"Vocabulary": self.words.words})

    # -- engine events (the engine's publisher thread) ---------------------------

    def on_engine_event(self, event: EngineEvent) -> None:
        if isinstance(event, Refined):
            # Durable before announced; announced even when the disk refuses (the text is not
            # withheld: LastError says the history is failing, and it is saved at exit).
            try:
                written = self.history.append(
                    Segment(
                        event.id,
                        event.wall_start,
                        event.wall_end,
                        event.text,
                        event.live_text,
                        event.source,
                        event.command,
                        event.target,
                        event.amended,
                    )
                )
            except Exception:  # a record that cannot be stored must not stop the announcement
                log.exception("storing segment %d failed", event.id)
                written = []
            self._settle(written)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.announce, event)

    def _settle(self, ids: list[int]) -> None:
        for seg_id in ids:
            self.engine.settle(seg_id)

    def announce(self, event: EngineEvent) -> None:
        """Turn an engine event into signals and property changes (loop thread)."""
        i = self.interface
        match event:
            case Partial(id=seg_id, text=text):
                self._set_live(seg_id, text)
                i.PartialText(seg_id, text)
            case Refined():
                log.info(
                    "segment %d: %.1f s, %d chars (%s)",
                    event.id,
                    event.end - event.start,
                    len(event.text),
                    event.source,
                )
                if event.id >= self._live_id:
                    self._set_live(event.id, "")
                if event.command:  # before the segment itself: a client acts on the words, old ones type them
                    i.SegmentCommand(event.id, event.command, event.target, event.text)
                i.SegmentRefined(event.id, event.wall_start, event.wall_end, event.text)
                i.emit_properties_changed({"LastSegmentId": event.id})
                if event.command == Action.STOP_LISTENING.value:
                    log.info("segment %d: stop listening (said %r)", event.id, event.text)
                    self._spawn(self.stop())
            case Retracted(id=seg_id, kind=kind):
                if seg_id >= self._live_id:
                    self._set_live(seg_id, "")
                i.SegmentRetracted(seg_id, kind)
            case StateChanged(state=state, reason=reason):
                i.StateChanged(state)
                i.emit_properties_changed({"State": state, "LastError": self.last_error})
                self.notifier.status(f"{state}, profile {self.engine.profile}")
                if state == "error":
                    self.desktop_notify("listend: cannot listen", reason)
                elif state == "listening" and self._last_state == "error":
                    self.desktop_notify("listend: listening again", reason)
                self._last_state = state
            case ErrorReported():
                i.emit_properties_changed({"LastError": self.last_error})
            case MemoryPressure(level=level, rss_bytes=rss) if level != "normal":
                i.MemoryPressure(level, rss)
                self.notifier.status(f"memory {level}: {rss // MIB} MiB")
            case LanguageChanged(language=language, pinned=pinned, reason=reason, languages=languages):
                log.info("language %s%s (%s)", language, " (pinned)" if pinned else "", reason)
                changed: dict[str, Any] = {"Language": language, "PinnedLanguage": pinned}
                if languages:
                    changed["Languages"] = list(languages)
                i.emit_properties_changed(changed)
            case ProfileChanged(profile=profile, reason=reason):
                i.emit_properties_changed({"Profile": profile})
                self._follow_vocabulary()
                self.notifier.status(f"{self.engine.state}, profile {profile}")
                if reason == "memory limit":
                    self.desktop_notify(
                        "listend: memory limit reached", f"switched to the {profile} profile (accurate model unloaded)"
                    )

    def desktop_notify(self, summary: str, body: str) -> None:
        """A desktop notification, for what a user without a visible tray must know.

        A D-Bus call to ``org.freedesktop.Notifications`` (the daemon draws
        nothing itself); without a notification server it is only logged.
        """
        bus = self.bus
        if bus is None or self.loop is None:
            return

        async def send() -> None:
            reply = await bus.call(notification(summary, body))
            if reply is not None and reply.message_type == MessageType.ERROR:
                log.debug("no desktop notification (%s): %s: %s", reply.error_name, summary, body)

        self._spawn(send())

    def _spawn(self, coro: Any) -> None:
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set_live(self, seg_id: int, text: str) -> None:
        self._live_id = seg_id
        if text != self.live_text:
            self.live_text = text
            self.interface.emit_properties_changed({"LiveText": text})

    # -- actions (loop thread) ----------------------------------------------------

    def make_source(self, rescan: bool = False) -> AudioSource:
        if self.options.source:
            return FileSource(self.options.source, realtime=True)
        audio = self.engine.settings.audio
        return MicrophoneSource(self.options.device or audio.device, audio.block_ms, rescan=rescan)

    async def start(self) -> None:
        async with self._busy:
            if self.engine.state == "listening":
                return
            # A microphone that fails is reopened until it works again; a replay file is not.
            reopen = None if self.options.source else functools.partial(self.make_source, rescan=True)
            first_id = self.engine.next_segment_id
            await asyncio.to_thread(self.engine.start, self.make_source(), reopen)
            self.session_first_id = first_id
            self.interface.emit_properties_changed({"SessionFirstId": first_id})

    async def stop(self) -> None:
        async with self._busy:
            await asyncio.to_thread(self.engine.stop, STOP_BUDGET_S)

    async def toggle(self) -> bool:
        if self.engine.state == "listening":
            await self.stop()
            return False
        await self.start()
        return True

    async def set_profile(self, profile: str) -> None:
        async with self._busy:
            await asyncio.to_thread(self.engine.set_profile, profile, "requested over D-Bus")
            self._follow_vocabulary()  # before the reply: a caller reads the profile's vocabulary next

    def memory_report(self) -> dict[str, object]:
        """The engine's stats plus what only the daemon knows (history, bus writer)."""
        report = self.engine.stats().flat()
        report.update(
            history_unwritten=self.history.unwritten,
            history_dropped=self.history.dropped,
            history_skipped_lines=self.history.skipped_lines,
        )
        report["rss_bytes"] = report["rss_bytes"] or self.rss_bytes
        languages = self.engine.languages.state()
        report.update(language_detections=languages.detections, language_switches=languages.switches)
        if self.bus is not None:
            report.update(self.bus.writer_stats)
        return report

    async def tick(self) -> None:
        """Once a second: RSS property, history retries, and the systemd watchdog (only while the pipeline beats).

        Nothing that goes wrong here ends the tick: it is what feeds the watchdog.
        """
        import psutil

        process = psutil.Process()
        while True:
            try:
                await self._tick_once(process)
            except Exception as e:
                message = f"{type(e).__name__}: {e}"
                if message != self._tick_failure:  # once per new reason, not every second
                    self._tick_failure = message
                    log.exception("the once-a-second tick failed (it goes on)")
            await asyncio.sleep(min(1.0, self.notifier.watchdog_interval or 1.0))

    async def _tick_once(self, process: Any) -> None:
        rss = process.memory_info().rss
        if abs(rss - self.rss_bytes) >= MIB:  # announce changes of 1 MiB or more
            self.rss_bytes = rss
            self.interface.emit_properties_changed({"RssBytes": rss})
        self.notifier.watchdog_if_alive(self.engine.heartbeat)
        if self.history.unwritten:
            before = self.history.last_error
            self._settle(await asyncio.to_thread(self.history.flush))
            if self.history.last_error != before:
                self.interface.emit_properties_changed({"LastError": self.last_error})

    def save_history(self) -> int:
        """At exit: write what waits; what the history still refuses is saved elsewhere. Returns the exit status."""
        self._settle(self.history.flush())
        if not self.history.unwritten:
            return 0
        ids, where = self.history.save_unwritten()
        if ids:
            self._settle(ids)
            log.error(
                "%d segment(s) the history refused (%s) were saved to %s; they are written to the "
                "history at the next start",
                len(ids),
                self.history.last_error,
                where,
            )
        else:
            log.error(
                "%d segment(s) could not be written to the history (%s) nor saved anywhere (%s): lost",
                self.history.unwritten,
                self.history.last_error,
                where,
            )
        return EXIT_HISTORY_UNSAVED
