"""Who owns a well-known bus name, and whether its signals may speak for listend.

Contract: :class:`NameOwner` follows one name's owner as the bus daemon
alone says it (``GetNameOwner``, then ``NameOwnerChanged`` from the bus
daemon only). :class:`SignalGate` adds the owner check (:func:`listend.bus.holder_of`):
a signal counts only if its sender is the name's current owner *and* that
owner was checked to be listend; signals of an owner still being checked wait
(bounded, :data:`SignalGate.HELD_MAX`), an owner that fails is refused, said
once, and treated as no listend at all. Malformed signals are counted and
logged as one rate-limited line (:class:`PeerErrors`), never a traceback.
"""

from __future__ import annotations

import logging
import time

from dbus_next import Message, MessageType

from ..bus import BUS_NAME, call_bus_daemon, holder_of
from ..dbusio import MessageBus
from .events import BUS_DAEMON, ClientEvent, MalformedSignal, PresenceEvent, event_of

log = logging.getLogger("listend.client")


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
