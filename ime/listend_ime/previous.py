"""The engine the user had before listend's: written down before taking over, read to hand it back."""

from __future__ import annotations

import logging
from pathlib import Path

from listend.files import UnsafeFile, read_regular, write_private
from listend.paths import runtime_dir

from .engine import ENGINE_NAME

log = logging.getLogger("listend.ime")


def previous_engine_file() -> Path:
    return runtime_dir() / "ime-previous-engine"


def read_previous() -> str:
    """The engine written down last ('' if none, or if the file is not a small file of ours)."""
    try:
        name = read_regular(previous_engine_file(), 256).decode("utf-8", "replace").strip()
    except (OSError, UnsafeFile):
        return ""
    return name if name and name != ENGINE_NAME and name.isprintable() else ""


def write_previous(name: str) -> None:
    try:
        write_private(previous_engine_file(), name.encode())
    except OSError as e:
        log.warning("cannot write down the previous engine: %s", e.strerror)
