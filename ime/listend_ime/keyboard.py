"""Whose engine IBus uses: listend's while dictating, then the user's again -- and never otherwise.

The rules (the user's keyboard is theirs):

- Taking over writes down the engine that was active (:mod:`previous`); the
  note exists exactly while listend's engine holds the keyboard.
- Handing back selects that engine only if listend's engine is still the
  active one (a user who switched engines meanwhile keeps their choice), and
  removes the note. Nothing else ever selects an engine.
- A user with no engine at all (a fresh IBus user: IBus's panel never chose
  one) is given the keyboard engine of the system's layout, so that listend's
  engine does not stay active after a stop.
- A crash (``listend-ime`` and its guard both killed) leaves the note: the
  next ``listend-ime`` hands the keyboard back from it when it finds listend's
  engine (or none) active, and forgets it otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dbus_next import Message

from listend.dbusio import MessageBus

from . import ibus
from .engine import ENGINE_NAME
from .previous import forget_previous, read_active, read_previous, write_active, write_previous

log = logging.getLogger("listend.ime")
DEFAULT_KEYBOARD = "xkb:us::eng"  # IBus's own default when it knows nothing of the system's layout


class Keyboard:
    """Selects listend's engine and hands the keyboard back (one switch at a time: the app holds a lock)."""

    def __init__(self) -> None:
        self.held = False  # listend's engine was made the global engine and not handed back yet
        self.previous = ""  # the engine to hand back to

    async def take(self, bus: MessageBus) -> str | None:
        """Make listend's engine the active one; None when it is, else why not."""
        current = await ibus.global_engine(bus)
        if current and current != ENGINE_NAME:
            self.previous = current
            write_active(current)
        else:  # ours already, or none (a restarted ibus-daemon): what an earlier run wrote down, if anything
            self.previous = read_previous() or await keyboard_for_layout(bus)
        if self.previous:
            write_previous(self.previous)
        self.held = True  # before the switch: IBus creates and focuses our engine during the call
        error = await ibus.set_global_engine(bus, ENGINE_NAME)
        if error is not None:
            self.held = False
            forget_previous()
        return error

    async def hand_back(self, bus: MessageBus | None, why: str) -> None:
        """Select the user's engine again, if listend's is still the active one."""
        self.held = False
        previous = self.previous
        if bus is None:
            return  # IBus is gone: the next connection repairs (see :meth:`repair`)
        current = await ibus.global_engine(bus)
        if current not in (ENGINE_NAME, ""):
            log.info("%s: %s was chosen meanwhile; the keyboard stays with it", why, current)
        elif not previous:
            log.info("%s: there is no engine to go back to", why)
        else:
            error = await ibus.set_global_engine(bus, previous)
            if error is not None:
                log.warning("cannot switch IBus back to %s: %s", previous, error)
                return  # the note stays: a restart (or the guard) tries again
            log.info("%s: keyboard handed back to %s", why, previous)
            write_active(previous)
        forget_previous()

    async def follow(self, bus: MessageBus) -> None:
        """Write down the user's engine whenever IBus changes it (for the guard: see :mod:`previous`)."""

        def changed(msg: Message) -> None:
            if msg.member == "GlobalEngineChanged" and msg.interface == ibus.IBUS and msg.signature == "s":
                write_active(msg.body[0])

        bus.add_message_handler(changed)
        rule = f"type='signal',interface='{ibus.IBUS}',member='GlobalEngineChanged'"
        await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=[rule],
            )
        )
        write_active(await ibus.global_engine(bus))

    def lost(self) -> None:
        """IBus went away with listend's engine selected: the note stays for :meth:`repair`."""
        self.held = False

    async def repair(self, bus: MessageBus, first: bool) -> None:
        """On (re)connecting while not dictating: hand back what an earlier crash left selected.

        That is the engine listend's replaced (if it held the keyboard), else --
        on this process's first connection only -- the one active when an
        earlier run went without its guard (which IBus dropped then). A new
        ibus-daemon found later is the desktop's to set up.
        """
        previous = read_previous() or (read_active() if first else "")
        if not previous or self.held:
            return
        current = await ibus.global_engine(bus)
        if current in (ENGINE_NAME, ""):
            error = await ibus.set_global_engine(bus, previous)
            if error is not None:
                log.warning("cannot hand the keyboard back to %s, left by an earlier run: %s", previous, error)
                return
            log.info("handed the keyboard back to %s, left selected by an earlier run", previous)
        else:
            log.info("%s is active: the note of an earlier run (%s) is dropped", current, previous)
        forget_previous()


async def keyboard_for_layout(bus: MessageBus) -> str:
    """The xkb engine of the system's keyboard layout, for a user with no engine at all ('' if none)."""
    names = await ibus.engine_names(bus)
    return choose_keyboard([n for n in names if n.startswith("xkb:")], system_layout())


def choose_keyboard(engines: list[str], layout: tuple[str, str]) -> str:
    """The engine for ``(layout, variant)``; IBus's default, or the first xkb engine, when none matches."""
    name, variant = layout
    if name:
        matching = sorted(e for e in engines if e.startswith(f"xkb:{name}:{variant}:"))
        if matching:
            return matching[0]
    if DEFAULT_KEYBOARD in engines:
        return DEFAULT_KEYBOARD
    return sorted(engines)[0] if engines else ""


def system_layout(path: Path = Path("/etc/default/keyboard")) -> tuple[str, str]:
    """The first layout and its variant in Debian's keyboard configuration (``('', '')`` if none)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")[:8192]
    except OSError:
        return "", ""
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        values[key] = value.strip().strip("\"'")
    layout = values.get("XKBLAYOUT", "").split(",")[0]
    variant = values.get("XKBVARIANT", "").split(",")[0]
    return layout, variant
