"""The D-Bus objects of the input method: IBus's factory and engine, and listend's status of it.

These classes only translate: IBus's method calls become calls on an
:class:`EngineHost` (the input method app), the app's decisions become IBus
signals. Every key the user types is handed back unprocessed.

No ``from __future__ import annotations`` here: dbus-next reads the D-Bus
signatures from the annotations at run time.
"""

import logging
from typing import Any, Protocol

from dbus_next import Variant
from dbus_next.constants import PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method, signal

from listend.bus import IME_BUS_NAME, IME_INTERFACE, IME_OBJECT_PATH
from listend.dbusio import MessageBus

from . import ibus

log = logging.getLogger("listend.ime")

ENGINE_NAME = "listend"
FAKE_CLIENT = "fake"  # IBus's placeholder input context, focused while no application's field has focus
RELEASE_MASK, CONTROL_MASK, MOD1_MASK = 1 << 30, 1 << 2, 1 << 3
_KEYS = {0xFF0D: "\n", 0xFF8D: "\n", 0xFF08: "\b", 0xFF09: "\t"}  # Return, KP_Enter, BackSpace, Tab
_MODIFIERS = range(0xFFE1, 0xFFEF)  # Shift, Control, Caps Lock, Meta, Alt, Super: change no text
STATUS_NAME, STATUS_PATH, STATUS_INTERFACE = IME_BUS_NAME, IME_OBJECT_PATH, IME_INTERFACE


# IBusInputPurpose and IBusInputHints (ibustypes.h, IBus 1.5.27). The PRIVATE hint (GTK's, set by browsers in
# private windows; text-input-v3 calls it sensitive data) asks only that nothing be learnt from the input: such
# a field is an ordinary one to listend, which learns nothing anyway. Only the purpose makes a password field.
PURPOSE_PASSWORD, PURPOSE_PIN, HINT_PRIVATE = 8, 9, 1 << 11

KEEP_SURROUNDING = 4096  # characters before the cursor passed on (a peer may send megabytes, thousands of times)


def key_text(keyval: int, state: int) -> str | None:
    """What a key the user typed adds before the cursor ("\\b": takes one back); None when that is unknown."""
    if state & (CONTROL_MASK | MOD1_MASK):
        return None  # a shortcut: it may move the cursor or change anything
    if keyval in _KEYS:
        return _KEYS[keyval]
    if 0x20 <= keyval <= 0x7E or 0xA0 <= keyval <= 0xFF:
        return chr(keyval)
    if keyval & 0xFF000000 == 0x01000000:
        return chr(keyval & 0xFFFFFF)  # X keysyms for Unicode characters
    return None  # arrows, Home, Delete, ...: the cursor moved


def private_field(purpose: int, hints: int) -> bool:
    """Whether a field of this IBus content type must receive nothing of listend's (a password, a PIN).

    ``hints`` do not make one: PRIVATE means "learn nothing from this", not "this is secret".
    """
    del hints
    return purpose in (PURPOSE_PASSWORD, PURPOSE_PIN)


class EngineHost(Protocol):
    """What the engine tells the input method app (all on the IBus connection's loop)."""

    def focus_in(self, engine: "Engine", context: str) -> None: ...

    def focus_out(self, engine: "Engine", context: str | None) -> None: ...

    def typed(self, engine: "Engine", text: str | None) -> None: ...

    def capabilities(self, engine: "Engine", caps: int) -> None: ...

    def surrounding_text(self, engine: "Engine", before: str) -> None: ...

    def content_type(self, engine: "Engine", purpose: int, hints: int) -> None: ...

    def reset(self, engine: "Engine") -> None: ...

    def enabled(self, engine: "Engine") -> None: ...

    def large_message(self) -> None: ...

    def destroyed(self, engine: "Engine") -> None: ...


