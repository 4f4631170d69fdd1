"""A small asyncio client of ``io.github.listend.Dictation1`` (used by listenctl and the tray).

Plain method calls to the well-known name, so the first call also D-Bus
activates the daemon where an activation file is installed. Signals reach
subscribers as typed events (:data:`ClientEvent`), never as raw messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

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


@dataclass(frozen=True)
class SegmentEvent:
    """``SegmentRefined``: final text of a segment (Unix times)."""

    entry: TranscriptEntry


@dataclass(frozen=True)
class PartialEvent:
    id: int
    text: str


@dataclass(frozen=True)
class StateEvent:
    state: str


@dataclass(frozen=True)
class PressureEvent:
    level: str
    rss_bytes: int


@dataclass(frozen=True)
class PropertiesEvent:
    """Properties of the daemon that changed, unwrapped."""

    changed: dict


@dataclass(frozen=True)
class PresenceEvent:
    """The daemon took (``running``) or left the bus name."""

    running: bool


ClientEvent = Union[SegmentEvent, PartialEvent, StateEvent, PressureEvent, PropertiesEvent, PresenceEvent]


def event_of(msg: Message) -> ClientEvent | None:
    """The typed event a signal from (or about) the daemon carries; None for anything else."""
    if msg.message_type != MessageType.SIGNAL:
        return None
    body = msg.body
    if msg.member == "NameOwnerChanged" and body and body[0] == BUS_NAME:
        return PresenceEvent(bool(body[2]))
    if msg.path != OBJECT_PATH:
        return None
    if msg.interface == INTERFACE:
        if msg.member == "SegmentRefined":
            return SegmentEvent(TranscriptEntry(*body))
        if msg.member == "PartialText":
            return PartialEvent(*body)
        if msg.member == "StateChanged":
            return StateEvent(body[0])
        if msg.member == "MemoryPressure":
            return PressureEvent(*body)
    elif msg.member == "PropertiesChanged" and body and body[0] == INTERFACE:
        return PropertiesEvent({k: _unwrap(v) for k, v in body[1].items()})
    return None


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

    async def subscribe(self, handler: Callable[[ClientEvent], None]) -> None:
        """Call ``handler(event)`` for every signal of the daemon, its property changes and its presence."""
        for rule in (f"type='signal',interface='{INTERFACE}',path='{OBJECT_PATH}'",
                     f"type='signal',interface='org.freedesktop.DBus.Properties',path='{OBJECT_PATH}'",
                     f"type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{BUS_NAME}'"):
            await call_bus_daemon(self.bus, "AddMatch", "s", [rule])

        def filter_(msg: Message) -> None:
            event = event_of(msg)
            if event is not None:
                handler(event)

        self.bus.add_message_handler(filter_)

    def close(self) -> None:
        self.bus.disconnect()
