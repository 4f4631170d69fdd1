"""Password and PIN fields: nothing shown, committed or copied for what is spoken there; said once; resumed."""

from __future__ import annotations

from listend_ime.composer import Composer, DeleteBefore, Paused, ShowPreedit, ToClipboard, TypeText
from listend_ime.engine import HINT_PRIVATE, PURPOSE_PASSWORD, PURPOSE_PIN, private_field


def kinds(effects, kind) -> list:
    return [e for e in effects if isinstance(e, kind)]


def test_what_is_spoken_into_a_password_field_goes_nowhere_and_is_said_once():
    c = Composer()
    c.focus_in("pw", True, 0.0, private=True)
    effects = c.partial(1, "my secret", 0.1)
    assert kinds(effects, Paused) and not kinds(effects, ShowPreedit), effects
    assert not kinds(c.partial(1, "my secret word", 0.2), Paused), "said once"
    effects = c.final(1, "My secret word.", 0.3)
    assert not kinds(effects, TypeText) and not kinds(effects, ToClipboard), effects
    assert c.counts.withheld == 1 and c.counts.failed == 0
    assert not c.pending
    # A second utterance in the same field: still nowhere, not said again.
    effects = c.partial(2, "more", 0.4) + c.final(2, "More.", 0.5)
    assert not kinds(effects, Paused) and not kinds(effects, TypeText) and c.counts.withheld == 2


def test_focus_leaving_the_password_field_resumes_and_a_new_visit_is_said_again():
    c = Composer()
    c.focus_in("pw", True, 0.0, private=True)
    c.partial(1, "secret", 0.1)
    c.focus_in("A", True, 0.2)
    c.surrounding_text("A", "", 0.2)
    # Its final comes after focus left: still withheld, never to the clipboard or the new field.
    effects = c.final(1, "Secret.", 0.3)
    assert not kinds(effects, TypeText) and not kinds(effects, ToClipboard) and c.counts.withheld == 1
    assert kinds(c.partial(2, "hello", 0.4), ShowPreedit) == [ShowPreedit("Hello")]
    assert kinds(c.final(2, "Hello.", 0.5), TypeText) == [TypeText("Hello.", 2)]
    c.focus_in("pw", True, 0.6)  # the field keeps what it said it is
    assert kinds(c.partial(3, "again", 0.7), Paused)


def test_a_field_that_says_it_is_a_password_field_after_focus_drops_the_preedit_shown():
    c = Composer()
    c.focus_in("E", True, 0.0)
    c.surrounding_text("E", "", 0.0)
    assert kinds(c.partial(1, "hello", 0.1), ShowPreedit) == [ShowPreedit("Hello")]
    effects = c.content_type("E", True, 0.15)
    assert ShowPreedit("") in effects and kinds(effects, Paused)
    effects = c.final(1, "Hello.", 0.2)
    assert not kinds(effects, TypeText) and c.counts.withheld == 1


def test_text_spoken_elsewhere_is_not_typed_into_a_password_field_but_copied_as_usual():
    c = Composer()
    c.focus_in("A", True, 0.0)
    c.partial(1, "hello", 0.1)
    c.focus_in("pw", True, 0.2, private=True)
    effects = c.final(1, "Hello.", 0.3)
    assert not kinds(effects, TypeText)
    assert [e.text for e in kinds(effects, ToClipboard)] == ["Hello."]
    assert c.counts.withheld == 0 and c.counts.failed == 1


def test_letting_go_copies_nothing_spoken_into_a_password_field():
    c = Composer()
    c.focus_in("pw", True, 0.0, private=True)
    c.partial(1, "secret", 0.1)
    assert c.pending_ids() == set(), "its final is owed to no clipboard"
    assert c.flush() == [] and c.counts.withheld == 1


def test_a_deletion_names_the_text_it_removes():
    c = Composer()
    c.focus_in("A", True, 0.0)
    c.surrounding_text("A", "", 0.0)
    c.final(1, "Hello there.", 0.1)
    c.surrounding_text("A", "Hello there.", 0.2)
    effects = c.command(2, "scratch_that", 1, 0.3) + c.final(2, "scratch that", 0.3)
    assert kinds(effects, DeleteBefore) == [DeleteBefore(12, 2, "Hello there.")]


def test_ibus_purposes_make_a_field_private_and_the_private_hint_does_not():
    assert private_field(PURPOSE_PASSWORD, 0) and private_field(PURPOSE_PIN, 0)
    assert private_field(PURPOSE_PASSWORD, HINT_PRIVATE)
    # GTK's PRIVATE hint (a browser's private window) asks that nothing be learnt, not that nothing be typed.
    assert not private_field(0, HINT_PRIVATE)
    assert not private_field(0, 0) and not private_field(10, 1)  # a terminal with spell checking


def test_text_committed_that_never_reached_its_field_counts_failed_and_not_also_unconfirmed():
    c = Composer()
    c.focus_in("A", True, 0.0)
    c.surrounding_text("A", "", 0.0)
    c.final(1, "Lost on the way.", 0.1)
    c.undelivered("Lost on the way.")
    c.tick(10.0)  # long past the time to confirm it
    assert (c.counts.failed, c.counts.unconfirmed, c.counts.delivered) == (1, 0, 0)


def test_only_the_commits_that_were_dropped_stop_awaiting_confirmation():
    """An earlier commit whose text occurs inside the dropped one was delivered: the field may still confirm it."""
    c = Composer()
    c.focus_in("A", True, 0.0)
    c.surrounding_text("A", "", 0.0)
    assert kinds(c.final(1, "Yes.", 0.1), TypeText) == [TypeText("Yes.", 1)]
    assert kinds(c.final(2, "Yes, and more.", 0.2), TypeText) == [TypeText(" Yes, and more.", 2)]
    c.undelivered(" Yes, and more.")
    c.surrounding_text("A", "Yes.", 0.3)
    c.tick(10.0)
    assert (c.counts.failed, c.counts.unconfirmed, c.counts.delivered) == (1, 0, 1)


def test_commits_dropped_together_with_their_line_breaks_stop_awaiting_confirmation():
    c = Composer()
    c.focus_in("A", True, 0.0)
    c.surrounding_text("A", "", 0.0)
    c.final(1, "One.", 0.1)
    c.command(2, "new_line", 0, 0.2)
    c.final(2, "new line", 0.2)
    assert kinds(c.final(3, "Two.", 0.3), TypeText) == [TypeText("\nTwo.", 3)]
    c.undelivered("One.\nTwo.")  # a Wayland field lost focus with both still queued
    c.tick(10.0)
    assert (c.counts.failed, c.counts.unconfirmed, c.counts.delivered) == (1, 0, 0)
