"""Carrying out the composer's effects: preedit and commits through the focused engine, the rest on the clipboard.

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

from listend_desktop.clipboard import Clipboard

from . import ibus
from .composer import DeleteBefore, Effect, Refused, ShowPreedit, ToClipboard, TypeText
from .engine import Engine
from .spacing import clipboard_text

log = logging.getLogger("listend.ime")
NOTICE_EVERY_S = 10.0
KEEP_CHARS = 100_000  # what one dictation's fallbacks may hold on the clipboard (the oldest text goes first)


class Delivery:
    """Where the composer's effects go: the focused engine, or the clipboard with a notice."""

    def __init__(self, clipboard: Clipboard, notify: Callable[[str, str], None]) -> None:
        self.clipboard = clipboard
        self._notify = notify
        self.focused: Engine | None = None
        self.undelivered: list[str] = []  # this dictation's fallbacks, in order, all on the clipboard
        self._last_notice = 0.0
        self._last_refusal = ""
        self._refused_at = 0.0

    def new_dictation(self) -> None:
        """A dictation starts: its fallbacks start a fresh clipboard text."""
        self.undelivered.clear()

    def apply(self, effects: list[Effect]) -> None:
        engine = self.focused
        for effect in effects:
            match effect:
                case ShowPreedit(text=text):
                    if engine is not None:
                        shown = ibus.text(text, underline=True)
                        engine.UpdatePreeditText(shown, len(text), bool(text), ibus.PREEDIT_CLEAR)
                case TypeText(text=text):
                    if engine is not None:
                        engine.CommitText(ibus.text(text))
                case DeleteBefore(count=count):
                    if engine is not None:
                        engine.DeleteSurroundingText(-count, count)
                case ToClipboard(text=text, reason=reason):
                    self.to_clipboard(text, reason)
                case Refused(reason=reason):
                    self.refused(reason)

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

    def copy_before_exit(self) -> None:
        """A background copy would die with this process: hand the text over before leaving."""
        if self.undelivered:
            self.clipboard.copy_and_wait(clipboard_text(self.undelivered))
