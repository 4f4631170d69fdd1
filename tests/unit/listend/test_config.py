"""Settings: profiles as presets, per-profile sections, one-line errors for anything a user can write."""

from __future__ import annotations

from pathlib import Path

import pytest

from listend.config import LANGUAGES, ConfigError, build_settings, load_settings, validate_overrides


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_value_that_breaks_another_profile_is_an_error_at_load_naming_file_and_preset(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[memory]\nwarn_mb = 500\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    message = str(e.value)
    assert str(path) in message and "lightweight preset" in message and "warn_mb = 500" in message
    assert "[lightweight.memory]" in message


def test_per_profile_sections_apply_to_their_profile_only(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "[memory]\nwarn_mb = 500\n[lightweight.memory]\nwarn_mb = 380\n[full.decode]\nrefine_beam_size = 2\n",
    )
    full, overrides = load_settings(path)
    light = build_settings("lightweight", overrides)
    assert full.memory.warn_mb == 500 and light.memory.warn_mb == 380
    assert full.decode.refine_beam_size == 2 and light.decode.refine_beam_size == 5
    assert light.memory.cleanup_mb == 450  # the preset, where the user said nothing


def test_unknown_per_profile_section_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key lightweight.'bogus'"):
        load_settings(write_config(tmp_path, "[lightweight.bogus]\nx = 1\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("[audio]\ndevice = 2147483648\n", "device index 2147483648 is out of range"),
        ('[audio]\ndevice = "99999999999"\n', "device index 99999999999 is out of range"),
        ('[decode]\nlanguage = "klingon"\n', "decode.language: 'klingon' is not one of a language code"),
        ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
        ("[vad]\nthreshold = " + "[" * 50 + "]" * 50 + "\n", "vad.threshold: expected float"),
    ],
)
def test_hostile_values_are_one_line_errors_at_load(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(write_config(tmp_path, text))
    assert message in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 600, str(e.value)


def test_a_config_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings(fifo)  # a FIFO would block an open() for ever
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings("/dev/zero")  # endless data
    big = write_config(tmp_path, "# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_settings(big)


def test_languages_and_device_names_that_are_fine() -> None:
    settings = build_settings(None, validate_overrides({"decode": {"language": "de"}, "audio": {"device": 3}}))
    assert settings.decode.language == "de" and settings.audio.device == "3"
    assert build_settings(None, validate_overrides({"decode": {"language": ""}})).decode.language == ""


def test_the_language_list_is_whispers_own() -> None:
    """Kept in config.py so that checking a config does not load the model runtime; it must not drift."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert tuple(LANGUAGES) == tuple(_LANGUAGE_CODES)
