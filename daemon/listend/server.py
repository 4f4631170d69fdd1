"""The daemon process: start-up, the glue between engine, history and bus, and shutdown.

* Start-up: config, the session bus (or a private one when there is none),
  single instance (a name on the bus means ready), models, signals.
* Glue: :class:`~listend.control.Daemon` (engine events stored and
  announced, blocking calls off the loop).
* Shutdown: SIGTERM/SIGINT stop within :data:`~listend.control.STOP_BUDGET_S` (below the
  unit's ``TimeoutStopSec``); a lost bus connection is logged and exits 1, so
  ``Restart=on-failure`` brings the daemon back. Segments the history could
  not take are saved elsewhere (:meth:`~listend.history.TranscriptStore.save_unwritten`)
  and the exit status is :data:`~listend.control.EXIT_HISTORY_UNSAVED` to say so.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dbus_next import BusType
from dbus_next.constants import NameFlag, RequestNameReply

from .bus import (
    BUS_NAME,
    OBJECT_PATH,
    NoBusError,
    call_bus_daemon,
    find_session_bus,
    forget_private_bus,
    name_taken,
    start_private_bus,
)
from .cliutil import EXIT_FAIL, EXIT_USAGE
from .config import ConfigError, Settings, load_settings
from .control import STOP_BUDGET_S, Daemon, DaemonOptions
from .dbusio import MessageBus, QuietPeerErrors
from .history import HistoryUnusable, TranscriptStore
from .models import ModelUnavailable
from .service import LargeReplies
from .sources import FileSource, MicrophoneSource, SourceError

log = logging.getLogger("listend.server")

EXIT_BUS_LOST = EXIT_FAIL


async def serve(options: DaemonOptions) -> int:
    try:
        settings, overrides = load_settings(options.config, "lightweight" if options.lightweight else None)
        if options.source:
            FileSource(options.source)  # check the file now: a bad file is a usage error
        if options.device:
            MicrophoneSource.check_device_argument(options.device)
        directory = Path(settings.history.directory) if settings.history.directory else None
        history = TranscriptStore(directory, retention_days=settings.history.retention_days)
    except (ConfigError, SourceError, HistoryUnusable) as e:
        print(f"listend: {e}", file=sys.stderr)
        return EXIT_USAGE

    private_bus = None
    address = find_session_bus()
    if address is None:
        try:
            address, pid = start_private_bus()
        except NoBusError as e:
            print(f"listend: {e}", file=sys.stderr)
            return EXIT_FAIL
        private_bus = (address, pid)
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
        log.warning(
            "no session bus found; started a private one (listenctl finds it): export DBUS_SESSION_BUS_ADDRESS='%s'",
            address,
        )
    try:
        return await _serve_on(options, settings, overrides, history, address)
    finally:
        if private_bus:
            forget_private_bus(private_bus[0])
            try:
                os.kill(private_bus[1], signal.SIGTERM)
            except OSError:
                pass


async def _serve_on(
    options: DaemonOptions, settings: Settings, overrides: Mapping[str, Any], history: TranscriptStore, address: str
) -> int:
    daemon = Daemon(options, settings, overrides, history)
    loop = daemon.loop = asyncio.get_running_loop()
    try:
        bus = await MessageBus(bus_address=address, bus_type=BusType.SESSION).connect()
    except Exception as e:
        print(f"listend: cannot connect to the D-Bus session bus at {address}: {e}", file=sys.stderr)
        return EXIT_FAIL
    daemon.bus = bus
    # A quick check before loading models for seconds: is another listend there?
    reply = await call_bus_daemon(bus, "NameHasOwner", "s", [BUS_NAME])
    if reply.body and reply.body[0]:
        print(f"listend: {await name_taken(bus)}", file=sys.stderr)
        bus.disconnect()
        return EXIT_FAIL

    daemon.engine.subscribe(daemon.on_engine_event)
    log.info("loading models (profile %s)", settings.profile)
    try:
        await asyncio.to_thread(daemon.engine.load)
    except ModelUnavailable as e:
        print(f"listend: {e}", file=sys.stderr)
        bus.disconnect()
        return EXIT_FAIL
    bus.add_message_handler(LargeReplies(bus, daemon.history))
    bus.export(OBJECT_PATH, daemon.interface)
    # Models are loaded before the name is taken: a name on the bus means ready.
    if await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE) != RequestNameReply.PRIMARY_OWNER:
        print(f"listend: {await name_taken(bus)}", file=sys.stderr)
        daemon.engine.close(0)
        bus.disconnect()
        return EXIT_FAIL
    log.info("ready on %s as %s (pid %d)", address, BUS_NAME, os.getpid())
    daemon.notifier.ready(f"idle, profile {settings.profile}")

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ticker = asyncio.create_task(daemon.tick())
    disconnected = asyncio.create_task(bus.wait_for_disconnect())
    # A thread of its own, not the loop's executor: a kept file on a hung filesystem must not
    # hold up the exit (the executor's threads are joined when the loop closes).
    threading.Thread(target=daemon.engine.recover_unfinished, name="listend-recover", daemon=True).start()
    if options.start:
        try:
            await daemon.start()
        except SourceError as e:
            log.error("%s", e)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, disconnected], return_when=asyncio.FIRST_COMPLETED)

    status = 0
    if disconnected.done():
        error = disconnected.exception() if not disconnected.cancelled() else None
        log.error(
            "lost the D-Bus connection (%s); stopping so that the service manager restarts listend",
            f"{type(error).__name__}: {error}" if error else "closed by the bus",
        )
        status = EXIT_BUS_LOST
    log.info("shutting down: finishing what was heard (at most %.0f s)", STOP_BUDGET_S)
    daemon.notifier.stopping()
    ticker.cancel()
    await asyncio.to_thread(daemon.engine.close, STOP_BUDGET_S)
    status = status or daemon.save_history()
    await asyncio.sleep(0)  # let the last signals go out
    if not disconnected.done():
        try:
            await bus.release_name(BUS_NAME)
        except Exception:
            pass
        bus.disconnect()
    log.info("stopped")
    return status


def run_daemon(args: argparse.Namespace) -> int:
    import concurrent.futures
    import time

    from .cliutil import setup_logging

    setup_logging(args.verbose, default=logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietPeerErrors())
    loop = asyncio.new_event_loop()
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="listend-call")
    loop.set_default_executor(executor)
    try:
        status = loop.run_until_complete(serve(DaemonOptions.from_args(args)))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        executor.shutdown(wait=False, cancel_futures=True)
        loop.close()
    deadline = time.monotonic() + 3
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if stuck:
        # A thread blocked in the kernel (a file on a hung filesystem) would hold the interpreter's
        # exit forever; everything listend owns is finished and written by now.
        log.error("exiting with thread(s) still blocked: %s", ", ".join(stuck))
        logging.shutdown()
        os._exit(status)
    return status
