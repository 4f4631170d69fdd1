"""A small asyncio client of ``io.github.listend.Dictation1`` (used by listenctl and the tray).

Plain method calls to the well-known name, so the first call also D-Bus
activates the daemon where an activation file is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dbus_next import BusType, Message, MessageType, Variant
from .dbusio import MessageBus

from .bus import BUS_NAME, INTERFACE, OBJECT_PATH, NoBusError, call_bus_daemon, find_session_bus

_NOT_RUNNING = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Spawn.ChildExited",
    "org.freedesktop.DBus.Error.Spawn.Failed",
}


class NotRunning(RuntimeError):
    """The daemon is not on the bus (and could not be activated)."""


class CallFailed(RuntimeError):
    """The daemon answered with a D-Bus error."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class TranscriptEntry:
    id: int
    start: float
    end: float
    text: str


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Variant) else value


class DictationClient:
    """Connects to the session bus and calls the daemon."""

    def __init__(self, bus: MessageBus):
        self.bus = bus

    @classmethod
    async def connect(cls) -> "DictationClient":
        address = find_session_bus()
        if address is None:
            raise NoBusError("no D-Bus session bus found (is a desktop session or listend running?)")
        try:
            bus = await MessageBus(bus_address=address, bus_type=BusType.SESSION).connect()
        except Exception as e:
            raise NoBusError(f"cannot connect to the session bus at {address}: {e}") from None
        return cls(bus)

    async def call(self, member: str, signature: str = "", body: list | None = None,
                   interface: str = INTERFACE) -> list:
        reply = await self.bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=interface,
                                            member=member, signature=signature, body=body or []))
        if reply.message_type == MessageType.ERROR:
            message = reply.body[0] if reply.body else reply.error_name
            if reply.error_name in _NOT_RUNNING:
                raise NotRunning(f"listend is not running ({message})")
            raise CallFailed(reply.error_name, message)
        return reply.body

    async def get(self, prop: str) -> Any:
        body = await self.call("Get", "ss", [INTERFACE, prop], interface="org.freedesktop.DBus.Properties")
        return _unwrap(body[0])

    async def get_all(self) -> dict[str, Any]:
        body = await self.call("GetAll", "s", [INTERFACE], interface="org.freedesktop.DBus.Properties")
        return {k: _unwrap(v) for k, v in body[0].items()}

    async def memory(self) -> dict[str, Any]:
        return {k: _unwrap(v) for k, v in (await self.call("GetMemory"))[0].items()}

    async def transcript(self, since_id: int = 0, limit: int = 0) -> list[TranscriptEntry]:
        return [TranscriptEntry(*row) for row in (await self.call("GetTranscript", "tu", [since_id, limit]))[0]]

    async def recent(self, count: int) -> list[TranscriptEntry]:
        return [TranscriptEntry(*row) for row in (await self.call("GetRecent", "u", [count]))[0]]

    async def subscribe(self, handler: Callable[[Message], None]) -> None:
        """Receive every signal of the daemon's interface (and its property changes)."""
        for rule in (f"type='signal',interface='{INTERFACE}',path='{OBJECT_PATH}'",
                     f"type='signal',interface='org.freedesktop.DBus.Properties',path='{OBJECT_PATH}'",
                     f"type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{BUS_NAME}'"):
            await call_bus_daemon(self.bus, "AddMatch", "s", [rule])

        def filter_(msg: Message) -> None:
            if msg.message_type == MessageType.SIGNAL:
                handler(msg)

        self.bus.add_message_handler(filter_)

    def close(self) -> None:
        self.bus.disconnect()
