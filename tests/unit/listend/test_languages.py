"""The language in force: restricted to the user's set, sticky within a session, switched on clear evidence."""

from __future__ import annotations

import pytest

from listend.languages import LanguageChooser, LanguagePolicy


def test_one_language_or_a_pin_needs_no_detection():
    only = LanguageChooser(["de"])
    assert not only.needs_detection
    assert only.choose({"en": 0.99}, 5.0).language == "de"
    both = LanguageChooser(["en", "de"])
    both.pin("de")
    assert not both.needs_detection and both.choose({"en": 0.99}, 5.0).language == "de"
    both.pin(None)
    assert both.needs_detection


def test_a_third_language_can_never_be_chosen():
    chooser = LanguageChooser(["en", "de"])
    # Whisper thinks Thai, then Russian: the set's most probable language is taken, never th or ru.
    assert chooser.choose({"th": 0.7, "de": 0.2, "en": 0.1}, 1.0).language == "de"
    assert chooser.choose({"ru": 0.9, "en": 0.06, "de": 0.04}, 0.8).language == "de"


def test_the_first_utterance_decides_then_short_unclear_ones_do_not_switch():
    chooser = LanguageChooser(["en", "de"])
    assert chooser.choose({"en": 0.9, "de": 0.1}, 2.0).language == "en"
    # Short and clear, or long and unclear: kept.
    assert chooser.choose({"en": 0.1, "de": 0.9}, 0.9).language == "en"  # 1 of 2 in a row
    assert chooser.choose({"en": 0.6, "de": 0.4}, 4.0).language == "en"  # the streak is broken
    choice = chooser.choose({"en": 0.45, "de": 0.55}, 4.0)  # 1 of 2 again
    assert choice.language == "en" and not choice.switched


def test_a_long_clear_utterance_switches_at_once():
    chooser = LanguageChooser(["en", "de"])
    chooser.choose({"en": 0.9}, 2.0)
    choice = chooser.choose({"en": 0.05, "de": 0.85, "fr": 0.1}, 2.0)  # 0.85 / 0.90 of the set
    assert choice.language == "de" and choice.switched
    assert chooser.current == "de"


def test_short_utterances_in_a_row_switch_after_the_confirmation_count():
    chooser = LanguageChooser(["en", "de"], LanguagePolicy(confirm=2))
    chooser.choose({"en": 1.0}, 3.0)
    assert not chooser.choose({"de": 0.7, "en": 0.3}, 1.0).switched
    second = chooser.choose({"de": 0.7, "en": 0.3}, 1.0)
    assert second.switched and second.language == "de"


def test_a_streak_is_broken_by_the_language_in_force():
    chooser = LanguageChooser(["en", "de"])
    chooser.choose({"en": 1.0}, 3.0)
    chooser.choose({"de": 0.7, "en": 0.3}, 1.0)
    chooser.choose({"en": 0.9, "de": 0.1}, 1.0)
    assert not chooser.choose({"de": 0.7, "en": 0.3}, 1.0).switched


def test_a_new_session_decides_again_but_keeps_the_pin():
    chooser = LanguageChooser(["en", "de", "fr"])
    chooser.choose({"fr": 1.0}, 3.0)
    chooser.new_session()
    assert chooser.current == "en"
    assert chooser.choose({"de": 0.6, "fr": 0.4}, 0.5).language == "de"
    chooser.pin("fr")
    chooser.new_session()
    assert chooser.current == "fr"


def test_pinning_a_language_outside_the_set_is_refused_with_the_set():
    with pytest.raises(ValueError, match="'es' is not one of the languages set \\(en, de\\)"):
        LanguageChooser(["en", "de"]).pin("es")
    with pytest.raises(ValueError):
        LanguageChooser([])


def test_no_evidence_keeps_the_language_in_force():
    chooser = LanguageChooser(["en", "de"])
    assert chooser.choose({"ja": 1.0}, 2.0).language == "en"


def test_session_languages_detect_only_when_the_chooser_needs_evidence():
    from listend.languages import SessionLanguages

    languages = SessionLanguages(["en", "de"])
    asked: list[int] = []

    def detect() -> dict[str, float]:
        asked.append(1)
        return {"de": 0.9, "en": 0.1}

    assert languages.decide(detect, 3.0).language == "de" and len(asked) == 1
    languages.pin("en")
    assert languages.decide(detect, 3.0).language == "en" and len(asked) == 1  # pinned: no detection
    state = languages.state()
    assert (state.language, state.languages, state.pinned, state.detections) == ("en", ("en", "de"), "en", 1)
    with pytest.raises(ValueError):
        languages.pin("fr")
    languages.pin(None)
    languages.new_session()
    assert languages.decide(detect, 3.0).language == "de" and len(asked) == 2


def test_a_new_set_keeps_the_pin_where_it_can():
    from listend.languages import SessionLanguages

    languages = SessionLanguages(["en", "de"])
    languages.pin("de")
    languages.reconfigure(["de", "fr"])
    assert languages.state().pinned == "de" and languages.state().languages == ("de", "fr")
    languages.reconfigure(["fr"])
    assert languages.state().pinned is None and languages.current == "fr"


def test_the_config_names_the_set_and_the_old_key_still_means_what_it_did():
    from listend.config import LANGUAGES, ConfigError, build_settings, validate_overrides

    def decode(section: dict[str, object]) -> tuple[str, ...]:
        return build_settings(None, validate_overrides({"decode": section})).decode.language_set

    assert decode({}) == ("en",)
    assert decode({"language": "de"}) == ("de",)
    assert decode({"language": ""}) == LANGUAGES  # detection, among all of Whisper's languages
    assert decode({"languages": ["en", "de"], "language": "fr"}) == ("en", "de")
    for bad in (["en", "xx"], ["de", "de"], "en", [1]):
        with pytest.raises(ConfigError, match="decode.languages"):
            validate_overrides({"decode": {"languages": bad}})
