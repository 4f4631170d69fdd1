"""Spacing and capitals per language: English, German, French, a language without rules, unspaced scripts."""

from __future__ import annotations

import pytest

from listend_ime.composer import Composer, TypeText
from listend_ime.spacing import PLAIN, french_marks, join, typography


def test_english_is_the_default_and_keeps_its_rules():
    assert typography(None) is typography("") is typography("en")
    assert join("Ever tried,", "Ever failed.") == " ever failed."
    assert join("Ever tried,", "Ever failed.", "en") == " ever failed."
    assert join("So,", "It's done.", "en") == " it's done."  # a contraction of a function word
    assert join("So,", "I'm done.", "en") == " I'm done."  # "I" stays


def test_german_makes_only_its_own_function_words_small_and_keeps_every_noun():
    assert join("Ich glaube,", "Das ist gut.", "de") == " das ist gut."
    assert join("Wir kaufen", "Brot und Milch.", "de") == " Brot und Milch."  # a noun keeps its capital
    assert join("Ich habe", "Hunger.", "de") == " Hunger."
    assert join("Ja,", "Sie haben recht.", "de") == " Sie haben recht."  # the formal "Sie" is always capital
    assert join("Bis", "Morgen früh.", "de") == " Morgen früh."  # der Morgen, a noun as often as not
    # English's list is not German's: "Die" is an article there, "Will" a verb here.
    assert join("Ich sehe,", "Die Katze schläft.", "de") == " die Katze schläft."
    assert join("Ich sehe,", "Die Katze schläft.", "en") == " Die Katze schläft."
    assert join("Gut.", "danke schön", "de") == " Danke schön"  # a sentence starts with a capital in any language


def test_french_makes_its_function_words_small_elided_ones_too():
    assert join("Je pense,", "Le train part.", "fr") == " le train part."
    assert join("Oui,", "C'est vrai.", "fr") == " c'est vrai."
    assert join("Oui,", "C’est vrai.", "fr") == " c’est vrai."
    assert join("Nous allons à", "Paris demain.", "fr") == " Paris demain."


def test_french_spaces_its_high_marks_and_guillemets_where_the_model_did_not():
    assert join("", "Vous venez ce soir?", "fr") == "Vous venez ce soir ?"
    assert join("", "Vous venez ce soir ?", "fr") == "Vous venez ce soir ?"  # as Whisper writes it: unchanged
    assert join("", "Attention: il pleut; prenez un parapluie!", "fr") == "Attention : il pleut ; prenez un parapluie !"
    assert join("", "Il a dit «bonjour».", "fr") == "Il a dit « bonjour »."
    assert french_marks("Quoi?!") == "Quoi ?!"
    # Not a mark that ends a word: times, addresses, queries stay.
    assert french_marks("Rendez-vous à 10:30 sur https://exemple.fr/?q=1") == (
        "Rendez-vous à 10:30 sur https://exemple.fr/?q=1"
    )
    # Text after an opening guillemet gets the space inside it; a segment that starts with a mark gets one before.
    assert join("Il a dit «", "bonjour", "fr") == " bonjour"
    assert join("Vous venez", "?", "fr") == " ?"
    assert join("Vous venez ", "?", "fr") == "?"
    # Other languages write marks as the model does.
    assert join("", "Kommst du heute Abend?", "de") == "Kommst du heute Abend?"
    assert join("", "Are you coming?", "en") == "Are you coming?"


def test_a_language_without_rules_keeps_the_models_capitals_and_unspaced_scripts_get_no_space():
    assert typography("pt") is PLAIN
    assert join("Eu acho,", "O trem parte.", "pt") == " O trem parte."  # no English list applied to it
    assert join("Eu acho", "o trem parte.", "pt") == " o trem parte."
    assert join("今天天气很好。", "我们去公园吧。", "zh") == "我们去公园吧。"
    assert join("東京に行きます。", "明日です。", "ja") == "明日です。"


@pytest.mark.parametrize("language", ["en", "de", "fr", "es", "pt", "zh"])
def test_every_language_starts_a_sentence_a_line_and_the_field_with_a_capital_and_no_space(language):
    assert join("", "hallo", language) == "Hallo"
    assert join("Zeile\n", "hallo", language) == "Hallo"
    assert join(None, "hallo", language) == "hallo"  # nothing known of the field: as the model wrote it


def test_the_composer_spaces_each_final_by_the_language_in_force_when_it_came():
    c = Composer()
    c.focus_in("A", True, 0.0)
    c.surrounding_text("A", "Ich glaube,", 0.0)
    c.language = "de"
    assert [e.text for e in c.final(1, "Das ist gut.", 0.1) if isinstance(e, TypeText)] == [" das ist gut."]
    c.language = "fr"
    assert [e.text for e in c.final(2, "Vous venez?", 0.2) if isinstance(e, TypeText)] == [" Vous venez ?"]
    # A final held back (2 waits for 1) keeps the language it came in, whatever comes in force after.
    c.language = "de"
    c.partial(3, "eins", 0.3)
    c.final(4, "Die Katze.", 0.4)
    c.language = "en"
    c.surrounding_text("A", "und,", 0.5)
    committed = [e.text for e in c.final(3, "Die Maus,", 0.5) if isinstance(e, TypeText)]
    assert committed == [" Die Maus,", " die Katze."]


def test_a_french_mark_said_after_a_sentence_is_spaced_as_french():
    from listend.commands import Action

    c = Composer()
    c.focus_in("A", True, 0.0)
    c.surrounding_text("A", "", 0.0)
    c.language = "fr"
    [typed] = [e for e in c.final(1, "Vous venez ce soir.", 0.1) if isinstance(e, TypeText)]
    c.surrounding_text("A", typed.text, 0.2)
    c.command(2, Action.QUESTION_MARK.value, 1, 0.3)
    effects = c.final(2, "point d'interrogation", 0.3)
    typed_after = "".join(e.text for e in effects if isinstance(e, TypeText))
    assert typed_after == " ?", effects


def test_the_input_method_follows_the_daemons_language_in_force_and_spaces_the_finals_by_it():
    """``Language`` announced (PropertiesChanged) before the finals decoded in it: they are spaced by its rules."""
    from listend.client import PropertiesEvent, SegmentEvent, TranscriptEntry
    from listend_ime.daemon_events import DaemonEvents

    composer = Composer()
    composer.focus_in("A", True, 0.0)
    composer.surrounding_text("A", "Ich glaube,", 0.0)
    typed: list[str] = []
    events = DaemonEvents(
        composer,
        None,  # type: ignore[arg-type]  # no delivery needed: every final goes to the focused field
        lambda: True,
        lambda effects: typed.extend(e.text for e in effects if isinstance(e, TypeText)),
        lambda: None,
        lambda: None,
        lambda: None,
    )
    events.on_event(PropertiesEvent({"Language": "de", "PinnedLanguage": "", "Languages": ["en", "de"]}))
    events.on_event(SegmentEvent(TranscriptEntry(1, 0.0, 1.0, "Das ist gut.")))
    events.on_event(PropertiesEvent({"LiveText": ""}))  # no Language in it: the language stays
    events.on_event(SegmentEvent(TranscriptEntry(2, 1.0, 2.0, "Die Katze,")))
    events.on_event(PropertiesEvent({"Language": "en"}))
    events.on_event(SegmentEvent(TranscriptEntry(3, 2.0, 3.0, "Die Hard.")))
    assert typed == [" das ist gut.", " Die Katze,", " Die Hard."]