class Engine(ServiceInterface):
    """``org.freedesktop.IBus.Engine``: one per ``CreateEngine``; IBus moves it between input contexts."""

    def __init__(self, path: str, host: EngineHost):
        super().__init__("org.freedesktop.IBus.Engine")
        self.path = path
        self._host = host
        self._unidentified = f"{path}#field"
        self._content_type = (0, 0)

    # -- what the composer's effects become (:class:`~listend_ime.delivery.Target`) -----------------------

    def show_preedit(self, text: str) -> None:
        self.UpdatePreeditText(ibus.text(text, underline=True), len(text), bool(text), ibus.PREEDIT_CLEAR)

    def commit(self, text: str) -> None:
        self.CommitText(ibus.text(text))

    def delete_before(self, count: int, text: str) -> bool:
        self.DeleteSurroundingText(-count, count)  # the composer checked the field's own report
        return True

    # -- keys pass through -----------------------------------------------------------------------

    @method()
    def ProcessKeyEvent(self, keyval: "u", keycode: "u", state: "u") -> "b":
        if not state & RELEASE_MASK and keyval not in _MODIFIERS:
            self._host.typed(self, key_text(keyval, state))
        return False  # keys the user types reach the application unchanged

    # -- focus and the field's text -----------------------------------------------------------------

    @method()
    def FocusIn(self) -> None:
        self._host.focus_in(self, self._unidentified)

    @method()
    def FocusInId(self, object_path: "s", client: "s") -> None:
        if client == FAKE_CLIENT:
            log.debug("focus left every field (IBus's placeholder context %s)", object_path)
            self._host.focus_out(self, None)  # "no field has focus" is not a field
        else:
            self._host.focus_in(self, object_path)

    @method()
    def FocusOut(self) -> None:
        self._host.focus_out(self, None)

    @method()
    def FocusOutId(self, object_path: "s") -> None:
        self._host.focus_out(self, object_path)

    @method()
    def SetCapabilities(self, caps: "u") -> None:
        self._host.capabilities(self, caps)

    @method()
    def SetSurroundingText(self, text: "v", cursor_pos: "u", anchor_pos: "u") -> None:
        full = ibus.text_of(text)
        if len(full) > KEEP_SURROUNDING:
            self._host.large_message()
        self._host.surrounding_text(self, full[:cursor_pos][-KEEP_SURROUNDING:])

    @method()
    def SetCursorLocation(self, x: "i", y: "i", w: "i", h: "i") -> None:
        pass

    @method()
    def SetContentType(self, purpose: "u", hints: "u") -> None:
        self._set_content_type(purpose, hints)

    @method()
    def Reset(self) -> None:
        # The client reset its state (a click): our preedit is live text, re-sent as it changes, but the
        # cursor may have moved, so nothing is deleted until the field reports its text again.
        self._host.reset(self)

    @method()
    def Enable(self) -> None:
        self.RequireSurroundingText()  # ask the field to report the text around the cursor
        self._host.enabled(self)

    @method()
    def Disable(self) -> None:
        pass

    @method()
    def PropertyActivate(self, name: "s", state: "u") -> None:
        pass

    @method()
    def PageUp(self) -> None:
        pass

    @method()
    def PageDown(self) -> None:
        pass

    @method()
    def CursorUp(self) -> None:
        pass

    @method()
    def CursorDown(self) -> None:
        pass

    @method()
    def CandidateClicked(self, index: "u", button: "u", state: "u") -> None:
        pass

    @dbus_property(access=PropertyAccess.READ)
    def FocusId(self) -> "b":
        # IBus's introspection says "(b)" but it reads (and libibus answers) a plain boolean.
        return True  # tell IBus to name the input context in FocusInId

    @dbus_property()
    def ContentType(self) -> "(uu)":
        return list(self._content_type)

    @ContentType.setter  # type: ignore[no-redef]  # dbus-next's property setter keeps the D-Bus name
    def ContentType(self, value: "(uu)") -> None:
        self._set_content_type(value[0], value[1])  # how ibus-daemon 1.5 passes a field's purpose on

    def _set_content_type(self, purpose: int, hints: int) -> None:
        log.debug("content type of %s: purpose %d, hints %#x", self.path, purpose, hints)
        self._content_type = (purpose, hints)
        self._host.content_type(self, purpose, hints)

    # -- what the engine says ------------------------------------------------------------------------

    @signal()
    def CommitText(self, text: Variant) -> "v":
        return text

    @signal()
    def UpdatePreeditText(self, text: Variant, cursor_pos: int, visible: bool, mode: int) -> "vubu":
        return [text, cursor_pos, visible, mode]

    @signal()
    def UpdateAuxiliaryText(self, text: Variant, visible: bool) -> "vb":
        return [text, visible]

    @signal()
    def DeleteSurroundingText(self, offset_from_cursor: int, nchars: int) -> "iu":
        return [offset_from_cursor, nchars]

    @signal()
    def RequireSurroundingText(self) -> None:
        pass

    @signal()
    def RegisterProperties(self, props: Variant) -> "v":
        return props

    @signal()
    def UpdateProperty(self, prop: Variant) -> "v":
        return prop


