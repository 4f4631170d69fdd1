"""Commands in the input method: executed in id order, never typed; text is deleted or amended only when the
field's own report shows exactly what listend committed right before the cursor."""

from __future__ import annotations

from listend_ime.composer import (
    FOCUS_GRACE_S,
    KEEP_RECENT,
    Composer,
    DeleteBefore,
    Refused,
    ShowPreedit,
    ToClipboard,
    TypeText,
    clipboard_text,
)


def focused(context: str = "A", surrounding: bool = True, before: str | None = "") -> Composer:
    c = Composer()
    c.focus_in(context, surrounding, 0.0)
    if before is not None:
        c.surrounding_text(context, before, 0.0)
    return c


def said(c: Composer, seg_id: int, text: str, now: float = 0.0, report: bool = True) -> list:
    """Segment ``seg_id`` is dictated as text and committed; the field reports the text after the commit."""
    c.partial(seg_id, text, now)
    effects = c.final(seg_id, text, now)
    if report:
        field = c._fields["A"]
        c.surrounding_text("A", (field.before or ""), now)
    return effects


def command(c: Composer, seg_id: int, action: str, target: int, words: str, now: float = 0.0) -> list:
    c.partial(seg_id, words, now)
    effects = c.command(seg_id, action, target, now)
    return effects + c.final(seg_id, words, now)


def preedits(effects) -> list[str]:
    return [e.text for e in effects if isinstance(e, ShowPreedit)]


def kinds(effects, cls) -> list:
    return [e for e in effects if isinstance(e, cls)]


def test_line_breaks_start_the_next_text_which_starts_a_line():
    c = focused(before="")
    said(c, 1, "Dear Sam,")
    effects = command(c, 2, "new_line", 0, "New line.")
    assert kinds(effects, TypeText) == [], "the words said are never typed; a lone line break is not committed"
    assert preedits(c.partial(3, "thanks for", 0.0)) == ["\nThanks for"], "the break shows with the next words"
    assert kinds(said(c, 3, "thanks for the notes."), TypeText) == [TypeText("\nThanks for the notes.", 3)]
    effects = command(c, 4, "new_paragraph", 3, "New paragraph.")
    assert kinds(effects, TypeText) == []
    assert kinds(said(c, 5, "best, Ana."), TypeText) == [TypeText("\n\nBest, Ana.", 5)]
    assert c.counts.refused == 0


def test_scratch_that_after_a_line_break_takes_the_text_and_leaves_the_break():
    c = focused(before="")
    said(c, 1, "Hello.")
    command(c, 2, "new_line", 1, "New line.")
    said(c, 3, "Wrong words.")  # the field (a text view) reports the new line only: "Wrong words."
    c.surrounding_text("A", "Wrong words.", 0.0)
    assert kinds(command(c, 4, "scratch_that", 3, "Scratch that."), DeleteBefore) == [
        DeleteBefore(12, 4, "Wrong words.")
    ]
    assert kinds(said(c, 5, "right words."), TypeText) == [TypeText("Right words.", 5)]


def test_a_mark_said_after_a_line_break_amends_the_text_before_the_break():
    c = focused(before="")
    said(c, 1, "Is it ready.")
    command(c, 2, "new_line", 1, "New line.")
    effects = command(c, 3, "question_mark", 1, "Question mark.")
    assert kinds(effects, DeleteBefore) == [DeleteBefore(1, 3, ".")] and kinds(effects, TypeText) == [TypeText("?", 3)]
    assert kinds(said(c, 4, "yes."), TypeText) == [TypeText("\nYes.", 4)]


def test_line_breaks_said_last_are_dropped_when_the_input_method_lets_go():
    c = focused(before="")
    said(c, 1, "Hello.")
    command(c, 2, "new_line", 1, "New line.")
    assert c.flush() == []
    assert kinds(said(c, 3, "next."), TypeText) == [TypeText(" Next.", 3)]


def test_a_command_waits_for_the_segments_before_it_like_any_final():
    c = focused(before="")
    c.partial(1, "hello", 0.0)
    assert kinds(command(c, 2, "new_line", 1, "New line."), TypeText) == []
    assert [e.text for e in kinds(c.final(1, "Hello.", 0.1), TypeText)] == ["Hello."]
    assert [e.text for e in kinds(c.final(3, "Bye.", 0.2), TypeText)] == ["\nBye."]


