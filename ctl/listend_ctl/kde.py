"""``listenctl install``'s KDE Plasma step: IBus as KWin's input method, so listend-ime's text reaches Wayland apps.

On Plasma (Wayland) an input method reaches apps only when KWin starts it:
``[Wayland] InputMethod`` in ``kwinrc`` names a desktop entry that declares
``X-KDE-Wayland-VirtualKeyboard=true``, and KWin runs its ``Exec``. System
Settings → Virtual Keyboard lists exactly those entries -- and Debian 12's
``ibus-wayland`` installs none, so there is nothing to choose. This step
installs the entry (``$XDG_DATA_HOME/applications/``) and names it in the
user's ``kwinrc``, asking first; ``uninstall`` removes both, the setting only
while it still names listend's entry. A value the user chose is never
replaced.

KWin takes the change at once: it watches ``kwinrc`` through KConfig's
``org.kde.kconfig.notify`` ``ConfigChanged`` signal (what System Settings
sends), measured with KWin 5.27 to start and stop ``ibus-wayland`` live.
(``org.kde.KWin.reconfigure`` does not reread the input method.)

The ``kwinrc`` edits are line edits: every other line stays as it was.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from listend.files import read_regular, write_private
from listend.paths import config_home, data_home

DESKTOP_NAME = "listend-ibus-wayland.desktop"
GROUP = "Wayland"
KEY = "InputMethod"
FLAG = "--kwin-input-method"
MAX_KWINRC_BYTES = 1 << 20  # a real kwinrc is a few KiB; anything else is not touched
# Where distributions put IBus's frontend for KWin's input-method-v1 (Debian and Fedora, Arch).
IBUS_WAYLAND_PATHS = ("/usr/libexec/ibus-wayland", "/usr/lib/ibus/ibus-wayland")

ENTRY = """\
[Desktop Entry]
Type=Application
Name=IBus Wayland
Comment=IBus as KWin's input method, so that input methods such as listend-ime reach Wayland apps
Exec={exe}
Icon=ibus
NoDisplay=true
X-KDE-Wayland-VirtualKeyboard=true
X-listend-Installed=true
"""


def plasma_session(environ: Mapping[str, str]) -> bool:
    return "KDE" in environ.get("XDG_CURRENT_DESKTOP", "").upper().split(":")


def ibus_wayland() -> str | None:
    return next((p for p in IBUS_WAYLAND_PATHS if os.access(p, os.X_OK)), None)


def desktop_path() -> Path:
    return data_home() / "applications" / DESKTOP_NAME


def kwinrc_path() -> Path:
    return config_home() / "kwinrc"


def system_kwinrcs(environ: Mapping[str, str]) -> list[Path]:
    dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    return [Path(d) / "kwinrc" for d in dirs.split(":") if d and Path(d).is_absolute()]


# -- kwinrc as lines ------------------------------------------------------------------------------------


def _key_of(line: str) -> str | None:
    """The key a KConfig entry line sets (``InputMethod`` for ``InputMethod[$e]=...``), None for other lines."""
    stripped = line.strip()
    if not stripped or stripped.startswith(("#", "[")) or "=" not in stripped:
        return None
    return stripped.split("=", 1)[0].split("[", 1)[0].strip()


def _group_spans(lines: list[str], group: str) -> list[tuple[int, int]]:
    """``(header, end)`` line indices of every ``[group]`` section (KConfig merges repeated ones)."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            if start is not None:
                spans.append((start, i))
                start = None
            if stripped == f"[{group}]":
                start = i
    if start is not None:
        spans.append((start, len(lines)))
    return spans


def input_method_of(text: str) -> str | None:
    """The value of ``[Wayland] InputMethod`` in a kwinrc text (the last one counts); None where it has none."""
    lines = text.splitlines()
    value: str | None = None
    for header, end in _group_spans(lines, GROUP):
        for line in lines[header + 1 : end]:
            if _key_of(line) == KEY:
                value = line.split("=", 1)[1].strip()
    return value


