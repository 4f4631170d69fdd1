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
Background copies are coalesced: one helper runs at a time and the newest
text wins, so a burst of copy requests (a peer clicking the tray 300 times)
starts one or two helpers, not 300.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

from listend.outcome import Outcome

log = logging.getLogger("listend.clipboard")

HELPER_TIMEOUT_S = 3.0
OWNER_LIFETIME_S = 12 * 3600


def clipboard_command(env: Mapping[str, str] | None = None) -> list[str] | None:
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
        self._lock = threading.Lock()
        self._next: str | None = None  # the newest text a background copy still has to put there
        self._copying = False

    def copy(self, text: str) -> None:
        """Copy ``text`` in the background (coalesced: the newest text wins); failures go to ``on_error``."""
        with self._lock:
            self._next = text
            if self._copying:
                return
            self._copying = True
        threading.Thread(target=self._copy_pending, name="listend-clipboard", daemon=True).start()

    def _copy_pending(self) -> None:
        while True:
            with self._lock:
                text, self._next = self._next, None
                if text is None:
                    self._copying = False
                    return
            self.copy_and_wait(text)

    def copy_and_wait(self, text: str) -> Outcome:
        """Copy ``text``; done once a helper (or the fallback owner) serves it."""
        command = clipboard_command()
        if command is not None and self._run_helper(command, text):
            return Outcome.done(command[0])
        if os.environ.get("DISPLAY") and self._run_helper(
            [sys.executable, "-m", "listend_desktop.clipboard", "--own"], text
        ):
            return Outcome.done("a Tk clipboard owner")
        if command is None and not os.environ.get("DISPLAY"):
            self._fail("no clipboard: neither WAYLAND_DISPLAY (with wl-copy) nor DISPLAY is set")
        return Outcome.failed(self.last_error)

    def _run_helper(self, command: list[str], text: str) -> bool:
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            self._fail(f"cannot run {command[0]}: {e.strerror}")
            return False
        try:
            assert proc.stdin is not None
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
    return 0  # not reached


if __name__ == "__main__" and sys.argv[1:] == ["--own"]:
    sys.exit(own_clipboard(sys.stdin.buffer.read().decode("utf-8", "replace")))
