"""A test application with text fields, run by Debian's python, that reports what its views show.

The field scripts of tests/support (:mod:`gtk_field`, :mod:`gtk_wayland_field`, :mod:`gtk4_wayland_field`,
:mod:`qt_field`) write one JSON object a line (``kind``, ``view``, ``text``, ``t``) and read ``focus NAME``
and ``quit`` on stdin; :class:`FieldApp` starts one and reads what it reported.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .processes import end_process
from .waiting import wait_until

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi and GTK 3 (not the venv's)


class FieldApp:
    """``script`` started with ``env``, its reports in ``tmp/<name>.jsonl``; returns once it is ready and
    its first view ``a`` has focus (``what`` names the window in a timeout's message)."""

    def __init__(self, tmp: Path, name: str, script: Path, env: dict[str, str], what: str):
        self.events_path = tmp / f"{name}.jsonl"
        self.events_path.touch()
        self.log_path = tmp / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(script), str(self.events_path)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.wait(lambda e: e["kind"] == "ready", 60, what)
        # A compositor starting beside a busy suite (GNOME Shell) may take a while to give a new window focus.
        self.wait(lambda e: e["kind"] == "focus" and e["view"] == "a", 60, f"{what}'s first view to have focus")

    def events(self) -> list[dict[str, Any]]:
        lines = self.events_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            assert self.proc.poll() is None, f"the field app exited:\n{self.log_path.read_text()}"
            found[:] = [e for e in self.events() if match(e)]
            return bool(found)

        wait_until(
            seen, timeout, lambda: f"{what}; events: {self.events()[-12:]}\n{self.log_path.read_text()}", poll=0.1
        )
        return found[0]

    def text(self, view: str = "a") -> str:
        texts = [e["text"] for e in self.events() if e["kind"] == "text" and e["view"] == view]
        return texts[-1] if texts else ""

    def focus(self, view: str) -> None:
        assert self.proc.stdin is not None
        sent = time.time()
        self.proc.stdin.write(f"focus {view}\n")
        self.proc.stdin.flush()
        self.wait(lambda e: e["kind"] == "focus" and e["view"] == view and e["t"] >= sent, 20, f"focus in view {view}")

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except OSError:
                pass
        end_process(self.proc)
        self._log.close()
