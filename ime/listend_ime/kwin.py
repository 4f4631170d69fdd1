"""KWin's input method, as KWin itself says over D-Bus: can IBus reach Wayland apps in this KDE Plasma session?

On KWin Wayland, apps get input-method text only through KWin, and KWin
passes it on only from the input method it started itself (``[Wayland]
InputMethod`` in ``kwinrc``, or ``--inputmethod``). Without one -- the
default on a fresh Plasma -- IBus accepts every commit and nothing arrives
in a Wayland app (measured on KWin 5.27: an empty Qt5 and GTK3 field, no
error anywhere). KWin's ``org.kde.kwin.VirtualKeyboard`` at
``/VirtualKeyboard`` then says ``available: false``; that is the signal read
here.

Cheap and safe for its caller: no session bus call at all without
``WAYLAND_DISPLAY``, one ``NameHasOwner`` where KWin does not run, one
``GetAll`` where it does, each bounded by :data:`CALL_TIMEOUT_S`. It never
raises: a missing, silent or odd peer is a one-line reason, and only a KWin
that answers ``available: false`` in the proper type counts as missing its
input method.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass

from dbus_next import MessageType, Variant

from listend.bus import call_bus_daemon
from listend.client import get_all_properties
from listend.dbusio import MessageBus

KWIN_NAME = "org.kde.KWin"
VIRTUAL_KEYBOARD_PATH = "/VirtualKeyboard"
VIRTUAL_KEYBOARD_INTERFACE = "org.kde.kwin.VirtualKeyboard"
CALL_TIMEOUT_S = 1.0
# What a user runs to make IBus KWin's input method (listenctl's KDE step, listend_ctl.kde).
FIX_COMMAND = "listenctl install --kwin-input-method"
# KWin 5.27's boolean properties of org.kde.kwin.VirtualKeyboard (Python name -> D-Bus name).
PROPERTIES = {
    "available": "available",
    "enabled": "enabled",
    "active": "active",
    "visible": "visible",
    "client_supports_text_input": "activeClientSupportsTextInput",
}


@dataclass(frozen=True)
class KWinInputMethod:
    """What KWin said about its input method; ``None`` where it said nothing (or nothing usable).

    ``available``: KWin runs an input method (IBus's ``ibus-wayland``, a
    virtual keyboard, ...); ``active``: it is in use for the focused window;
    ``client_supports_text_input``: the focused window speaks text-input.
    """

    kwin_wayland: bool
    reason: str  # one line: what was found, or why nothing could be
    available: bool | None = None
    enabled: bool | None = None
    active: bool | None = None
    visible: bool | None = None
    client_supports_text_input: bool | None = None

    @property
    def missing(self) -> bool:
        """A KWin Wayland session that says it has no input method: IBus cannot reach its Wayland apps."""
        return self.kwin_wayland and self.available is False


def not_kwin(reason: str) -> KWinInputMethod:
    return KWinInputMethod(kwin_wayland=False, reason=reason)


async def read_state(
    bus: MessageBus, environ: Mapping[str, str] | None = None, timeout: float = CALL_TIMEOUT_S
) -> KWinInputMethod:
    """KWin's input-method state on ``bus`` (the session bus); never raises."""
    environ = os.environ if environ is None else environ
    if not environ.get("WAYLAND_DISPLAY"):
        return not_kwin("not a Wayland session (no WAYLAND_DISPLAY)")
    try:
        return await asyncio.wait_for(_ask(bus), timeout)
    except TimeoutError:
        return not_kwin(f"{KWIN_NAME} did not answer within {timeout:g} s")
    except Exception as e:  # a closed bus, a malformed reply: the caller goes on as if KWin were not there
        return not_kwin(f"cannot ask {KWIN_NAME}: {type(e).__name__}: {str(e)[:120]}")


async def _ask(bus: MessageBus) -> KWinInputMethod:
    owned = await call_bus_daemon(bus, "NameHasOwner", "s", [KWIN_NAME])
    if owned.message_type != MessageType.METHOD_RETURN or owned.body != [True]:
        return not_kwin(f"{KWIN_NAME} is not on the session bus")
    reply = await get_all_properties(bus, KWIN_NAME, VIRTUAL_KEYBOARD_PATH, VIRTUAL_KEYBOARD_INTERFACE)
    if reply is None or reply.message_type != MessageType.METHOD_RETURN:
        error = reply.error_name if reply is not None else "no reply"
        # KWin on X11 (or one too old) has no VirtualKeyboard: IBus reaches apps there by its own modules.
        return not_kwin(f"{KWIN_NAME} has no {VIRTUAL_KEYBOARD_INTERFACE} ({error})")
    return parse_properties(reply.signature, reply.body)


def parse_properties(signature: str, body: list[object]) -> KWinInputMethod:
    """KWin's reply to ``GetAll``, checked: each property a boolean, or left unknown."""
    if signature != "a{sv}" or len(body) != 1 or not isinstance(body[0], dict):
        return KWinInputMethod(True, f"{KWIN_NAME} answered GetAll with {signature or 'nothing'!r}: ignored")
    props: dict[object, object] = body[0]
    values: dict[str, bool | None] = {}
    for name, dbus_name in PROPERTIES.items():
        value = props.get(dbus_name)
        values[name] = value.value if isinstance(value, Variant) and value.signature == "b" else None
    if values["available"] is None:
        return KWinInputMethod(True, f"{KWIN_NAME} does not say whether it has an input method", **values)
    said = "has an input method" if values["available"] else "has no input method"
    return KWinInputMethod(True, f"KWin {said}", **values)
