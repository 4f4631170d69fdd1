"""``listend-tray``: the tray icon (pystray) and, with ``--window``, the transcript window.

The tray holds no transcription logic: it shows the daemon's state, sends
commands over D-Bus, and copies text. pystray's backends differ: the xorg
(XEmbed) backend has a click action but no menu -- a click toggles dictation
there; AppIndicator has a menu but no click action; GTK has both. The menu
is built for all of them and pystray uses what the backend supports.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from .busworker import BusWorker, TrayState
from .clipboard import Clipboard
from .icons import draw_icon

log = logging.getLogger("listend.tray")
MB = 1024 * 1024


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "listend" / "tray.json"


class TraySettings:
    """Persisted tray choices (auto-copy and what it copies)."""

    def __init__(self, path: Path | None = None):
        self.path = path or settings_path()
        self.auto_copy = False
        self.auto_copy_mode = "segment"  # or "session": the running session text
        try:
            data = json.loads(self.path.read_text())
            self.auto_copy = bool(data.get("auto_copy", False))
            if data.get("auto_copy_mode") in ("segment", "session"):
                self.auto_copy_mode = data["auto_copy_mode"]
        except (OSError, ValueError, AttributeError):
            pass

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"auto_copy": self.auto_copy, "auto_copy_mode": self.auto_copy_mode}))
        os.replace(tmp, self.path)


def _shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class TrayApp:
    """The tray icon and its menu, driven by a :class:`BusWorker`."""

    def __init__(self, icon_factory=None):
        import pystray

        self._pystray = pystray
        self.settings = TraySettings()
        self.clipboard = Clipboard()
        self.worker = BusWorker(self._on_change, self._on_refined)
        from .xorg import fixed_icon_class

        factory = icon_factory or fixed_icon_class(pystray.Icon)
        self.icon = factory("listend", draw_icon("absent"), "listend: not running", menu=self.build_menu())
        self._shown = None

    # -- menu -------------------------------------------------------------------------

    def build_menu(self):
        Menu, Item = self._pystray.Menu, self._pystray.MenuItem
        s = lambda: self.worker.state  # noqa: E731

        def recent_items():
            items = [Item(_shorten(text), self._copier(text)) for _id, text in reversed(s().recent_segments())]
            return items or [Item("(nothing yet)", None, enabled=False)]

        return Menu(
            Item(lambda _: "Stop dictation" if s().state == "listening" else "Start dictation", self.toggle,
                 default=True, enabled=lambda _: s().running),
            Item(lambda _: f"Live: {_shorten(s().live) or '…'}", None, enabled=False),
            Item("Recent", Menu(recent_items)),
            Item("Copy last refined", self.copy_last, enabled=lambda _: bool(s().last_text())),
            Item("Copy session transcript", self.copy_session, enabled=lambda _: bool(s().session_text())),
            Item("Auto-copy refined text", self.toggle_auto_copy, checked=lambda _: self.settings.auto_copy),
            Item("Profile", Menu(
                Item("Full", lambda: self.worker.set_profile("full"), radio=True,
                     checked=lambda _: s().profile == "full"),
                Item("Lightweight", lambda: self.worker.set_profile("lightweight"), radio=True,
                     checked=lambda _: s().profile == "lightweight"))),
            Item(lambda _: f"Memory: {s().rss_bytes / MB:.0f} MB" + (f" ({s().pressure})" if s().pressure != "normal" else ""),
                 None, enabled=False),
            Item("Start listend", self.start_daemon, visible=lambda _: not s().running),
            Item("Open transcript window", self.open_window),
            Item("Quit tray", self.quit),
        )

    def item(self, text: str):
        """The top-level menu item whose (current) text is ``text`` (for scripts and tests)."""
        for item in self.icon.menu.items:
            if item.text == text:
                return item
        raise KeyError(text)

    # -- actions ----------------------------------------------------------------------

    def toggle(self, *_):
        if self.worker.state.running:
            return self.worker.toggle()
        return self.worker.start_daemon()

    def _copier(self, text: str):
        return lambda *_: self.clipboard.copy(text)

    def copy_last(self, *_):
        text = self.worker.state.last_text()
        if text:
            self.clipboard.copy(text)

    def copy_session(self, *_):
        self.clipboard.copy(self.worker.state.session_text())

    def toggle_auto_copy(self, *_):
        self.settings.auto_copy = not self.settings.auto_copy
        self.settings.save()

    def start_daemon(self, *_):
        return self.worker.start_daemon()

    def open_window(self, *_):
        subprocess.Popen([sys.executable, "-m", "listend_tray.app", "--window"], start_new_session=True,
                         stdin=subprocess.DEVNULL)

    async def _keep_docked(self, icon) -> None:
        import asyncio

        while True:
            await asyncio.sleep(2)
            try:
                await asyncio.to_thread(icon.ensure_docked)
            except Exception:
                log.debug("no system tray to dock into yet")

    def quit(self, *_):
        self.icon.stop()

    # -- updates from the bus worker ----------------------------------------------------

    def _on_refined(self, _seg_id: int, text: str) -> None:
        if self.settings.auto_copy:
            self.clipboard.copy(text if self.settings.auto_copy_mode == "segment" else self.worker.state.session_text())

    def _on_change(self, state: TrayState) -> None:
        shown = (state.shown_state, state.pressure)
        if shown != self._shown:  # redraw only when the picture changes
            self._shown = shown
            self.icon.icon = draw_icon(*shown)
        title = "listend: not running" if not state.running else (
            f"listend: {state.shown_state}, {state.profile}, {state.rss_bytes / MB:.0f} MB")
        if state.last_error and state.running and state.state == "error":
            title += f" - {state.last_error}"
        if getattr(self.icon, "_display", None) is not None:
            title = title.encode("latin-1", "replace").decode("latin-1")  # X11 WM_NAME is Latin-1
        self.icon.title = title
        try:
            self.icon.update_menu()
        except Exception:
            pass  # backends without menus

    def run(self) -> None:
        self.icon.run(setup=self._setup)

    def _setup(self, icon) -> None:
        icon.visible = True
        if hasattr(icon, "ensure_docked"):
            self.worker.submit_when_running(self._keep_docked(icon))
        # Only now: title and icon changes made before the icon is visible are
        # not applied by every backend.
        self.worker.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="listend-tray", description="Tray icon for the listend dictation daemon.")
    parser.add_argument("--window", action="store_true", help="open the transcript window instead of the tray icon")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="listend-tray: %(levelname)s %(message)s")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print("listend-tray: no graphical display (DISPLAY/WAYLAND_DISPLAY unset)", file=sys.stderr)
        return 1
    if args.window:
        from .window import run_window

        return run_window()
    try:
        app = TrayApp()
    except Exception as e:  # pystray cannot reach the display or any tray backend
        print(f"listend-tray: cannot create a tray icon: {e}", file=sys.stderr)
        return 1
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
