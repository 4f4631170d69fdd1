"""The tray as a StatusNotifierItem with a ``com.canonical.dbusmenu`` menu, over dbus-next.

This is what KDE Plasma (X11 and Wayland), GNOME with the AppIndicator
extension, XFCE, Cinnamon, MATE and waybar show. It needs no GUI toolkit: the
item and its menu are two D-Bus objects on the tray's own session-bus
connection, registered with ``org.kde.StatusNotifierWatcher``; the host draws
the icon from ``IconPixmap`` (ARGB32 at several sizes, so HiDPI panels pick a
sharp one), shows ``ToolTip``, and drives the menu through ``GetLayout`` and
``Event``. Left click (``Activate``) toggles dictation; middle click
(``SecondaryActivate``) copies the last segment.

Why not pystray's appindicator backend: it needs PyGObject and
libayatana-appindicator, which a venv cannot import on Debian 12 without
system site packages, and it gives no click action. Exporting the two
interfaces ourselves costs ~250 lines on the D-Bus library the project
already uses, and every host gets menu, click, middle click and tooltip.

No ``from __future__ import annotations``: dbus-next reads signatures from annotations.
"""

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from dbus_next import Message, MessageType, Variant
from dbus_next.constants import PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method, signal

from .icons import draw_icon
from .menu import MenuEntry

log = logging.getLogger("listend.tray.sni")

WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"


async def watcher_on(bus: Any) -> bool:
    """A StatusNotifierWatcher (the desktop's tray host) owns its name on ``bus``."""
    from listend.bus import call_bus_daemon

    reply = await call_bus_daemon(bus, "NameHasOwner", "s", [WATCHER])
    return bool(reply.body and reply.body[0])


ITEM_PATH = "/StatusNotifierItem"
MENU_PATH = "/MenuBar"
ICON_SIZES = (16, 22, 24, 32, 48, 64)


@functools.lru_cache(maxsize=32)
def _pixmaps(state: str, pressure: str) -> tuple:
    out = []
    for size in ICON_SIZES:
        rgba = np.asarray(draw_icon(state, pressure, size=size).convert("RGBA"))
        out.append((size, size, rgba[..., [3, 0, 1, 2]].tobytes()))
    return tuple(out)


def pixmaps(state: str, pressure: str) -> list:
    """``a(iiay)``: the icon at several sizes, ARGB32 in network byte order.

    Drawn once per look: the tray updates on every partial, the picture rarely changes.
    """
    return [list(p) for p in _pixmaps(state, pressure)]


