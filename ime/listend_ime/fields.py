"""What IBus's engines report -- focus, capabilities, the text before the cursor, keys -- turned into the
composer's input (the :class:`~listend_ime.engine.EngineHost` of the input method).

IBus moves an engine between input contexts (the fields); this object keeps
which field each engine has focus in and what it can report, tells the
composer, and hands the effects that follow to the app (``apply``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from . import ibus
from .composer import Composer, Effect
from .delivery import Delivery
from .engine import Engine, private_field


class Fields:
    """The engine host: one per app; every call comes on the loop of the IBus connection."""

    def __init__(
        self,
        composer: Composer,
        delivery: Delivery,
        apply: Callable[[list[Effect]], None],
        show_state: Callable[[Engine | None], None],
        changed_counts: Callable[[], None],
        forget_engine: Callable[[str], None],
    ) -> None:
        self.composer = composer
        self.delivery = delivery
        self._apply = apply
        self._show_state = show_state
        self._changed_counts = changed_counts
        self._forget_engine = forget_engine
        self._contexts: dict[str, str] = {}  # engine path -> the input context it has focus in
        self._caps: dict[str, int] = {}  # engine path -> the client's capabilities
        # engine path -> the content type IBus last gave it is a password or PIN field's. ibus-daemon moves the
        # one global engine between fields and sends a field's content type only when it differs from the one
        # it sent that engine last (bus/engineproxy.c caches it), so a new field has the engine's.
        self._private: dict[str, bool] = {}
        self.collect = False  # large messages came in: the app collects their cycles at its next tick

    def clear(self) -> None:
        """IBus went away with every engine and context."""
        if self.composer.focus in self._contexts.values():  # a Wayland field's focus is not IBus's
            self.composer.focus_out(self.composer.focus, time.monotonic())
        self._contexts.clear()
        self._caps.clear()
        self._private.clear()

    def focus_in(self, engine: Engine, context: str) -> None:
        self.delivery.focused = engine
        self._contexts[engine.path] = context
        surrounding = bool(self._caps.get(engine.path, 0) & ibus.CAP_SURROUNDING_TEXT)
        # A field the composer knows keeps its own purpose (its content type follows at once if it changed). A
        # new one is taken for the engine's last type, but its own may follow (after FocusIn; a password field's):
        # the composer delivers nothing there until it comes or the next tick.
        new = not self.composer.knows(context)
        private = self._private.get(engine.path, False) if new else None
        self._apply(self.composer.focus_in(context, surrounding, time.monotonic(), private, type_follows=new))
        self._show_state(None)

    def focus_out(self, engine: Engine, context: str | None) -> None:
        context = context or self._contexts.get(engine.path)
        if context is not None and self._contexts.get(engine.path) == context:
            del self._contexts[engine.path]  # what IBus tells the engine now is about no field of ours
        if engine is self.delivery.focused:
            self.delivery.focused = None
        if context is None:
            # No field of this engine's (IBus's placeholder context, or an engine that had none): the composer's
            # focus, if any, is not IBus's to take -- a Wayland field may have got it just before.
            return
        self._apply(self.composer.focus_out(context, time.monotonic()))

    def typed(self, engine: Engine, text: str | None) -> None:
        context = self._contexts.get(engine.path)
        if context is not None:
            self.composer.typed(context, text)

    def capabilities(self, engine: Engine, caps: int) -> None:
        self._caps[engine.path] = caps
        context = self._contexts.get(engine.path)
        if context is not None:
            self.composer.capabilities(context, bool(caps & ibus.CAP_SURROUNDING_TEXT))

    def surrounding_text(self, engine: Engine, before: str) -> None:
        context = self._contexts.get(engine.path)
        if context is not None:
            self._apply(self.composer.surrounding_text(context, before, time.monotonic()))
            self._changed_counts()  # a confirmation is a change of the count, with or without effects

    def content_type(self, engine: Engine, purpose: int, hints: int) -> None:
        private = private_field(purpose, hints)
        self._private[engine.path] = private
        context = self._contexts.get(engine.path)
        if context is not None:
            self._apply(self.composer.content_type(context, private, time.monotonic()))

    def reset(self, engine: Engine) -> None:
        context = self._contexts.get(engine.path)
        if context is not None:
            self.composer.reset(context)

    def enabled(self, engine: Engine) -> None:
        self._show_state(engine)

    def large_message(self) -> None:
        """A peer sent megabytes: dbus-next's reference cycles hold each such message until the garbage
        collector runs, so a storm of them would hold hundreds of MiB; the app's next tick collects."""
        self.collect = True

    def destroyed(self, engine: Engine) -> None:
        if engine is self.delivery.focused:
            self.focus_out(engine, None)
        self._contexts.pop(engine.path, None)
        self._caps.pop(engine.path, None)
        self._private.pop(engine.path, None)
        self._forget_engine(engine.path)


def return_large_blocks() -> None:
    """Give memory of large messages back to the system as soon as they are freed.

    Any peer on IBus's bus can send our engine megabytes (``SetSurroundingText``),
    thousands of times. Only 4 KiB of each is kept, but glibc raises its mmap
    threshold after the first large free and then serves such blocks from the
    heap, which it does not give back: a storm grew this process from 25 to 76
    MiB for good. A fixed threshold (which also stops the raising) keeps
    every block over 128 KiB its own mapping, unmapped when freed; a free heap
    top over 1 MiB goes back too. (The daemon fixes its own at 1 MiB.)
    """
    from listend.memory import set_malloc_thresholds

    set_malloc_thresholds(128 * 1024, trim_bytes=1024 * 1024)
