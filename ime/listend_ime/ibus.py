"""IBus's own bus, spoken with dbus-next: where it is, and its serialised objects.

IBus runs a private D-Bus of its own (``ibus-daemon``); engines, input
contexts and panels meet there. Its address is ``$IBUS_ADDRESS``, or the
``IBUS_ADDRESS=`` line of a file in ``$XDG_CONFIG_HOME/ibus/bus/`` named after
the machine id and the display (what libibus's ``ibus_get_address`` reads),
valid while the daemon whose pid it names runs.

IBus objects travel as variants of structs that begin with their type name
and a dict of attachments (``IBusSerializable``): an ``IBusText`` is
``(sa{sv}sv)`` -- name, attachments, the string, an ``IBusAttrList``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbus_next import Message, MessageType, Variant

from listend.dbusio import MessageBus
from listend.files import UnsafeFile, read_regular
from listend.paths import config_home

IBUS = "org.freedesktop.IBus"
IBUS_PATH = "/org/freedesktop/IBus"
FACTORY_PATH = "/org/freedesktop/IBus/Factory"
ENGINE_PREFIX = "/org/freedesktop/IBus/Engine/"

# Capabilities an input context announces (IBusCapabilite).
CAP_PREEDIT_TEXT = 1 << 0
CAP_FOCUS = 1 << 3
CAP_SURROUNDING_TEXT = 1 << 5
# IBusAttrType / IBusAttrUnderline and IBusPreeditFocusMode
ATTR_UNDERLINE, UNDERLINE_SINGLE = 1, 1
PREEDIT_CLEAR = 0  # on focus out the client drops the preedit (it is not final text)
PROP_TYPE_NORMAL = 0


def machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return "machine-id"


def address_file(env: dict[str, str] | None = None) -> Path:
    """The file libibus reads the address from, for this session's display."""
    env = dict(os.environ) if env is None else env
    if env.get("IBUS_ADDRESS_FILE"):
        return Path(env["IBUS_ADDRESS_FILE"])
    hostname, number = "unix", "0"
    if env.get("WAYLAND_DISPLAY"):
        number = env["WAYLAND_DISPLAY"]
    elif env.get("DISPLAY"):
        host, _, rest = env["DISPLAY"].partition(":")
        hostname, number = host or "unix", rest.split(".")[0] or "0"
    return config_home() / "ibus" / "bus" / f"{machine_id()}-{hostname}-{number}"


def find_address(env: dict[str, str] | None = None) -> str | None:
    """IBus's bus address, or None when no ibus-daemon runs for this session."""
    env = dict(os.environ) if env is None else env
    if env.get("IBUS_ADDRESS"):
        return env["IBUS_ADDRESS"]
    try:
        text = read_regular(address_file(env), 4096).decode("utf-8", "replace")
    except (OSError, UnsafeFile):
        return None
    address, pid = None, None
    for line in text.splitlines():
        if line.startswith("IBUS_ADDRESS="):
            address = line.split("=", 1)[1].strip()
        elif line.startswith("IBUS_DAEMON_PID="):
            try:
                pid = int(line.split("=", 1)[1])
            except ValueError:
                pid = None
    if not address or pid is None or not pid_running(pid):
        return None  # no address, or a file left by a daemon that is gone
    return address


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts: its bus will refuse us if it should)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reachable(address: str) -> bool:
    """A cheap check that something listens at a ``unix:`` address."""
    for part in address.split(";")[0].split(":", 1)[-1].split(","):
        key, _, value = part.partition("=")
        if key in ("abstract", "path"):
            target = ("\0" + value) if key == "abstract" else value
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                try:
                    s.connect(target)
                except OSError:
                    return False
                return True
    return False


# -- serialised IBus objects -----------------------------------------------------------------


def attr_list(attributes: list[tuple[int, int, int, int]] | None = None) -> Variant:
    """``IBusAttrList`` of ``(type, value, start, end)`` attributes (character offsets)."""
    items = [Variant("(sa{sv}uuuu)", ["IBusAttribute", {}, *a]) for a in attributes or []]
    return Variant("(sa{sv}av)", ["IBusAttrList", {}, items])


def text(value: str, underline: bool = False) -> Variant:
    """``IBusText``; an underlined one is how a preedit shows it may still change."""
    attributes = [(ATTR_UNDERLINE, UNDERLINE_SINGLE, 0, len(value))] if underline and value else []
    return Variant("(sa{sv}sv)", ["IBusText", {}, value, attr_list(attributes)])


