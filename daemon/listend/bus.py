"""Finding the D-Bus session bus, and starting a private one when there is none.

Order: ``$DBUS_SESSION_BUS_ADDRESS``; the systemd user bus socket
``$XDG_RUNTIME_DIR/bus``; the private bus a previous ``listend`` started and
recorded in the runtime directory. ``listend`` alone may start a private bus
(``dbus-daemon --session --fork``) and records its address so that
``listenctl`` and the tray find it without any environment set up.

Only what this user owns is trusted: the runtime directory must be the
user's own 0700 directory (see :func:`listend.paths.trusted_runtime_home`),
and a socket or recorded address found there must belong to the user.
Another local user's socket in a shared ``/tmp``-like runtime directory is
never connected to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import UnsafeFile, read_regular, write_private
from .paths import owned_by_me, owned_private_dir, runtime_dir, trusted_runtime_home

if TYPE_CHECKING:
    from dbus_next import Message

    from .dbusio import MessageBus

BUS_NAME = "io.github.listend"
OBJECT_PATH = "/io/github/listend"
INTERFACE = "io.github.listend.Dictation1"
# listend-ime's status of its delivery (io.github.listend.InputMethod1), for listenctl and the tray.
IME_BUS_NAME = "io.github.listend.InputMethod"
IME_OBJECT_PATH = "/io/github/listend/InputMethod"
IME_INTERFACE = "io.github.listend.InputMethod1"
ERROR_PREFIX = "io.github.listend.Error."
# Owned by `listenctl transcript --follow --type` while it types: the tray then leaves typing to it.
TYPIST_BUS_NAME = "io.github.listend.Typist"


async def call_bus_daemon(bus: MessageBus, member: str, signature: str = "", body: list[Any] | None = None) -> Message:
    """Call a method of the bus daemon itself (``org.freedesktop.DBus``); returns the reply message."""
    from dbus_next import Message

    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member=member,
            signature=signature,
            body=body or [],
        )
    )
    if reply is None:  # only for calls that ask for no reply
        raise ConnectionError(f"the bus daemon did not answer {member}")
    return reply


@dataclass(frozen=True)
class Program:
    """How a process runs one of listend's programs: its command's name, or ``python -m`` one of its modules."""

    command: str
    modules: tuple[str, ...]


PROGRAMS = {
    BUS_NAME: Program("listend", ("listend", "listend.cli", "listend.__main__")),
    IME_BUS_NAME: Program("listend-ime", ("listend_ime", "listend_ime.app", "listend_ime.__main__")),
    TYPIST_BUS_NAME: Program("listenctl", ("listend_ctl", "listend_ctl.main", "listend_ctl.__main__")),
}


@dataclass(frozen=True)
class Holder:
    """Who holds a bus name: its connection, process, user and command, and whether that is listend's program."""

    name: str
    unique: str
    pid: int
    uid: int
    command: str
    trusted: bool

    def __str__(self) -> str:
        who = f"pid {self.pid}" if self.pid else "a connection whose process the bus does not know"
        return f"{who} ({self.command or '?'}) of uid {self.uid}" if self.uid >= 0 else who

    def refusal(self) -> str:
        """The one line a client says when it does not take this holder for listend."""
        return f"{self.name} is held by {self} ({self.unique}), which is not {PROGRAMS[self.name].command}: ignored"


def runs_program(cmdline: list[str], program: Program) -> bool:
    """Whether a command line runs ``program``: its script (or the executable itself), or ``-m`` one of its modules."""
    if not cmdline:
        return False
    if os.path.basename(cmdline[0]) == program.command:
        return True
    args = iter(cmdline[1:])
    for arg in args:
        if arg == "-m":
            return next(args, "") in program.modules
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:] in program.modules
        if arg in ("-c", "-"):
            return False  # code on the command line is not listend's program
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            next(args, None)
            continue
        if arg.startswith("-"):
            continue
        return os.path.basename(arg) == program.command
    return False


def process_cmdline(pid: int) -> list[str]:
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()[:65536]
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


