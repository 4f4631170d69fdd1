"""Voice commands: a whole utterance is a command only when it is exactly a phrase in force."""

from __future__ import annotations

import pytest

from listend.commands import PHRASES, Action, CommandTable, amend_ending, normalise


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        ("New line.", Action.NEW_LINE),
        ("new line", Action.NEW_LINE),
        ("  NEW   LINE!  ", Action.NEW_LINE),
        ("Newline.", Action.NEW_LINE),
        ("New paragraph.", Action.NEW_PARAGRAPH),
        ("Scratch that.", Action.SCRATCH_THAT),
        ("Delete that!", Action.SCRATCH_THAT),
        ("Stop listening.", Action.STOP_LISTENING),
        ("Period.", Action.PERIOD),
        ("Question mark?", Action.QUESTION_MARK),
        ("Exclamation point.", Action.EXCLAMATION_MARK),
        ("Stop listening. Stop listening.", Action.STOP_LISTENING),  # the model doubled it: once
        ("Delete that, delete that.", Action.SCRATCH_THAT),  # acts once: the smaller deletion
        ("Period. Period. Period.", Action.PERIOD),
        ("New line, new paragraph.", None),
        ("Stop listening. Stop.", None),
        ("Dot, New Line.", None),  # two phrases are not one command (voxtype #252's failure is to act on part)
        ("a new line of products", None),
        ("We need a new paragraph here.", None),
        ("Scratch that idea.", None),
        ("", None),
        ("...", None),
    ],
)
def test_english_commands_are_whole_utterances(said, meant):
    assert CommandTable.build(["en"]).recognise(said) is meant


def test_german_and_french_phrases_act_in_their_languages_only():
    both = CommandTable.build(["en", "de"])
    assert both.recognise("Neue Zeile.") is Action.NEW_LINE
    assert both.recognise("Fragezeichen") is Action.QUESTION_MARK
    assert both.recognise("Nouvelle ligne.") is None  # French is not in the set
    french = CommandTable.build(["fr"])
    assert french.recognise("Nouvelle ligne.") is Action.NEW_LINE
    assert french.recognise("Point d’interrogation.") is Action.QUESTION_MARK  # typographic apostrophe
    assert french.recognise("Arrête d'écouter.") is Action.STOP_LISTENING
    assert french.recognise("Deux-points.") is Action.COLON
    assert french.recognise("Deux points") is Action.COLON
    assert french.recognise("point") is Action.PERIOD


def test_a_language_without_a_table_has_no_commands_but_takes_the_users_phrases():
    assert CommandTable.build(["ja"]).phrases == {}
    table = CommandTable.build(["ja"], extra={Action.NEW_LINE: ["kaigyou"]})
    assert table.recognise("Kaigyou.") is Action.NEW_LINE


def test_turned_off_actions_are_text_and_user_phrases_add_to_the_table():
    table = CommandTable.build(
        ["en"], extra={Action.SCRATCH_THAT: ["undo that"]}, disabled=[Action.PERIOD, Action.STOP_LISTENING]
    )
    assert table.recognise("Period.") is None
    assert table.recognise("Stop listening.") is None
    assert table.recognise("Undo that.") is Action.SCRATCH_THAT
    assert table.recognise("Scratch that.") is Action.SCRATCH_THAT
    assert table.said(Action.SCRATCH_THAT) == ["scratch that", "delete that", "undo that"]


def test_a_user_phrase_that_means_two_things_or_is_empty_is_refused_with_its_name():
    with pytest.raises(ValueError, match="'Comma' already means comma"):
        CommandTable.build(["en"], extra={Action.PERIOD: ["Comma"]})
    with pytest.raises(ValueError, match="must be 1-64 characters"):
        CommandTable.build(["en"], extra={Action.NEW_LINE: ["?!"]})
    with pytest.raises(ValueError, match="must be 1-64 characters"):
        CommandTable.build(["en"], extra={Action.NEW_LINE: ["x" * 65]})


def test_every_built_in_phrase_is_already_normal_and_means_one_action_per_language():
    for language, table in PHRASES.items():
        seen: dict[str, Action] = {}
        for action, phrases in table.items():
            for phrase in phrases:
                assert normalise(phrase) == phrase, (language, phrase)
                assert seen.setdefault(phrase, action) is action, (language, phrase)
        assert set(table) == set(Action), language  # every language names every action


def test_normalise_keeps_letters_of_every_script_and_inner_apostrophes():
    assert normalise("Lösch das!") == "lösch das"
    assert normalise("«À la ligne»") == "à la ligne"
    assert normalise("it's -- fine") == "it's fine"
    assert normalise("A\u0300 la ligne") == "à la ligne"  # decomposed accent
    assert normalise("新しい行。") == "新しい行"


def test_a_long_utterance_is_dictation_without_being_normalised():
    assert CommandTable.build(["en"]).recognise("new line " * 200) is None


@pytest.mark.parametrize(
    ("text", "mark", "amended"),
    [
        ("Is it ready.", "?", "Is it ready?"),
        ("Is it ready", "?", "Is it ready?"),
        ("Stop it...", "!", "Stop it!"),
        ("Dear Anna. ", ",", "Dear Anna, "),
        ("", "?", ""),
        ("   ", ".", "   "),
    ],
)
def test_a_spoken_mark_replaces_the_final_punctuation(text, mark, amended):
    assert amend_ending(text, mark) == amended


def test_each_spoken_mark_action_has_its_mark():
    assert {a.mark for a in Action if a.mark} == {".", ",", "?", "!", ":"}
    assert Action.NEW_LINE.mark == ""