def with_input_method(text: str, entry: Path) -> str:
    """``text`` with ``[Wayland] InputMethod[$e]=entry`` set (an empty value replaced, everything else kept)."""
    lines = text.splitlines()
    line = f"{KEY}[$e]={entry}"
    spans = _group_spans(lines, GROUP)
    for header, end in spans:
        for i in range(header + 1, end):
            if _key_of(lines[i]) == KEY:
                lines[i] = line
                return "\n".join(lines) + "\n"
    if spans:
        header = spans[-1][0]
        lines.insert(header + 1, line)
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += [f"[{GROUP}]", line]
    return "\n".join(lines) + "\n"


def without_input_method(text: str, entry: Path) -> str:
    """``text`` without the ``InputMethod`` lines that name ``entry``; a ``[Wayland]`` left empty goes too."""
    lines = text.splitlines()
    spans = _group_spans(lines, GROUP)
    drop = {
        i
        for header, end in spans
        for i in range(header + 1, end)
        if _key_of(lines[i]) == KEY and names_entry(lines[i].split("=", 1)[1].strip(), entry)
    }
    for header, end in spans:
        body = [i for i in range(header + 1, end) if i not in drop and lines[i].strip()]
        if drop & set(range(header + 1, end)) and not body:
            drop |= set(range(header, end))  # the group was only ours (and blank lines)
    keep = [line for i, line in enumerate(lines) if i not in drop]
    while keep and not keep[-1].strip():
        keep.pop()
    return "\n".join(keep) + "\n" if keep else ""


def names_entry(value: str, entry: Path) -> bool:
    return value in (str(entry), os.path.expandvars(str(entry))) or os.path.expandvars(value) == str(entry)


# -- the step ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    changed: bool  # kwinrc or the entry was written: KWin was told
    lines: list[str]


def install_step(
    choice: bool | None,
    environ: Mapping[str, str] | None = None,
    ask: Callable[[str], bool | None] | None = None,
) -> Outcome:
    """On Plasma: offer IBus as KWin's input method. ``choice``: the flag (None: ask where interactive).

    A kwinrc or entry that cannot be read or written is one line; the rest of ``install`` goes on.
    """
    environ = os.environ if environ is None else environ
    try:
        return _install_step(choice, environ, ask)
    except OSError as e:
        return Outcome(False, [f"KDE Plasma: KWin's input method left as it was: {e.filename or ''}: {e.strerror}"])


def _install_step(choice: bool | None, environ: Mapping[str, str], ask: Callable[[str], bool | None] | None) -> Outcome:
    if not plasma_session(environ):
        return Outcome(False, [])
    exe = ibus_wayland()
    if exe is None:
        return Outcome(
            False,
            [
                "KDE Plasma: IBus's Wayland frontend (ibus-wayland) is not installed, so listend-ime's text reaches "
                "Wayland apps only with it: install it (Debian, Ubuntu: sudo apt install ibus-wayland) and run "
                f"`listenctl install {FLAG}`"
            ],
        )
    entry, kwinrc = desktop_path(), kwinrc_path()
    current = _read(kwinrc)
    value = input_method_of(current) if current is not None else None
    system_value = next((v for v in (input_method_of(_read(p) or "") for p in system_kwinrcs(environ)) if v), None)
    if value and not names_entry(value, entry):
        return Outcome(
            False,
            [
                f"KWin's input method is already set ({kwinrc}: [{GROUP}] {KEY}={value}): kept. listend-ime's text "
                "reaches Wayland apps only if that is IBus (System Settings → Virtual Keyboard)"
            ],
        )
    if not value and system_value:
        return Outcome(False, [f"KWin's input method is set for this system ({system_value}): kept"])
    if not value:
        if choice is None:
            question = (
                f"KWin has no input method, so IBus cannot reach Wayland apps. Make IBus ({exe}) KWin's input method?"
            )
            choice = ask(question) if ask else None
        if choice is None:
            return Outcome(
                False,
                [
                    "KDE Plasma: KWin has no input method, so listend-ime's text cannot reach Wayland apps "
                    f"(it goes to the clipboard): run `listenctl install {FLAG}` to make IBus KWin's input method"
                ],
            )
        if not choice:
            return Outcome(False, [f"left KWin's input method unset (`listenctl install {FLAG}` sets it)"])
    lines: list[str] = []
    changed = _write_if_different(entry, ENTRY.format(exe=exe), lines)
    if value:
        lines.append(f"unchanged {kwinrc} ([{GROUP}] {KEY} names {entry})")
    else:
        _write(kwinrc, with_input_method(current or "", entry))
        lines.append(f"set [{GROUP}] {KEY} in {kwinrc}: IBus is KWin's input method")
        changed = True
    if changed:
        lines.append(tell_kwin())
    return Outcome(changed, lines)


