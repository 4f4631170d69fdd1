"""The D-Bus face of the engine: ``io.github.listend.Dictation1`` on the session bus.

This module only translates: method calls into engine calls, engine events
into signals and property changes, exceptions into typed D-Bus errors. The
asyncio loop runs on the main thread; engine events arrive on engine threads
and are handed over with ``call_soon_threadsafe``. Blocking engine calls
(stop with drain, profile switch with model loading) run in worker threads so
the bus keeps answering.

No ``from __future__ import annotations`` here: dbus-next reads the D-Bus
signatures from the annotations at run time.
"""

import asyncio
import functools
import logging
import os
import signal
import sys

from dbus_next import BusType, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.constants import NameFlag, PropertyAccess, RequestNameReply
from dbus_next.errors import DBusError
from dbus_next.service import ServiceInterface, dbus_property, method, signal as dbus_signal

from . import sdnotify
from .bus import BUS_NAME, ERROR_PREFIX, INTERFACE, OBJECT_PATH, NoBusError, call_bus_daemon, find_session_bus, \
    forget_private_bus, start_private_bus
from .config import ConfigError, load_settings
from .engine import Engine, EngineError
from .events import MemoryPressure, Partial, ProfileChanged, Refined, Retracted, StateChanged
from .history import MAX_LIMIT, Segment, TranscriptStore
from .models import ModelUnavailable
from .sources import FileSource, MicrophoneSource, SourceError

log = logging.getLogger("listend.service")

DRAIN_TIMEOUT_S = 10.0  # systemd's TimeoutStopSec must stay above this
MAX_RECENT = 10_000


def _error(kind: str, message: str) -> DBusError:
    return DBusError(ERROR_PREFIX + kind, message)


def translate_errors(fn):
    """Turn every exception into a typed D-Bus error: never leak a traceback."""

    @functools.wraps(fn)
    async def wrapper(self, *args):
        try:
            return await fn(self, *args)
        except DBusError:
            raise
        except (ValueError, ConfigError) as e:
            raise _error("InvalidArgs", str(e)) from None
        except SourceError as e:
            raise _error("NotAvailable", str(e)) from None
        except (EngineError, ModelUnavailable) as e:
            raise _error("Failed", str(e)) from None
        except Exception as e:
            log.exception("unexpected error in %s", fn.__name__)
            raise _error("Failed", f"internal error: {type(e).__name__}") from None

    return wrapper


class DictationInterface(ServiceInterface):
    """``io.github.listend.Dictation1`` -- see ``docs/dbus.md``."""

    def __init__(self, daemon: "Daemon"):
        super().__init__(INTERFACE)
        self._d = daemon

    # -- methods ----------------------------------------------------------------

    @method()
    @translate_errors
    async def Start(self):
        await self._d.start()

    @method()
    @translate_errors
    async def Stop(self):
        await self._d.stop()

    @method()
    @translate_errors
    async def Toggle(self) -> "b":
        if self._d.engine.state == "listening":
            await self._d.stop()
            return False
        await self._d.start()
        return True

    @method()
    @translate_errors
    async def GetTranscript(self, since_id: "t", limit: "u") -> "a(tdds)":
        if limit > MAX_LIMIT:
            raise ValueError(f"limit {limit} is too large (at most {MAX_LIMIT}; 0 = default)")
        return [[s.id, s.start, s.end, s.text] for s in self._d.history.since(since_id, limit)]

    @method()
    @translate_errors
    async def GetRecent(self, count: "u") -> "a(tdds)":
        if count > MAX_RECENT:
            raise ValueError(f"count {count} is too large (at most {MAX_RECENT})")
        return [[s.id, s.start, s.end, s.text] for s in self._d.history.recent(count)]

    @method()
    @translate_errors
    async def GetMemory(self) -> "a{sv}":
        return self._d.memory_report()

    @method()
    @translate_errors
    async def SetProfile(self, profile: "s"):
        await self._d.set_profile(profile)  # build_settings rejects unknown profiles: InvalidArgs

    # -- properties -------------------------------------------------------------

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> "s":
        return self._d.engine.state

    @dbus_property(access=PropertyAccess.READ)
    def Profile(self) -> "s":
        return self._d.engine.profile

    @dbus_property(access=PropertyAccess.READ)
    def LiveText(self) -> "s":
        return self._d.live_text

    @dbus_property(access=PropertyAccess.READ)
    def LastError(self) -> "s":
        return self._d.last_error

    @dbus_property(access=PropertyAccess.READ)
    def RssBytes(self) -> "t":
        return self._d.rss_bytes

    @dbus_property(access=PropertyAccess.READ)
    def LastSegmentId(self) -> "t":
        return self._d.history.last_id()

    @dbus_property(access=PropertyAccess.READ)
    def QueueRefine(self) -> "u":
        return self._d.engine.stats().queue_refine

    # -- signals ----------------------------------------------------------------

    @dbus_signal()
    def PartialText(self, seg_id, text) -> "ts":
        return [seg_id, text]

    @dbus_signal()
    def SegmentRefined(self, seg_id, start, end, text) -> "tdds":
        return [seg_id, start, end, text]

    @dbus_signal()
    def StateChanged(self, state) -> "s":
        return state

    @dbus_signal()
    def MemoryPressure(self, level, rss_bytes) -> "st":
        return [level, rss_bytes]


