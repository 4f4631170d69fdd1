"""A small asyncio client of ``io.github.listend.Dictation1`` (used by listenctl, the tray and the input method).

Plain method calls to the well-known name, so the first call also D-Bus
activates the daemon where an activation file is installed. Signals reach
subscribers as typed events (:data:`ClientEvent`), never as raw messages.

Any peer on the session bus can send a signal with listend's path and
interface. A signal counts only if its sender is the connection that owns
``io.github.listend`` right now (followed through ``NameOwnerChanged``, which
itself counts only from the bus daemon): a stranger's "SegmentRefined" is
never printed, copied or typed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbus_next import BusType, Message, MessageType, Variant

from .bus import (
    BUS_NAME,
    IME_BUS_NAME,
    IME_INTERFACE,
    IME_OBJECT_PATH,
    INTERFACE,
    OBJECT_PATH,
    NoBusError,
    call_bus_daemon,
    find_session_bus,
)
from .dbusio import MessageBus
from .units import MAX_SEGMENT_ID

BUS_DAEMON = "org.freedesktop.DBus"

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
class RetractedEvent:
    """``SegmentRetracted``: segment ``id`` has no text (``kind``: no-speech, kept-as-audio, lost)."""

    id: int
    kind: str


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


ClientEvent = (
    SegmentEvent | PartialEvent | RetractedEvent | StateEvent | PressureEvent | PropertiesEvent | PresenceEvent
)


def event_of(msg: Message) -> ClientEvent | None:
    """The typed event a signal from (or about) the daemon carries; None for anything else.

    This reads the message only; whether its sender may speak for listend is
    :class:`SignalGate`'s to decide.
    """
    if msg.message_type != MessageType.SIGNAL:
        return None
    body = msg.body
    if msg.member == "NameOwnerChanged" and msg.interface == BUS_DAEMON and body and body[0] == BUS_NAME:
        return PresenceEvent(bool(body[2]))
    if msg.path != OBJECT_PATH:
        return None
    if msg.interface == INTERFACE:
        if msg.member == "SegmentRefined":
            if msg.signature != "tdds" or not 1 <= body[0] <= MAX_SEGMENT_ID:
                return None
            return SegmentEvent(TranscriptEntry(*body))
        if msg.member == "PartialText":
            if msg.signature != "ts":
                return None
            return PartialEvent(*body)
        if msg.member == "SegmentRetracted":
            return RetractedEvent(*body) if msg.signature == "ts" else None
        if msg.member == "StateChanged":
            return StateEvent(body[0])
        if msg.member == "MemoryPressure":
            return PressureEvent(*body)
    elif msg.member == "PropertiesChanged" and body and body[0] == INTERFACE:
        return PropertiesEvent({k: _unwrap(v) for k, v in body[1].items()})
    return None


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Variant) else value


class NameOwner:
    """Who owns the well-known bus name ``name`` now, as the bus daemon says: the one sender that speaks for it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.owner = ""  # the owner's unique name ('' while nobody owns it)

    @property
    def match_rule(self) -> str:
        """The AddMatch rule for the bus daemon's word on ``name`` (and nobody else's)."""
        return (
            f"type='signal',sender='{BUS_DAEMON}',interface='{BUS_DAEMON}',member='NameOwnerChanged',arg0='{self.name}'"
        )

    async def look_up(self, bus: Any) -> str:
        """Ask the bus daemon for the owner, unless a NameOwnerChanged already told it."""
        reply = await call_bus_daemon(bus, "GetNameOwner", "s", [self.name])
        if reply.message_type == MessageType.METHOD_RETURN and not self.owner:
            self.owner = reply.body[0]
        return self.owner

    def follow(self, msg: Message) -> bool:
        """True if ``msg`` is the bus daemon saying that ``name`` changed hands (the owner is updated)."""
        if msg.member != "NameOwnerChanged" or msg.sender != BUS_DAEMON or msg.body[:1] != [self.name]:
            return False  # only the bus daemon says who owns a name
        self.owner = msg.body[2]
        return True

    def sent(self, msg: Message) -> bool:
        """Whether ``msg`` comes from the name's current owner."""
        return bool(self.owner) and msg.sender == self.owner


