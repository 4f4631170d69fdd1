"""The native Wayland input method's fields as the composer's input, and its delivery target.

Where the compositor offers input-method-unstable-v2 (wlroots: sway,
Hyprland, river), :class:`WaylandFields` makes listend the seat's input
method while it dictates (:mod:`wayland`), beside IBus: apps with an IBus
module talk to IBus, the rest (foot, GTK without IBus's module, GTK 4, Qt 6)
to this one. A field that activates the input method is a composer context
of its own (``wayland#O.N``, the Nth activation while open the Oth time:
input-method-v2 names no field, so each activation is a new one, never one of
an earlier dictation's); its surrounding text confirms commits and guards deletions as
IBus's does; a password or PIN field gets nothing. The effects come back
through :class:`~listend_ime.delivery.Delivery` with this object as the
focused :class:`~listend_ime.delivery.Target`. Keys are never grabbed.

Everything runs on listend-ime's one loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .composer import Composer, Effect
from .delivery import Delivery
from .wayland import Field, Unavailable, WaylandInputMethod

log = logging.getLogger("listend.ime")


class WaylandFields:
    """listend as the seat's Wayland input method while dictating: :meth:`open` at the start, :meth:`close` after.

    ``apply`` carries out the composer's effects, ``changed_counts`` publishes
    the counts, ``gone(reason)`` is told once when an open input method is lost
    (the compositor ended, the seat went away).
    """

    def __init__(
        self,
        composer: Composer,
        delivery: Delivery,
        apply: Callable[[list[Effect]], None],
        changed_counts: Callable[[], None],
        gone: Callable[[str], None],
    ) -> None:
        self.composer = composer
        self.delivery = delivery
        self._apply = apply
        self._changed_counts = changed_counts
        self._gone = gone
        self.im: WaylandInputMethod | None = None
        self._context: str | None = None  # the composer's name for the active field
        # Times opened: part of each field's name, as the input method counts activations from 1 each time; a
        # name used again would give the new field an old one's text before the cursor and committed segments.
        self._opens = 0

    @property
    def open_now(self) -> bool:
        return self.im is not None

    async def open(self, environ: dict[str, str] | None = None) -> str | None:
        """Become the seat's input method; None when it is, else why not (in words for the user)."""
        if self.im is not None:
            return None
        try:
            self._opens += 1  # before: activations may come as soon as it is open
            self.im = await WaylandInputMethod.open(self, environ)
        except Unavailable as e:
            return str(e)
        return None

    def close(self) -> None:
        """Stop being the input method: the preedit is cleared, nothing of listend's stays in the input path."""
        im, self.im = self.im, None
        self._leave()
        if im is not None:
            im.close()
            log.info("listend is no longer the Wayland input method")

    # -- what the input method hears (:class:`~listend_ime.wayland.InputMethodHost`) ---------------------------

    def activated(self, field: Field) -> None:
        now = time.monotonic()
        self._context = f"wayland#{self._opens}.{field.activation}"
        log.debug("Wayland field %s has focus (%s)", self._context, field.purpose.name)
        self.delivery.focused = self
        surrounding = field.surrounding is not None
        self._apply(self.composer.focus_in(self._context, surrounding, now, field.private))
        if field.before_cursor is not None:
            self._apply(self.composer.surrounding_text(self._context, field.before_cursor, now))
            self._changed_counts()

    def changed(self, field: Field) -> None:
        if self._context is None:
            return
        now = time.monotonic()
        if field.private != self.composer.paused:
            log.debug("Wayland field %s is now %s", self._context, field.purpose.name)
        self._apply(self.composer.content_type(self._context, field.private, now))
        if field.before_cursor is not None:
            self._apply(self.composer.surrounding_text(self._context, field.before_cursor, now))
            self._changed_counts()  # a confirmation is a change of the count, with or without effects

    def deactivated(self) -> None:
        self._leave()

    def undelivered(self, text: str, reason: str) -> None:
        """Text committed while its field lost focus: the clipboard, with the usual notice."""
        self.composer.undelivered(text)
        self.delivery.to_clipboard(text, reason)
        self._changed_counts()

    def unavailable(self, reason: str) -> None:
        self.im = None
        self._leave()
        self._gone(reason)

    # -- the focused field (:class:`~listend_ime.delivery.Target`) ---------------------------------------------

    def show_preedit(self, text: str) -> None:
        if self.im is not None:
            self.im.show_preedit(text)

    def commit(self, text: str) -> None:
        if self.im is None or not self.im.commit(text):
            # The field went private or the input method went in between: the text is not lost.
            self.undelivered(text, "the text field could not take the text")

    def delete_before(self, count: int, text: str) -> bool:
        """Delete ``text`` before the cursor only if the field's own report still shows it there."""
        refused = "the input method is gone" if self.im is None else self.im.deletion_refused(text)
        if refused is None and self.im is not None and self.im.delete_before(text):
            return True
        self.composer.counts.refused += 1
        if self._context is not None:
            self.composer.reset(self._context)  # the composer took it as done: nothing more until the field reports
        self.delivery.refused(refused or "the text field would not delete it")
        self._changed_counts()
        return False

    # -- internals ------------------------------------------------------------------------------------------

    def _leave(self) -> None:
        if self.delivery.focused is self:
            self.delivery.focused = None
        if self._context is not None:
            self._apply(self.composer.focus_out(self._context, time.monotonic()))
            self._context = None