def test_scratch_that_deletes_exactly_what_listend_committed_when_the_field_shows_it():
    c = focused(before="Notes:")
    said(c, 1, "first point.")
    said(c, 2, "second point.")
    effects = command(c, 3, "scratch_that", 2, "Scratch that.")
    assert kinds(effects, DeleteBefore) == [DeleteBefore(len(" Second point."), 3, " Second point.")]
    assert kinds(effects, TypeText) == [] and c.counts.refused == 0
    # Said again: the daemon names the one before; the field has not reported since, our deletion is known.
    effects = command(c, 4, "scratch_that", 1, "Scratch that.")
    assert kinds(effects, DeleteBefore) == [DeleteBefore(len(" first point."), 4, " first point.")]
    # Nothing of listend's left to take back (target 0): nothing happens, the user's "Notes:" stays.
    assert command(c, 5, "scratch_that", 0, "Scratch that.") == [ShowPreedit("")]
    assert kinds(said(c, 7, "third point."), TypeText) == [TypeText(" third point.", 7)], "after a colon"


def test_scratch_that_after_the_user_typed_leaves_the_field_alone_and_is_counted():
    c = focused(before="")
    said(c, 1, "The meeting is at noon.")
    c.typed("A", " ")
    c.typed("A", "o")
    c.typed("A", "k")
    effects = command(c, 2, "scratch_that", 1, "Scratch that.")
    assert kinds(effects, DeleteBefore) == [] and kinds(effects, TypeText) == []
    assert len(kinds(effects, Refused)) == 1 and c.counts.refused == 1


def test_the_users_backspace_over_listends_text_refuses_too():
    c = focused(before="")
    said(c, 1, "Hello there.")
    c.typed("A", "\b")
    assert kinds(command(c, 2, "scratch_that", 1, "Scratch that."), Refused)


def test_nothing_is_deleted_without_the_fields_report_after_the_commit_or_after_a_click():
    c = focused(before="")
    said(c, 1, "Hello there.", report=False)  # the field has not reported since the commit
    assert kinds(command(c, 2, "scratch_that", 1, "Scratch that."), Refused)
    c = focused(before="")
    said(c, 1, "Hello there.")
    c.reset("A")  # a click: the cursor may be anywhere
    assert kinds(command(c, 2, "scratch_that", 1, "Scratch that."), Refused)
    c = focused(before="")
    said(c, 1, "Hello there.")
    c.typed("A", None)  # an arrow key
    assert kinds(command(c, 2, "scratch_that", 1, "Scratch that."), Refused)


def test_a_field_that_reports_no_text_gets_no_deletion():
    c = focused(surrounding=False, before=None)
    said(c, 1, "Hello there.", report=False)
    effects = command(c, 2, "scratch_that", 1, "Scratch that.")
    assert kinds(effects, DeleteBefore) == [] and c.counts.refused == 1


def test_scratch_that_in_another_field_than_the_text_refuses():
    c = focused(before="")
    said(c, 1, "Hello there.")
    c.focus_in("B", True, 0.1)
    c.surrounding_text("B", "Hello there.", 0.1)  # the same words, but not ours in this field
    effects = command(c, 2, "scratch_that", 1, "Scratch that.", 0.2)
    assert kinds(effects, DeleteBefore) == [] and c.counts.refused == 1


def test_a_scratched_segment_still_shown_as_preedit_is_dropped():
    c = focused(before="Done.")
    c.partial(1, "oops wrong", 0.0)
    effects = command(c, 2, "scratch_that", 1, "Scratch that.")
    assert kinds(effects, TypeText) == [] and kinds(effects, DeleteBefore) == []
    assert effects[-1] == ShowPreedit("") and c.counts.refused == 0
    assert c.final(1, "Oops, wrong.", 0.1) == [], "its final is never committed"
    assert kinds(said(c, 3, "right."), TypeText) == [TypeText(" Right.", 3)]


