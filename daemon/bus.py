"""Finding the D-Bus session bus, and starting a private one when there is none.

Order: ``$DBUS_SESSION_BUS_ADDRESS``; the systemd user bus socket
``$XDG_RUNTIME_DIR/bus``; the private bus a previous ``listend`` started and
recorded in the runtime directory. ``listend`` alone may start a private bus
(``dbus-daemon --session --fork``) and records its address so that
``listenctl`` and the tray find it without any environment set up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUS_NAME = "io.github.listend"
OBJECT_PATH = "/io/github/listend"
INTERFACE = "io.github.listend.Dictation1"
ERROR_PREFIX = "io.github.listend.Error."


async def call_bus_daemon(bus, member: str, signature: str = "", body: list | None = None):
    """Call a method of the bus daemon itself (``org.freedesktop.DBus``); returns the reply message."""
    from dbus_next import Message

    return await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                  interface="org.freedesktop.DBus", member=member, signature=signature,
                                  body=body or []))


async def bus_owner_pid(bus) -> int:
    """The pid owning listend's bus name (0 if nobody does)."""
    from dbus_next import MessageType

    reply = await call_bus_daemon(bus, "GetConnectionUnixProcessID", "s", [BUS_NAME])
    return reply.body[0] if reply.message_type == MessageType.METHOD_RETURN else 0


def notification(summary: str, body: str, timeout_ms: int = 10_000):
    """An ``org.freedesktop.Notifications.Notify`` call (daemon and clients send the same)."""
    from dbus_next import Message

    return Message(destination="org.freedesktop.Notifications", path="/org/freedesktop/Notifications",
                   interface="org.freedesktop.Notifications", member="Notify", signature="susssasa{sv}i",
                   body=["listend", 0, "audio-input-microphone", summary, body[:500], [], {}, timeout_ms])


class NoBusError(RuntimeError):
    """No session bus can be found or started."""


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "listend"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "listend" / "run"


def private_bus_file() -> Path:
    return runtime_dir() / "bus-address"


def _socket_of(address: str) -> str | None:
    for part in address.split(";")[0].split(":", 1)[-1].split(","):
        if part.startswith("path="):
            return part[5:]
    return None


def find_session_bus() -> str | None:
    """Return the address of a session bus that should be reachable, or None."""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return address
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.exists(os.path.join(xdg, "bus")):
        return f"unix:path={os.path.join(xdg, 'bus')}"
    try:
        recorded = private_bus_file().read_text().strip()
    except OSError:
        return None
    socket = _socket_of(recorded)
    if recorded and (socket is None or os.path.exists(socket)):
        return recorded
    return None


def start_private_bus() -> tuple[str, int]:
    """Start ``dbus-daemon --session`` and record its address; returns (address, pid)."""
    exe = shutil.which("dbus-daemon")
    if exe is None:
        raise NoBusError("no D-Bus session bus found and dbus-daemon is not installed (apt install dbus-daemon)")
    try:
        out = subprocess.run([exe, "--session", "--fork", "--print-address=1", "--print-pid=1"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.split()
    except (subprocess.SubprocessError, OSError) as e:
        raise NoBusError(f"cannot start a private D-Bus session bus: {e}") from None
    address, pid = out[0], int(out[1])
    path = private_bus_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(address + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return address, pid


def forget_private_bus(address: str) -> None:
    try:
        if private_bus_file().read_text().strip() == address:
            private_bus_file().unlink()
    except OSError:
        pass
