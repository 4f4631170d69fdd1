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

import logging
from collections.abc import Callable
from typing import Any

from dbus_next import Message, MessageType, Variant

from listend_desktop.portal import (
    PORTAL,
    PORTAL_PATH,
    Portal,
    PortalUnavailable,
    token_option,
)

log = logging.getLogger("listend.tray.shortcuts")

SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
TOGGLE, PUSH_TO_TALK = "toggle-dictation", "push-to-talk"


class PortalShortcuts:
    """One portal session for the tray's lifetime; calls back on the bus loop."""

    def __init__(
        self, on_toggle: Callable[[], object], on_press: Callable[[], object], on_release: Callable[[], object]
    ):
        self._actions: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {
            TOGGLE: (on_toggle, None),
            PUSH_TO_TALK: (on_press, on_release),
        }
        self.bus: Any = None
        self.portal: Portal | None = None
        self.session = ""
        self.bound: list[str] = []

    async def setup(self, bus: Any) -> bool:
        """Register with the portal and bind the shortcuts; False where the portal cannot."""
        self.bus = bus
        portal = self.portal = Portal(bus)
        await portal.register_app_id()
        try:
            results = await portal.request(
                SHORTCUTS,
                "CreateSession",
                "a{sv}",
                lambda token: [{**token_option(token), "session_handle_token": Variant("s", "listend")}],
            )
        except PortalUnavailable as e:
            log.info("no global shortcuts portal (%s): bind `listenctl toggle` in the desktop's settings", e)
            return False
        self.session = results["session_handle"].value
        await portal.add_match(f"type='signal',sender='{PORTAL}',interface='{SHORTCUTS}',path='{PORTAL_PATH}'")
        bus.add_message_handler(self._on_signal)
        shortcuts = [
            [
                TOGGLE,
                {"description": Variant("s", "Toggle dictation"), "preferred_trigger": Variant("s", "CTRL+ALT+D")},
            ],
            [
                PUSH_TO_TALK,
                {
                    "description": Variant("s", "Push to talk (dictate while held)"),
                    "preferred_trigger": Variant("s", "CTRL+ALT+SPACE"),
                },
            ],
        ]
        try:
            results = await portal.request(
                SHORTCUTS,
                "BindShortcuts",
                "oa(sa{sv})sa{sv}",
                lambda token: [self.session, shortcuts, "", token_option(token)],
            )
        except PortalUnavailable as e:
            log.warning("the portal refused the shortcuts: %s", e)
            return False
        self.bound = [s[0] for s in results.get("shortcuts", Variant("a(sa{sv})", [])).value]
        log.info("global shortcuts bound: %s", ", ".join(self.bound) or "none (the user declined)")
        return True

    def _on_signal(self, msg: Message) -> bool:
        if msg.message_type != MessageType.SIGNAL or msg.interface != SHORTCUTS or not msg.body:
            return False
        if self.portal is None or not self.portal.is_from_portal(msg):
            return False  # another peer pretending to be the desktop
        if msg.member not in ("Activated", "Deactivated") or msg.body[0] != self.session:
            return False
        press, release = self._actions.get(msg.body[1], (None, None))
        action = press if msg.member == "Activated" else release
        if action is not None:
            action()
        return False