class Service(ServiceInterface):
    """``org.freedesktop.IBus.Service``: IBus destroys an engine it no longer needs through it."""

    def __init__(self, engine: Engine, host: EngineHost):
        super().__init__("org.freedesktop.IBus.Service")
        self._engine = engine
        self._host = host

    @method()
    def Destroy(self) -> None:
        self._host.destroyed(self._engine)


class Factory(ServiceInterface):
    """``org.freedesktop.IBus.Factory``: IBus asks it for an engine when the user (or listend) selects ours."""

    def __init__(self, bus: MessageBus, host: EngineHost):
        super().__init__("org.freedesktop.IBus.Factory")
        self._bus = bus
        self._host = host
        self._count = 0

    @method()
    def CreateEngine(self, name: "s") -> "o":
        self._count += 1
        path = f"{ibus.ENGINE_PREFIX}{self._count}"
        engine = Engine(path, self._host)
        self._bus.export(path, engine)
        self._bus.export(path, Service(engine, self._host))
        log.info("IBus created engine %s for %s", path, name)
        return path


class Status(ServiceInterface):
    """``io.github.listend.InputMethod1`` on the session bus: whether the input method delivers, and how well."""

    def __init__(self) -> None:
        super().__init__(STATUS_INTERFACE)
        self.connected = False
        self.active = False
        self.previous_engine = ""
        self.delivered = self.unconfirmed = self.failed = self.refused = self.withheld = 0

    def update(self, **values: Any) -> None:
        """Set attributes (``connected=True``, ...) and announce the ones that changed."""
        changed = {}
        for key, value in values.items():
            if getattr(self, key) != value:
                setattr(self, key, value)
                changed[_STATUS_PROPERTIES[key]] = value
        if changed:
            self.emit_properties_changed(changed)

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> "b":
        return self.connected

    @dbus_property(access=PropertyAccess.READ)
    def Active(self) -> "b":
        return self.active

    @dbus_property(access=PropertyAccess.READ)
    def PreviousEngine(self) -> "s":
        return self.previous_engine

    @dbus_property(access=PropertyAccess.READ)
    def Delivered(self) -> "t":
        return self.delivered

    @dbus_property(access=PropertyAccess.READ)
    def Unconfirmed(self) -> "t":
        return self.unconfirmed

    @dbus_property(access=PropertyAccess.READ)
    def Failed(self) -> "t":
        return self.failed

    @dbus_property(access=PropertyAccess.READ)
    def Refused(self) -> "t":
        """Commands not carried out because the field could not show the text they act on was still there."""
        return self.refused

    @dbus_property(access=PropertyAccess.READ)
    def Withheld(self) -> "t":
        """Segments spoken while a password or PIN field had focus: delivered nowhere (they are in the history)."""
        return self.withheld


_STATUS_PROPERTIES = {
    "connected": "Connected",
    "active": "Active",
    "previous_engine": "PreviousEngine",
    "delivered": "Delivered",
    "unconfirmed": "Unconfirmed",
    "failed": "Failed",
    "refused": "Refused",
    "withheld": "Withheld",
}
