"""Where listend keeps its files: every XDG base directory lookup lives here.

Per the XDG base directory specification, each directory comes from its
variable when set to an absolute path, else from the default under ``$HOME``.
The runtime directory is special: it is only trusted when it belongs to this
user and nobody else can write to it (mode 0700, as the specification
requires). A world-writable ``XDG_RUNTIME_DIR`` (some containers, WSL, ssh
set-ups) would let another local user plant a bus socket there, so such a
directory is treated as absent (see ``docs/security.md``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

APP = "listend"


def _base(variable: str, *default: str) -> Path:
    value = os.environ.get(variable, "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path(os.path.expanduser("~"), *default)


def config_home() -> Path:
    """``$XDG_CONFIG_HOME`` (``~/.config``)."""
    return _base("XDG_CONFIG_HOME", ".config")


def data_home() -> Path:
    """``$XDG_DATA_HOME`` (``~/.local/share``)."""
    return _base("XDG_DATA_HOME", ".local", "share")


def state_dir() -> Path:
    """``$XDG_STATE_HOME/listend`` (``~/.local/state/listend``): history, kept audio, tokens."""
    return _base("XDG_STATE_HOME", ".local", "state") / APP


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/listend`` (``~/.cache/listend``): joined and converted models, bench audio."""
    return _base("XDG_CACHE_HOME", ".cache") / APP


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/listend``: ``config.toml``, the tray's ``tray.json``."""
    return config_home() / APP


def owned_private_dir(path: Path) -> bool:
    """True if ``path`` is a directory of this user that no one else can write to or enter."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def owned_by_me(path: Path | str) -> bool:
    """True if ``path`` (not followed if it is a link) exists and belongs to this user."""
    try:
        return os.lstat(path).st_uid == os.getuid()
    except OSError:
        return False


def trusted_runtime_home() -> Path | None:
    """``$XDG_RUNTIME_DIR`` if it is this user's own 0700 directory, else None."""
    value = os.environ.get("XDG_RUNTIME_DIR", "")
    if value and os.path.isabs(value) and owned_private_dir(Path(value)):
        return Path(value)
    return None


def runtime_dir() -> Path:
    """Where listend keeps run-time files (the private bus address).

    ``$XDG_RUNTIME_DIR/listend`` when that directory can be trusted, else a
    directory in the user's cache (which is theirs alone).
    """
    runtime = trusted_runtime_home()
    if runtime is not None:
        return runtime / APP
    return cache_dir() / "run"