def text_of(variant: Variant | Any) -> str:
    """The string of a serialised ``IBusText`` ('' for anything else)."""
    value = variant.value if isinstance(variant, Variant) else variant
    if isinstance(value, list) and len(value) >= 3 and value[0] == "IBusText" and isinstance(value[2], str):
        return value[2]
    return ""


@dataclass(frozen=True)
class EngineDesc:
    name: str
    longname: str
    description: str
    language: str = "en"
    license: str = "MIT"
    author: str = "listend"
    icon: str = "audio-input-microphone"
    layout: str = "default"
    rank: int = 0
    symbol: str = ""

    def variant(self) -> Variant:
        # The order of IBusEngineDesc's serialisation (ibusenginedesc.c): 8 strings, the rank, 8 strings
        # (hotkeys, symbol, setup, layout variant and option, version, text domain, icon property key).
        head = (self.name, self.longname, self.description, self.language, self.license, self.author, self.icon)
        tail = ("", self.symbol, "", "", "", "", "", "")
        return Variant("(sa{sv}ssssssssussssssss)", ["IBusEngineDesc", {}, *head, self.layout, self.rank, *tail])


def component(name: str, description: str, version: str, engines: list[EngineDesc]) -> Variant:
    """``IBusComponent`` naming the engines a factory on this connection creates."""
    about = (name, description, version, "MIT", "listend", "https://github.com/listend/listend")
    # then the command line and text domain (none: the engine lives in this process), observed paths, engines
    return Variant("(sa{sv}ssssssssavav)", ["IBusComponent", {}, *about, "", "", [], [e.variant() for e in engines]])


def prop_list(props: list[Variant]) -> Variant:
    return Variant("(sa{sv}av)", ["IBusPropList", {}, props])


def prop(key: str, label: str, tooltip: str, symbol: str, icon: str = "") -> Variant:
    """``IBusProperty``: a line in the desktop's input-source menu (GNOME shows an engine's properties)."""
    sensitive, visible, state = True, True, 0
    fields = [key, PROP_TYPE_NORMAL, text(label), icon, text(tooltip), sensitive, visible, state]
    return Variant("(sa{sv}suvsvbbuvv)", ["IBusProperty", {}, *fields, prop_list([]), text(symbol)])


def engine_name_of(desc: Any) -> str:
    """The name in a serialised ``IBusEngineDesc`` ('' if it is none)."""
    value = desc.value if isinstance(desc, Variant) else desc
    if isinstance(value, list) and len(value) > 2 and value[0] == "IBusEngineDesc" and isinstance(value[2], str):
        return value[2]
    return ""


async def call(
    bus: MessageBus, member: str, signature: str = "", body: list[Any] | None = None, interface: str = IBUS
) -> Message:
    """Call a method of IBus itself (``org.freedesktop.IBus``, or ``interface`` on its object)."""
    reply = await bus.call(
        Message(
            destination=IBUS, path=IBUS_PATH, interface=interface, member=member, signature=signature, body=body or []
        )
    )
    if reply is None:
        raise ConnectionError(f"IBus did not answer {member}")
    return reply


async def engine_names(bus: MessageBus) -> list[str]:
    """The names of every engine IBus knows."""
    reply = await call(bus, "Get", "ss", [IBUS, "Engines"], interface="org.freedesktop.DBus.Properties")
    if reply.message_type != MessageType.METHOD_RETURN or not reply.body:
        return []
    return [engine_name_of(desc) for desc in reply.body[0].value]


async def global_engine(bus: MessageBus) -> str:
    """The engine IBus uses now ('' when it has none)."""
    reply = await call(bus, "GetGlobalEngine")
    if reply.message_type != MessageType.METHOD_RETURN or not reply.body:
        return ""
    return engine_name_of(reply.body[0])


async def set_global_engine(bus: MessageBus, name: str, timeout: float = 5.0) -> str | None:
    """Switch IBus to engine ``name``; None when it did, else why not.

    IBus answers only after it has created the engine -- for ours, by calling
    this very process's factory. That works because the call is awaited on
    the loop that serves the factory; a blocking call would wait for itself.
    """
    try:
        reply = await asyncio.wait_for(call(bus, "SetGlobalEngine", "s", [name]), timeout)
    except TimeoutError:
        return f"IBus did not answer within {timeout:g} s"
    if reply.message_type == MessageType.ERROR:
        return str(reply.body[0]) if reply.body else str(reply.error_name)
    return None
