"""Talking to xdg-desktop-portal from a client: the request/response pattern, and the app id.

Portal methods answer twice: the call returns a Request object path at once,
and the result comes later as that object's ``Response`` signal (after the
desktop may have asked the user). The path is derived from the caller's
unique name and a ``handle_token`` of its choice, so a client subscribes
before it calls. A program that is not a Flatpak tells the portal its app id
through ``org.freedesktop.host.portal.Registry`` first.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from dbus_next import Message, MessageType, Variant

from listend.bus import call_bus_daemon

log = logging.getLogger("listend.portal")

PORTAL = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
REGISTRY = "org.freedesktop.host.portal.Registry"
APP_ID = "io.github.listend"


class PortalUnavailable(RuntimeError):
    """The portal, or the interface, is not there, or the user or desktop said no."""


class Portal:
    """Calls on ``bus`` (a connected dbus-next bus; use it from its loop)."""

    def __init__(self, bus):
        self.bus = bus

    async def call(self, interface: str, member: str, signature: str, body: list) -> Message:
        return await self.bus.call(Message(destination=PORTAL, path=PORTAL_PATH, interface=interface,
                                           member=member, signature=signature, body=body))

    async def add_match(self, rule: str) -> None:
        await call_bus_daemon(self.bus, "AddMatch", "s", [rule])

    async def register_app_id(self) -> None:
        reply = await self.call(REGISTRY, "Register", "sa{sv}", [APP_ID, {}])
        if reply.message_type == MessageType.ERROR:
            log.info("portal registry: %s (older portals have none; going on)", reply.error_name)

    async def request(self, interface: str, member: str, signature: str, body_for, timeout: float = 120) -> dict:
        """Call ``member``; ``body_for(handle_token)`` builds the body. Returns the Response's results."""
        token = "listend" + secrets.token_hex(4)
        sender = self.bus.unique_name.lstrip(":").replace(".", "_")
        path = f"{PORTAL_PATH}/request/{sender}/{token}"
        answer: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_response(msg: Message):
            if msg.message_type == MessageType.SIGNAL and msg.path == path and msg.member == "Response" \
                    and not answer.done():
                answer.set_result(msg.body)
            return False

        # Subscribe before calling: the portal may answer at once.
        await self.add_match(f"type='signal',interface='org.freedesktop.portal.Request',path='{path}'")
        self.bus.add_message_handler(on_response)
        try:
            reply = await self.call(interface, member, signature, body_for(token))
            if reply.message_type == MessageType.ERROR:
                raise PortalUnavailable(reply.error_name)
            try:
                code, results = await asyncio.wait_for(answer, timeout)
            except asyncio.TimeoutError:
                raise PortalUnavailable(f"no answer to {member} in {timeout:.0f} s") from None
        finally:
            self.bus.remove_message_handler(on_response)
        if code != 0:
            raise PortalUnavailable(f"{member} was {'cancelled' if code == 1 else 'refused'} ({code})")
        return results


def token_option(token: str) -> dict:
    return {"handle_token": Variant("s", token)}
