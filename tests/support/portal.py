"""An xdg-desktop-portal stand-in on a private bus: Registry, GlobalShortcuts and RemoteDesktop, answering as
the real one does.

Each request is answered with a ``Response`` signal on the request object whose
path the caller derives from its unique name and ``handle_token``; the stub
grants what is asked. :meth:`PortalStub.press` and :meth:`release` emit
``Activated``/``Deactivated`` as the desktop does when the user hits the keys.
"""

from __future__ import annotations

import asyncio
import time

from dbus_next import Message, MessageType, Variant

from listend.dbusio import MessageBus

PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
REMOTE_DESKTOP = "org.freedesktop.portal.RemoteDesktop"


class PortalStub:
    def __init__(self, address: str):
        self.address = address
        self.registered: list[str] = []
        self.bound: list[tuple[str, dict]] = []
        self.session = ""
        self.device_requests: list[dict] = []  # RemoteDesktop.SelectDevices options
        self.keys: list[tuple[int, int]] = []  # RemoteDesktop.NotifyKeyboardKeysym (keysym, state)
        self.remote_session = ""

    async def __aenter__(self):
        self.bus = await MessageBus(bus_address=self.address).connect()
        self.bus.add_message_handler(self._on_call)
        await self.bus.request_name("org.freedesktop.portal.Desktop")
        return self

    async def __aexit__(self, *exc):
        self.bus.disconnect()

    def _on_call(self, msg: Message):
        if msg.message_type != MessageType.METHOD_CALL or msg.path != PATH:
            return False
        if msg.interface == "org.freedesktop.host.portal.Registry" and msg.member == "Register":
            self.registered.append(msg.body[0])
            return Message.new_method_return(msg)
        sender = msg.sender.lstrip(":").replace(".", "_")
        if msg.interface == REMOTE_DESKTOP:
            return self._remote_desktop(msg, sender)
        if msg.interface != SHORTCUTS:
            return False
        if msg.member == "CreateSession":
            options = msg.body[0]
            request = f"{PATH}/request/{sender}/{options['handle_token'].value}"
            self.session = f"{PATH}/session/{sender}/{options['session_handle_token'].value}"
            self._respond(msg, request, {"session_handle": Variant("s", self.session)})
            return True
        if msg.member == "BindShortcuts":
            session, shortcuts, _parent, options = msg.body
            assert session == self.session
            self.bound = [(sid, {k: v.value for k, v in props.items()}) for sid, props in shortcuts]
            request = f"{PATH}/request/{sender}/{options['handle_token'].value}"
            self._respond(msg, request, {"shortcuts": Variant("a(sa{sv})", shortcuts)})
            return True
        return False

    def _remote_desktop(self, msg: Message, sender: str):
        if msg.member == "CreateSession":
            options = msg.body[0]
            self.remote_session = f"{PATH}/session/{sender}/{options['session_handle_token'].value}"
            self._respond(
                msg,
                f"{PATH}/request/{sender}/{options['handle_token'].value}",
                {"session_handle": Variant("s", self.remote_session)},
            )
        elif msg.member == "SelectDevices":
            session, options = msg.body
            assert session == self.remote_session
            self.device_requests.append({k: v.value for k, v in options.items()})
            self._respond(msg, f"{PATH}/request/{sender}/{options['handle_token'].value}", {})
        elif msg.member == "Start":
            session, _parent, options = msg.body
            self._respond(
                msg,
                f"{PATH}/request/{sender}/{options['handle_token'].value}",
                {"devices": Variant("u", 1), "restore_token": Variant("s", "restore-1")},
            )
        elif msg.member == "NotifyKeyboardKeysym":
            session, _options, keysym, state = msg.body
            assert session == self.remote_session
            self.keys.append((keysym, state))
            return Message.new_method_return(msg)
        else:
            return False
        return True

    def _respond(self, call: Message, request: str, results: dict) -> None:
        self.bus.send(Message.new_method_return(call, "o", [request]))
        self.bus.send(Message.new_signal(request, "org.freedesktop.portal.Request", "Response", "ua{sv}", [0, results]))

    def _emit(self, member: str, shortcut: str) -> None:
        self.bus.send(
            Message.new_signal(
                PATH, SHORTCUTS, member, "osta{sv}", [self.session, shortcut, int(time.time() * 1000), {}]
            )
        )

    def press(self, shortcut: str) -> None:
        self._emit("Activated", shortcut)

    def release(self, shortcut: str) -> None:
        self._emit("Deactivated", shortcut)

    async def press_as_stranger(self, shortcut: str) -> None:
        """The same ``Activated`` signal, sent by another connection than the portal's (a spoofing peer)."""
        stranger = await MessageBus(bus_address=self.address).connect()
        stranger.send(
            Message.new_signal(
                PATH, SHORTCUTS, "Activated", "osta{sv}", [self.session, shortcut, int(time.time() * 1000), {}]
            )
        )
        await asyncio.sleep(0.2)
        stranger.disconnect()