async def holder_of(bus: MessageBus, name: str) -> Holder | None:
    """Who owns ``name`` now (None when nobody does), checked: this user's process running listend's program.

    The bus daemon says which connection owns the name and that connection's
    pid and user; ``/proc`` says what the process runs. A process of this user
    that sets out to look like listend can pass, as it could ptrace listend
    itself; a stray program, another user's or a sandboxed one cannot.
    """
    from dbus_next import MessageType

    owner = await call_bus_daemon(bus, "GetNameOwner", "s", [name])
    if owner.message_type != MessageType.METHOD_RETURN:
        return None
    unique = owner.body[0]
    pid_reply = await call_bus_daemon(bus, "GetConnectionUnixProcessID", "s", [unique])
    uid_reply = await call_bus_daemon(bus, "GetConnectionUnixUser", "s", [unique])
    pid = pid_reply.body[0] if pid_reply.message_type == MessageType.METHOD_RETURN else 0
    uid = uid_reply.body[0] if uid_reply.message_type == MessageType.METHOD_RETURN else -1
    cmdline = process_cmdline(pid) if pid else []
    trusted = uid == os.getuid() and runs_program(cmdline, PROGRAMS[name])
    return Holder(name, unique, pid, uid, " ".join(cmdline)[:200], trusted)


async def name_taken(bus: MessageBus) -> str:
    """Why listend cannot take its name, in one line: another listend runs, or who else holds it."""
    holder = await holder_of(bus, BUS_NAME)
    if holder is None:
        return f"{BUS_NAME} was taken and let go meanwhile; start listend again"
    if holder.trusted:
        return f"listend is already running (pid {holder.pid})"
    return f"{BUS_NAME} is held by {holder}, which is not listend: end that process, then start listend again"


def notification(summary: str, body: str, timeout_ms: int = 10_000) -> Message:
    """An ``org.freedesktop.Notifications.Notify`` call (daemon and clients send the same)."""
    from dbus_next import Message

    return Message(
        destination="org.freedesktop.Notifications",
        path="/org/freedesktop/Notifications",
        interface="org.freedesktop.Notifications",
        member="Notify",
        signature="susssasa{sv}i",
        body=["listend", 0, "audio-input-microphone", summary, body[:500], [], {}, timeout_ms],
    )


class NoBusError(RuntimeError):
    """No session bus can be found or started."""


def private_bus_file() -> Path:
    return runtime_dir() / "bus-address"


def _socket_of(address: str) -> str | None:
    for part in address.split(";")[0].split(":", 1)[-1].split(","):
        if part.startswith("path="):
            return part[5:]
    return None


def _recorded_private_bus() -> str | None:
    """The address a previous ``listend`` recorded, if the record and its socket are this user's."""
    path = private_bus_file()
    if not owned_private_dir(path.parent) or not owned_by_me(path):
        return None
    try:
        recorded = read_regular(path, 4096, follow_symlinks=False).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError, UnsafeFile):
        return None
    socket = _socket_of(recorded)
    if not recorded or "\n" in recorded:
        return None
    if socket is not None and not owned_by_me(socket):
        return None  # gone, or another user's
    return recorded


def find_session_bus() -> str | None:
    """Return the address of a session bus that should be reachable, or None."""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return address
    runtime = trusted_runtime_home()
    if runtime is not None and owned_by_me(runtime / "bus"):
        return f"unix:path={runtime / 'bus'}"
    return _recorded_private_bus()


def start_private_bus() -> tuple[str, int]:
    """Start ``dbus-daemon --session`` and record its address; returns (address, pid)."""
    exe = shutil.which("dbus-daemon")
    if exe is None:
        raise NoBusError("no D-Bus session bus found and dbus-daemon is not installed (apt install dbus-daemon)")
    try:
        out = subprocess.run(
            [exe, "--session", "--fork", "--print-address=1", "--print-pid=1"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
    except (subprocess.SubprocessError, OSError) as e:
        raise NoBusError(f"cannot start a private D-Bus session bus: {e}") from None
    address, pid = out[0], int(out[1])
    try:
        write_private(private_bus_file(), (address + "\n").encode())
    except OSError as e:
        raise NoBusError(f"cannot record the private bus address in {private_bus_file()}: {e.strerror}") from None
    return address, pid


def forget_private_bus(address: str) -> None:
    if _recorded_private_bus() == address:
        try:
            private_bus_file().unlink()
        except OSError:
            pass