def uninstall_step() -> Outcome:
    """Undo :func:`install_step`: the setting only while it still names listend's entry, then the entry."""
    try:
        return _uninstall_step()
    except OSError as e:
        return Outcome(False, [f"KWin's input method left as it was: {e.filename or ''}: {e.strerror}"])


def _uninstall_step() -> Outcome:
    entry, kwinrc = desktop_path(), kwinrc_path()
    lines: list[str] = []
    changed = False
    current = _read(kwinrc)
    value = input_method_of(current) if current is not None else None
    if current is not None and value and names_entry(value, entry):
        rest = without_input_method(current, entry)
        if rest:
            _write(kwinrc, rest)
        else:
            kwinrc.unlink()
        lines.append(f"removed [{GROUP}] {KEY} from {kwinrc} (it named listend's IBus entry)")
        changed = True
        value = input_method_of(rest)
    if entry.exists():
        if value and names_entry(value, entry):
            lines.append(f"kept {entry}: {kwinrc} still names it")
        else:
            entry.unlink()
            lines.append(f"removed {entry}")
    if changed:
        lines.append(tell_kwin())
    return Outcome(changed, lines)


def ask_on_terminal(question: str) -> bool | None:
    """Ask on the terminal (yes is the default); None where nobody can answer."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    try:
        answer = input(f"{question} [Y/n] ").strip().lower()
    except EOFError:
        return None
    return answer in ("", "y", "yes")


def tell_kwin(timeout: float = 3.0) -> str:
    """Send KConfig's change signal for kwinrc, as System Settings does: a running KWin rereads its input method."""
    try:
        asyncio.run(asyncio.wait_for(_notify_kwinrc(), timeout))
    except Exception as e:  # no session bus: the next login reads kwinrc
        return f"could not tell KWin ({type(e).__name__}: {str(e)[:100]}): it takes the change at the next login"
    return "told KWin (org.kde.kconfig.notify): it takes the change now"


async def _notify_kwinrc() -> None:
    from dbus_next import Message

    from listend.bus import call_bus_daemon
    from listend.dbusio import MessageBus

    bus = await MessageBus().connect()
    try:
        signal = Message.new_signal(
            "/kwinrc", "org.kde.kconfig.notify", "ConfigChanged", "a{saay}", [{GROUP: [KEY.encode()]}]
        )
        await bus.send(signal)
        await call_bus_daemon(bus, "GetId")  # answered after the signal went out
    finally:
        bus.disconnect()


def _read(path: Path) -> str | None:
    """A small regular file's text (None if absent); a FIFO, a device or a huge file is an OSError."""
    try:
        return read_regular(path, MAX_KWINRC_BYTES).decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None


def _write(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` atomically, keeping its mode unless ``mode`` is given (a new file: 0600); a kwinrc that
    links into the user's dotfiles is written where it points."""
    path = path.resolve()
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600
    write_private(path, text.encode("utf-8", errors="surrogateescape"), mode)


def _write_if_different(path: Path, text: str, lines: list[str]) -> bool:
    if _read(path) == text:
        lines.append(f"unchanged {path}")
        return False
    _write(path, text, 0o644)
    lines.append(f"wrote {path}")
    return True
