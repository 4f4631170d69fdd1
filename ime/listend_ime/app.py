"""``listend-ime``: listend's live text at the cursor of the focused application, through IBus.

While listend listens, listend's IBus engine is the active engine: the open
utterance's partial text is the *preedit* (underlined at the cursor, replaced
as it changes) and each segment's refined text is *committed* in its place.
The engine the user had is remembered and made active again when dictation
stops (once every segment heard has its final text), when the daemon goes,
when delivery moves elsewhere, and when ``listend-ime`` exits. If it is
killed, IBus itself falls back to the previous engine (it does so whenever
an engine's process leaves its bus).

One thread, one asyncio loop, two buses: the session bus (listend's signals;
this program's status, ``io.github.listend.InputMethod1``) and IBus's own.
What to show and commit is :mod:`composer`'s plain logic; :mod:`engine`
translates it to IBus; this module connects them. It never types keys and
never touches the clipboard except for text it could not commit, which it
says once in a notification.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from dbus_next import MessageType
from dbus_next.constants import NameFlag, RequestNameReply

from listend import __version__
from listend.bus import BUS_NAME, call_bus_daemon, notification
from listend.client import (
    CallFailed,
    ClientEvent,
    DictationClient,
    NotRunning,
    PartialEvent,
    PresenceEvent,
    PropertiesEvent,
    RetractedEvent,
    SeenIds,
    SegmentEvent,
    StateEvent,
)
from listend.dbusio import MessageBus, QuietPeerErrors
from listend_desktop.clipboard import Clipboard

from . import ibus
from .composer import Commit, Composer, Effect, ShowPreedit, ToClipboard
from .engine import ENGINE_NAME, STATUS_NAME, STATUS_PATH, Engine, Factory, Status
from .previous import read_previous, write_previous

log = logging.getLogger("listend.ime")

TICK_S = 0.25  # unconfirmed commits, finals waiting for focus, the drain after a stop
DRAIN_LIMIT_S = 20.0  # the daemon's stop takes at most 15 s; then the keyboard is handed back regardless
IBUS_RETRY_S = 2.0
NOTICE_EVERY_S = 10.0  # clipboard fallbacks closer together than this share one notification
COMPONENT = "io.github.listend.ime"
ENGINE = ibus.EngineDesc(
    ENGINE_NAME,
    "listend dictation",
    "Live text of listend at the cursor: partial text as preedit, refined text committed",
    symbol="🎙",
)


class InputMethod:
    """The input method app: listend's events in, IBus signals out (all on one loop).

    It is the :class:`~listend_ime.engine.EngineHost` the IBus engines report to.
    """

    def __init__(self, clipboard: Clipboard | None = None) -> None:
        self.composer = Composer()
        self.status = Status()
        self.clipboard = clipboard or Clipboard(on_error=lambda message: self._notify("listend: cannot copy", message))
        self.client: DictationClient | None = None
        self.ibus_bus: Any = None
        self.daemon_state = "absent"
        self.delivery = "auto"
        self.selected = False  # we made our engine IBus's global engine and have not handed it back
        self._focused: Engine | None = None
        self._contexts: dict[str, str] = {}  # engine path -> the input context it has focus in
        self._caps: dict[str, int] = {}  # engine path -> the client's capabilities
        self._seen = SeenIds()
        self._owed: set[int] = set()  # ids shown while selected whose final came after we let go
        self._drain_started: float | None = None
        self._last_notice = 0.0
        self._undelivered: list[str] = []
        self._switching = asyncio.Lock()  # one engine switch at a time
        self._stopping = asyncio.Event()

    # -- running -----------------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            self.client = await DictationClient.connect()
        except Exception as e:  # no session bus: nothing to serve
            print(f"listend-ime: {e}", file=sys.stderr)
            return 1
        bus = self.client.bus
        bus.export(STATUS_PATH, self.status)
        reply = await bus.request_name(STATUS_NAME, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            print("listend-ime: another listend-ime is running in this session", file=sys.stderr)
            return 1
        self._start_guard()
        await self.client.subscribe(self._on_event)
        await self._refresh_daemon()
        tasks = [asyncio.create_task(self._keep_ibus()), asyncio.create_task(self._tick())]
        gone = asyncio.create_task(bus.wait_for_disconnect())
        stop = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([gone, stop], return_when=asyncio.FIRST_COMPLETED)
        if await self._let_go("listend-ime is exiting"):
            # A background copy would die with this process: hand the text over before leaving.
            await asyncio.to_thread(self.clipboard.copy_and_wait, " ".join(self._undelivered))
        for task in [*tasks, gone, stop]:
            task.cancel()
        if self.ibus_bus is not None:
            self.ibus_bus.disconnect()
        self.client.close()
        return 0

    def stop(self) -> None:
        self._stopping.set()

    def _start_guard(self) -> None:
        """A process of its own that hands the keyboard back if this one is killed (see :mod:`guard`)."""
        try:
            subprocess.Popen(
                [sys.executable, "-m", "listend_ime.guard", str(os.getpid())],
                start_new_session=True,  # a signal to our process group does not reach it
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except OSError as e:
            log.warning("cannot start the guard that restores the keyboard engine if listend-ime is killed: %s", e)

    async def _keep_ibus(self) -> None:
        """Connect to IBus, register the engine, and do it again whenever ibus-daemon restarts."""
        waiting_said = False
        while True:
            address = ibus.find_address()
            if address is None or not ibus.reachable(address):
                if not waiting_said:
                    log.warning("waiting for IBus (no ibus-daemon runs for this display yet)")
                    waiting_said = True
                await asyncio.sleep(IBUS_RETRY_S)
                continue
            try:
                bus = await self._register(address)
            except Exception as e:
                log.warning("cannot register with IBus at %s: %s; retrying", address, e)
                await asyncio.sleep(IBUS_RETRY_S)
                continue
            waiting_said = False
            self.ibus_bus = bus
            self._set_status(connected=True)
            log.info("registered engine %r with IBus", ENGINE_NAME)
            await self._restore_after_crash()
            await self._reconsider()
            try:
                await bus.wait_for_disconnect()
            except Exception as e:  # dbus-next reports a lost connection as an error
                log.debug("IBus connection ended: %r", e)
            log.warning("lost IBus; waiting for it to come back")
            self.ibus_bus = None
            self.selected = False  # IBus went with whatever engine was selected
            self._focused = None
            self._contexts.clear()
            self._apply(self.composer.focus_out(None, time.monotonic()))
            self._set_status(connected=False, active=False)
            await asyncio.sleep(IBUS_RETRY_S)

    async def _register(self, address: str) -> Any:
        bus = await MessageBus(bus_address=address).connect()
        bus.export(ibus.FACTORY_PATH, Factory(bus, self))
        component = ibus.component(COMPONENT, "listend: local, offline dictation", __version__, [ENGINE])
        reply = await ibus.call(bus, "RegisterComponent", "v", [component])
        if reply.message_type == MessageType.ERROR:
            bus.disconnect()
            raise RuntimeError(reply.body[0] if reply.body else reply.error_name)
        return bus

    async def _restore_after_crash(self) -> None:
        """Our engine is still selected with nobody dictating (an earlier listend-ime was killed mid-switch)."""
        current = await ibus.global_engine(self.ibus_bus)
        if current != ENGINE_NAME or self.daemon_state == "listening":
            return
        previous = read_previous()
        if previous:
            log.info("handing the keyboard back to %s, left selected by an earlier run", previous)
            await ibus.set_global_engine(self.ibus_bus, previous)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._apply(self.composer.tick(time.monotonic()))
                if self.selected and self._draining():
                    await self._check_drained()
            except Exception:
                log.exception("input method tick failed")  # never ends the loop that hands the keyboard back

    # -- when our engine is selected ---------------------------------------------------------------------

    def _wanted(self) -> bool:
        return self.ibus_bus is not None and self.daemon_state == "listening" and self.delivery in ("auto", "ime")

    def _draining(self) -> bool:
        return not self._wanted() and self.daemon_state in ("idle", "error", "loading")

    async def _reconsider(self) -> None:
        """Select our engine, or hand the keyboard back, as listend's state and the delivery choice say."""
        if self._wanted():
            self._drain_started = None
            if not self.selected:
                await self._select()
        elif self.selected:
            if self._draining() and self.delivery in ("auto", "ime"):
                if self._drain_started is None:
                    self._drain_started = time.monotonic()
                await self._check_drained()
            else:
                await self._let_go("listend left the bus" if self.daemon_state == "absent" else "delivery changed")

    async def _check_drained(self) -> None:
        """After a stop: hand back once every segment heard is final here and in the daemon (or at the limit)."""
        started = self._drain_started or time.monotonic()
        if time.monotonic() - started > DRAIN_LIMIT_S:
            await self._let_go("the stop took too long")
            return
        if self.composer.pending:
            return
        daemon_pending = 0  # a daemon that is gone owes nothing more
        if self.client is not None:
            try:
                daemon_pending = int(await self.client.get("PendingSegments"))
            except (NotRunning, CallFailed):
                pass
        if daemon_pending == 0 and not self.composer.pending:  # again: events came in during the call
            await self._let_go("dictation stopped")

    async def _select(self) -> None:
        async with self._switching:
            bus = self.ibus_bus
            if bus is None or self.selected:
                return
            current = await ibus.global_engine(bus)
            if current and current != ENGINE_NAME:
                self.status.previous_engine = current
                write_previous(current)
            elif not self.status.previous_engine:
                self.status.previous_engine = read_previous()
            self.selected = True  # before the switch: IBus creates and focuses our engine during the call
            error = await ibus.set_global_engine(bus, ENGINE_NAME)
            if error is not None:
                self.selected = False
                log.warning("IBus would not select the listend engine: %s", error)
                return
            log.info("dictating through IBus (previous engine: %s)", self.status.previous_engine or "none")
            self._set_status(active=True)
            self._show_state()

    async def _let_go(self, why: str) -> bool:
        """Hand the keyboard back to the user's engine; text that could not be committed goes to the clipboard.

        True when some did.
        """
        async with self._switching:
            if not self.selected:
                return False
            self.selected = False
            self._drain_started = None
            self._owed |= self.composer.pending_ids()
            leftovers = self.composer.flush()
            self._apply([ShowPreedit(""), *leftovers])
            if self._focused is not None:
                self._focused.UpdateAuxiliaryText(ibus.text(""), False)
            bus, previous = self.ibus_bus, self.status.previous_engine
            if bus is not None and previous:
                error = await ibus.set_global_engine(bus, previous)
                if error is not None:
                    log.warning("cannot switch IBus back to %s: %s", previous, error)
                else:
                    log.info("%s: keyboard handed back to %s", why, previous)
            elif bus is not None:
                log.info("%s: there was no engine before ours to go back to", why)
            self._focused = None
            self._set_status(active=False)
            return bool(leftovers)

    # -- listend's events (session bus) -----------------------------------------------------------------

    def _on_event(self, event: ClientEvent) -> None:
        now = time.monotonic()
        if isinstance(event, PartialEvent):
            if self.selected:
                self._apply(self.composer.partial(event.id, event.text, now))
        elif isinstance(event, SegmentEvent):
            entry = event.entry
            if not self._seen.first_time(entry.id):
                return
            if self.selected:
                self._apply(self.composer.final(entry.id, entry.text, now))
            elif entry.id in self._owed:
                self._owed.discard(entry.id)
                self._to_clipboard(entry.text, "dictation ended before the text was final")
        elif isinstance(event, RetractedEvent):
            self._owed.discard(event.id)
            if self.selected:
                self._apply(self.composer.retracted(event.id, now))
        elif isinstance(event, StateEvent):
            self._daemon_changed(state=event.state)
        elif isinstance(event, PropertiesEvent):
            self._daemon_changed(state=event.changed.get("State"), delivery=event.changed.get("Delivery"))
        elif isinstance(event, PresenceEvent):
            if event.running:
                asyncio.get_running_loop().create_task(self._refresh_daemon())
            else:
                self._daemon_changed(state="absent")

    def _daemon_changed(self, state: str | None = None, delivery: str | None = None) -> None:
        changed = False
        if state is not None and state != self.daemon_state:
            self.daemon_state, changed = state, True
        if delivery is not None and delivery != self.delivery:
            self.delivery, changed = delivery, True
        if changed:
            self._show_state()
            asyncio.get_running_loop().create_task(self._reconsider())

    async def _refresh_daemon(self) -> None:
        assert self.client is not None
        # Only a running daemon: a call to its name would start it (D-Bus activation), and an input method
        # autostarted at login must not load the models of a dictation nobody asked for.
        owner = await call_bus_daemon(self.client.bus, "NameHasOwner", "s", [BUS_NAME])
        if owner.message_type != MessageType.METHOD_RETURN or not owner.body[0]:
            self._daemon_changed(state="absent")
            return
        try:
            props = await self.client.get_all()
        except (NotRunning, CallFailed):
            self._daemon_changed(state="absent")
            return
        self._daemon_changed(state=props.get("State", "idle"), delivery=props.get("Delivery", "auto"))

    # -- what IBus's engines report (EngineHost) ------------------------------------------------------------

    def focus_in(self, engine: Engine, context: str) -> None:
        self._focused = engine
        self._contexts[engine.path] = context
        surrounding = bool(self._caps.get(engine.path, 0) & ibus.CAP_SURROUNDING_TEXT)
        self._apply(self.composer.focus_in(context, surrounding, time.monotonic()))
        self._show_state()

    def focus_out(self, engine: Engine, context: str | None) -> None:
        context = context or self._contexts.get(engine.path)
        if engine is self._focused:
            self._focused = None
        self._apply(self.composer.focus_out(context, time.monotonic()))

    def capabilities(self, engine: Engine, caps: int) -> None:
        self._caps[engine.path] = caps
        context = self._contexts.get(engine.path)
        if context is not None:
            self.composer.capabilities(context, bool(caps & ibus.CAP_SURROUNDING_TEXT))

    def surrounding_text(self, engine: Engine, before: str) -> None:
        context = self._contexts.get(engine.path)
        if context is not None:
            self._apply(self.composer.surrounding_text(context, before, time.monotonic()))

    def enabled(self, engine: Engine) -> None:
        self._show_state(engine)

    def destroyed(self, engine: Engine) -> None:
        if engine is self._focused:
            self.focus_out(engine, None)
        self._contexts.pop(engine.path, None)
        self._caps.pop(engine.path, None)
        if self.ibus_bus is not None:
            self.ibus_bus.unexport(engine.path)

    # -- effects ----------------------------------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        engine = self._focused
        for effect in effects:
            if isinstance(effect, ShowPreedit):
                if engine is not None:
                    text = effect.text
                    engine.UpdatePreeditText(ibus.text(text, underline=True), len(text), bool(text), ibus.PREEDIT_CLEAR)
            elif isinstance(effect, Commit):
                if engine is not None:
                    engine.CommitText(ibus.text(effect.text))
                    self._undelivered.clear()
            elif isinstance(effect, ToClipboard):
                self._to_clipboard(effect.text, effect.reason)
        if effects:
            self._publish_counts()

    def _to_clipboard(self, text: str, reason: str) -> None:
        """Text that could not go where it was spoken: on the clipboard (with what failed just before it), said once."""
        if not text.strip():
            return
        now = time.monotonic()
        recent = now - self._last_notice < NOTICE_EVERY_S
        if not recent:
            self._undelivered.clear()
        self._undelivered.append(text.strip())
        self.clipboard.copy(" ".join(self._undelivered))
        if not recent:
            self._last_notice = now
            self._notify(
                "listend: text is on the clipboard", f"{reason[:1].upper()}{reason[1:]}. Paste it with Ctrl+V."
            )
        else:
            log.warning("%s: on the clipboard", reason)
        self._publish_counts()

    def _notify(self, summary: str, body: str) -> None:
        log.warning("%s: %s", summary, body)
        if self.client is not None:
            asyncio.get_running_loop().create_task(self._send_notification(summary, body))

    async def _send_notification(self, summary: str, body: str) -> None:
        assert self.client is not None
        try:
            await self.client.bus.call(notification(summary, body))
        except Exception as e:  # no notification server: the log line stands
            log.debug("notification failed: %r", e)

    def _publish_counts(self) -> None:
        counts = self.composer.counts
        self._set_status(delivered=counts.delivered, unconfirmed=counts.unconfirmed, failed=counts.failed)

    def _set_status(self, **values: Any) -> None:
        status = self.status
        changed = {}
        for key, value in values.items():
            if getattr(status, key) != value:
                setattr(status, key, value)
                changed[_STATUS_PROPERTIES[key]] = value
        if changed:
            status.emit_properties_changed(changed)

    def _show_state(self, engine: Engine | None = None) -> None:
        """Say that listend is dictating, where the desktop shows what an input method says.

        The auxiliary text is a small label by the cursor (GNOME Shell's and
        IBus's own candidate popup show it; like the microphone bubble other
        systems show while dictating). The engine's property is the line
        panels list for the active engine (IBus's panel on XFCE and MATE).
        """
        target = engine or self._focused
        if target is None or not self.selected:
            return
        state = {"listening": "listening", "absent": "listend is not running"}.get(self.daemon_state, "finishing…")
        counts = self.composer.counts
        tooltip = f"{counts.delivered} delivered, {counts.unconfirmed} unconfirmed, {counts.failed} to the clipboard"
        target.UpdateAuxiliaryText(ibus.text(f"{ENGINE.symbol} {state}"), True)
        target.RegisterProperties(
            ibus.prop_list([ibus.prop("listend-state", f"Dictation: {state}", tooltip, ENGINE.symbol)])
        )


_STATUS_PROPERTIES = {
    "connected": "Connected",
    "active": "Active",
    "previous_engine": "PreviousEngine",
    "delivered": "Delivered",
    "unconfirmed": "Unconfirmed",
    "failed": "Failed",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="listend-ime",
        description="Show listend's live text at the cursor of the focused application, through IBus: partial "
        "text as preedit while you speak, refined text committed in its place.",
        epilog="Runs beside the listend service (listenctl install autostarts it where IBus is installed). "
        "Delivery is chosen with [delivery] method in listend's configuration or `listenctl delivery`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every engine switch and IBus call")
    parser.add_argument("--version", action="version", version=f"listend-ime {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="listend-ime: %(message)s", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietPeerErrors())  # a peer's bad calls to the engine are its own business
    app = InputMethod()

    async def go() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, app.stop)
        return await app.run()

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
