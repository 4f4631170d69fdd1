"""Reading the daemon's on-disk history from a test: what a user would find in the files."""

from __future__ import annotations

import json
from pathlib import Path


def history_dir(state: Path) -> Path:
    """The history directory of a daemon whose ``XDG_STATE_HOME`` is ``state``."""
    return state / "listend" / "history"


def history_rows(directory: Path) -> list[dict]:
    """Every record of the day files in ``directory``, in file and line order; a torn line (a crash
    mid-write leaves one) is skipped, as the daemon skips it."""
    rows = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows
