"""The connection to IBus: find ibus-daemon, register listend's engine, and do it again whenever it restarts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dbus_next import MessageType

from listend import __version__
from listend.dbusio import MessageBus

from . import ibus
from .engine import ENGINE_NAME, EngineHost, Factory

log = logging.getLogger("listend.ime")
RETRY_S = 2.0
COMPONENT = "io.github.listend.ime"
ENGINE = ibus.EngineDesc(
    ENGINE_NAME,
    "listend dictation",
    "Live text of listend at the cursor: partial text as preedit, refined text committed",
    symbol="🎙",
)


class IBusLink:
    """Keeps listend's engine registered with this session's ibus-daemon; ``bus`` is None while there is none.

    ``on_connected(bus)`` runs after each registration, ``on_lost()`` when the
    connection ends (ibus-daemon exited or was replaced), both on the loop.
    """

    def __init__(
        self, host: EngineHost, on_connected: Callable[[MessageBus], Awaitable[None]], on_lost: Callable[[], None]
    ) -> None:
        self._host = host
        self._on_connected = on_connected
        self._on_lost = on_lost
        self.bus: MessageBus | None = None

    async def run(self) -> None:
        waiting_said = False
        while True:
            address = ibus.find_address()
            if address is None or not ibus.reachable(address):
                if not waiting_said:
                    log.warning("waiting for IBus (no ibus-daemon runs for this display yet)")
                    waiting_said = True
                await asyncio.sleep(RETRY_S)
                continue
            try:
                bus = await self._register(address)
            except Exception as e:
                log.warning("cannot register with IBus at %s: %s; retrying", address, e)
                await asyncio.sleep(RETRY_S)
                continue
            waiting_said = False
            self.bus = bus
            log.info("registered engine %r with IBus", ENGINE_NAME)
            await self._on_connected(bus)
            try:
                await bus.wait_for_disconnect()
            except Exception as e:  # dbus-next reports a lost connection as an error
                log.debug("IBus connection ended: %r", e)
            log.warning("lost IBus; waiting for it to come back")
            self.bus = None
            self._on_lost()
            await asyncio.sleep(RETRY_S)

    async def _register(self, address: str) -> MessageBus:
        bus = await MessageBus(bus_address=address).connect()
        bus.export(ibus.FACTORY_PATH, Factory(bus, self._host))
        component = ibus.component(COMPONENT, "listend: local, offline dictation", __version__, [ENGINE])
        reply = await ibus.call(bus, "RegisterComponent", "v", [component])
        if reply.message_type == MessageType.ERROR:
            bus.disconnect()
            raise RuntimeError(reply.body[0] if reply.body else reply.error_name)
        return bus

    def close(self) -> None:
        if self.bus is not None:
            self.bus.disconnect()
