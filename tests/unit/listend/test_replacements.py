"""Replacements: whole words, case-insensitive, one pass, longest phrase first."""

from __future__ import annotations

import pytest

from listend.replacements import MAX_RULES, Replacements


def test_whole_words_only_and_any_case():
    rules = Replacements.build({"my email": "anna@example.org"})
    assert rules.apply("Send it to My  email, please.") == "Send it to anna@example.org, please."
    assert rules.apply("my emails are many") == "my emails are many"
    assert rules.apply("army email") == "army email"
    assert rules.apply("MY EMAIL") == "anna@example.org"


def test_the_longest_phrase_wins_and_replacements_are_not_matched_again():
    rules = Replacements.build({"my email": "A", "my work email": "B", "A": "loop"})
    assert rules.apply("my work email and my email") == "B and A"
    assert rules.apply("a") == "loop"  # the phrase "A" itself is replaced, once


def test_other_scripts_keep_word_boundaries():
    rules = Replacements.build({"straße": "Strasse", "été": "summer"})
    assert rules.apply("Die Straße ist lang") == "Die Strasse ist lang"
    assert rules.apply("Hauptstraße") == "Hauptstraße"
    assert rules.apply("Cet été.") == "Cet summer."
    assert Replacements.build({"e\u0301te\u0301": "summer"}).apply("Cet été.") == "Cet summer."  # decomposed
    assert rules.apply("Cet e\u0301te\u0301.") == "Cet summer."


def test_empty_rules_change_nothing():
    rules = Replacements.build({})
    assert not rules and rules.apply("anything at all") == "anything at all"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"  ": "x"}, "must be 1-100 characters"),
        ({"x" * 101: "y"}, "must be 1-100 characters"),
        ({"a": "b" * 2001}, "longer than 2000"),
        ({"a\0b": "c"}, "contains NUL"),
        ({"My Email": "a", "my  email": "b"}, "given twice"),
        ({str(i): "x" for i in range(MAX_RULES + 1)}, "at most 500"),
    ],
)
def test_a_rule_that_cannot_work_is_named(rules, message):
    with pytest.raises(ValueError, match=message):
        Replacements.build(rules)


def test_regex_characters_in_a_phrase_are_literal():
    rules = Replacements.build({"c plus plus": "C++", "dot net": ".NET"})
    assert rules.apply("I write c plus plus and dot net") == "I write C++ and .NET"
    assert Replacements.build({"a.b": "x"}).apply("axb a.b") == "axb x"


def test_a_case_insensitive_match_wider_than_lower_keeps_what_was_said():
    rules = Replacements.build({"is": "IS"})
    assert rules.apply("\u0130s it") in ("\u0130s it", "IS it")  # never raises
