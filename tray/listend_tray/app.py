"""``listend-tray``: the tray icon and, with ``--window``, the transcript window.

The tray holds no transcription logic: it shows the daemon's state, sends
commands over D-Bus, and copies text. Two backends show the same menu
(:mod:`menu`):

* **StatusNotifierItem** (:mod:`sni`) when a ``org.kde.StatusNotifierWatcher``
  is on the session bus -- KDE Plasma, GNOME with the AppIndicator
  extension, XFCE, Cinnamon, MATE, waybar -- and on Wayland generally: a
  full menu, left click toggles dictation, middle click copies the last
  segment. With no watcher yet (a panel that starts after the tray), the
  item registers as soon as one appears.
* **XEmbed** (pystray's xorg backend) on an X11 desktop with only an old
  system tray (trayer, stalonetray): there is no menu; a left click toggles
  dictation, or starts listend when it is not running, and the icon changes
  at once. A start that fails opens the transcript window, which shows why
  and has every menu action.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from listend.client import delivery_route  # the one rule, shared with listend-ime and listenctl
from listend.dbusio import QuietPeerErrors
from listend.files import UnsafeFile, read_regular, write_private
from listend.paths import config_dir
from listend.units import MIB
from listend_desktop.clipboard import Clipboard

from .busworker import BusWorker, TrayState
from .icons import draw_icon
from .menu import MenuEntry, build_menu, tooltip

if TYPE_CHECKING:
    from listend_desktop.typist import Typist

log = logging.getLogger("listend.tray")

_MAX_SETTINGS_BYTES = 64 * 1024


def settings_path() -> Path:
    return config_dir() / "tray.json"


class TraySettings:
    """Persisted tray choices (auto-copy and what it copies; where text is delivered is the daemon's ``Delivery``).

    A file that is not a small JSON object of ours (a FIFO, a device, a
    document nested a million deep) counts as no settings.
    """

    def __init__(self, path: Path | None = None):
        self.path = path or settings_path()
        self.auto_copy = False
        self.auto_copy_mode = "segment"  # or "session": the running session text
        try:
            data = json.loads(read_regular(self.path, _MAX_SETTINGS_BYTES))
        except FileNotFoundError:
            return
        except (OSError, UnsafeFile, ValueError, RecursionError) as e:
            log.warning("ignoring %s: %s", self.path, getattr(e, "strerror", None) or type(e).__name__)
            return
        if not isinstance(data, dict):
            return
        self.auto_copy = data.get("auto_copy") is True
        if data.get("auto_copy_mode") in ("segment", "session"):
            self.auto_copy_mode = data["auto_copy_mode"]

    def save(self) -> None:
        write_private(
            self.path,
            json.dumps({"auto_copy": self.auto_copy, "auto_copy_mode": self.auto_copy_mode}).encode(),
        )


class TrayView(Protocol):
    """What a tray backend does (blueman's ``IndicatorInterface`` is the model)."""

    async def attach(self, bus: Any) -> None:
        """On every bus (re)connection: export what the view serves on ``bus`` (nothing for XEmbed)."""
        ...

    def show(self, state: TrayState, entries: list[MenuEntry]) -> None:
        """Show ``state`` and the menu ``entries`` (called on the bus worker's thread)."""
        ...

    def run(self) -> None:
        """Run until :meth:`stop` (on the main thread)."""
        ...

    def stop(self) -> None: ...


class TrayApp:
    """What the tray does, whichever :class:`TrayView` shows it; the menu's :class:`~listend_tray.menu.MenuActions`."""

    def __init__(self, settings: TraySettings | None = None):
        self.settings = settings or TraySettings()
        self.clipboard = Clipboard(on_error=self._clipboard_failed)
        self.worker = BusWorker(self._on_change, self._on_refined)
        self.worker.on_connected = self._connected
        self.view: TrayView | None = None
        self._typist: Typist | None = None
        self._window: subprocess.Popen[bytes] | None = None
        self._window_lock = threading.Lock()
        self._said_no_ime = False
        self._said_command_refused = False  # a take-back or a spoken mark the clipboard cannot carry out, said once
        from .shortcuts import PortalShortcuts

        self.shortcuts = PortalShortcuts(self.toggle, self.worker.start_listening, self.worker.stop_listening)
        self._setup_task: asyncio.Task[bool] | None = None

    async def _connected(self, bus: Any) -> None:
        """On every (re)connection: the view's own exports, then the portal's shortcuts (in the background:
        the desktop may ask the user first)."""
        if self.view is not None:
            await self.view.attach(bus)
        self._setup_task = asyncio.get_running_loop().create_task(self.shortcuts.setup(bus))

    def menu(self) -> list[MenuEntry]:
        return build_menu(self.worker.state, self.settings, self)

    # -- actions (any thread) --------------------------------------------------------

    def toggle(self) -> Future[Any]:
        if self.worker.state.running:
            return self.worker.toggle()
        future = self.worker.start_daemon()
        future.add_done_callback(self._started)
        return future

    def _started(self, future: Future[Any]) -> None:
        if future.cancelled() or future.exception() or not future.result():
            reason = "listend could not be started (is it installed? see: listenctl install)"
            log.warning("%s", reason)
            self.worker.notify("listend", reason)
            self.open_window()  # XEmbed has no menu: show the window, which says why

    def copy_last(self) -> None:
        text = self.worker.state.last_text()
        if text:
            self.clipboard.copy(text)  # coalesced: a burst of clicks runs one helper at a time

    def copy_session(self) -> None:
        text = self.worker.state.session_text()
        if text:
            self.clipboard.copy(text)

    def toggle_auto_copy(self) -> None:
        self.settings.auto_copy = not self.settings.auto_copy
        self._save_settings()
        self.worker.changed()

    def set_delivery(self, method: str) -> Future[Any]:
        self._typist = None  # a new choice starts afresh (a refused backend may work now)
        self._said_no_ime = False
        return self.worker.set_delivery(method)

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as e:
            log.warning("cannot save %s: %s", self.settings.path, e.strerror)

    def set_profile(self, profile: str) -> Future[Any]:
        return self.worker.set_profile(profile)

    def pin_language(self, language: str) -> Future[Any]:
        return self.worker.pin_language(language)

    def open_window(self) -> None:
        """Open the transcript window; at most one at a time, however often it is asked for."""
        with self._window_lock:
            if self._window is not None and self._window.poll() is None:
                return
            self._window = subprocess.Popen(
                [sys.executable, "-m", "listend_tray.app", "--window"], start_new_session=True, stdin=subprocess.DEVNULL
            )

    def quit(self) -> None:
        if self.view is not None:
            self.view.stop()

    def _clipboard_failed(self, message: str) -> None:
        self.worker.notify("listend: cannot copy", message)

    # -- updates from the bus worker (its thread) -------------------------------------

    def _on_refined(self, seg_id: int, text: str) -> None:
        state = self.worker.state
        route = delivery_route(state.delivery, state.ime.connected, state.typist)
        command = state.command_of(seg_id)  # a voice command is executed (Return) or refused, never typed
        if route == "type":
            if self._typist is None:
                from listend_desktop.typist import Typist, command_refusal_notice, refusal_notice

                self._typist = Typist(
                    on_refused=lambda reason: self.worker.notify(*refusal_notice(reason)),
                    on_command_refused=lambda reason: self.worker.notify(*command_refusal_notice(reason)),
                )
            work, argument = (self._typist.execute, command) if command else (self._typist.type_segment, text)
            threading.Thread(target=work, args=(argument,), name="listend-type", daemon=True).start()
        elif command:
            # The clipboard holds single segments: a line break has nothing to join, and a take-back or a mark
            # cannot change what the user may already have pasted. Said once.
            unchanged = ("new_line", "new_paragraph", "stop_listening")
            refused = route in ("clipboard", "nowhere") and command not in unchanged
            if refused and not self._said_command_refused:
                from listend_desktop.typist import command_refusal_notice

                self._said_command_refused = True
                self.worker.notify(
                    *command_refusal_notice("text on the clipboard cannot be changed after it may have been pasted")
                )
        elif route == "clipboard" or route == "nowhere":
            if route == "nowhere" and not self._said_no_ime:
                self._said_no_ime = True
                self.worker.notify(
                    "listend: no input method",
                    "Delivery is set to the input method, but listend-ime is not connected to IBus. "
                    "Refined text goes to the clipboard.",
                )
            self.clipboard.copy(text)
        if self.settings.auto_copy and route not in ("clipboard", "nowhere") and not command:
            self.clipboard.copy(text if self.settings.auto_copy_mode == "segment" else state.session_text())

    def _on_change(self, state: TrayState) -> None:
        if self.view is not None:
            self.view.show(state, self.menu())


class SniView:
    """The StatusNotifierItem backend; runs on the bus worker's loop (no GUI toolkit)."""

    def __init__(self, app: TrayApp):
        from .sni import SniTray

        self.app = app
        self.sni = SniTray(app.toggle, app.copy_last)

    async def attach(self, bus: Any) -> None:
        await self.sni.attach(bus, os.getpid())

    def show(self, state: TrayState, entries: list[MenuEntry]) -> None:
        title, description = tooltip(state)
        attention = state.running and (state.state == "error" or state.pressure == "limit")
        self.sni.update(
            state.shown_state, state.pressure, title, description, "NeedsAttention" if attention else "Active", entries
        )

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        self.app.worker.run_in_foreground()

    def stop(self) -> None:
        self.app.worker.stop()


class XEmbedView:
    """pystray's xorg backend, fixed (:mod:`xorg`): an icon whose click toggles dictation.

    Chosen by ``auto`` because no StatusNotifierWatcher was there yet (a tray autostarted before the panel:
    xfce4-panel's tray shows XEmbed icons as a black square with no menu), it follows the watcher's name
    and, when one appears, stops so that :func:`main` starts the tray again as a StatusNotifierItem.
    """

    def __init__(self, app: TrayApp, icon_factory: Any = None, until_watcher: bool = False):
        import pystray

        from .xorg import fixed_icon_class

        self.app = app
        self.until_watcher = until_watcher
        self.watcher_appeared = False
        self._pystray = pystray
        factory = icon_factory or fixed_icon_class(pystray.Icon)
        self.icon = factory(
            "listend", draw_icon("absent"), "listend: not running - click to start", menu=self._pystray_menu(app.menu())
        )
        self._shown: tuple[str, str] | None = None

    async def attach(self, bus: Any) -> None:
        """XEmbed serves nothing on the bus; it only watches for a StatusNotifierWatcher (if asked to)."""
        if not self.until_watcher:
            return
        from listend.bus import call_bus_daemon
        from listend_tray.sni import WATCHER, watcher_on

        def on_message(msg: Any) -> bool:
            if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus" and msg.body[:1] == [WATCHER]:
                if msg.body[2]:
                    self._move_to_sni()
            return False

        bus.add_message_handler(on_message)
        rule = f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{WATCHER}'"
        await call_bus_daemon(bus, "AddMatch", "s", [rule])
        if await watcher_on(bus):  # it came between the choice of backend and now
            self._move_to_sni()

    def _move_to_sni(self) -> None:
        if not self.watcher_appeared:
            self.watcher_appeared = True
            log.info("a StatusNotifierWatcher appeared: moving from the XEmbed icon to a StatusNotifierItem")
            self.icon.stop()  # run() returns; main() starts the tray again with the sni backend

    def _pystray_menu(self, entries: list[MenuEntry]) -> Any:
        Menu, Item = self._pystray.Menu, self._pystray.MenuItem
        items = []
        for e in entries:
            if e.separator:
                items.append(Menu.SEPARATOR)
                continue
            action = (lambda act: lambda *_: act())(e.action) if e.action else None
            items.append(
                Item(
                    e.label,
                    self._pystray_menu(e.children) if e.children else action,
                    enabled=e.enabled,
                    visible=e.visible,
                    default=e.key == "toggle",
                    checked=(lambda checked: lambda _: checked)(e.checked) if e.toggle else None,
                    radio=e.toggle == "radio",
                )
            )
        return Menu(*items)

    def show(self, state: TrayState, entries: list[MenuEntry]) -> None:
        shown = (state.shown_state, state.pressure)
        if shown != self._shown:  # redraw only when the picture changes
            self._shown = shown
            self.icon.icon = draw_icon(*shown)
        title = (
            "listend: not running - click to start"
            if not state.running
            else (f"listend: {state.shown_state}, {state.profile}, {state.rss_bytes / MIB:.0f} MiB")
        )
        if state.last_error and state.running and state.state == "error":
            title += f" - {state.last_error}"
        if getattr(self.icon, "_display", None) is not None:
            title = title.encode("latin-1", "replace").decode("latin-1")  # X11 WM_NAME is Latin-1
        self.icon.title = title
        self.icon.menu = self._pystray_menu(entries)
        try:
            self.icon.update_menu()
        except Exception:
            pass  # backends without menus

    def item(self, text: str) -> Any:
        """The top-level menu item whose text is ``text`` (for scripts and tests)."""
        for item in self.icon.menu.items:
            if item.text == text:
                return item
        raise KeyError(text)

    async def _keep_docked(self) -> None:
        said = False
        while True:
            await asyncio.sleep(2)
            try:
                docked = await asyncio.to_thread(self.icon.ensure_docked)
            except Exception:
                docked = False
            if not docked and not said:
                log.warning("no system tray (XEmbed) is running yet; the icon appears when one starts")
            said = said or not docked

    def run(self) -> None:
        self.icon.run(setup=self._setup)

    def _setup(self, icon: Any) -> None:
        icon.visible = True
        if hasattr(icon, "ensure_docked"):
            self.app.worker.submit_when_running(self._keep_docked())
        # Only now: title and icon changes made before the icon is visible are
        # not applied by every backend.
        self.app.worker.start()

    def stop(self) -> None:
        self.icon.stop()


def choose_backend(requested: str) -> str:
    """``sni`` where a StatusNotifierWatcher is on the session bus (or there is no X11), else ``xembed``."""
    if requested != "auto":
        return requested
    if not os.environ.get("DISPLAY"):
        return "sni"  # Wayland: XEmbed cannot work; a watcher may come later

    async def watcher_present() -> bool:
        from listend.client import DictationClient

        from .sni import watcher_on

        try:
            client = await asyncio.wait_for(DictationClient.connect(), 5)
        except Exception:
            return False
        try:
            return await watcher_on(client.bus)
        finally:
            client.close()

    return "sni" if asyncio.run(watcher_present()) else "xembed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="listend-tray", description="Tray icon for the listend dictation daemon.")
    parser.add_argument("--window", action="store_true", help="open the transcript window instead of the tray icon")
    parser.add_argument(
        "--backend",
        choices=("auto", "sni", "xembed"),
        default="auto",
        help="sni: StatusNotifierItem (KDE, GNOME+AppIndicator, XFCE, waybar); xembed: old X11 "
        "trays; auto (default): sni when a StatusNotifierWatcher is on the bus",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="listend-tray: %(levelname)s %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietPeerErrors())  # a peer's bad calls to the item or menu are its own business
    # pystray logs "Failed to dock icon" with a traceback on every try while no tray manager exists yet;
    # the tray retries on its own and says once that it is waiting (see XEmbedView).
    logging.getLogger("pystray").setLevel(logging.CRITICAL)
    if args.window:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            print("listend-tray: no graphical display (DISPLAY/WAYLAND_DISPLAY unset)", file=sys.stderr)
            return 1
        from .window import run_window

        return run_window()
    backend = choose_backend(args.backend)
    app = TrayApp()
    view: TrayView
    if backend == "sni":
        view = SniView(app)
    else:
        if not os.environ.get("DISPLAY"):
            print("listend-tray: the xembed backend needs an X11 display (DISPLAY is unset)", file=sys.stderr)
            return 1
        try:
            view = XEmbedView(app, until_watcher=args.backend == "auto")
        except Exception as e:  # pystray cannot reach the display
            print(f"listend-tray: cannot create a tray icon: {e}", file=sys.stderr)
            return 1
    app.view = view
    view.run()
    if isinstance(view, XEmbedView) and view.watcher_appeared:
        # A fresh process, not a second backend in this one: pystray's X connection and the bus worker's
        # thread and exports belong to the XEmbed tray. Settings are in tray.json; the daemon is untouched.
        app.worker.stop()
        argv = list(sys.argv[1:] if argv is None else argv)
        os.execv(sys.executable, [sys.executable, "-m", "listend_tray.app", *argv, "--backend", "sni"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
