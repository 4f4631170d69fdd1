"""Carrying out the composer's effects: preedit and commits into the focused field, the rest on the clipboard.

The focused field is a :class:`Target`: an IBus engine (:class:`~listend_ime.engine.Engine`) or the
native Wayland input method's field (:mod:`wayland_fields`), whichever had focus last.

Text that cannot go where it was spoken goes to the clipboard, and the user
is told. Within one dictation the clipboard *accumulates*: each fallback is
added to the ones before it (a later one never replaces an earlier one the
user has not pasted yet); a new dictation starts afresh. Notifications
closer together than :data:`NOTICE_EVERY_S` are one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from listend_desktop.clipboard import Clipboard

from .composer import DeleteBefore, Effect, Paused, Refused, ShowPreedit, ToClipboard, TypeText
from .spacing import clipboard_text

log = logging.getLogger("listend.ime")
NOTICE_EVERY_S = 10.0
KEEP_CHARS = 100_000  # what one dictation's fallbacks may hold on the clipboard (the oldest text goes first)


class Target(Protocol):
    """The focused field, as the input method that reaches it changes it."""

    def show_preedit(self, text: str) -> None:
        """Show ``text`` underlined at the cursor ("" clears it)."""

    def commit(self, text: str) -> None:
        """Insert ``text`` at the cursor in place of the preedit."""

    def delete_before(self, count: int, text: str) -> bool:
        """Delete the ``count`` characters (``text``) before the cursor; False: not done (and said why)."""


class Delivery:
    """Where the composer's effects go: the focused field, or the clipboard with a notice."""

    def __init__(self, clipboard: Clipboard, notify: Callable[[str, str], None]) -> None:
        self.clipboard = clipboard
        self._notify = notify
        self.focused: Target | None = None
        self.undelivered: list[str] = []  # this dictation's fallbacks, in order, all on the clipboard
        self._last_notice = 0.0
        self._last_refusal = ""
        self._refused_at = 0.0

    def new_dictation(self) -> None:
        """A dictation starts: its fallbacks start a fresh clipboard text."""
        self.undelivered.clear()

    def apply(self, effects: list[Effect]) -> None:
        target = self.focused
        undone: set[int] = set()  # segments whose deletion was not done: what would follow it is not typed either
        for effect in effects:
            match effect:
                case ShowPreedit(text=text):
                    if target is not None:
                        target.show_preedit(text)
                case TypeText(text=text, seg_id=seg_id):
                    if target is not None and seg_id not in undone:
                        target.commit(text)
                case DeleteBefore(count=count, seg_id=seg_id, text=text):
                    if target is not None and not target.delete_before(count, text):
                        undone.add(seg_id)
                case ToClipboard(text=text, reason=reason):
                    self.to_clipboard(text, reason)
                case Refused(reason=reason):
                    self.refused(reason)
                case Paused():
                    self.paused()

    def to_clipboard(self, text: str, reason: str) -> None:
        """``text`` could not go where it was spoken: add it to this dictation's clipboard text, and say so."""
        if not text.strip() and "\n" not in text:
            return
        self.undelivered.append(text if not text.strip() else text.strip())
        while sum(len(t) + 1 for t in self.undelivered) > KEEP_CHARS and len(self.undelivered) > 1:
            del self.undelivered[0]
        self.clipboard.copy(clipboard_text(self.undelivered))
        now = time.monotonic()
        if now - self._last_notice >= NOTICE_EVERY_S:
            self._last_notice = now
            self._notify(
                "listend: text is on the clipboard", f"{reason[:1].upper()}{reason[1:]}. Paste it with Ctrl+V."
            )
        else:
            log.warning("%s: on the clipboard", reason)

    def refused(self, reason: str) -> None:
        """A command was not carried out (the composer counted it): say so, once per reason in a while."""
        now = time.monotonic()
        if reason != self._last_refusal or now - self._refused_at >= NOTICE_EVERY_S:
            self._last_refusal, self._refused_at = reason, now
            self._notify(
                "listend: left your text as it is",
                f"The command was not carried out: {reason}. Nothing in the field was changed.",
            )
        else:
            log.warning("command refused: %s", reason)

    def paused(self) -> None:
        """Speech came while a password or PIN field has focus: say so (the composer says it once per field)."""
        self._notify(
            "listend: dictation paused in this field",
            "This is a password or PIN field: what you say is not typed here and not copied. It stays in listend's "
            "history (`listenctl transcript`). Dictation goes on when you leave the field.",
        )

    def copy_before_exit(self) -> None:
        """A background copy would die with this process: hand the text over before leaving."""
        if self.undelivered:
            self.clipboard.copy_and_wait(clipboard_text(self.undelivered))
