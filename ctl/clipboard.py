"""Putting text on the clipboard with what the session offers, never blocking the caller.

The helper is chosen when copying, not at start (a tray autostarted before
the session exported ``WAYLAND_DISPLAY``/``DISPLAY`` must still copy later):
``wl-copy`` under Wayland (wlroots, KDE), ``xclip`` or ``xsel`` under X11.
The helpers fork and keep serving the selection, so they are spawned with
stdio detached and in their own session, and text goes through stdin, never
argv. GNOME's Wayland has no data-control protocol and ``wl-copy`` can hang
there: a helper that has not handed over within :data:`HELPER_TIMEOUT_S` is
killed, and the text is served by a small Tk clipboard owner instead (Tk
talks X11, which XWayland bridges to Wayland clients).

Used by the tray, the transcript window and ``listenctl copy`` alike.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Callable

log = logging.getLogger("listend.clipboard")

HELPER_TIMEOUT_S = 3.0
OWNER_LIFETIME_S = 12 * 3600


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
    """Copies text; :meth:`copy` returns at once, :meth:`copy_and_wait` reports the outcome."""

    def __init__(self, on_error: Callable[[str], None] | None = None):
        self.last_error = ""
        self._on_error = on_error or (lambda message: None)

    def copy(self, text: str) -> None:
        """Start copying ``text`` in the background; failures go to ``on_error`` and the log."""
        threading.Thread(target=self.copy_and_wait, args=(text,), name="listend-clipboard", daemon=True).start()

    def copy_and_wait(self, text: str) -> bool:
        """Copy ``text``; True once a helper (or the fallback owner) serves it."""
        command = clipboard_command()
        if command is not None and self._run_helper(command, text):
            return True
        if os.environ.get("DISPLAY") and self._run_helper([sys.executable, "-m", "listend_ctl.clipboard", "--own"],
                                                          text):
            return True
        if command is None and not os.environ.get("DISPLAY"):
            self._fail("no clipboard: neither WAYLAND_DISPLAY (with wl-copy) nor DISPLAY is set")
        return False

    def _run_helper(self, command: list[str], text: str) -> bool:
        try:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
        except OSError as e:
            self._fail(f"cannot run {command[0]}: {e.strerror}")
            return False
        try:
            proc.stdin.write(text.encode("utf-8"))
            proc.stdin.close()
        except OSError:
            pass
        try:
            # The helper forks: its first process exits once the selection is taken.
            code = proc.wait(HELPER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._fail(f"{os.path.basename(command[0])} did not take the clipboard within {HELPER_TIMEOUT_S:.0f} s")
            return False
        if code != 0:
            detail = proc.stderr.read(300).decode("utf-8", "replace").strip() if proc.stderr else ""
            self._fail(f"{os.path.basename(command[0])} failed ({code}){': ' + detail if detail else ''}")
            return False
        self.last_error = ""
        return True

    def _fail(self, message: str) -> None:
        self.last_error = message
        log.warning("clipboard: %s", message)
        self._on_error(message)


def own_clipboard(text: str, lifetime_s: float = OWNER_LIFETIME_S) -> int:
    """Serve ``text`` as the CLIPBOARD from a hidden Tk window until someone else copies.

    The first process forks like the other helpers: the parent returns 0 once
    the child owns the selection.
    """
    read, write = os.pipe()
    if os.fork():
        os.close(write)
        ok = os.read(read, 1) == b"1"
        return 0 if ok else 1
    os.close(read)
    os.setsid()
    try:
        import tkinter as tk

        root = tk.Tk()
        root.withdraw()
        root.clipboard_clear()
        root.clipboard_append(text)
        root.update()
    except Exception:  # no display
        os.write(write, b"0")
        os._exit(1)
    os.write(write, b"1")
    os.close(write)
    deadline = time.monotonic() + lifetime_s

    def check() -> None:
        try:
            still_ours = root.clipboard_get() == text
        except tk.TclError:
            still_ours = False
        if not still_ours or time.monotonic() > deadline:
            root.destroy()
            return
        root.after(2000, check)

    root.after(2000, check)
    root.mainloop()
    os._exit(0)


if __name__ == "__main__" and sys.argv[1:] == ["--own"]:
    sys.exit(own_clipboard(sys.stdin.buffer.read().decode("utf-8", "replace")))
