"""IBus's content types as ibus-daemon 1.5 sends them, through listend-ime's engine and fields, to the composer.

ibus-daemon moves one global engine between fields: FocusInId, then the field's ContentType -- and only when
it differs from the last one that engine was given (its proxy caches it). The fake context (no field) counts.
"""

from __future__ import annotations

import time

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


class RecordingTarget:
    """A Wayland field as the delivery's target."""

    def __init__(self) -> None:
        self.committed: list[str] = []

    def show_preedit(self, text: str) -> None:
        pass

    def commit(self, text: str) -> None:
        self.committed.append(text)

    def delete_before(self, count: int, text: str) -> bool:
        return False


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
        self.previewed: list[str] = []  # preedit texts shown (not the clearing "")
        self.engine.show_preedit = lambda text: self.previewed.extend([text] if text else [])  # type: ignore[method-assign]

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


def test_a_new_field_gets_nothing_said_before_until_its_content_type_says_it_is_no_password_field():
    """ibus-daemon sends FocusInId, then the field's ContentType: what waited for a field waits for that too."""
    w = Wiring()
    w.focus(VIEW, (0, 0))
    w.engine.FocusInId("/InputContext_fake", FAKE_CLIENT)  # no field has focus while the user speaks
    now = time.monotonic()
    w.apply(w.composer.partial(1, "my secret", now))
    w.apply(w.composer.final(1, "My secret.", now))
    w.apply(w.composer.partial(2, "and more", now))
    w.focus(PASSWORD, None)  # within the grace: the engine's last type (normal) is all that is known yet
    assert w.committed == [] and w.previewed == []
    w.engine.ContentType = [8, 0]  # then what it is
    w.apply(w.composer.tick(time.monotonic() + 1.0))
    assert w.committed == [] and w.previewed == [] and w.clipboard.copied == []
    assert w.composer.counts.withheld == 1 and w.composer.paused
    w.apply(w.composer.final(2, "And more.", time.monotonic()))
    assert w.committed == [] and w.composer.counts.withheld == 2

    # A new ordinary field whose type is the engine's last (nothing sent): the next tick delivers.
    w.engine.FocusInId("/InputContext_fake", FAKE_CLIENT)
    w.engine.ContentType = [0, 0]
    now = time.monotonic()
    w.apply(w.composer.final(3, "Hello there.", now))
    w.focus(OTHER, None)
    assert w.committed == []
    w.apply(w.composer.tick(time.monotonic() + 1.0))
    assert w.committed == ["Hello there."] and w.clipboard.copied == []


def test_ibus_s_placeholder_focus_leaves_a_wayland_field_s_focus_alone():
    """sway: from a GTK app on IBus to foot. The compositor activates foot's field first, then IBus's focus leaves."""
    w = Wiring()
    w.focus(VIEW, (0, 0))
    wayland = RecordingTarget()
    w.delivery.focused = wayland  # what WaylandFields.activated does
    w.apply(w.composer.focus_in("wayland#1.1", False, time.monotonic(), False))
    w.engine.FocusOutId(VIEW)
    w.engine.FocusInId("/InputContext_fake", FAKE_CLIENT)
    w.engine.ContentType = [0, 0]
    assert w.composer.focus == "wayland#1.1" and w.delivery.focused is wayland
    w.apply(w.composer.final(1, "Into foot.", time.monotonic()))
    assert wayland.committed == ["Into foot."] and w.committed == [] and w.clipboard.copied == []


def test_focus_leaving_an_ibus_field_for_no_field_still_sends_its_text_to_the_clipboard():
    w = Wiring()
    w.focus(VIEW, (0, 0))
    w.engine.FocusOutId(VIEW)
    w.engine.FocusInId("/InputContext_fake", FAKE_CLIENT)
    assert w.composer.focus is None and w.delivery.focused is None
    w.apply(w.composer.final(1, "Nowhere.", time.monotonic()))
    w.apply(w.composer.tick(time.monotonic() + 10.0))  # long after the grace for a field to have focus
    assert w.clipboard.copied == ["Nowhere."] and w.committed == []

    # Without FocusOutId (an older ibus-daemon), the placeholder's focus ends the field's focus too.
    w.focus(OTHER, (0, 0))
    w.engine.FocusInId("/InputContext_fake", FAKE_CLIENT)
    assert w.composer.focus is None and w.delivery.focused is None