class StatusNotifierItem(ServiceInterface):
    """``org.kde.StatusNotifierItem`` (KDE's name; the freedesktop draft is the same)."""

    def __init__(self, on_activate: Callable[[], object], on_secondary: Callable[[], object]):
        super().__init__("org.kde.StatusNotifierItem")
        self._on_activate = on_activate
        self._on_secondary = on_secondary
        self.title = "listend"
        self.status = "Active"
        self.icon = pixmaps("absent", "normal")
        self.tooltip = ["", [], "listend", "not running"]

    @dbus_property(access=PropertyAccess.READ)
    def Category(self) -> "s":
        return "ApplicationStatus"

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> "s":
        return "listend"

    @dbus_property(access=PropertyAccess.READ)
    def Title(self) -> "s":
        return self.title

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":
        return self.status

    @dbus_property(access=PropertyAccess.READ)
    def WindowId(self) -> "i":
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def IconName(self) -> "s":
        return ""  # the pixmaps carry the state; no theme has listend's icons

    @dbus_property(access=PropertyAccess.READ)
    def IconPixmap(self) -> "a(iiay)":
        return self.icon

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconName(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconPixmap(self) -> "a(iiay)":
        return []

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconName(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconPixmap(self) -> "a(iiay)":
        return self.icon

    @dbus_property(access=PropertyAccess.READ)
    def AttentionMovieName(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def ToolTip(self) -> "(sa(iiay)ss)":
        return self.tooltip

    @dbus_property(access=PropertyAccess.READ)
    def ItemIsMenu(self) -> "b":
        return False  # a left click is an action (toggle), the menu is on right click

    @dbus_property(access=PropertyAccess.READ)
    def Menu(self) -> "o":
        return MENU_PATH

    @method()
    def Activate(self, x: "i", y: "i") -> None:
        self._on_activate()

    @method()
    def SecondaryActivate(self, x: "i", y: "i") -> None:
        self._on_secondary()

    @method()
    def ContextMenu(self, x: "i", y: "i") -> None:
        pass  # hosts show the dbusmenu themselves

    @method()
    def Scroll(self, delta: "i", orientation: "s") -> None:
        pass

    @signal()
    def NewTitle(self):
        pass

    @signal()
    def NewIcon(self):
        pass

    @signal()
    def NewAttentionIcon(self):
        pass

    @signal()
    def NewToolTip(self):
        pass

    @signal()
    def NewStatus(self, status: str) -> "s":
        return status


class DBusMenu(ServiceInterface):
    """``com.canonical.dbusmenu``: the menu as a layout of numbered items."""

    def __init__(self):
        super().__init__("com.canonical.dbusmenu")
        self.revision = 1
        self._entries: list[MenuEntry] = []
        self._ids: dict[str, int] = {}  # key -> id, stable across rebuilds
        self._by_id: dict[int, MenuEntry] = {}

    def set_entries(self, entries: list[MenuEntry]) -> bool:
        """Replace the menu; returns True (and bumps the revision) if anything a host shows changed."""
        before = self._signature(self._entries)
        self._entries = entries
        self._by_id = {}
        self._index(entries)
        if self._signature(entries) == before:
            return False
        self.revision += 1
        self.LayoutUpdated(self.revision, 0)
        return True

    def _index(self, entries: list[MenuEntry]) -> None:
        for e in entries:
            item_id = self._ids.setdefault(e.key, len(self._ids) + 1)
            self._by_id[item_id] = e
            self._index(e.children)

    def _signature(self, entries: list[MenuEntry]) -> list[tuple[object, ...]]:
        return [
            (e.key, e.label, e.enabled, e.visible, e.toggle, e.checked, e.separator, self._signature(e.children))
            for e in entries
        ]

    def _props(self, e: MenuEntry) -> dict:
        if e.separator:
            return {"type": Variant("s", "separator"), "visible": Variant("b", e.visible)}
        props = {
            "label": Variant("s", e.label.replace("_", "__")),
            "enabled": Variant("b", e.enabled),
            "visible": Variant("b", e.visible),
        }
        if e.toggle:
            props["toggle-type"] = Variant("s", e.toggle)
            props["toggle-state"] = Variant("i", 1 if e.checked else 0)
        if e.children:
            props["children-display"] = Variant("s", "submenu")
        return props

    def _layout(self, item_id: int, entries: list[MenuEntry], depth: int) -> list:
        children = (
            []
            if depth == 0
            else [Variant("(ia{sv}av)", self._layout(self._ids[e.key], e.children, depth - 1)) for e in entries]
        )
        props = {"children-display": Variant("s", "submenu")} if item_id == 0 else self._props(self._by_id[item_id])
        return [item_id, props, children]

    def entry(self, item_id: int) -> MenuEntry | None:
        return self._by_id.get(item_id)

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> "u":
        return 3

    @dbus_property(access=PropertyAccess.READ)
    def TextDirection(self) -> "s":
        return "ltr"

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":
        return "normal"

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> "as":
        return []

    @method()
    def GetLayout(self, parent_id: "i", recursion_depth: "i", property_names: "as") -> "u(ia{sv}av)":
        return self.layout(parent_id, recursion_depth)

    def layout(self, parent_id: int, recursion_depth: int) -> list[Any]:
        """``[revision, (id, properties, children)]`` below ``parent_id`` (depth -1: all of it)."""
        parent = self.entry(parent_id)
        entries = self._entries if parent_id == 0 else (parent.children if parent is not None else [])
        depth = 1_000 if recursion_depth < 0 else recursion_depth
        return [self.revision, self._layout(parent_id if parent_id in self._by_id else 0, entries, depth)]

    @method()
    def GetGroupProperties(self, ids: "ai", property_names: "as") -> "a(ia{sv})":
        wanted = ids or list(self._by_id)
        return [[i, self._props(self._by_id[i])] for i in wanted if i in self._by_id]

    @method()
    def GetProperty(self, item_id: "i", name: "s") -> "v":
        entry = self.entry(item_id)
        props = self._props(entry) if entry else {}
        return props.get(name, Variant("s", ""))

    @method()
    def Event(self, item_id: "i", event_id: "s", data: "v", timestamp: "u") -> None:
        self._event(item_id, event_id)

    @method()
    def EventGroup(self, events: "a(isvu)") -> "ai":
        return self.events(events)

    def events(self, events: list[Any]) -> list[int]:
        """Run each ``(id, event, data, time)``; returns the ids that are no items."""
        return [item_id for item_id, event_id, _data, _ts in events if not self._event(item_id, event_id)]

    @method()
    def AboutToShow(self, item_id: "i") -> "b":
        return False

    @method()
    def AboutToShowGroup(self, ids: "ai") -> "aiai":
        return [[], []]

    @signal()
    def ItemsPropertiesUpdated(self, updated: list[Any], removed: list[Any]) -> "a(ia{sv})a(ias)":
        return [updated, removed]

    @signal()
    def LayoutUpdated(self, revision: int, parent: int) -> "ui":
        return [revision, parent]

    @signal()
    def ItemActivationRequested(self, item_id: int, timestamp: int) -> "iu":
        return [item_id, timestamp]

    def _event(self, item_id: int, event_id: str) -> bool:
        entry = self.entry(item_id)
        if entry is None:
            return False
        if event_id == "clicked" and entry.action is not None and entry.enabled:
            try:
                entry.action()
            except Exception:  # an action must never take the menu down
                log.exception("menu action %s failed", entry.key)
        return True


def no_host_hint(desktop: str) -> str:
    """One line: no tray host runs, and what to do about it on this desktop (``$XDG_CURRENT_DESKTOP``)."""
    if "GNOME" in desktop.upper().split(":") or "UBUNTU" in desktop.upper():
        return (
            "no tray host is running: GNOME shows tray icons only with the AppIndicator extension "
            "(install gnome-shell-extension-appindicator and enable it); the icon appears as soon as it runs, "
            "and listend-ime shows dictation by the cursor meanwhile"
        )
    return (
        "no tray host is running (no org.kde.StatusNotifierWatcher on the session bus): start your panel's "
        "tray (waybar's tray module, xfce4-panel's status tray, ...); the icon appears as soon as one runs"
    )


class SniTray:
    """Exports the item and its menu on ``bus`` and keeps them registered with the watcher."""

    def __init__(self, on_activate: Callable[[], object], on_secondary: Callable[[], object]):
        self.item = StatusNotifierItem(on_activate, on_secondary)
        self.menu = DBusMenu()
        self.bus: Any = None
        self.name = ""
        self.registered = False
        self._said_no_host = False

    async def attach(self, bus: Any, pid: int) -> None:
        """Export on ``bus``, take the item's name, follow the watcher, and register."""
        self.bus = bus
        bus.export(ITEM_PATH, self.item)
        bus.export(MENU_PATH, self.menu)
        self.name = f"org.kde.StatusNotifierItem-{pid}-1"
        await bus.request_name(self.name)
        await self._call_bus(
            "AddMatch", "s", [f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{WATCHER}'"]
        )
        bus.add_message_handler(self._on_message)
        await self.register()

    async def _call_bus(self, member: str, signature: str, body: list[Any]) -> Any:
        from listend.bus import call_bus_daemon

        return await call_bus_daemon(self.bus, member, signature, body)

    async def register(self) -> bool:
        reply = await self.bus.call(
            Message(
                destination=WATCHER,
                path=WATCHER_PATH,
                interface=WATCHER,
                member="RegisterStatusNotifierItem",
                signature="s",
                body=[self.name],
            )
        )
        self.registered = reply.message_type == MessageType.METHOD_RETURN
        if self.registered:
            log.info("registered with the StatusNotifierWatcher as %s", self.name)
        elif not self._said_no_host:
            self._said_no_host = True  # once: the item registers by itself when a host appears
            log.warning("%s", no_host_hint(os.environ.get("XDG_CURRENT_DESKTOP", "")))
        return self.registered

    def _on_message(self, msg: Message) -> bool:
        if (
            msg.message_type == MessageType.SIGNAL
            and msg.member == "NameOwnerChanged"
            and msg.body
            and msg.body[0] == WATCHER
            and msg.body[2]
        ):
            # A panel (re)started: register with the new watcher.
            import asyncio

            asyncio.get_running_loop().create_task(self.register())
        return False

    def update(
        self, state: str, pressure: str, title: str, description: str, status: str, entries: list[MenuEntry]
    ) -> None:
        """Apply a new look and menu; signals only what changed (call on the bus loop)."""
        item = self.item
        icon = pixmaps(state, pressure)
        if icon != item.icon:
            item.icon = icon
            item.NewIcon()
        tooltip = ["", [], title, description]
        if tooltip != item.tooltip:
            item.tooltip = tooltip
            item.NewToolTip()
        if status != item.status:
            item.status = status
            item.NewStatus(status)
        self.menu.set_entries(entries)
