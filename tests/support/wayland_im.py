"""The native Wayland input method's test bed: text fields on headless sway and a host that records.

Clients here run as root and reach the compositor (run by its unprivileged user) through the absolute
socket path. A seat without a keyboard gives no window keyboard focus, and a text-input-v3 field is
only entered with keyboard focus: :func:`hold_keyboard` holds a virtual keyboard (wtype presses Shift,
then sleeps) as a laptop's keyboard would be there.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from listend_ime.wayland import Field

from .field_app import FieldApp
from .sway import HeadlessSway
from .waiting import wait_until

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


class WaylandField(FieldApp):
    """The GTK app of :mod:`gtk_wayland_field` (GTK 3) or :mod:`gtk4_wayland_field` (text-input-v3 both):
    what its text view and password entry show."""

    def __init__(self, tmp: Path, env: dict[str, str], gtk: int = 3):
        field_env = {**env, "GDK_BACKEND": "wayland", "GTK_IM_MODULE": "wayland", "GSK_RENDERER": "cairo"}
        for name in ("PYTHONPATH", "VIRTUAL_ENV"):
            field_env.pop(name, None)
        super().__init__(tmp, "wayland-field", FIELDS[gtk], field_env, "the GTK window")

    def preedit(self, view: str = "a") -> str:
        """The preedit the view shows now (GTK reports every change, the clearing too)."""
        shown = [e["text"] for e in self.events() if e["kind"] == "preedit" and e["view"] == view]
        return shown[-1] if shown else ""

    def preedits(self, view: str = "a") -> list[str]:
        return [e["text"] for e in self.events() if e["kind"] == "preedit" and e["view"] == view and e["text"]]


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
