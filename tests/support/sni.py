"""A StatusNotifierWatcher and host on a private bus, driving an item the way Plasma does.

The watcher records ``RegisterStatusNotifierItem`` (with the caller's unique
name, as KDE's does); the host reads the item's properties, fetches the menu
with ``com.canonical.dbusmenu.GetLayout`` and clicks entries with ``Event``.
"""

from __future__ import annotations

import time

from dbus_next import Message, MessageType, Variant
from dbus_next.constants import PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method, signal

from listend.bus import call_bus_daemon
from listend.dbusio import MessageBus

from .waiting import until

WATCHER = "org.kde.StatusNotifierWatcher"


class Watcher(ServiceInterface):
    def __init__(self):
        super().__init__(WATCHER)
        self.items: list[tuple[str, str]] = []  # (sender, service argument)

    @method(name="RegisterStatusNotifierItem")
    def register_item(self, service: s):
        # dbus-next does not hand the sender to methods; the host resolves names itself.
        self.items.append(("", service))
        self.StatusNotifierItemRegistered(service)

    @method(name="RegisterStatusNotifierHost")
    def register_host(self, service: s):
        pass

    @dbus_property(access=PropertyAccess.READ)
    def RegisteredStatusNotifierItems(self) -> "as":
        return [service for _, service in self.items]

    @dbus_property(access=PropertyAccess.READ)
    def IsStatusNotifierHostRegistered(self) -> b:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def ProtocolVersion(self) -> i:
        return 0

    @signal()
    def StatusNotifierItemRegistered(self, service) -> s:
        return service


class SniHost:
    """Owns the watcher name and talks to registered items."""

    def __init__(self, address: str):
        self.address = address
        self.watcher = Watcher()
        self.signals: list[Message] = []

    async def __aenter__(self):
        self.bus = await MessageBus(bus_address=self.address).connect()
        self.bus.export("/StatusNotifierWatcher", self.watcher)
        await self.bus.request_name(WATCHER)
        await call_bus_daemon(self.bus, "AddMatch", "s", ["type='signal',interface='org.kde.StatusNotifierItem'"])
        await call_bus_daemon(self.bus, "AddMatch", "s", ["type='signal',interface='com.canonical.dbusmenu'"])
        self.bus.add_message_handler(self._on)
        return self

    async def __aexit__(self, *exc):
        self.bus.disconnect()

    def _on(self, msg: Message):
        if msg.message_type == MessageType.SIGNAL:
            self.signals.append(msg)

    async def wait_item(self, timeout: float = 60) -> str:
        await until(lambda: self.watcher.items, timeout, "a StatusNotifierItem to register")
        return self.watcher.items[-1][1]

    async def call(self, dest, path, iface, member, signature="", body=None) -> list:
        reply = await self.bus.call(
            Message(destination=dest, path=path, interface=iface, member=member, signature=signature, body=body or [])
        )
        assert reply.message_type == MessageType.METHOD_RETURN, (member, reply.error_name, reply.body)
        return reply.body

    async def item_properties(self, service: str) -> dict:
        body = await self.call(
            service,
            "/StatusNotifierItem",
            "org.freedesktop.DBus.Properties",
            "GetAll",
            "s",
            ["org.kde.StatusNotifierItem"],
        )
        return {k: v.value for k, v in body[0].items()}

    async def menu(self, service: str, menu_path: str) -> dict[str, dict]:
        """label -> {"id", "enabled", "toggle-state", "children"} for every item, depth-first."""
        revision, layout = await self.call(
            service, menu_path, "com.canonical.dbusmenu", "GetLayout", "iias", [0, -1, []]
        )
        out: dict[str, dict] = {}

        def walk(node) -> None:
            item_id, props, children = node
            props = {k: v.value for k, v in props.items()}
            if item_id and props.get("type") != "separator":
                out[props.get("label", "")] = {
                    "id": item_id,
                    "enabled": props.get("enabled", True),
                    "toggle-state": props.get("toggle-state"),
                    "children": [c.value[0] for c in children],
                }
            for child in children:
                walk(child.value)

        walk(layout)
        return out

    async def click(self, service: str, menu_path: str, item_id: int) -> None:
        await self.call(service, menu_path, "com.canonical.dbusmenu", "AboutToShow", "i", [0])
        await self.call(
            service,
            menu_path,
            "com.canonical.dbusmenu",
            "Event",
            "isvu",
            [item_id, "clicked", Variant("i", 0), int(time.time())],
        )

    def named(self, member: str) -> list[Message]:
        return [m for m in self.signals if m.member == member]
