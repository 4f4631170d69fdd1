"""A small asyncio client of ``io.github.listend.Dictation1`` (used by listenctl, the tray and the input method).

Plain method calls to the well-known name, so the first call also D-Bus
activates the daemon where an activation file is installed. Signals reach
subscribers as typed events (:data:`ClientEvent`), never as raw messages.

Any peer on the session bus can send a signal with listend's path and
interface. A signal counts only if its sender is the connection that owns
``io.github.listend`` right now (followed through ``NameOwnerChanged``, which
itself counts only from the bus daemon): a stranger's "SegmentRefined" is
never printed, copied or typed.

Any peer can also *own* the name while listend is absent (or queue for it).
So the owner itself is checked (:func:`holder_of`): a process of this user
whose command runs listend's program. An owner that is not is refused, said
once, and treated as no listend at all. The same check applies to
``listend-ime``'s name, on which the ``auto`` delivery rule
(:func:`delivery_route`) depends.

A malformed signal (a wrong signature, sent to us directly) is one counted,
rate-limited log line (:class:`PeerErrors`), never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbus_next import BusType, Message, MessageType, Variant

from .bus import (
    BUS_NAME,
    ERROR_PREFIX,
    IME_BUS_NAME,
    IME_INTERFACE,
    IME_OBJECT_PATH,
    INTERFACE,
    OBJECT_PATH,
    NoBusError,
    call_bus_daemon,
    find_session_bus,
    holder_of,
)
from .dbusio import MessageBus
from .ids import SeenIds as SeenIds  # its home is listend.ids; clients import it from here too
from .units import MAX_SEGMENT_ID

BUS_DAEMON = "org.freedesktop.DBus"
log = logging.getLogger("listend.client")

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
    """The daemon answered with a D-Bus error (``name``); its own errors have classes of their own below."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


class InvalidArgs(CallFailed):
    """``io.github.listend.Error.InvalidArgs``: the call's arguments were refused (a usage error)."""


class NotAvailable(CallFailed):
    """``io.github.listend.Error.NotAvailable``: not possible in the daemon's state (no device, no model)."""


class Failed(CallFailed):
    """``io.github.listend.Error.Failed``: the daemon tried and failed."""


# The daemon's D-Bus error names, mapped to classes once (callers catch classes, never compare names).
ERRORS: dict[str, type[CallFailed]] = {
    ERROR_PREFIX + "InvalidArgs": InvalidArgs,
    ERROR_PREFIX + "NotAvailable": NotAvailable,
    ERROR_PREFIX + "Failed": Failed,
}


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
class CommandEvent:
    """``SegmentCommand``: segment ``id`` is the command ``action`` acting on segment ``target`` (0: none).

    Delivered just before the :class:`SegmentEvent` of the same id (whose text
    is ``said``, the words as heard: a client that executes the command does
    not also type them).
    """

    id: int
    action: str
    target: int
    said: str


@dataclass(frozen=True)
class CommandEntry:
    """A command segment of the history (``GetCommands``)."""

    id: int
    action: str
    target: int


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
    SegmentEvent
    | CommandEvent
    | PartialEvent
    | RetractedEvent
    | StateEvent
    | PressureEvent
    | PropertiesEvent
    | PresenceEvent
)


def event_of(msg: Message) -> ClientEvent | None:
    """The typed event a signal from (or about) the daemon carries; None for anything else.

    This reads the message only; whether its sender may speak for listend is
    :class:`SignalGate`'s to decide.
    """
    if msg.message_type != MessageType.SIGNAL:
        return None
    body = msg.body
    if msg.member == "NameOwnerChanged" and msg.interface == BUS_DAEMON:
        if msg.signature == "sss" and body[0] == BUS_NAME:
            return PresenceEvent(bool(body[2]))
        return None
    if msg.path != OBJECT_PATH:
        return None
    if msg.interface == INTERFACE:
        wanted = _SIGNATURES.get(msg.member or "")
        if wanted is None:
            return None
        if msg.signature != wanted:
            raise MalformedSignal(f"{msg.member} with signature '{msg.signature}' (not '{wanted}')")
        if msg.member == "SegmentRefined":
            if not 1 <= body[0] <= MAX_SEGMENT_ID:
                raise MalformedSignal(f"SegmentRefined with id {body[0]}")
            return SegmentEvent(TranscriptEntry(*body))
        if msg.member == "SegmentCommand":
            if not 1 <= body[0] <= MAX_SEGMENT_ID or not 0 <= body[2] <= MAX_SEGMENT_ID:
                raise MalformedSignal(f"SegmentCommand with id {body[0]}, target {body[2]}")
            return CommandEvent(*body)
        if msg.member == "PartialText":
            return PartialEvent(*body)
        if msg.member == "SegmentRetracted":
            return RetractedEvent(*body)
        if msg.member == "StateChanged":
            return StateEvent(body[0])
        return PressureEvent(*body)
    if msg.member == "PropertiesChanged" and msg.interface == PROPERTIES:
        if msg.signature != "sa{sv}as":
            raise MalformedSignal(f"PropertiesChanged with signature '{msg.signature}'")
        if body[0] == INTERFACE:
            return PropertiesEvent({k: _unwrap(v) for k, v in body[1].items()})
    return None