def test_a_spoken_mark_replaces_the_final_punctuation_of_the_previous_segment():
    c = focused(before="")
    said(c, 1, "Is it ready.")
    effects = command(c, 2, "question_mark", 1, "Question mark.")
    assert kinds(effects, DeleteBefore) == [DeleteBefore(1, 2, ".")]
    assert kinds(effects, TypeText) == [TypeText("?", 2)]
    # The amended text is what listend committed now: scratch that takes all of it.
    assert kinds(command(c, 3, "scratch_that", 1, "Scratch that."), DeleteBefore) == [
        DeleteBefore(len("Is it ready?"), 3, "Is it ready?")
    ]


def test_a_mark_after_a_word_is_appended_and_refused_when_the_user_typed():
    c = focused(before="")
    said(c, 1, "Dear Sam")
    effects = command(c, 2, "comma", 1, "Comma.")
    assert kinds(effects, DeleteBefore) == [] and kinds(effects, TypeText) == [TypeText(",", 2)]
    assert kinds(said(c, 3, "Thanks."), TypeText) == [TypeText(" thanks.", 3)], "after a comma: no capital"
    c.typed("A", "!")
    effects = command(c, 4, "exclamation_mark", 3, "Exclamation mark.")
    assert kinds(effects, TypeText) == [] and kinds(effects, Refused) and c.counts.refused == 1


def test_a_mark_with_nothing_before_it_is_refused_and_stop_listening_types_nothing():
    c = focused(before="")
    assert kinds(command(c, 1, "period", 0, "Period."), Refused)
    effects = command(c, 2, "stop_listening", 0, "Stop listening.")
    assert kinds(effects, TypeText) == [] and not kinds(effects, Refused)
    effects = command(c, 3, "some_new_action", 0, "Do magic.")
    assert kinds(effects, TypeText) == [TypeText("Do magic.", 3)], "an action this client does not know is text"


def test_commands_whose_field_lost_focus_line_breaks_to_the_clipboard_the_rest_refused():
    c = focused(before="")
    said(c, 1, "Hello.")
    c.partial(2, "new line", 0.0)
    c.partial(3, "scratch that", 0.0)
    c.focus_in("B", True, 0.1)
    c.command(2, "new_line", 1, 0.1)
    effects = c.final(2, "New line.", 0.1)
    assert kinds(effects, ToClipboard) == [ToClipboard("\n", kinds(effects, ToClipboard)[0].reason)]
    c.command(3, "scratch_that", 1, 0.2)
    effects = c.final(3, "Scratch that.", 0.2)
    assert kinds(effects, Refused) and not kinds(effects, DeleteBefore)


def test_a_command_waits_for_focus_like_text():
    c = focused(before="")
    said(c, 1, "Hello.")
    c.partial(2, "new line", 0.0)
    c.focus_out("A", 0.1)
    c.command(2, "new_line", 1, 0.1)
    assert c.final(2, "New line.", 0.2) == []
    c.focus_in("A", True, 0.2 + FOCUS_GRACE_S / 2)
    assert kinds(c.final(3, "Bye.", 0.3 + FOCUS_GRACE_S / 2), TypeText) == [TypeText("\nBye.", 3)]


def test_flush_puts_line_breaks_but_no_command_words_on_the_clipboard():
    c = focused(before="")
    c.partial(1, "hello", 0.0)  # never final: it blocks the rest, as a segment still being refined does
    c.command(2, "new_line", 1, 0.0)
    c.final(2, "New line.", 0.0)
    c.command(3, "scratch_that", 0, 0.0)
    c.final(3, "Scratch that.", 0.0)
    c.partial(4, "bye", 0.0)
    c.final(4, "Bye.", 0.0)
    c.focus_out("A", 0.0)
    effects = c.flush()
    assert effects == [ToClipboard("\nBye.", effects[0].reason)]


def test_clipboard_text_puts_no_spaces_around_line_breaks():
    assert clipboard_text(["Hello.", "\n", "Bye.", "\n\n", "Ana.", "End."]) == "Hello.\nBye.\n\nAna. End."


def test_only_recent_segments_are_remembered_per_field():
    c = focused(before="")
    for seg_id in range(1, KEEP_RECENT + 10):
        said(c, seg_id, f"Word {seg_id}.")
    assert len(c._fields["A"].recent) == KEEP_RECENT
    effects = command(c, 100, "scratch_that", 1, "Scratch that.")
    assert kinds(effects, Refused) and not kinds(effects, DeleteBefore)
