"""Pasting through the xdg-desktop-portal RemoteDesktop interface (GNOME and KDE Wayland).

Those desktops offer no virtual-keyboard protocol, so ``wtype`` is refused.
The RemoteDesktop portal lets a client send key events after the user
allowed it once: one session lives as long as the client, and a restore token
(``persist_mode`` 2, kept in ``$XDG_STATE_HOME/listend/remote-desktop-token``)
lets the next start skip the question. Text is not typed key by key -- that
breaks with non-US layouts and accents -- but put on the clipboard and pasted
with one Ctrl+V.

The token file is read as untrusted: anything that is not a short line of
printable UTF-8 in a regular file (a link, a FIFO, binary junk, a NUL) counts
as no token, and the file is replaced atomically with mode 0600 when the
portal hands out a new one. A lost bus connection is reconnected at the next
paste.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

from dbus_next import Variant

from listend.files import UnsafeFile, read_regular, write_private
from listend.outcome import Outcome
from listend.paths import state_dir

from .portal import Portal, PortalUnavailable, token_option

log = logging.getLogger("listend.portal")

REMOTE_DESKTOP = "org.freedesktop.portal.RemoteDesktop"
KEYBOARD = 1
PERSIST_UNTIL_REVOKED = 2
XK_CONTROL_L, XK_V = 0xFFE3, 0x0076
_MAX_TOKEN = 4096


def token_path() -> Path:
    return state_dir() / "remote-desktop-token"


class PortalKeyboard:
    """A RemoteDesktop session with a keyboard, on its own thread and bus connection."""

    def __init__(self):
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="listend-portal-keyboard", daemon=True).start()
        self._portal: Portal | None = None
        self._session = ""

    def paste(self, timeout: float = 150) -> Outcome:
        """Press Ctrl+V in the focused window."""
        try:
            asyncio.run_coroutine_threadsafe(self._paste(), self._loop).result(timeout)
        except PortalUnavailable as e:
            return Outcome.failed(f"the remote desktop portal refused: {e}")
        except Exception as e:  # no bus, a lost connection: say so, the caller falls back
            self._session = ""  # and start afresh next time
            return Outcome.failed(f"the remote desktop portal failed: {type(e).__name__}: {e}")
        return Outcome.done("the remote desktop portal")

    def close(self) -> None:
        """End the session's connection (the portal ends the session with it)."""

        async def disconnect() -> None:
            if self._portal is not None:
                self._portal.bus.disconnect()
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(disconnect(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _paste(self) -> None:
        for attempt in (1, 2):
            if self._portal is not None and not self._portal.bus.connected:
                log.info("the bus connection to the portal was lost; reconnecting")
                self._portal, self._session = None, ""
            fresh = not self._session
            if fresh:
                await self._start()
            try:
                await self._press_paste()
                return
            except PortalUnavailable:
                self._session = ""  # ended by the desktop (or the portal restarted): a new one next time
                if fresh or attempt == 2:
                    raise
                log.info("the remote desktop session ended; starting a new one")

    async def _press_paste(self) -> None:
        assert self._portal is not None
        for keysym, state in ((XK_CONTROL_L, 1), (XK_V, 1), (XK_V, 0), (XK_CONTROL_L, 0)):
            reply = await self._portal.call(
                REMOTE_DESKTOP, "NotifyKeyboardKeysym", "oa{sv}iu", [self._session, {}, keysym, state]
            )
            if reply.message_type.name == "ERROR":
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
        results = await portal.request(
            REMOTE_DESKTOP,
            "CreateSession",
            "a{sv}",
            lambda token: [{**token_option(token), "session_handle_token": Variant("s", "listend")}],
        )
        session = str(results["session_handle"].value)
        options = {"types": Variant("u", KEYBOARD), "persist_mode": Variant("u", PERSIST_UNTIL_REVOKED)}
        saved = self._saved_token()
        if saved:
            options["restore_token"] = Variant("s", saved)
        await portal.request(
            REMOTE_DESKTOP, "SelectDevices", "oa{sv}", lambda token: [session, {**token_option(token), **options}]
        )
        results = await portal.request(
            REMOTE_DESKTOP, "Start", "osa{sv}", lambda token: [session, "", token_option(token)]
        )
        if not results.get("devices", Variant("u", 0)).value & KEYBOARD:
            raise PortalUnavailable("no keyboard was granted")
        if "restore_token" in results:
            self._save_token(results["restore_token"].value)
        self._session = session

    @staticmethod
    def _saved_token() -> str:
        return read_token(token_path())

    @staticmethod
    def _save_token(token: str) -> None:
        if not valid_token(token):
            log.warning("the portal sent a restore token listend will not store")
            return
        try:
            write_private(token_path(), (token + "\n").encode("utf-8"))
        except OSError as e:
            log.info("cannot store the portal's restore token (%s); the desktop will ask again", e.strerror)


def valid_token(token: str) -> bool:
    """A restore token is one short line of printable text."""
    return 0 < len(token) <= _MAX_TOKEN and token.isprintable()


def read_token(path: Path) -> str:
    """The saved restore token, or '' for none -- also for a file that cannot be one.

    A token file with wider modes than 0600 is rewritten 0600.
    """
    try:
        raw = read_regular(path, _MAX_TOKEN + 2, follow_symlinks=False)
        token = raw.decode("utf-8").strip()
        mode = os.lstat(path).st_mode
    except (OSError, UnsafeFile, UnicodeDecodeError):
        return ""
    if not valid_token(token):
        return ""
    if mode & 0o077:
        try:
            write_private(path, (token + "\n").encode("utf-8"))
        except OSError:
            pass
    return token
