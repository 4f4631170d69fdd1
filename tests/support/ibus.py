"""A real ibus-daemon for one test, and a real GTK3 application whose text views talk to it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from .field_app import FieldApp
from .processes import end_process
from .waiting import wait_until

FIELD = Path(__file__).with_name("gtk_field.py")
KEYBOARD_ENGINE = "xkb:us::eng"  # the user's engine before dictation, from ibus's own simple.xml


def ibus_tool(env: dict[str, str], *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """The ``ibus`` command line, IBus's own client (``ibus engine`` names the active engine)."""
    return subprocess.run(["ibus", *args], env=env, capture_output=True, text=True, timeout=timeout)


def current_engine(env: dict[str, str]) -> str:
    return ibus_tool(env, "engine").stdout.strip()


class IBusDaemon:
    """``ibus-daemon`` for one display, its address in ``$XDG_CONFIG_HOME/ibus/bus`` as on a desktop.

    No panel and no dconf: what the input method does is all there is. The user's keyboard
    engine is :data:`KEYBOARD_ENGINE`, selected before the test starts.
    """

    def __init__(self, tmp: Path, env: dict[str, str], engine: str | None = KEYBOARD_ENGINE):
        self.env = dict(env)
        self._log = open(tmp / "ibus-daemon.log", "w")
        self.log_path = tmp / "ibus-daemon.log"
        self.proc = self._start()
        if engine is not None:  # None: a fresh IBus user, whose panel never chose an engine
            self.select(engine)

    def _start(self) -> subprocess.Popen[bytes]:
        xim = ["--xim"] if self.env.get("DISPLAY") else []  # X11 clients without an IM module talk XIM
        proc = subprocess.Popen(
            ["ibus-daemon", *xim, "--panel=disable", "--emoji-extension=disable", "--config=disable", "--replace"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            assert proc.poll() is None, self.log_path.read_text()
            return ibus_tool(self.env, "address").returncode == 0

        wait_until(up, 30, lambda: f"ibus-daemon to answer:\n{self.log_path.read_text()}", poll=0.3)
        return proc

    def select(self, engine: str) -> None:
        """What the user does in the panel: make ``engine`` the active one."""

        def selected() -> bool:
            # `ibus engine NAME` exits 1 on Wayland (it runs setxkbmap after switching): look, don't trust it.
            ibus_tool(self.env, "engine", engine)
            return current_engine(self.env) == engine

        wait_until(selected, 20, f"the engine {engine} to be selected", poll=0.5)

    def replace(self) -> None:
        """A new ibus-daemon takes over (``ibus-daemon --replace``, as after an update or ``ibus restart``)."""
        old = self.proc
        self.proc = self._start()
        old.wait(20)
        wait_until(lambda: ibus_tool(self.env, "address").returncode == 0, 30, "the new ibus-daemon", poll=0.3)

    def engine(self) -> str:
        return current_engine(self.env)

    def close(self) -> None:
        end_process(self.proc)
        self._log.close()


class GtkField(FieldApp):
    """The GTK application of :mod:`gtk_field`: what its views show, as it reported it."""

    def __init__(self, tmp: Path, env: dict[str, str], name: str = "field"):
        super().__init__(tmp, name, FIELD, env, "the GTK window")

    def preedits(self, view: str = "a") -> list[dict[str, Any]]:
        return [e for e in self.events() if e["kind"] == "preedit" and e["view"] == view and e["text"]]

    def blur(self) -> None:
        """Focus moves to a window with no text field in it."""
        assert self.proc.stdin is not None
        sent = time.time()
        self.proc.stdin.write("blur\n")
        self.proc.stdin.flush()
        self.wait(lambda e: e["kind"] == "blur" and e["t"] >= sent, 20, "focus to leave the fields")


def display_env(env: dict[str, str], config_home: Path, **extra: str) -> dict[str, str]:
    """``env`` with the XDG config dir IBus writes its address under (shared by the daemon and its clients)."""
    out = dict(env)
    out["XDG_CONFIG_HOME"] = str(config_home)
    out.pop("IBUS_ADDRESS", None)
    out.update(extra)
    os.makedirs(config_home, exist_ok=True)
    return out
