"""Global shortcuts through the xdg-desktop-portal ``GlobalShortcuts`` interface.

KDE Plasma 6, GNOME 48+ and Hyprland offer it. The tray registers two:
"Toggle dictation" and "Push to talk" (listening while held: ``Activated``
starts, ``Deactivated`` stops). The desktop asks the user to confirm or pick
the keys. A program that is not a Flatpak must first tell the portal its app
id through ``org.freedesktop.host.portal.Registry`` (without it, GNOME 49
binds but never fires). Where the interface is missing (GNOME 46, sway, XFCE),
:meth:`PortalShortcuts.setup` returns False and the tray logs how to bind
``listenctl toggle`` instead (see docs/shortcuts.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Callable

from dbus_next import Message, MessageType, Variant

log = logging.getLogger("listend.tray.shortcuts")

PORTAL = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
REGISTRY = "org.freedesktop.host.portal.Registry"
APP_ID = "io.github.listend"
TOGGLE, PUSH_TO_TALK = "toggle-dictation", "push-to-talk"


class PortalShortcuts:
    """One portal session for the tray's lifetime; calls back on the bus loop."""

    def __init__(self, on_toggle: Callable[[], object], on_press: Callable[[], object],
                 on_release: Callable[[], object]):
        self._actions = {TOGGLE: (on_toggle, None), PUSH_TO_TALK: (on_press, on_release)}
        self.bus = None
        self.session = ""
        self.bound: list[str] = []

    async def setup(self, bus) -> bool:
        """Register with the portal and bind the shortcuts; False where the portal cannot."""
        self.bus = bus
        reply = await self._call(REGISTRY, "Register", "sa{sv}", [APP_ID, {}])
        if reply.message_type == MessageType.ERROR:
            log.info("portal registry: %s (older portals have none; going on)", reply.error_name)
        try:
            results = await self._request("CreateSession", "a{sv}", lambda token: [{
                "handle_token": Variant("s", token), "session_handle_token": Variant("s", "listend")}])
        except PortalUnavailable as e:
            log.info("no global shortcuts portal (%s): bind `listenctl toggle` in the desktop's settings", e)
            return False
        self.session = results["session_handle"].value
        await self._match(f"type='signal',interface='{SHORTCUTS}',path='{PORTAL_PATH}'")
        bus.add_message_handler(self._on_signal)
        shortcuts = [
            [TOGGLE, {"description": Variant("s", "Toggle dictation"),
                      "preferred_trigger": Variant("s", "CTRL+ALT+D")}],
            [PUSH_TO_TALK, {"description": Variant("s", "Push to talk (dictate while held)"),
                            "preferred_trigger": Variant("s", "CTRL+ALT+SPACE")}],
        ]
        try:
            results = await self._request("BindShortcuts", "oa(sa{sv})sa{sv}", lambda token: [
                self.session, shortcuts, "", {"handle_token": Variant("s", token)}])
        except PortalUnavailable as e:
            log.warning("the portal refused the shortcuts: %s", e)
            return False
        self.bound = [s[0] for s in results.get("shortcuts", Variant("a(sa{sv})", [])).value]
        log.info("global shortcuts bound: %s", ", ".join(self.bound) or "none (the user declined)")
        return True

    def _on_signal(self, msg: Message):
        if msg.message_type != MessageType.SIGNAL or msg.interface != SHORTCUTS or not msg.body:
            return False
        if msg.member not in ("Activated", "Deactivated") or msg.body[0] != self.session:
            return False
        press, release = self._actions.get(msg.body[1], (None, None))
        action = press if msg.member == "Activated" else release
        if action is not None:
            action()
        return False

    # -- the portal's request/response pattern ----------------------------------------

    async def _call(self, interface: str, member: str, signature: str, body: list) -> Message:
        return await self.bus.call(Message(destination=PORTAL, path=PORTAL_PATH, interface=interface,
                                           member=member, signature=signature, body=body))

    async def _match(self, rule: str) -> None:
        await self.bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                    interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                                    body=[rule]))

    async def _request(self, member: str, signature: str, body_for, timeout: float = 120) -> dict:
        """Call a portal method that answers through a Request object's ``Response`` signal."""
        token = "listend" + secrets.token_hex(4)
        sender = self.bus.unique_name.lstrip(":").replace(".", "_")
        path = f"{PORTAL_PATH}/request/{sender}/{token}"
        answer: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_response(msg: Message):
            if msg.message_type == MessageType.SIGNAL and msg.path == path and msg.member == "Response" \
                    and not answer.done():
                answer.set_result(msg.body)
            return False

        # Subscribe before calling: the portal may answer at once.
        await self._match(f"type='signal',interface='org.freedesktop.portal.Request',path='{path}'")
        self.bus.add_message_handler(on_response)
        try:
            reply = await self._call(SHORTCUTS, member, signature, body_for(token))
            if reply.message_type == MessageType.ERROR:
                raise PortalUnavailable(reply.error_name)
            try:
                code, results = await asyncio.wait_for(answer, timeout)
            except asyncio.TimeoutError:
                raise PortalUnavailable(f"no answer to {member} in {timeout:.0f} s") from None
        finally:
            self.bus.remove_message_handler(on_response)
        if code != 0:
            raise PortalUnavailable(f"{member} was {'cancelled' if code == 1 else 'refused'} ({code})")
        return results


class PortalUnavailable(RuntimeError):
    pass