PROPERTIES = "org.freedesktop.DBus.Properties"
_SIGNATURES = {
    "SegmentRefined": "tdds",
    "SegmentCommand": "tsts",
    "PartialText": "ts",
    "SegmentRetracted": "ts",
    "StateChanged": "s",
    "MemoryPressure": "st",
}


class MalformedSignal(ValueError):
    """A signal with listend's path and member whose arguments are not listend's."""


class PeerErrors:
    """Peers' malformed messages: counted, and logged as one line at most every ``every_s`` seconds."""

    def __init__(self, program: str, every_s: float = 60.0) -> None:
        self.program = program
        self.count = 0
        self._every_s = every_s
        self._said_at = -every_s
        self._said_count = 0

    def note(self, msg: Message, what: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._said_at >= self._every_s:
            new = self.count - self._said_count
            log.warning(
                "%s: ignored %d malformed message%s from peers (latest: %s from %s)",
                self.program,
                new,
                "" if new == 1 else "s",
                what[:200],
                msg.sender,
            )
            self._said_at, self._said_count = now, self.count


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

    async def look_up(self, bus: MessageBus) -> str:
        """Ask the bus daemon for the owner, unless a NameOwnerChanged already told it."""
        reply = await call_bus_daemon(bus, "GetNameOwner", "s", [self.name])
        if reply.message_type == MessageType.METHOD_RETURN and not self.owner:
            self.owner = reply.body[0]
        return self.owner

    def follow(self, msg: Message) -> bool:
        """True if ``msg`` is the bus daemon saying that ``name`` changed hands (the owner is updated)."""
        if msg.member != "NameOwnerChanged" or msg.sender != BUS_DAEMON or msg.signature != "sss":
            return False  # only the bus daemon says who owns a name
        if msg.body[0] != self.name:
            return False
        self.owner = msg.body[2]
        return True

    def sent(self, msg: Message) -> bool:
        """Whether ``msg`` comes from the name's current owner."""
        return bool(self.owner) and msg.sender == self.owner


def delivery_route(method: str, ime_connected: bool, typist: bool = False) -> str:
    """Who delivers a refined segment, by the daemon's ``Delivery`` (``[delivery] method``): the one rule.

    ``ime``: listend-ime commits it (it is connected to IBus and holds its
    checked name); ``type``: the tray types it; ``typist``: ``listenctl
    transcript --follow --type`` types it (it holds its checked name,
    ``typist``), and the tray does not; ``clipboard``: the tray copies it;
    ``nowhere``: the input method was chosen and is not there (the tray
    copies it and says so). ``auto`` is the input method when it is there,
    typing when it is not.
    """
    if method == "type" or (method == "auto" and not ime_connected):
        return "typist" if typist else "type"
    if method == "clipboard":
        return "clipboard"
    return "ime" if ime_connected else "nowhere"


class SignalGate(NameOwner):
    """Which sender may speak for listend: the current owner of its name -- once checked to be listend -- and
    the bus daemon about that name.

    Signals from an owner still being checked wait (at most :data:`HELD_MAX`)
    and are handed on once it passes; an owner that fails is refused, said
    once, and its signals dropped. Its taking the name is not presence.
    """

    HELD_MAX = 1000

    def __init__(self) -> None:
        super().__init__(BUS_NAME)
        self.trusted = ""  # the unique name that passed the check
        self.checking = ""  # the unique name being checked
        self.refused = ""  # the unique name that failed it
        self.errors = PeerErrors("listend")
        self._held: list[ClientEvent] = []

    def admit(self, msg: Message) -> list[ClientEvent]:
        """The events ``msg`` lets through now; keeps track of the owner (call :meth:`check` when asked to)."""
        try:
            event = event_of(msg)
        except MalformedSignal as e:
            self.errors.note(msg, str(e))
            return []
        if event is None:
            return []
        if isinstance(event, PresenceEvent):
            if not self.follow(msg):
                return []
            self._held.clear()
            if not event.running:
                self.trusted = ""
                return [event]
            return []  # presence once checked (see check)
        if not self.sent(msg):
            return []
        if self.owner == self.trusted:
            return [event]
        if len(self._held) < self.HELD_MAX:
            self._held.append(event)
        return []

    @property
    def needs_check(self) -> bool:
        return bool(self.owner) and self.owner not in (self.trusted, self.checking, self.refused)

    async def check(self, bus: MessageBus) -> list[ClientEvent]:
        """Check the current owner; the events it may now deliver (its presence, then what it sent meanwhile)."""
        unique = self.checking = self.owner
        try:
            holder = await holder_of(bus, self.name)
        finally:
            self.checking = ""
        if self.owner != unique:
            return []  # it changed hands meanwhile: the newer owner gets its own check
        if holder is None or holder.unique != unique:
            return []
        held, self._held = self._held, []
        if not holder.trusted:
            self.refused = unique
            log.warning("%s", holder.refusal())
            return []
        self.trusted = unique
        return [PresenceEvent(True), *held]

    @property
    def listend(self) -> bool:
        """The name's owner is a checked listend."""
        return bool(self.owner) and self.owner == self.trusted


class DictationClient:
    """Connects to the session bus and calls the daemon."""

    def __init__(self, bus: MessageBus):
        self.bus = bus
        self.gate = SignalGate()
        self._refused: set[str] = set()

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
            raise ERRORS.get(reply.error_name or "", CallFailed)(reply.error_name or "", message)
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

    async def commands(self, since_id: int = 0, limit: int = 0) -> list[CommandEntry]:
        """The command segments among the segments :meth:`transcript` returns for the same arguments."""
        return [CommandEntry(*row) for row in (await self.call("GetCommands", "tu", [since_id, limit]))[0]]

    async def command_phrases(self) -> tuple[list[tuple[str, str]], list[str]]:
        """``([(action, phrase), ...], [actions turned off])``: what can be said now."""
        phrases, off = await self.call("GetCommandPhrases")
        return [(a, p) for a, p in phrases], list(off)

    async def vocabulary(self) -> list[str]:
        return list(await self.get("Vocabulary"))

    async def add_vocabulary(self, word: str) -> None:
        await self.call("AddVocabulary", "s", [word])

    async def remove_vocabulary(self, word: str) -> None:
        await self.call("RemoveVocabulary", "s", [word])

    async def input_method(self) -> dict[str, Any] | None:
        """``listend-ime``'s status (``Connected``, ``Active``, ``Delivered``, ...), or None when it is not running.

        None too when the name's owner is not listend-ime (said once per owner).
        """
        holder = await holder_of(self.bus, IME_BUS_NAME)
        if holder is None:
            return None
        if not holder.trusted:
            if holder.unique not in self._refused:
                self._refused.add(holder.unique)
                log.warning("%s", holder.refusal())
            return None
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
        if gate.owner:
            await gate.check(self.bus)  # not handed on: the caller asks for the daemon's state itself

        async def check() -> None:
            for event in await gate.check(self.bus):
                handler(event)

        def filter_(msg: Message) -> None:
            for event in gate.admit(msg):
                handler(event)
            if gate.needs_check:
                asyncio.get_running_loop().create_task(check())

        self.bus.add_message_handler(filter_)

    async def name_holder(self) -> str:
        """Who owns listend's name now: ``listend`` (checked), ``nobody`` or ``stranger`` (refused, said once).

        Asking does not start the daemon (no call goes to the name).
        """
        gate = self.gate
        if not gate.owner:
            await gate.look_up(self.bus)
        if gate.needs_check:
            await gate.check(self.bus)
        if not gate.owner:
            return "nobody"
        return "listend" if gate.listend else "stranger"

    def close(self) -> None:
        self.bus.disconnect()
