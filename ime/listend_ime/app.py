"""``listend-ime``: listend's live text at the cursor of the focused application, through IBus.

While listend listens, listend's IBus engine is the active engine: the open
utterance's partial text is the *preedit* (underlined at the cursor, replaced
as it changes) and each segment's refined text is *committed* in its place.
The engine the user had is made active again when dictation stops (once
every segment heard has its final text), when the daemon goes, when delivery
moves elsewhere, and when ``listend-ime`` exits -- and only then, and only
if listend's engine is still the active one (:mod:`keyboard`). IBus does not
fall back to the user's engine when an engine's process is killed (it leaves
none selected), so a guard process (:mod:`guard`) does it, and the next
``listend-ime`` repairs what a crash of both left.

Where the Wayland compositor offers input-method-unstable-v2 (wlroots:
sway, Hyprland), listend is also the seat's native input method while it
dictates (:mod:`wayland_fields`), for the apps without an IBus module (foot,
GTK without IBus's module, GTK 4, Qt 6); IBus stays for those with one. It
is released when dictation stops, like the IBus engine.

Password and PIN fields get nothing: while one has focus, what is spoken is
shown nowhere, committed nowhere and copied nowhere (it stays in the
history); the user is told once, and dictation goes on when focus leaves.

Every segment ends in a field or on the clipboard with a notice: text that
could not be committed (focus elsewhere or nowhere, IBus restarting, the
input method exiting) goes to the clipboard, accumulated for the dictation
(:mod:`delivery`).

One thread, one asyncio loop, two buses: the session bus (listend's signals,
:mod:`daemon_events`; this program's status, ``io.github.listend.InputMethod1``)
and IBus's own (:mod:`link`). What to show and commit is :mod:`composer`'s
plain logic; :mod:`engine` translates it to IBus; this module connects them
and decides when listend's engine is selected. It never types keys.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import time

from dbus_next import Message
from dbus_next.constants import NameFlag, RequestNameReply

from listend import __version__
from listend.bus import notification
from listend.client import BUS_DAEMON, CallFailed, DictationClient, NotRunning, delivery_route, holder_of
from listend.dbusio import MessageBus, QuietPeerErrors
from listend_desktop.clipboard import Clipboard

from . import fields, guard, ibus, kwin, wayland
from .composer import Effect, ShowPreedit
from .daemon_events import DaemonEvents
from .delivery import Delivery
from .engine import STATUS_NAME, STATUS_PATH, Engine, Status
from .fields import Fields
from .keyboard import Keyboard
from .link import ENGINE, IBusLink
from .wayland_fields import WaylandFields

log = logging.getLogger("listend.ime")

TICK_S = 0.25  # unconfirmed commits, finals waiting for focus, the drain after a stop
DRAIN_LIMIT_S = 20.0  # the daemon's stop takes at most 15 s; then the keyboard is handed back regardless
EXIT_WAIT_S = 5.0  # exiting mid-dictation: how long the finals of the segments shown are waited for


class InputMethod:
    """The input method app: listend's events in, IBus signals out (all on one loop).

    listend's events go to :class:`~listend_ime.daemon_events.DaemonEvents`,
    what the IBus engines report to :class:`~listend_ime.fields.Fields`.
    """

    def __init__(self, clipboard: Clipboard | None = None) -> None:
        from .composer import Composer

        self.composer = Composer()
        self.status = Status()
        self.keyboard = Keyboard()
        clipboard = clipboard or Clipboard(on_error=lambda message: self._notify("listend: cannot copy", message))
        self.delivery = Delivery(clipboard, self._notify)
        self.fields = Fields(
            self.composer, self.delivery, self._apply, self._show_state, self._publish_counts, self._forget_engine
        )
        self.link = IBusLink(self.fields, self._ibus_connected, self._ibus_lost)
        self.wayland = WaylandFields(
            self.composer, self.delivery, self._apply, self._publish_counts, self._wayland_gone
        )
        self.daemon = DaemonEvents(
            self.composer,
            self.delivery,
            self._holding,
            self._apply,
            self._publish_counts,
            self._daemon_changed,
            self._unreachable_here,
        )
        self.client: DictationClient | None = None
        self.named = False  # this process holds io.github.listend.InputMethod (the tray's auto rule sees it)
        self._drain_started: float | None = None
        self._unreachable: str | None = None  # why IBus cannot reach the apps now (KWin has no input method)
        self._unreachable_told = False
        self._switching = asyncio.Lock()  # one engine switch at a time
        self._stopping = asyncio.Event()
        self._ibus_seen = False  # connected to an ibus-daemon before (a later one is a restart of IBus)
        self._wayland_offered = False  # the compositor offers input-method-v2 (found at start)
        self._wayland_refused: str | None = None  # why the Wayland input method could not be had (said once)

    # -- running -----------------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            self.client = await DictationClient.connect()
        except Exception as e:  # no session bus: nothing to serve
            print(f"listend-ime: {e}", file=sys.stderr)
            return 1
        self.daemon.client = self.client
        bus = self.client.bus
        bus.export(STATUS_PATH, self.status)
        if not await self._take_status_name(bus):
            self.client.close()
            return 1
        guard.start(os.getpid())
        self._wayland_offered = await asyncio.to_thread(wayland.offered)
        if self._wayland_offered:
            log.info("the Wayland compositor offers input-method-v2: listend is its input method while dictating")
            self.status.update(connected=True)
        elif os.environ.get("WAYLAND_DISPLAY"):
            # GNOME and KDE route Wayland apps' input to IBus themselves: no notice, IBus is the way there.
            log.info("the Wayland compositor offers no input-method-v2 (not wlroots): dictating through IBus only")
        await self.client.subscribe(self.daemon.on_event)
        await self.daemon.refresh()
        tasks = [asyncio.create_task(self.link.run()), asyncio.create_task(self._tick())]
        gone = asyncio.create_task(bus.wait_for_disconnect())
        stop = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([gone, stop], return_when=asyncio.FIRST_COMPLETED)
        await self._exit()
        for task in [*tasks, gone, stop]:
            task.cancel()
        self.link.close()
        self.client.close()
        return 0

    def stop(self) -> None:
        self._stopping.set()

    async def _exit(self) -> None:
        """Leaving: wait a little for the finals of what was shown, then hand everything to the clipboard.

        Segments refined after this process left are the tray's (its ``auto``
        delivery types them, as it does whenever no input method is there) or
        in the history (``listenctl copy --session``).
        """
        if self._holding() and self.composer.pending:
            deadline = time.monotonic() + EXIT_WAIT_S
            while self.composer.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        before = len(self.delivery.undelivered)
        await self._let_go("listend-ime is exiting", reason="the input method exited before it could type it")
        if len(self.delivery.undelivered) != before:
            await asyncio.to_thread(self.delivery.copy_before_exit)

    async def _take_status_name(self, bus: MessageBus) -> bool:
        """Own the status name; a squatter on it is named and waited out, another listend-ime is refused."""
        reply = await bus.request_name(STATUS_NAME, NameFlag.NONE)  # queued behind a squatter, not refused
        if reply in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            self.named = True
            return True
        holder = await holder_of(bus, STATUS_NAME)
        if holder is not None and holder.trusted:
            await bus.release_name(STATUS_NAME)
            print(f"listend-ime: another listend-ime is running in this session ({holder})", file=sys.stderr)
            return False
        log.warning(
            "%s holds %s and is not listend-ime: running without it until it lets go (meanwhile the tray and "
            "listenctl do not see this input method, and `auto` delivery is left to the tray)",
            holder or "another connection",
            STATUS_NAME,
        )

        def acquired(msg: Message) -> None:
            if msg.member == "NameAcquired" and msg.sender == BUS_DAEMON and msg.body == [STATUS_NAME]:
                log.info("%s is ours now", STATUS_NAME)
                self.named = True
                asyncio.get_running_loop().create_task(self._reconsider())

        bus.add_message_handler(acquired)
        return True

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._apply(self.composer.tick(time.monotonic()))
                self._publish_counts()
                if self.fields.collect:
                    self.fields.collect = False
                    gc.collect()
                if self._holding() and self._draining():
                    await self._check_drained()
            except Exception:
                log.exception("input method tick failed")  # never ends the loop that hands the keyboard back

    # -- IBus comes and goes -----------------------------------------------------------------------------

    async def _ibus_connected(self, bus: MessageBus) -> None:
        self.status.update(connected=True)
        if not self._wanted():
            async with self._switching:
                await self.keyboard.repair(bus, first=not self._ibus_seen)
        self._ibus_seen = True
        await self.keyboard.follow(bus)
        await self._reconsider()

    def _ibus_lost(self) -> None:
        """ibus-daemon exited or was replaced: its engines went with it; what was shown is not lost."""
        if self.keyboard.held:
            self.keyboard.lost()
            if isinstance(self.delivery.focused, Engine):
                self.delivery.focused = None
            if not self.wayland.open_now:  # else the Wayland fields still take it
                self._release_composer("IBus restarted before the text could be typed")
        self.fields.clear()
        self.status.update(connected=self._wayland_offered, active=self.wayland.open_now)

    # -- when our engine is selected ---------------------------------------------------------------------

    def _wanted(self) -> bool:
        """listend's IBus engine should hold the keyboard now."""
        return self.link.bus is not None and self.daemon.state == "listening" and self._delivers()

    def _wayland_wanted(self) -> bool:
        """listend should be the Wayland input method now."""
        return self._wayland_offered and self.daemon.state == "listening" and self._delivers()

    def _holding(self) -> bool:
        """An input method of listend's delivers now: its IBus engine, or the Wayland input method."""
        return self.keyboard.held or self.wayland.open_now

    def _delivers(self) -> bool:
        method = self.daemon.method
        return delivery_route(method, ime_connected=True) == "ime" and (self.named or method == "ime")

    def _draining(self) -> bool:
        return not self._wanted() and not self._wayland_wanted() and self.daemon.state in ("idle", "error", "loading")

    def _unreachable_here(self) -> str | None:
        """Why finals cannot reach the apps while this input method should deliver them (None: they can)."""
        if self._unreachable is not None and self.link.bus is not None and self._delivers():
            return self._unreachable
        if self._wayland_refused is not None and self.link.bus is None and self._wayland_offered and self._delivers():
            return self._wayland_refused  # no IBus either: nothing of listend's reaches the apps
        return None

    def _daemon_changed(self) -> None:
        self._show_state()
        asyncio.get_running_loop().create_task(self._reconsider())

    async def _reconsider(self) -> None:
        """Select our engine, or hand the keyboard back, as listend's state and the delivery choice say."""
        if self._wanted() or self._wayland_wanted():
            self._drain_started = None
            if self._wanted() and not self.keyboard.held:
                await self._select()
            if self._wayland_wanted() and not self.wayland.open_now:
                await self._open_wayland()
        elif self._holding():
            if self._draining() and self.daemon.method in ("auto", "ime"):
                if self._drain_started is None:
                    self._drain_started = time.monotonic()
                await self._check_drained()
            else:
                await self._let_go("listend left the bus" if self.daemon.state == "absent" else "delivery changed")

    async def _check_drained(self) -> None:
        """After a stop: hand back once every segment heard is final here and in the daemon (or at the limit)."""
        started = self._drain_started or time.monotonic()
        if time.monotonic() - started > DRAIN_LIMIT_S:
            await self._let_go("the stop took too long")
            return
        if self.composer.pending:
            return
        daemon_pending = 0  # a daemon that is gone (or a stranger on its name) owes nothing more
        if self.client is not None and self.client.gate.listend:
            try:
                daemon_pending = int(await self.client.get("PendingSegments"))
            except (NotRunning, CallFailed, TypeError, ValueError):
                pass
        if daemon_pending == 0 and not self.composer.pending:  # again: events came in during the call
            await self._let_go("dictation stopped")

    async def _open_wayland(self) -> None:
        """Become the seat's Wayland input method; where another holds it, say so once and go on with IBus."""
        async with self._switching:
            if self.wayland.open_now or not self._wayland_wanted():
                return
            refused = await self.wayland.open()
            if refused is None:
                self._wayland_refused = None
                self.status.update(active=True)
                return
            if self._wayland_refused is None:
                also = "IBus only" if self.link.bus is not None else "the clipboard"
                self._notify(
                    "listend: not the Wayland input method",
                    f"listend cannot be this desktop's Wayland input method: {refused}. Dictated text goes through "
                    f"{also} for the apps it cannot reach.",
                )
            self._wayland_refused = refused

    def _wayland_gone(self, reason: str) -> None:
        """The Wayland input method was lost mid-dictation (the compositor ended): said once, IBus goes on."""
        self._notify("listend: the Wayland input method is gone", f"{reason[:1].upper()}{reason[1:]}.")
        if not self.keyboard.held:
            self._release_composer(f"the Wayland input method was lost ({reason})")
            self.status.update(active=False)

    async def _select(self) -> None:
        async with self._switching:
            bus = self.link.bus
            if bus is None or self.keyboard.held:
                return
            if not await self._apps_reachable():
                return
            error = await self.keyboard.take(bus)
            if error is not None:
                log.warning("IBus would not select the listend engine: %s", error)
                return
            log.info("dictating through IBus (previous engine: %s)", self.keyboard.previous or "none")
            self.status.update(active=True, previous_engine=self.keyboard.previous)
            self._show_state()

    async def _apps_reachable(self) -> bool:
        """False where IBus's commits cannot reach the apps: KWin Wayland without an input method (:mod:`kwin`).

        Then the keyboard is not taken; finals go to the clipboard with a notice
        (counted failed), and the user is told once what sets KWin's input method.
        """
        if self.client is None:
            return True
        state = await kwin.read_state(self.client.bus)
        if not state.missing:
            if self._unreachable is not None:
                log.info("KWin has an input method now: dictating through IBus again")
            self._unreachable = None
            return True
        if self._unreachable is None:
            log.warning("KWin has no input method, so IBus cannot reach Wayland apps: the IBus engine is not selected")
        self._unreachable = "KWin has no input method, so IBus cannot type into Wayland apps"
        if not self._unreachable_told:
            self._unreachable_told = True
            self._notify(
                "listend: set KWin's input method",
                f"KWin has no input method, so dictated text cannot reach Wayland apps. Run `{kwin.FIX_COMMAND}` "
                "once. Until then dictated text goes to the clipboard.",
            )
        return False

    async def _let_go(self, why: str, reason: str = "dictation ended before the text could be typed") -> None:
        """Hand the keyboard back to the user's engine; text that could not be committed goes to the clipboard."""
        async with self._switching:
            if not self._holding():
                return
            self._drain_started = None
            self._release_composer(reason)
            if self.wayland.open_now:
                self.wayland.close()
            if self.keyboard.held:
                await self.keyboard.hand_back(self.link.bus, why)
            else:
                log.info("%s: listend is no longer the input method", why)
            self.delivery.focused = None
            self.status.update(active=False)

    def _release_composer(self, reason: str) -> None:
        """The composer lets go: final text to the clipboard now, the rest when its final comes (owed)."""
        self.daemon.owe(self.composer.pending_ids(), reason)
        self._apply([ShowPreedit(""), *self.composer.flush(reason)])

    # -- effects ----------------------------------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        self.delivery.apply(effects)
        if effects:
            self._publish_counts()

    def _forget_engine(self, path: str) -> None:
        if self.link.bus is not None:
            self.link.bus.unexport(path)

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
        self.status.update(
            delivered=counts.delivered,
            unconfirmed=counts.unconfirmed,
            failed=counts.failed,
            refused=counts.refused,
            withheld=counts.withheld,
        )

    def _show_state(self, engine: Engine | None = None) -> None:
        """Say that listend is dictating in the engine's property: the line panels list for the active engine.

        Not in the auxiliary text: IBus shows that by the cursor, over the very
        line being written (and the words just committed).
        """
        focused = self.delivery.focused
        target = engine or (focused if isinstance(focused, Engine) else None)
        if target is None or not self.keyboard.held:
            return
        state = {"listening": "listening", "absent": "listend is not running"}.get(self.daemon.state, "finishing…")
        counts = self.composer.counts
        tooltip = (
            f"{counts.delivered} delivered, {counts.unconfirmed} unconfirmed, {counts.failed} to the clipboard, "
            f"{counts.refused} commands refused, {counts.withheld} withheld from password fields"
        )
        target.RegisterProperties(
            ibus.prop_list([ibus.prop("listend-state", f"Dictation: {state}", tooltip, ENGINE.symbol)])
        )


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
    fields.return_large_blocks()
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
