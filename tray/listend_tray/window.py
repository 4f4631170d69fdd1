"""The transcript window (tkinter): live line on top, refined history below.

All updates reach Tk through one marshalling point: the bus thread appends to
bounded deques and the Tk thread drains them every 50 ms, a bounded number
per tick, so the window never freezes however fast segments arrive. The text
widget keeps the newest ``MAX_LINES`` lines (older ones stay in the on-disk
history) and follows new text unless the user has scrolled up.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .busworker import TrayState

MAX_LINES = 2000
PER_TICK = 200
TICK_MS = 50


class TranscriptWindow:
    """Tk view; feed it with :meth:`post_live` / :meth:`post_segment` from any thread."""

    def __init__(
        self,
        root: Any = None,
        on_toggle: Callable[[], object] | None = None,
        on_profile: Callable[[str], object] | None = None,
        on_copy: Callable[[str], object] | None = None,
    ):
        import tkinter as tk

        self.tk = tk
        self.root = root or tk.Tk()
        self.root.title("listend transcript")
        self.root.geometry("720x420")
        self._segments: collections.deque = collections.deque(maxlen=MAX_LINES)
        self._live: list[str | None] = [None]
        self._lock = threading.Lock()
        self.lines = 0
        self.ticks = 0
        self._on_toggle = on_toggle or (lambda: None)
        self._on_profile = on_profile or (lambda p: None)
        self._copy = on_copy or self._tk_copy

        self.live_var = tk.StringVar(value="")
        live = tk.Label(
            self.root,
            textvariable=self.live_var,
            anchor="w",
            justify="left",
            fg="#a00000",
            font=("TkDefaultFont", 12, "italic"),
            wraplength=700,
        )
        live.pack(fill="x", padx=6, pady=4)
        frame = tk.Frame(self.root)
        frame.pack(fill="both", expand=True, padx=6)
        self.text = tk.Text(frame, wrap="word", height=16, font=("TkDefaultFont", 12))
        scroll = tk.Scrollbar(frame, command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set, state="disabled")
        self.text.pack(side="left", fill="both", expand=True)
        scroll.pack(side="right", fill="y")
        buttons = tk.Frame(self.root)
        buttons.pack(fill="x", padx=6, pady=4)
        tk.Button(buttons, text="Copy selection", command=self.copy_selection).pack(side="left")
        tk.Button(buttons, text="Copy all", command=self.copy_all).pack(side="left")
        self.toggle_button = tk.Button(buttons, text="Start/Stop", command=lambda: self._on_toggle())
        self.toggle_button.pack(side="left")
        self.profile_var = tk.StringVar(value="full")
        tk.OptionMenu(buttons, self.profile_var, "full", "lightweight", command=lambda p: self._on_profile(p)).pack(
            side="left"
        )
        self.status_var = tk.StringVar(value="")
        tk.Label(buttons, textvariable=self.status_var, anchor="e").pack(side="right")
        self.root.after(TICK_MS, self._tick)

    # -- called from any thread ----------------------------------------------------------

    def post_live(self, text: str) -> None:
        with self._lock:
            self._live[0] = text

    def post_segment(self, seg_id: int, text: str) -> None:
        with self._lock:
            self._segments.append((seg_id, text))

    def post_status(self, text: str) -> None:
        self._status = text

    # -- Tk thread -------------------------------------------------------------------------

    def _tick(self) -> None:
        self.ticks += 1
        with self._lock:
            live, self._live[0] = self._live[0], None
            batch = [self._segments.popleft() for _ in range(min(PER_TICK, len(self._segments)))]
        if live is not None:
            self.live_var.set(live)
        if batch:
            self._append(batch)
        status = getattr(self, "_status", None)
        if status is not None:
            self.status_var.set(status)
        self.root.after(TICK_MS, self._tick)

    def _append(self, batch: list[tuple[int, str]]) -> None:
        follow = self.text.yview()[1] >= 0.999  # the user has not scrolled up
        self.text.configure(state="normal")
        self.text.insert("end", "".join(f"{text}\n" for _id, text in batch))
        self.lines += len(batch)
        excess = self.lines - MAX_LINES
        if excess > 0:
            self.text.delete("1.0", f"{excess + 1}.0")
            self.lines -= excess
        self.text.configure(state="disabled")
        if follow:
            self.text.see("end")

    def contents(self) -> str:
        return self.text.get("1.0", "end-1c")

    def copy_selection(self) -> None:
        try:
            self._copy(self.text.get("sel.first", "sel.last"))
        except self.tk.TclError:
            pass  # nothing selected

    def copy_all(self) -> None:
        self._copy(self.contents())

    def _tk_copy(self, text: str) -> None:
        self.root.clipboard_clear()
        self.root.clipboard_append(text)


def status_line(state: TrayState) -> str:
    """The window's status: the state, and on error the reason (not just "error")."""
    if not state.running:
        return "listend is not running"
    if state.state == "error" and state.last_error:
        return f"error: {state.last_error}"
    return f"{state.shown_state} · {state.profile}"


def run_window() -> int:
    """``listend-tray --window``: the window wired to the daemon over D-Bus."""
    from listend.client import SeenIds
    from listend_desktop.clipboard import Clipboard

    from .busworker import BusWorker

    clipboard = Clipboard()
    view: list[TranscriptWindow] = []
    seen = SeenIds()

    def on_change(state: TrayState) -> None:
        if not view:
            return
        w = view[0]
        w.post_live(state.live)
        w.post_status(status_line(state))
        for seg_id, text in state.recent_segments():
            if seen.first_time(seg_id):
                w.post_segment(seg_id, text)

    def on_refined(seg_id: int, text: str) -> None:
        if view and seen.first_time(seg_id):
            view[0].post_segment(seg_id, text)

    worker = BusWorker(on_change, on_refined)
    import sys
    import tkinter

    try:
        window = TranscriptWindow(on_toggle=worker.toggle, on_profile=worker.set_profile, on_copy=clipboard.copy)
    except tkinter.TclError as e:  # no display, or one that cannot be reached
        print(f"listend-tray: cannot open the transcript window: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    view.append(window)
    worker.start()
    window.root.mainloop()
    return 0