class Daemon:
    """Glue between the engine, the history and the bus. Lives on the asyncio loop."""

    def __init__(self, args, settings, overrides):
        self.args = args
        self.settings = settings
        self.history = TranscriptStore(
            settings.history.directory or None, retention_days=settings.history.retention_days)
        self.engine = Engine(settings, overrides, first_segment_id=self.history.last_id() + 1)
        self.interface = DictationInterface(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.live_text = ""
        self._live_id = 0
        self._engine_error = ""
        self.rss_bytes = 0
        self._busy = asyncio.Lock()
        self.notifier = sdnotify.Notifier.from_environment()

    @property
    def last_error(self) -> str:
        return self._engine_error or self.history.last_error

    # -- engine events (engine threads) ---------------------------------------

    def on_engine_event(self, event) -> None:
        if isinstance(event, Refined):
            # Durable before announced: fsync here, on the engine thread.
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
            self._engine_error = event.reason if event.state == "error" else ""
            i.StateChanged(event.state)
            i.emit_properties_changed({"State": event.state, "LastError": self.last_error})
            self.notifier.status(f"{event.state}, profile {self.engine.profile}")
        elif isinstance(event, MemoryPressure):
            if event.level != "normal":
                i.MemoryPressure(event.level, event.rss_bytes)
                self.notifier.status(f"memory {event.level}: {event.rss_bytes // 2**20} MB")
        elif isinstance(event, ProfileChanged):
            i.emit_properties_changed({"Profile": event.profile})
            self.notifier.status(f"{self.engine.state}, profile {event.profile}")

    def _set_live(self, seg_id: int, text: str) -> None:
        self._live_id = seg_id
        if text != self.live_text:
            self.live_text = text
            self.interface.emit_properties_changed({"LiveText": text})

    # -- actions (loop thread) ------------------------------------------------

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
            await asyncio.to_thread(self.engine.start, self.make_source(), reopen)

    async def stop(self) -> None:
        async with self._busy:
            await asyncio.to_thread(self.engine.stop, DRAIN_TIMEOUT_S)

    async def set_profile(self, profile: str) -> None:
        async with self._busy:
            await asyncio.to_thread(self.engine.set_profile, profile, "requested over D-Bus")

    def memory_report(self) -> dict:
        s = self.engine.stats()
        u = lambda v: Variant("t", int(max(0, v)))  # noqa: E731
        return {
            "rss_bytes": u(s.rss_bytes or self.rss_bytes), "peak_rss_bytes": u(s.peak_rss_bytes),
            "warn_bytes": u(s.warn_bytes), "cleanup_bytes": u(s.cleanup_bytes), "limit_bytes": u(s.limit_bytes),
            "audio_buffer_bytes": u(s.audio_buffer_bytes), "audio_buffer_limit_bytes": u(s.audio_buffer_limit_bytes),
            "queue_live": Variant("u", s.queue_live), "queue_live_max": Variant("u", s.queue_live_max),
            "queue_refine": Variant("u", s.queue_refine), "queue_refine_max": Variant("u", s.queue_refine_max),
            "cleanups": u(s.cleanups), "degradations": u(s.degradations), "overflows": u(s.overflows),
            "dropped_samples": u(s.dropped_samples), "live_commits": u(s.live_commits), "refined": u(s.refined),
            "partials": u(s.partials), "partials_skipped": u(s.partials_skipped), "retracted": u(s.retracted),
            "backpressure_waits": u(s.backpressure_waits), "history_unwritten": u(self.history.unwritten),
            "reopens": u(s.reopens), "gap_closes": u(s.gap_closes),
            "level": Variant("s", s.memory_level), "profile": Variant("s", s.profile),
            "audio_seconds": Variant("d", s.audio_seconds),
        }

    async def tick(self) -> None:
        """Once a second: RSS property, and the systemd watchdog (only while the engine loop beats)."""
        import psutil

        process = psutil.Process()
        while True:
            rss = process.memory_info().rss
            if abs(rss - self.rss_bytes) >= 1 << 20:  # announce changes of 1 MB or more
                self.rss_bytes = rss
                self.interface.emit_properties_changed({"RssBytes": rss})
            self.notifier.watchdog_if_alive(self.engine.heartbeat)
            if self.history.unwritten:
                await asyncio.to_thread(self.history.flush)
            await asyncio.sleep(min(1.0, self.notifier.watchdog_interval or 1.0))


async def _bus_owner_pid(bus: MessageBus) -> int:
    reply = await call_bus_daemon(bus, "GetConnectionUnixProcessID", "s", [BUS_NAME])
    return reply.body[0] if reply and reply.message_type == MessageType.METHOD_RETURN else 0


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
    # A quick check before loading models for seconds: is another listend there?
    reply = await call_bus_daemon(bus, "NameHasOwner", "s", [BUS_NAME])
    if reply.body and reply.body[0]:
        print(f"listend: listend is already running (pid {await _bus_owner_pid(bus)})", file=sys.stderr)
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
    bus.export(OBJECT_PATH, daemon.interface)
    # Models are loaded before the name is taken: a name on the bus means ready.
    if await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE) != RequestNameReply.PRIMARY_OWNER:
        print(f"listend: listend is already running (pid {await _bus_owner_pid(bus)})", file=sys.stderr)
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
    if args.start:
        try:
            await daemon.start()
        except SourceError as e:
            log.error("%s", e)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, disconnected], return_when=asyncio.FIRST_COMPLETED)

    log.info("shutting down: draining (at most %.0f s)", DRAIN_TIMEOUT_S)
    daemon.notifier.stopping()
    ticker.cancel()
    await asyncio.to_thread(daemon.engine.close, DRAIN_TIMEOUT_S)
    daemon.history.flush()
    await asyncio.sleep(0)  # let the last signals go out
    if not disconnected.done():
        try:
            await bus.release_name(BUS_NAME)
        except Exception:
            pass
        bus.disconnect()
    log.info("stopped")
    return 0


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
    from .cli import setup_logging

    setup_logging(args.verbose, default=logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietClientErrors())
    return asyncio.run(serve(args))
