"""IBus's content types as ibus-daemon 1.5 sends them, through listend-ime's engine and fields, to the composer.

ibus-daemon moves one global engine between fields: FocusInId, then the field's ContentType -- and only when
it differs from the last one that engine was given (its proxy caches it). The fake context (no field) counts.
"""

from __future__ import annotations

from listend_ime.composer import Composer, Effect
from listend_ime.delivery import Delivery
from listend_ime.engine import FAKE_CLIENT, Engine
from listend_ime.fields import Fields

VIEW, PASSWORD, OTHER = "/org/freedesktop/IBus/InputContext_1", "/InputContext_2", "/InputContext_3"


class RecordingClipboard:
    def __init__(self) -> None:
        self.copied: list[str] = []

    def copy(self, text: str) -> None:
        self.copied.append(text)


class Wiring:
    def __init__(self) -> None:
        self.composer = Composer()
        self.clipboard = RecordingClipboard()
        self.notices: list[str] = []
        self.delivery = Delivery(self.clipboard, lambda summary, body: self.notices.append(summary))  # type: ignore[arg-type]
        self.fields = Fields(self.composer, self.delivery, self.apply, lambda engine: None, lambda: None, print)
        self.engine = Engine("/org/freedesktop/IBus/Engine/1", self.fields)
        self.committed: list[str] = []
        self.engine.commit = self.committed.append  # type: ignore[method-assign]

    def apply(self, effects: list[Effect]) -> None:
        self.delivery.apply(effects)

    def focus(self, context: str, content_type: tuple[int, int] | None) -> None:
        """What ibus-daemon sends when focus moves to ``context`` (None: the engine already has that type)."""
        self.engine.FocusInId(context, "gtk3-im")
        if content_type is not None:
            self.engine.ContentType = list(content_type)


def test_a_password_field_withholds_and_the_view_after_it_gets_its_text_without_a_content_type_message():
    w = Wiring()
    w.focus(VIEW, None)  # a fresh engine: (0, 0), nothing sent
    w.focus(PASSWORD, (8, 0))
    w.apply(w.composer.partial(1, "secret", 1.0))
    w.apply(w.composer.final(1, "Secret.", 1.1))
    assert w.committed == [] and w.clipboard.copied == [] and w.composer.counts.withheld == 1
    assert w.notices == ["listend: dictation paused in this field"]

    w.focus(VIEW, (0, 0))  # the type differs from the engine's last: sent, after the focus
    w.apply(w.composer.final(2, "Hello.", 2.0))
    assert w.committed == ["Hello."]

    # Focus to no field (IBus's fake context, type (0, 0)), then to the password field again: known, private.
    w.engine.FocusInId("/InputContext_fake", FAKE_CLIENT)
    w.engine.ContentType = [0, 0]
    w.focus(PASSWORD, (8, 0))
    w.apply(w.composer.final(3, "Another secret.", 3.0))
    assert w.committed == ["Hello."] and w.clipboard.copied == [] and w.composer.counts.withheld == 2

    # A new normal field after the password field: the engine's last type was the password's, so ibus-daemon
    # sends (0, 0); before it arrives the field counts as private, and nothing spoken there is lost after it.
    w.focus(OTHER, None)
    assert w.composer.paused
    w.engine.ContentType = [0, 0]
    assert not w.composer.paused
    w.apply(w.composer.final(4, "Fine.", 4.0))
    assert w.committed == ["Hello.", "Fine."]


def test_the_fake_context_s_type_does_not_unlock_the_password_field_it_left():
    w = Wiring()
    w.focus(PASSWORD, (9, 0))  # a PIN field
    w.apply(w.composer.partial(1, "one two three four", 1.0))
    w.engine.FocusInId("/InputContext_fake", FAKE_CLIENT)  # focus leaves every field before the final
    w.engine.ContentType = [0, 0]
    w.apply(w.composer.final(1, "1234.", 1.1))
    w.apply(w.composer.tick(10.0))  # long after the grace for a field to have focus
    assert w.clipboard.copied == [] and w.committed == [] and w.composer.counts.withheld == 1
