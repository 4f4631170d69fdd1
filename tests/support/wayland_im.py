"""The native Wayland input method's test bed: text fields on headless sway and a host that records.

Clients here run as root and reach the compositor (run by its unprivileged user) through the absolute
socket path. A seat without a keyboard gives no window keyboard focus, and a text-input-v3 field is
only entered with keyboard focus: :func:`hold_keyboard` holds a virtual keyboard (wtype presses Shift,
then sleeps) as a laptop's keyboard would be there.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from listend_ime.wayland import Field

from .processes import end_process
from .sway import HeadlessSway
from .waiting import wait_until

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi and GTK 3 (not the venv's)
FIELDS = {3: Path(__file__).with_name("gtk_wayland_field.py"), 4: Path(__file__).with_name("gtk4_wayland_field.py")}


def client_env(sway: HeadlessSway, tmp: Path) -> dict[str, str]:
    """The environment of a root client of ``sway``: its socket, a runtime dir of its own, no X display."""
    runtime = tmp / "client-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_SOCKET")}
    env.update(WAYLAND_DISPLAY=sway.wayland_display, XDG_RUNTIME_DIR=str(runtime), NO_AT_BRIDGE="1")
    return env


def hold_keyboard(spawn: Callable[..., subprocess.Popen[bytes]], env: dict[str, str]) -> None:
    spawn(["wtype", "-k", "Shift_L", "-s", "900000"], env=env, log="keyboard")


def type_text(env: dict[str, str], text: str) -> None:
    """Keys the user types, through a virtual keyboard (wtype), not through the input method."""
    subprocess.run(["wtype", text], env=env, check=True, capture_output=True, timeout=30)


class WaylandField:
    """The GTK app of :mod:`gtk_wayland_field` (GTK 3) or :mod:`gtk4_wayland_field` (text-input-v3 both):
    what its text view and password entry show."""

    def __init__(self, tmp: Path, env: dict[str, str], gtk: int = 3):
        self.events_path = tmp / "wayland-field.jsonl"
        self.events_path.touch()
        self.log_path = tmp / "wayland-field.log"
        self._log = open(self.log_path, "w")
        field_env = {**env, "GDK_BACKEND": "wayland", "GTK_IM_MODULE": "wayland", "GSK_RENDERER": "cairo"}
        for name in ("PYTHONPATH", "VIRTUAL_ENV"):
            field_env.pop(name, None)
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(FIELDS[gtk]), str(self.events_path)],
            env=field_env,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.wait(lambda e: e["kind"] == "ready", 60, "the GTK window")
        self.wait(lambda e: e["kind"] == "focus" and e["view"] == "a", 30, "the text view to have focus")

    def events(self) -> list[dict[str, Any]]:
        lines = self.events_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            assert self.proc.poll() is None, f"the GTK app exited:\n{self.log_path.read_text()}"
            found[:] = [e for e in self.events() if match(e)]
            return bool(found)

        wait_until(seen, timeout, lambda: f"{what}; events: {self.events()[-12:]}\n{self.log_path.read_text()}")
        return found[0]

    def text(self, view: str = "a") -> str:
        texts = [e["text"] for e in self.events() if e["kind"] == "text" and e["view"] == view]
        return texts[-1] if texts else ""

    def preedit(self, view: str = "a") -> str:
        """The preedit the view shows now (GTK reports every change, the clearing too)."""
        shown = [e["text"] for e in self.events() if e["kind"] == "preedit" and e["view"] == view]
        return shown[-1] if shown else ""

    def preedits(self, view: str = "a") -> list[str]:
        return [e["text"] for e in self.events() if e["kind"] == "preedit" and e["view"] == view and e["text"]]

    def focus(self, view: str) -> None:
        assert self.proc.stdin is not None
        sent = time.time()
        self.proc.stdin.write(f"focus {view}\n")
        self.proc.stdin.flush()
        self.wait(lambda e: e["kind"] == "focus" and e["view"] == view and e["t"] >= sent, 20, f"focus in {view}")

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except OSError:
                pass
        end_process(self.proc)
        self._log.close()


class FootCat:
    """foot (text-input-v3) running ``cat`` into a file: what the terminal received is the file's text."""

    def __init__(self, sway: HeadlessSway, spawn: Callable[..., subprocess.Popen[bytes]], log_dir: Path):
        self.path = sway.runtime / "foot-received.txt"
        # foot runs as the compositor's user, started in that user's own directory (pytest's are closed to it).
        spawn(
            [
                *sway.user_env(),
                "foot",
                f"--working-directory={sway.runtime}",
                "sh",
                "-c",
                f"stty -icanon -echo; cat > {self.path}",
            ],
            log="foot",
        )
        wait_until(self.path.exists, 30, lambda: f"foot's cat:\n{(log_dir / 'foot.log').read_text()}")

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


class RecordingHost:
    """An :class:`~listend_ime.wayland.InputMethodHost` that writes down what it is told."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.fields: list[Field] = []
        self.reasons: list[str] = []
        self.undelivered_texts: list[str] = []

    def activated(self, field: Field) -> None:
        self.told.append("activated")
        self.fields.append(field)

    def changed(self, field: Field) -> None:
        self.told.append("changed")
        self.fields.append(field)

    def deactivated(self) -> None:
        self.told.append("deactivated")

    def undelivered(self, text: str, reason: str) -> None:
        self.told.append("undelivered")
        self.undelivered_texts.append(text)

    def unavailable(self, reason: str) -> None:
        self.told.append("unavailable")
        self.reasons.append(reason)
