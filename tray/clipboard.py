"""Putting text on the clipboard with the helper the session has.

``wl-copy`` under Wayland, ``xclip`` (or ``xsel``) under X11, chosen at run
time. The helpers fork and keep serving the selection, so they are spawned
with stdio detached and in their own session: the tray never waits on them.
Text goes through stdin, never through a command line (no shell, no argv).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading

log = logging.getLogger("listend.tray.clipboard")


def clipboard_command(env: dict | None = None) -> list[str] | None:
    env = os.environ if env is None else env
    if env.get("WAYLAND_DISPLAY") and shutil.which("wl-copy"):
        return ["wl-copy"]
    if env.get("DISPLAY"):
        if shutil.which("xclip"):
            return ["xclip", "-selection", "clipboard", "-in"]
        if shutil.which("xsel"):
            return ["xsel", "--clipboard", "--input"]
    return None


class Clipboard:
    def __init__(self):
        self.command = clipboard_command()
        self.last_error = ""
        if self.command is None:
            self.last_error = "no clipboard helper found: install wl-clipboard (Wayland) or xclip (X11)"
            log.warning("%s", self.last_error)

    def copy(self, text: str) -> bool:
        if self.command is None:
            log.warning("%s", self.last_error)
            return False
        try:
            proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except OSError as e:
            self.last_error = f"cannot run {self.command[0]}: {e.strerror}"
            log.warning("%s", self.last_error)
            return False
        try:
            proc.stdin.write(text.encode("utf-8"))
            proc.stdin.close()
        except OSError:
            pass
        threading.Thread(target=proc.wait, daemon=True).start()  # reap without blocking
        return True
