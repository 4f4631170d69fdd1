"""Pasting through the xdg-desktop-portal RemoteDesktop interface (GNOME and KDE Wayland).

Those desktops offer no virtual-keyboard protocol, so ``wtype`` is refused.
The RemoteDesktop portal lets a client send key events after the user
allowed it once: one session lives as long as the client, and a restore token
(``persist_mode`` 2, kept in ``$XDG_STATE_HOME/listend/remote-desktop-token``)
lets the next start skip the question. Text is not typed key by key -- that
breaks with non-US layouts and accents -- but put on the clipboard and pasted
with one Ctrl+V.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from dbus_next import Variant

from listend.paths import state_dir

from .portal import Portal, PortalUnavailable, token_option

REMOTE_DESKTOP = "org.freedesktop.portal.RemoteDesktop"
KEYBOARD = 1
PERSIST_UNTIL_REVOKED = 2
XK_CONTROL_L, XK_V = 0xFFE3, 0x0076


def token_path() -> Path:
    return state_dir() / "remote-desktop-token"


class PortalKeyboard:
    """A RemoteDesktop session with a keyboard, on its own thread and bus connection."""

    def __init__(self):
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="listend-portal-keyboard", daemon=True).start()
        self._portal: Portal | None = None
        self._session = ""

    def paste(self, timeout: float = 150) -> str | None:
        """Press Ctrl+V in the focused window; returns why not, or None when done."""
        try:
            asyncio.run_coroutine_threadsafe(self._paste(), self._loop).result(timeout)
        except PortalUnavailable as e:
            return f"the remote desktop portal refused: {e}"
        except Exception as e:  # no bus, a lost connection: say so, the caller falls back
            return f"the remote desktop portal failed: {type(e).__name__}: {e}"
        return None

    def close(self) -> None:
        """End the session's connection (the portal ends the session with it)."""
        async def disconnect() -> None:
            if self._portal is not None:
                self._portal.bus.disconnect()
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(disconnect(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _paste(self) -> None:
        if not self._session:
            await self._start()
        for keysym, state in ((XK_CONTROL_L, 1), (XK_V, 1), (XK_V, 0), (XK_CONTROL_L, 0)):
            reply = await self._portal.call(REMOTE_DESKTOP, "NotifyKeyboardKeysym", "oa{sv}iu",
                                            [self._session, {}, keysym, state])
            if reply.message_type.name == "ERROR":
                self._session = ""  # ended by the desktop: start a new one next time
                raise PortalUnavailable(reply.error_name)

    async def _start(self) -> None:
        from listend.bus import find_session_bus
        from listend.dbusio import MessageBus

        if self._portal is None:
            address = find_session_bus()
            if address is None:
                raise PortalUnavailable("no session bus")
            self._portal = Portal(await MessageBus(bus_address=address).connect())
            await self._portal.register_app_id()
        portal = self._portal
        results = await portal.request(REMOTE_DESKTOP, "CreateSession", "a{sv}", lambda token: [{
            **token_option(token), "session_handle_token": Variant("s", "listend")}])
        session = str(results["session_handle"].value)
        options = {"types": Variant("u", KEYBOARD), "persist_mode": Variant("u", PERSIST_UNTIL_REVOKED)}
        saved = self._saved_token()
        if saved:
            options["restore_token"] = Variant("s", saved)
        await portal.request(REMOTE_DESKTOP, "SelectDevices", "oa{sv}", lambda token: [
            session, {**token_option(token), **options}])
        results = await portal.request(REMOTE_DESKTOP, "Start", "osa{sv}", lambda token: [
            session, "", token_option(token)])
        if not results.get("devices", Variant("u", 0)).value & KEYBOARD:
            raise PortalUnavailable("no keyboard was granted")
        if "restore_token" in results:
            self._save_token(results["restore_token"].value)
        self._session = session

    @staticmethod
    def _saved_token() -> str:
        try:
            return token_path().read_text().strip()
        except OSError:
            return ""

    @staticmethod
    def _save_token(token: str) -> None:
        path = token_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
        except OSError:
            pass  # asked again next time: not worth failing a paste over
