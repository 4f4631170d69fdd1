"""Talking to xdg-desktop-portal from a client: the request/response pattern, and the app id.

Portal methods answer twice: the call returns a Request object path at once,
and the result comes later as that object's ``Response`` signal (after the
desktop may have asked the user). The path is derived from the caller's
unique name and a ``handle_token`` of its choice, so a client subscribes
before it calls. A program that is not a Flatpak tells the portal its app id
through ``org.freedesktop.host.portal.Registry`` first.

Signals are taken from the portal alone: any peer on the session bus can
send a signal with the portal's path and interface, so a message counts only
if its sender is the connection that owns ``org.freedesktop.portal.Desktop``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

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

    def __init__(self, bus: Any):
        self.bus = bus
        self.owner = ""  # the portal's unique name: the only sender its signals are taken from

    async def call(self, interface: str, member: str, signature: str, body: list[Any]) -> Message:
        return await self.bus.call(
            Message(
                destination=PORTAL, path=PORTAL_PATH, interface=interface, member=member, signature=signature, body=body
            )
        )

    async def add_match(self, rule: str) -> None:
        await call_bus_daemon(self.bus, "AddMatch", "s", [rule])

    async def find_owner(self) -> str:
        """The unique name that owns the portal now ('' if none)."""
        reply = await call_bus_daemon(self.bus, "GetNameOwner", "s", [PORTAL])
        self.owner = reply.body[0] if reply.message_type == MessageType.METHOD_RETURN else ""
        return self.owner

    def is_from_portal(self, msg: Message) -> bool:
        return bool(self.owner) and msg.sender == self.owner

    async def register_app_id(self) -> None:
        reply = await self.call(REGISTRY, "Register", "sa{sv}", [APP_ID, {}])
        if reply.message_type == MessageType.ERROR:
            log.info("portal registry: %s (older portals have none; going on)", reply.error_name)

    async def request(
        self, interface: str, member: str, signature: str, body_for: Callable[[str], list[Any]], timeout: float = 120
    ) -> dict[str, Variant]:
        """Call ``member``; ``body_for(handle_token)`` builds the body. Returns the Response's results."""
        token = "listend" + secrets.token_hex(4)
        sender = self.bus.unique_name.lstrip(":").replace(".", "_")
        path = f"{PORTAL_PATH}/request/{sender}/{token}"
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if not await self.find_owner():
            raise PortalUnavailable("no xdg-desktop-portal on the session bus")

        def on_response(msg: Message) -> bool:
            if (
                msg.message_type == MessageType.SIGNAL
                and msg.path == path
                and msg.member == "Response"
                and self.is_from_portal(msg)
                and not answer.done()
            ):
                answer.set_result(msg.body)
            return False

        # Subscribe before calling: the portal may answer at once.
        await self.add_match(
            f"type='signal',sender='{PORTAL}',interface='org.freedesktop.portal.Request',path='{path}'"
        )
        self.bus.add_message_handler(on_response)
        try:
            reply = await self.call(interface, member, signature, body_for(token))
            if reply.message_type == MessageType.ERROR:
                raise PortalUnavailable(reply.error_name)
            try:
                code, results = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                raise PortalUnavailable(f"no answer to {member} in {timeout:.0f} s") from None
        finally:
            self.bus.remove_message_handler(on_response)
        if code != 0:
            raise PortalUnavailable(f"{member} was {'cancelled' if code == 1 else 'refused'} ({code})")
        return dict(results)


def token_option(token: str) -> dict[str, Variant]:
    return {"handle_token": Variant("s", token)}
