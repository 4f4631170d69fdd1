"""The input method's rules as plain logic: preedit, commits in id order, spacing, focus, confirmation."""

from __future__ import annotations

from listend_ime.composer import (
    CONFIRM_WITHIN_S,
    FOCUS_GRACE_S,
    Composer,
    ShowPreedit,
    ToClipboard,
    TypeText,
    join,
)


def focused(context: str = "A", surrounding: bool = True, before: str | None = "") -> Composer:
    c = Composer()
    c.focus_in(context, surrounding, 0.0)
    if before is not None:
        c.surrounding_text(context, before, 0.0)
    return c


def commits(effects) -> list[str]:
    return [e.text for e in effects if isinstance(e, TypeText)]


def preedits(effects) -> list[str]:
    return [e.text for e in effects if isinstance(e, ShowPreedit)]


def test_partials_are_the_preedit_and_the_final_replaces_them():
    c = focused()
    assert preedits(c.partial(1, "hello", 0.1)) == ["Hello"]
    assert preedits(c.partial(1, "hello wor", 0.2)) == ["Hello wor"]
    effects = c.final(1, "Hello world.", 0.3)
    assert effects == [ShowPreedit(""), TypeText("Hello world.", 1)]
    assert c.final(1, "Hello world.", 0.4) == [], "nothing is committed twice"
    assert c.partial(1, "late partial", 0.5) == [], "a partial after the final is void"


def test_finals_are_committed_in_id_order_with_spaces_and_capitals():
    c = focused(before="Dear Sam,")
    c.partial(1, "thanks", 0.0)
    c.partial(2, "see you", 0.1)
    assert commits(c.final(2, "see you soon.", 0.2)) == [], "2 waits for 1"
    assert commits(c.final(1, "thanks for the notes.", 0.3)) == [" thanks for the notes.", " See you soon."]


def test_the_open_segments_show_together_after_the_committed_text():
    c = focused(before="")
    c.partial(1, "one", 0.0)
    effects = c.partial(2, "two", 0.1)
    assert preedits(effects) == ["One two"]


def test_join_follows_the_text_before_the_cursor():
    assert join("", "hello.") == "Hello."
    assert join("It works.", "next one") == " Next one"
    assert join("a list:", "first") == " first"  # no capital after a colon or semicolon (the model's own stays)
    assert join("a list:", "First") == " First"
    assert join('He said "stop."', "then") == " Then"
    assert join('He said "', "stop") == "stop"
    assert join("(", "aside") == "aside"
    assert join("word ", "next") == "next"
    assert join("line\n", "next") == "Next"
    assert join(None, "as written") == "as written"  # nothing known of the field: the model's text
    assert join("x", "   ") == ""


def test_a_retracted_segment_releases_those_after_it():
    c = focused()
    c.partial(1, "uh", 0.0)
    c.partial(2, "real words", 0.1)
    assert commits(c.final(2, "Real words.", 0.2)) == []
    effects = c.retracted(1, 0.3)
    assert commits(effects) == ["Real words."]
    assert not c.pending


def test_a_final_whose_field_lost_focus_goes_to_the_clipboard_and_later_ones_follow_focus():
    c = focused("A")
    c.partial(1, "first thought", 0.0)
    c.focus_out("A", 0.5)
    c.focus_in("B", True, 0.6)
    c.surrounding_text("B", "", 0.6)
    c.partial(2, "second", 0.7)
    effects = c.final(1, "First thought.", 1.0)
    assert [e for e in effects if isinstance(e, ToClipboard)] == [
        ToClipboard("First thought.", "focus moved to another field before the text was final")
    ]
    assert commits(c.final(2, "Second.", 1.1)) == ["Second."]
    assert c.counts.failed == 1


def test_focus_coming_back_in_time_commits_in_the_field_it_was_spoken_into():
    c = focused("A")
    c.partial(1, "spoken here", 0.0)
    c.focus_out("A", 0.5)
    assert c.final(1, "Spoken here.", 0.6) == []  # no field has focus: wait a moment
    assert commits(c.focus_in("A", True, 0.6 + FOCUS_GRACE_S / 2)) == ["Spoken here."]


def test_no_focus_for_too_long_hands_the_text_on():
    c = focused("A")
    c.partial(1, "words", 0.0)
    c.focus_out("A", 0.1)
    c.final(1, "Words.", 0.2)
    effects = c.tick(0.2 + FOCUS_GRACE_S + 0.1)
    assert [e.text for e in effects if isinstance(e, ToClipboard)] == ["Words."]


