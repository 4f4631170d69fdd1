"""The daemon process: start-up, the glue between engine, history and bus, and shutdown.

* Start-up: config, the session bus (or a private one when there is none),
  single instance (a name on the bus means ready), models, signals.
* Glue (:class:`Daemon`): engine events are stored (fsynced on the engine's
  publisher thread, durable before announced) and handed to the asyncio loop
  with ``call_soon_threadsafe``, where :mod:`service` turns them into signals.
  Blocking engine calls run in worker threads so the bus keeps answering.
* Shutdown: SIGTERM/SIGINT stop within :data:`STOP_BUDGET_S` (below the
  unit's ``TimeoutStopSec``); a lost bus connection is logged and exits 1, so
  ``Restart=on-failure`` brings the daemon back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys

from dbus_next import BusType, MessageType
from dbus_next.constants import NameFlag, RequestNameReply
from dbus_next.errors import DBusError

from . import sdnotify
from .bus import (BUS_NAME, OBJECT_PATH, NoBusError, bus_owner_pid, call_bus_daemon, find_session_bus,
                  forget_private_bus, notification, start_private_bus)
from .config import ConfigError, load_settings
from .dbusio import MessageBus
from .engine import Engine
from .events import ErrorReported, MemoryPressure, Partial, ProfileChanged, Refined, Retracted, StateChanged
from .history import Segment, TranscriptStore
from .models import ModelUnavailable
from .service import DictationInterface, LargeReplies
from .sources import FileSource, MicrophoneSource, SourceError

log = logging.getLogger("listend.server")

# The whole stop path -- capture, refining, live fallbacks, keeping what is
# left as audio, the last history writes -- fits in this, and the unit's
# TimeoutStopSec (25 s) leaves room above it.
STOP_BUDGET_S = 15.0
EXIT_BUS_LOST = 1


class Daemon:
    """Glue between the engine, the history and the bus. Lives on the asyncio loop."""

    def __init__(self, args, settings, overrides):
        self.args = args
        self.settings = settings
        self.history = TranscriptStore(
            settings.history.directory or None, retention_days=settings.history.retention_days)
        self.engine = Engine(settings, overrides, first_segment_id=self.history.next_id())
        self.interface = DictationInterface(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.bus: MessageBus | None = None
        self.live_text = ""
        self._live_id = 0
        self.rss_bytes = 0
        self.session_first_id = 0  # first segment id of the current (or last) listening session
        self._last_state = "loading"
        self._notifications: set = set()
        self._busy = asyncio.Lock()
        self.notifier = sdnotify.Notifier.from_environment()

    @property
    def last_error(self) -> str:
        return self.engine.last_error or self.history.last_error

    # -- engine events (the engine's publisher thread) ---------------------------

    def on_engine_event(self, event) -> None:
        if isinstance(event, Refined):
            # Durable before announced.
            self.history.append(Segment(event.id, event.wall_start, event.wall_end, event.text,
                                        event.live_text, event.source))
        self.loop.call_soon_threadsafe(self._announce, event)

    def _announce(self, event) -> None:
        i = self.interface
        if isinstance(event, Partial):
            self._set_live(event.id, event.text)
            i.PartialText(event.id, event.text)
        elif isinstance(event, Refined):
            log.info("segment %d: %.1f s, %d chars (%s)", event.id, event.end - event.start, len(event.text),
                     event.source)
            if event.id >= self._live_id:
                self._set_live(event.id, "")
            i.SegmentRefined(event.id, event.wall_start, event.wall_end, event.text)
            i.emit_properties_changed({"LastSegmentId": event.id})
        elif isinstance(event, Retracted):
            if event.id >= self._live_id:
                self._set_live(event.id, "")
        elif isinstance(event, StateChanged):
            i.StateChanged(event.state)
            i.emit_properties_changed({"State": event.state, "LastError": self.last_error})
            self.notifier.status(f"{event.state}, profile {self.engine.profile}")
            if event.state == "error":
                self.desktop_notify("listend: cannot listen", event.reason)
            elif event.state == "listening" and self._last_state == "error":
                self.desktop_notify("listend: listening again", event.reason)
            self._last_state = event.state
        elif isinstance(event, ErrorReported):
            i.emit_properties_changed({"LastError": self.last_error})
        elif isinstance(event, MemoryPressure):
            if event.level != "normal":
                i.MemoryPressure(event.level, event.rss_bytes)
                self.notifier.status(f"memory {event.level}: {event.rss_bytes // 2**20} MiB")
        elif isinstance(event, ProfileChanged):
            i.emit_properties_changed({"Profile": event.profile})
            self.notifier.status(f"{self.engine.state}, profile {event.profile}")
            if event.reason == "memory limit":
                self.desktop_notify("listend: memory limit reached",
                                    f"switched to the {event.profile} profile (accurate model unloaded)")

    def desktop_notify(self, summary: str, body: str) -> None:
        """A desktop notification, for what a user without a visible tray must know.

        A D-Bus call to ``org.freedesktop.Notifications`` (the daemon draws
        nothing itself); without a notification server it is only logged.
        """
        if self.bus is None:
            return

        async def send() -> None:
            reply = await self.bus.call(notification(summary, body))
            if reply.message_type == MessageType.ERROR:
                log.debug("no desktop notification (%s): %s: %s", reply.error_name, summary, body)

        task = self.loop.create_task(send())
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    def _set_live(self, seg_id: int, text: str) -> None:
        self._live_id = seg_id
        if text != self.live_text:
            self.live_text = text
            self.interface.emit_properties_changed({"LiveText": text})

    # -- actions (loop thread) ----------------------------------------------------

    def make_source(self, rescan: bool = False):
        if self.args.source:
            return FileSource(self.args.source, realtime=True)
        return MicrophoneSource(self.args.device or self.settings.audio.device, self.settings.audio.block_ms,
                                rescan=rescan)

    async def start(self) -> None:
        async with self._busy:
            if self.engine.state == "listening":
                return
            # A microphone that fails is reopened until it works again; a replay file is not.
            reopen = None if self.args.source else functools.partial(self.make_source, rescan=True)
            first_id = self.engine.next_segment_id
            await asyncio.to_thread(self.engine.start, self.make_source(), reopen)
            self.session_first_id = first_id
            self.interface.emit_properties_changed({"SessionFirstId": first_id})

    async def stop(self) -> None:
        async with self._busy:
            await asyncio.to_thread(self.engine.stop, STOP_BUDGET_S)

    async def set_profile(self, profile: str) -> None:
        async with self._busy:
            await asyncio.to_thread(self.engine.set_profile, profile, "requested over D-Bus")

    def memory_report(self) -> dict:
        """The engine's stats plus what only the daemon knows (history, bus writer)."""
        report = self.engine.stats().flat()
        report.update(history_unwritten=self.history.unwritten, history_dropped=self.history.dropped,
                      history_skipped_lines=self.history.skipped_lines)
        report["rss_bytes"] = report["rss_bytes"] or self.rss_bytes
        if self.bus is not None:
            report.update(self.bus.writer_stats)
        return report

    async def tick(self) -> None:
        """Once a second: RSS property, history retries, and the systemd watchdog (only while the pipeline beats)."""
        import psutil

        process = psutil.Process()
        while True:
            rss = process.memory_info().rss
            if abs(rss - self.rss_bytes) >= 1 << 20:  # announce changes of 1 MiB or more
                self.rss_bytes = rss
                self.interface.emit_properties_changed({"RssBytes": rss})
            self.notifier.watchdog_if_alive(self.engine.heartbeat)
            if self.history.unwritten:
                await asyncio.to_thread(self.history.flush)
            await asyncio.sleep(min(1.0, self.notifier.watchdog_interval or 1.0))


