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


class _Window:
    """A stand-in for the windowed Whisper: records each decode's language and context, answers in that language."""

    def __init__(self) -> None:
        self.decodes: list[tuple[str | None, str]] = []
        self.heard_as: dict[str, float] = {"en": 1.0}  # what detection says of the next utterance
        self.detections = 0

    def detect_language(self, audio, options):  # type: ignore[no-untyped-def]
        self.detections += 1
        return dict(self.heard_as)

    def decode(self, audio, settings, context=None, prompt="", hotwords=""):  # type: ignore[no-untyped-def]
        from listend.whisper_window import Attempt

        self.decodes.append((settings.language, context.text if context is not None else ""))
        return Attempt([1], f"{settings.language} words {len(self.decodes)}.", -0.2, 0.01, 1.1, 0.0, False, False)


def _refine_decoder(languages):  # type: ignore[no-untyped-def]
    from listend.config import DecodeOptions
    from listend.decoders import PassOptions, WhisperDecoder

    decoder = WhisperDecoder(object(), "stand-in", PassOptions.refine(DecodeOptions()))
    window = _Window()
    decoder.windowed = window  # type: ignore[assignment]
    decoder.languages = languages
    return decoder, window


def _say(decoder, seg_id: int, seconds: float = 2.0):  # type: ignore[no-untyped-def]
    """Utterance ``seg_id`` (2 s, 0.5 s after the one before): refined and heard, as the refine worker does."""
    import numpy as np

    from listend.audio import Utterance
    from listend.units import SAMPLE_RATE

    start = int((seg_id - 1) * (seconds + 0.5) * SAMPLE_RATE)
    utt = Utterance(seg_id, start, np.zeros(int(seconds * SAMPLE_RATE), np.float32))
    decoder.heard(utt, decoder.decode_next(utt).text)


def test_a_pinned_language_never_decodes_after_another_languages_context():
    """The refine pass's acoustic context (the speech before, its text forced as prefix) is of one language only."""
    from listend.languages import SessionLanguages

    languages = SessionLanguages(["en", "de"])
    decoder, window = _refine_decoder(languages)
    languages.pin("en")
    _say(decoder, 1)
    _say(decoder, 2)
    assert window.decodes[1] == ("en", "en words 1.")  # the same language: the speech before is context
    languages.pin("de")
    window.heard_as = {"de": 1.0}  # German said (so it is context under a German pin)
    _say(decoder, 3)
    _say(decoder, 4)
    assert window.decodes[2] == ("de", "")  # pinned to German: the English before it is not context
    assert window.decodes[3] == ("de", "de words 3.")  # German after German is
    languages.pin("en")
    _say(decoder, 5)
    assert window.decodes[4] == ("en", "")  # back to English: neither the German nor the older English


def test_detection_switching_the_language_starts_the_context_afresh():
    from listend.languages import SessionLanguages

    languages = SessionLanguages(["en", "de"])
    decoder, window = _refine_decoder(languages)
    _say(decoder, 1, seconds=3.0)
    _say(decoder, 2, seconds=3.0)
    window.heard_as = {"de": 0.9, "en": 0.1}  # long and clear: switches at once
    _say(decoder, 3, seconds=3.0)
    _say(decoder, 4, seconds=3.0)
    assert [language for language, _ in window.decodes] == ["en", "en", "de", "de"]
    assert window.decodes[2][1] == "" and window.decodes[3][1] == "de words 3."


def test_another_language_said_while_one_is_pinned_is_decoded_in_the_pin_but_is_no_context():
    """Pinned to German in a set of two, an English sentence is decoded in German (as asked) and not used as context."""
    from listend.languages import SessionLanguages

    languages = SessionLanguages(["en", "de"])
    decoder, window = _refine_decoder(languages)
    languages.pin("de")
    window.heard_as = {"de": 0.9, "en": 0.1}
    _say(decoder, 1, seconds=3.0)
    window.heard_as = {"en": 0.9, "de": 0.05, "fr": 0.05}  # an English sentence
    _say(decoder, 2, seconds=3.0)
    window.heard_as = {"de": 0.9, "en": 0.1}
    _say(decoder, 3, seconds=3.0)
    _say(decoder, 4, seconds=3.0)
    assert [language for language, _ in window.decodes] == ["de"] * 4  # the pin decides every decode
    assert window.decodes[1][1] == "de words 1." and window.decodes[2][1] == "", window.decodes
    assert window.decodes[3][1] == "de words 3."
    assert languages.state().detections == 0  # nothing was detected to choose a language
    # A short phrase is not clear evidence (the switch rule's): it stays context.
    window.heard_as = {"en": 0.9, "de": 0.1}
    _say(decoder, 5, seconds=1.0)
    _say(decoder, 6, seconds=1.0)
    assert window.decodes[5][1].endswith("de words 5.")


def test_one_language_set_never_detects_for_the_context():
    from listend.languages import SessionLanguages

    decoder, window = _refine_decoder(SessionLanguages(["de"]))
    window.heard_as = {"en": 1.0}
    for n in (1, 2, 3):
        _say(decoder, n, seconds=3.0)
    assert window.detections == 0 and window.decodes[2][1] == "de words 2."  # what fits the room of a 3 s one


def test_lightweight_runs_whisper_base_for_a_set_with_another_language_than_english():
    """Lightweight's one model is tiny.en (English only): base instead where the set holds another language."""
    from listend.config import build_settings, validate_overrides

    def models(profile: str, overrides: dict[str, object]) -> tuple[str, str]:
        m = build_settings(profile, validate_overrides(overrides)).models
        return m.live, m.refine

    assert models("lightweight", {}) == ("tiny.en", "")
    assert models("lightweight", {"decode": {"languages": ["en"]}}) == ("tiny.en", "")
    assert models("lightweight", {"decode": {"languages": ["en", "de"]}}) == ("base", "")
    assert models("lightweight", {"decode": {"language": "fr"}}) == ("base", "")
    assert models("lightweight", {"decode": {"language": ""}}) == ("base", "")  # detection among all
    assert models("full", {"decode": {"languages": ["en", "de"]}}) == ("moonshine-base", "base")  # unchanged
    # The user's own choice is theirs: a multilingual model stays, and so does a refine pass that writes German.
    assert models("lightweight", {"decode": {"languages": ["de"]}, "lightweight": {"models": {"live": "small"}}}) == (
        "small",
        "",
    )
    assert models("lightweight", {"decode": {"languages": ["de"]}, "lightweight": {"models": {"refine": "base"}}}) == (
        "tiny.en",
        "base",
    )


def test_a_set_with_another_language_and_no_model_that_writes_it_is_an_error_naming_the_keys():
    from listend.config import ConfigError, build_settings, validate_overrides

    chosen = {"decode": {"languages": ["en", "de"]}, "lightweight": {"models": {"live": "tiny.en"}}}
    with pytest.raises(ConfigError, match=r"profile lightweight: no model writes de: .*models.live = 'tiny.en'"):
        build_settings("lightweight", validate_overrides(chosen))
    with pytest.raises(ConfigError, match=r"profile full: no model writes fr"):
        build_settings("full", validate_overrides({"decode": {"language": "fr"}, "models": {"refine": "small.en"}}))