def test_delivery_is_confirmed_by_the_fields_own_text_or_counted_unconfirmed():
    c = focused("A", surrounding=True)
    c.final(1, "Seen.", 0.0)
    c.surrounding_text("A", "Seen.", 0.1)
    assert (c.counts.delivered, c.counts.unconfirmed) == (1, 0)
    c.final(2, "Not seen.", 0.2)
    c.tick(0.2 + CONFIRM_WITHIN_S + 0.1)
    assert (c.counts.delivered, c.counts.unconfirmed) == (1, 1)
    blind = focused("B", surrounding=False, before=None)
    blind.final(1, "Committed.", 0.0)
    assert (blind.counts.delivered, blind.counts.unconfirmed) == (0, 1)


def test_flush_hands_on_finals_not_yet_committed():
    c = focused("A")
    c.partial(1, "one", 0.0)
    c.focus_out("A", 0.1)
    c.final(1, "One.", 0.2)
    c.partial(2, "two", 0.3)
    assert c.pending_ids() == {2}
    assert c.flush() == [ToClipboard("One.", "the input method stopped before it could type it")]
    assert not c.pending and c.counts.failed == 1


def test_no_capital_after_a_comma_or_a_word_however_the_model_starts_the_segment():
    assert join("Ever tried,", "Ever failed.") == " ever failed."
    assert join("and then", "Another try") == " another try"
    assert join("So,", "I did.") == " I did."  # "I" stays
    assert join("So,", "NASA said") == " NASA said"  # an acronym stays
    assert join("Done.", "ever more") == " Ever more"


def test_a_capital_that_may_be_a_name_or_a_german_noun_is_kept_mid_sentence():
    assert join("We met,", "Anna said so.") == " Anna said so."
    assert join("I flew to", "Paris today.") == " Paris today."
    assert join("Ich habe", "Hunger.") == " Hunger."


def test_keys_typed_after_the_field_reported_its_text_are_counted_in():
    """A field reports the text before a key is handled: Enter starts a new line with no space."""
    c = focused(before="Hello.")
    c.typed("A", "\n")
    assert commits(c.final(1, "next line", 0.1)) == ["Next line"]
    c = focused(before="Note")
    c.typed("A", ":")
    assert commits(c.final(1, "Done", 0.1)) == [" Done"]  # after a colon the capital stays
    c.typed("A", "\b")
    assert c._fields["A"].before == "Note: Don"
    c.typed("A", None)  # a shortcut or an arrow: the last report stands (Ctrl+S must not glue words on)
    assert commits(c.final(2, "more", 0.2)) == [" more"]


def test_what_is_kept_of_a_field_is_bounded():
    from listend_ime.composer import KEEP_BEFORE, KEEP_FIELDS

    c = focused()
    for i in range(1000):
        c.surrounding_text("A", "x" * 100_000, float(i))
        c.focus_in(f"field-{i}", True, float(i))
    assert len(c._fields) <= KEEP_FIELDS
    assert all(f.before is None or len(f.before) <= KEEP_BEFORE for f in c._fields.values())


def test_a_user_with_no_engine_gets_the_keyboard_of_the_system_layout(tmp_path):
    from listend_ime.keyboard import choose_keyboard, system_layout

    engines = ["xkb:us::eng", "xkb:de::ger", "xkb:de:neo:ger", "xkb:us:dvorak:eng"]
    assert choose_keyboard(engines, ("de", "")) == "xkb:de::ger"
    assert choose_keyboard(engines, ("de", "neo")) == "xkb:de:neo:ger"
    assert choose_keyboard(engines, ("xx", "")) == "xkb:us::eng"
    assert choose_keyboard(["xkb:fr::fra"], ("", "")) == "xkb:fr::fra"
    assert choose_keyboard([], ("de", "")) == ""
    config = tmp_path / "keyboard"
    config.write_text('XKBMODEL="pc105"\nXKBLAYOUT="de,us"\nXKBVARIANT="neo,"\n')
    assert system_layout(config) == ("de", "neo")
    assert system_layout(tmp_path / "missing") == ("", "")


def test_fallbacks_of_one_dictation_accumulate_on_the_clipboard():
    from listend_ime.delivery import Delivery

    class Recorded:  # what was put on the clipboard, in order
        def __init__(self):
            self.texts = []

        def copy(self, text):
            self.texts.append(text)

    clipboard, notices = Recorded(), []
    delivery = Delivery(clipboard, lambda summary, body: notices.append(summary))  # type: ignore[arg-type]
    delivery.apply([ToClipboard("First.", "focus moved")])
    delivery.apply([TypeText("committed elsewhere", 2)])  # no engine focused: nothing to carry it out
    delivery.apply([ToClipboard("Second.", "focus moved")])
    assert clipboard.texts[-1] == "First. Second."
    assert len(notices) == 1  # said once, not per fallback
    delivery.new_dictation()
    delivery.apply([ToClipboard("Third.", "no field")])
    assert clipboard.texts[-1] == "Third."