async def serve(args) -> int:
    try:
        settings, overrides = load_settings(args.config, "lightweight" if args.lightweight else None)
        if args.source:
            FileSource(args.source)  # check the file now: a bad file is a usage error
    except (ConfigError, SourceError) as e:
        print(f"listend: {e}", file=sys.stderr)
        return 2

    private_bus = None
    address = find_session_bus()
    if address is None:
        try:
            address, pid = start_private_bus()
        except NoBusError as e:
            print(f"listend: {e}", file=sys.stderr)
            return 1
        private_bus = (address, pid)
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
        log.warning("no session bus found; started a private one (listenctl finds it): "
                    "export DBUS_SESSION_BUS_ADDRESS='%s'", address)
    try:
        return await _serve_on(args, settings, overrides, address)
    finally:
        if private_bus:
            forget_private_bus(private_bus[0])
            try:
                os.kill(private_bus[1], signal.SIGTERM)
            except OSError:
                pass


async def _serve_on(args, settings, overrides, address: str) -> int:
    daemon = Daemon(args, settings, overrides)
    daemon.loop = asyncio.get_running_loop()
    try:
        bus = await MessageBus(bus_address=address, bus_type=BusType.SESSION).connect()
    except Exception as e:
        print(f"listend: cannot connect to the D-Bus session bus at {address}: {e}", file=sys.stderr)
        return 1
    daemon.bus = bus
    # A quick check before loading models for seconds: is another listend there?
    reply = await call_bus_daemon(bus, "NameHasOwner", "s", [BUS_NAME])
    if reply.body and reply.body[0]:
        print(f"listend: listend is already running (pid {await bus_owner_pid(bus)})", file=sys.stderr)
        bus.disconnect()
        return 1

    daemon.engine.subscribe(daemon.on_engine_event)
    log.info("loading models (profile %s)", settings.profile)
    try:
        await asyncio.to_thread(daemon.engine.load)
    except ModelUnavailable as e:
        print(f"listend: {e}", file=sys.stderr)
        bus.disconnect()
        return 1
    bus.add_message_handler(LargeReplies(bus, daemon.history))
    bus.export(OBJECT_PATH, daemon.interface)
    # Models are loaded before the name is taken: a name on the bus means ready.
    if await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE) != RequestNameReply.PRIMARY_OWNER:
        print(f"listend: listend is already running (pid {await bus_owner_pid(bus)})", file=sys.stderr)
        daemon.engine.close(0)
        bus.disconnect()
        return 1
    log.info("ready on %s as %s (pid %d)", address, BUS_NAME, os.getpid())
    daemon.notifier.ready(f"idle, profile {settings.profile}")

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        daemon.loop.add_signal_handler(sig, stop.set)
    ticker = asyncio.create_task(daemon.tick())
    disconnected = asyncio.create_task(bus.wait_for_disconnect())
    recovered = asyncio.create_task(asyncio.to_thread(daemon.engine.recover_unfinished))
    if args.start:
        try:
            await daemon.start()
        except SourceError as e:
            log.error("%s", e)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, disconnected], return_when=asyncio.FIRST_COMPLETED)

    status = 0
    if disconnected.done():
        error = disconnected.exception() if not disconnected.cancelled() else None
        log.error("lost the D-Bus connection (%s); stopping so that the service manager restarts listend",
                  f"{type(error).__name__}: {error}" if error else "closed by the bus")
        status = EXIT_BUS_LOST
    log.info("shutting down: finishing what was heard (at most %.0f s)", STOP_BUDGET_S)
    daemon.notifier.stopping()
    ticker.cancel()
    recovered.cancel()
    await asyncio.to_thread(daemon.engine.close, STOP_BUDGET_S)
    daemon.history.flush()
    await asyncio.sleep(0)  # let the last signals go out
    if not disconnected.done():
        try:
            await bus.release_name(BUS_NAME)
        except Exception:
            pass
        bus.disconnect()
    log.info("stopped")
    return status


class _QuietClientErrors(logging.Filter):
    """dbus-next logs a traceback for every bad call it already answered with an error.

    Those are the client's mistakes, answered properly; logging them (with the
    caller's arbitrarily long strings) would let any client flood the journal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DBusError):
            return False
        if isinstance(record.msg, str) and record.msg.startswith("got unexpected error processing a message") \
                and "dbus_next.errors.DBusError" in record.msg:
            return False
        if isinstance(record.msg, str) and len(record.msg) > 2000:
            record.msg = record.msg[:2000] + "…"
        return True


def run_daemon(args) -> int:
    from .cliutil import setup_logging

    setup_logging(args.verbose, default=logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietClientErrors())
    return asyncio.run(serve(args))
