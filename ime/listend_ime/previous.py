"""The user's engine, written down: the one listend's replaced, and the one active now.

``ime-previous-engine`` is written before taking over and removed once handed
back: it exists exactly while listend's engine holds the keyboard. What a
crash leaves (listend-ime and its guard both killed) is repaired by the next
``listend-ime`` from it; an engine remembered from an earlier dictation is
never set again.

``ime-active-engine`` is the user's engine IBus has active now (followed
through IBus's ``GlobalEngineChanged``). IBus 1.5 drops an engine that is
not runtime-registered -- every xkb layout -- whenever a runtime-registered
component such as ours leaves its bus (``bus_ibus_impl_check_global_engine``),
idle or not: after ``listend-ime`` has gone, the guard selects this one
again, so that leaving changes nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from listend.files import UnsafeFile, read_regular, write_private
from listend.paths import runtime_dir

from .engine import ENGINE_NAME

log = logging.getLogger("listend.ime")


def previous_engine_file() -> Path:
    return runtime_dir() / "ime-previous-engine"


def active_engine_file() -> Path:
    return runtime_dir() / "ime-active-engine"


def read_previous(path: Path | None = None) -> str:
    """The engine written down last ('' if none, or if the file is not a small file of ours)."""
    try:
        name = read_regular(path or previous_engine_file(), 256).decode("utf-8", "replace").strip()
    except (OSError, UnsafeFile):
        return ""
    return name if name and name != ENGINE_NAME and name.isprintable() else ""


def write_previous(name: str, path: Path | None = None) -> None:
    try:
        write_private(path or previous_engine_file(), name.encode())
    except OSError as e:
        log.warning("cannot write down the user's engine: %s", e.strerror)


def read_active() -> str:
    return read_previous(active_engine_file())


def write_active(name: str) -> None:
    if name and name != ENGINE_NAME and name != read_active():
        write_previous(name, active_engine_file())


def forget_previous(path: Path | None = None) -> None:
    """The keyboard is handed back (or the user chose another engine): nothing is owed any more."""
    path = path or previous_engine_file()
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot remove %s: %s", path, e.strerror)


def forget_active() -> None:
    """listend-ime has gone and its leaving is repaired: the note is for no one any more."""
    forget_previous(active_engine_file())
