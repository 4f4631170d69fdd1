"""The little of ``org.freedesktop.login1`` GNOME Shell asks for, on a private system bus.

GNOME Shell 43 will not start without logind; a test machine has none. This answers what the shell
asked for when run headless here: one active local session, no suspend, inhibitor locks as fds.
Run with the venv's python (dbus-next); ``DBUS_SYSTEM_BUS_ADDRESS`` names the private bus.
"""

import asyncio
import os

from dbus_next import BusType, PropertyAccess
from dbus_next.aio import MessageBus
from dbus_next.service import ServiceInterface, dbus_property, method, signal

SESSION = "/org/freedesktop/login1/session/c1"


class Manager(ServiceInterface):
    def __init__(self):
        super().__init__("org.freedesktop.login1.Manager")

    @method()
    def GetSession(self, session_id: "s") -> "o":
        return SESSION

    @method()
    def GetSessionByPID(self, pid: "u") -> "o":
        return SESSION

    @method()
    def ListSessions(self) -> "a(susso)":
        return [["c1", os.getuid(), "root", "seat0", SESSION]]

    @method()
    def CanSuspend(self) -> "s":
        return "no"

    @method()
    def CanRebootToBootLoaderMenu(self) -> "s":
        return "no"

    @method()
    def Inhibit(self, what: "s", who: "s", why: "s", mode: "s") -> "h":
        return os.open("/dev/null", os.O_RDONLY)

    @signal()
    def PrepareForSleep(self) -> "b":
        return False


class Session(ServiceInterface):
    def __init__(self):
        super().__init__("org.freedesktop.login1.Session")

    @dbus_property(access=PropertyAccess.READ)
    def Active(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> "s":
        return "c1"

    @dbus_property(access=PropertyAccess.READ)
    def Class(self) -> "s":
        return "user"

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> "s":
        return "wayland"

    @dbus_property(access=PropertyAccess.READ)
    def LockedHint(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Remote(self) -> "b":
        return False

    @method()
    def SetLockedHint(self, locked: "b"):
        pass


async def main():
    bus = await MessageBus(bus_type=BusType.SYSTEM, negotiate_unix_fd=True).connect()
    bus.export("/org/freedesktop/login1", Manager())
    bus.export(SESSION, Session())
    bus.export("/org/freedesktop/login1/session/self", Session())
    await bus.request_name("org.freedesktop.login1")
    await bus.wait_for_disconnect()


if __name__ == "__main__":
    asyncio.run(main())