class SignalGate(NameOwner):
    """Which sender may speak for listend: the current owner of its name, and the bus daemon about that name."""

    def __init__(self) -> None:
        super().__init__(BUS_NAME)

    def admit(self, msg: Message) -> ClientEvent | None:
        """The event ``msg`` carries, if its sender may send it; keeps track of the owner."""
        event = event_of(msg)
        if event is None:
            return None
        if isinstance(event, PresenceEvent):
            return event if self.follow(msg) else None
        return event if self.sent(msg) else None


class DictationClient:
    """Connects to the session bus and calls the daemon."""

    def __init__(self, bus: MessageBus):
        self.bus = bus
        self.gate = SignalGate()

    @classmethod
    async def connect(cls) -> DictationClient:
        address = find_session_bus()
        if address is None:
            raise NoBusError("no D-Bus session bus found (is a desktop session or listend running?)")
        try:
            bus = await MessageBus(bus_address=address, bus_type=BusType.SESSION).connect()
        except Exception as e:
            raise NoBusError(f"cannot connect to the session bus at {address}: {e}") from None
        return cls(bus)

    async def call(
        self, member: str, signature: str = "", body: list[Any] | None = None, interface: str = INTERFACE
    ) -> list[Any]:
        reply = await self.bus.call(
            Message(
                destination=BUS_NAME,
                path=OBJECT_PATH,
                interface=interface,
                member=member,
                signature=signature,
                body=body or [],
            )
        )
        if reply is None:
            raise NotRunning("listend is not running (no reply)")
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

    async def input_method(self) -> dict[str, Any] | None:
        """``listend-ime``'s status (``Connected``, ``Active``, ``Delivered``, ...), or None when it is not running."""
        reply = await self.bus.call(
            Message(
                destination=IME_BUS_NAME,
                path=IME_OBJECT_PATH,
                interface="org.freedesktop.DBus.Properties",
                member="GetAll",
                signature="s",
                body=[IME_INTERFACE],
            )
        )
        if reply is None or reply.message_type != MessageType.METHOD_RETURN:
            return None
        return {k: _unwrap(v) for k, v in reply.body[0].items()}

    async def subscribe(self, handler: Callable[[ClientEvent], None]) -> None:
        """Call ``handler(event)`` for every signal of the daemon, its property changes and its presence.

        Only signals sent by listend itself (the name's current owner) are
        handed on; the match rules ask the bus for those alone, and each
        message's sender is checked again here.
        """
        gate = self.gate
        for rule in (
            f"type='signal',sender='{BUS_NAME}',interface='{INTERFACE}',path='{OBJECT_PATH}'",
            f"type='signal',sender='{BUS_NAME}',interface='org.freedesktop.DBus.Properties',path='{OBJECT_PATH}'",
            gate.match_rule,
        ):
            await call_bus_daemon(self.bus, "AddMatch", "s", [rule])
        await gate.look_up(self.bus)

        def filter_(msg: Message) -> None:
            event = gate.admit(msg)
            if event is not None:
                handler(event)

        self.bus.add_message_handler(filter_)

    def close(self) -> None:
        self.bus.disconnect()


class SeenIds:
    """Which segment ids a client has already handled: every id above ``floor`` once, in whatever order.

    Bounded: the newest ``keep`` ids are remembered; older ones count as seen.
    """

    def __init__(self, floor: int = 0, keep: int = 10_000):
        self.floor = floor
        self._ids: set[int] = set()
        self._order: list[int] = []
        self._keep = keep

    def __contains__(self, seg_id: int) -> bool:
        """Whether ``seg_id`` was handled already (asking does not remember it)."""
        return seg_id <= self.floor or seg_id in self._ids

    def first_time(self, seg_id: int) -> bool:
        """True the first time ``seg_id`` (above the floor) is seen; it is remembered."""
        if seg_id in self:
            return False
        self._ids.add(seg_id)
        self._order.append(seg_id)
        if len(self._order) > self._keep:
            oldest = self._order[: len(self._order) - self._keep]
            del self._order[: len(oldest)]
            self._ids.difference_update(oldest)
            self.floor = max(self.floor, max(oldest))
        return True
