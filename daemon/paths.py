"""Where listend keeps its files, per the XDG base directory specification."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """``$XDG_STATE_HOME/listend`` (``~/.local/state/listend`` by default): history, kept audio, tokens."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "listend"
