"""The daemon's method calls, and its signals as typed events (:class:`DictationClient`).

Contract: plain method calls to the well-known name, so the first call also
D-Bus activates the daemon where an activation file is installed. A call
returns the reply's body or raises: :class:`NotRunning` when no daemon is on
the bus (and none could be activated), else the class :data:`ERRORS` maps the
daemon's D-Bus error to (:class:`CallFailed` for any other). Subscribers get
:data:`~listend.client.events.ClientEvent` values that passed the
:class:`~listend.client.names.SignalGate`, never raw messages.
``input_method`` asks listend-ime only once its name's owner passed the
owner check (a stranger is refused and said once per owner).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from dbus_next import BusType, Message, MessageType

from ..bus import (
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
from ..dbusio import MessageBus
from .events import ClientEvent, CommandEntry, TranscriptEntry, unwrap
from .names import SignalGate

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


async def get_all_properties(bus: MessageBus, destination: str, path: str, interface: str) -> Message | None:
    """The raw reply of ``org.freedesktop.DBus.Properties.GetAll(interface)`` on ``destination``'s ``path``.

    Raw: an error reply or an odd signature is the caller's to judge (listend-ime's status, KWin's input method).
    """
    return await bus.call(
        Message(
            destination=destination,
            path=path,
            interface="org.freedesktop.DBus.Properties",
            member="GetAll",
            signature="s",
            body=[interface],
        )
    )


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
        return unwrap(body[0])

    async def get_all(self) -> dict[str, Any]:
        body = await self.call("GetAll", "s", [INTERFACE], interface="org.freedesktop.DBus.Properties")
        return {k: unwrap(v) for k, v in body[0].items()}

    async def memory(self) -> dict[str, Any]:
        return {k: unwrap(v) for k, v in (await self.call("GetMemory"))[0].items()}

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
        reply = await get_all_properties(self.bus, IME_BUS_NAME, IME_OBJECT_PATH, IME_INTERFACE)
        if reply is None or reply.message_type != MessageType.METHOD_RETURN:
            return None
        return {k: unwrap(v) for k, v in reply.body[0].items()}

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
