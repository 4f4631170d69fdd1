"""The user's languages with real parts: espeak-ng German and English, Whisper base, a real daemon on a private bus.

Each utterance is decoded in one of the languages set, chosen by detection
restricted to the set (never a third), or in the one pinned (then nothing is
detected); the old ``language`` key still loads; a code Whisper does not know
is one line and exit 2.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from dbus_next import MessageType

from tests.support.audio import concat, silence, speak, words
from tests.support.bus import BusClient, ctl, daemon_env
from tests.support.processes import listend

GERMAN = [
    "Guten Morgen, ich möchte einen Termin für nächste Woche vereinbaren.",
    "Das Wetter in Berlin ist heute kalt und regnerisch.",
]
ENGLISH = [
    "Please send the quarterly report to the finance team by Friday.",
    "Remember to buy milk, bread and eggs on the way home.",
]
# Words of each sentence that Whisper base writes right from espeak-ng's voice (checked by ear and by run).
GERMAN_WORDS = [{"guten", "morgen", "ich", "termin", "woche"}, {"berlin", "ist", "heute", "kalt"}]
ENGLISH_WORDS = [{"send", "quarterly", "report", "finance", "friday"}, {"remember", "buy", "milk", "bread", "home"}]
# A third language would show as another script, or as words of neither (English words in a German segment
# and the reverse are checked separately).
LATIN_TEXT = re.compile(r"[A-Za-zÄÖÜäöüß0-9 ,.;:!?'\-]+")
ENGLISH_ONLY = {"the", "to", "by", "and", "on", "way", "please"}
GERMAN_ONLY = {"ich", "und", "ist", "für", "nächste", "heute", "einen"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-zäöüß']+", text.lower()))


@pytest.fixture(scope="module")
def alternating_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """German, English, German, English, each followed by 1.5 s of silence."""
    d = tmp_path_factory.mktemp("languages")
    parts = [silence(d / "lead.wav", 0.5)]
    gap = silence(d / "gap.wav", 1.5)
    for i in range(2):
        parts += [speak(d / f"de{i}.wav", GERMAN[i], voice="de"), gap]
        parts += [speak(d / f"en{i}.wav", ENGLISH[i], voice="en-us"), gap]
    return concat(d / "alternating.wav", *parts)


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body)
    return path


def _transcribe(config: Path, wav: Path) -> list[str]:
    result = listend("transcribe", "--json", "--config", str(config), str(wav))
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["text"] for line in result.stdout.splitlines()]


def test_german_and_english_alternating_in_one_session(tmp_path, alternating_wav):
    texts = _transcribe(_config(tmp_path, '[decode]\nlanguages = ["en", "de"]\n'), alternating_wav)
    assert len(texts) == 4, texts
    for i in range(2):
        german, english = _words(texts[2 * i]), _words(texts[2 * i + 1])
        assert len(GERMAN_WORDS[i] & german) >= len(GERMAN_WORDS[i]) - 1, texts
        assert len(ENGLISH_WORDS[i] & english) >= len(ENGLISH_WORDS[i]) - 1, texts
        assert not german & ENGLISH_ONLY and not english & GERMAN_ONLY, texts  # neither translated nor mixed
    assert all(LATIN_TEXT.fullmatch(text) for text in texts), texts  # no third language's script


def test_the_old_language_key_still_loads_and_decodes_in_it(tmp_path, alternating_wav):
    d = tmp_path / "audio"
    d.mkdir()
    wav = concat(d / "de.wav", silence(d / "lead.wav", 0.5), speak(d / "s.wav", GERMAN[0], voice="de"))
    texts = _transcribe(_config(tmp_path, '[decode]\nlanguage = "de"\n'), wav)
    assert len(GERMAN_WORDS[0] & _words(" ".join(texts))) >= 4, texts


@pytest.mark.parametrize(
    "body",
    ['[decode]\nlanguages = ["en", "klingon"]\n', '[decode]\nlanguage = "xx"\n', '[decode]\nlanguages = "de"\n'],
)
def test_a_language_whisper_does_not_know_is_one_line(tmp_path, body):
    wav = silence(tmp_path / "quiet.wav", 1.0)
    result = listend("transcribe", "--config", str(_config(tmp_path, body)), str(wav))
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and "decode.language" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not result.stdout


def test_listenctl_and_dbus_pin_a_language_and_nothing_is_detected_while_pinned(
    start_daemon, private_bus, tmp_path, two_utterances_wav
):
    env = daemon_env(private_bus, tmp_path / "state")
    config = _config(tmp_path, '[decode]\nlanguages = ["en", "de"]\n')
    daemon = start_daemon("--config", str(config), "--source", str(two_utterances_wav), env=env)
    r = ctl(env, "language")
    assert r.returncode == 0 and r.stdout.strip() == "en (detected within the set; languages: en, de)", r

    async def session(c: BusClient, count: int) -> None:
        await c.call("Start")
        await c.wait_for(lambda: len(c.named("SegmentRefined")) == count)
        await c.call("Stop")
        await c.wait_for(lambda: c.states()[-1:] == ["idle"])

    async def scenario() -> None:
        async with BusClient(private_bus.address) as c:
            assert await c.prop("Languages") == ["en", "de"] and await c.prop("PinnedLanguage") == ""
            reply = await c.call("PinLanguage", "s", ["fr"])  # not in the set
            assert reply.message_type == MessageType.ERROR
            assert reply.error_name == "io.github.listend.Error.InvalidArgs" and "fr" in reply.body[0]
            assert ctl(env, "language", "de").stdout.strip() == "de (pinned; languages: en, de)"
            assert await c.prop("Language") == "de" and await c.prop("PinnedLanguage") == "de"
            await session(c, 2)
            # Pinned: the language token of every decode is German and not one utterance was detected.
            # (Whisper base still writes clear English speech as English under a German token: it transcribes.)
            assert (await c.memory())["language_detections"] == 0
            assert ctl(env, "language", "auto").stdout.strip() == "en (detected within the set; languages: en, de)"
            await session(c, 4)
            memory = await c.memory()
            assert memory["language_detections"] == 2 and await c.prop("Language") == "en"
            second = set(words(" ".join(c.refined_texts()[2:])))
            assert {"quarterly", "report", "weather", "sunny"} <= second, c.refined_texts()

    asyncio.run(scenario())
    r = ctl(env, "language", "tlh")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r
    assert ctl(env, "status").stdout.count("language: en") == 1
    assert daemon.terminate() == 0


def test_partial_text_of_german_is_german(start_daemon, private_bus, tmp_path):
    """Moonshine base-en speaks English only: with German in force, partials come from Whisper base in German."""
    d = tmp_path / "audio"
    d.mkdir()
    wav = concat(
        d / "de.wav",
        silence(d / "lead.wav", 0.5),
        speak(d / "a.wav", GERMAN[0], voice="de"),
        silence(d / "gap.wav", 1.5),
        speak(d / "b.wav", GERMAN[1], voice="de"),
        silence(d / "tail.wav", 1.5),
    )
    env = daemon_env(private_bus, tmp_path / "state")
    config = _config(tmp_path, '[decode]\nlanguages = ["en", "de"]\n')
    daemon = start_daemon("--config", str(config), "--source", str(wav), env=env)
    assert ctl(env, "language", "de").returncode == 0  # in force from the first word: no English partials first

    async def scenario() -> None:
        async with BusClient(private_bus.address) as c:
            await c.call("Start")
            await c.wait_for(lambda: len(c.named("SegmentRefined")) == 2)
            partials = [m.body[1] for m in c.named("PartialText") if m.body[1]]
            heard = set().union(*(_words(p) for p in partials))
            assert partials and heard & (GERMAN_WORDS[0] | GERMAN_WORDS[1]), partials
            assert not heard & ENGLISH_ONLY, partials

    asyncio.run(scenario())
    assert daemon.terminate() == 0


def test_the_languages_are_announced_again_at_a_profile_switch(start_daemon, private_bus, tmp_path):
    """`listenctl profile lightweight` and back: PropertiesChanged names the set, the language in force and the pin."""
    env = daemon_env(private_bus, tmp_path / "state")
    config = _config(tmp_path, '[decode]\nlanguages = ["en", "de"]\n')
    wav = silence(tmp_path / "quiet.wav", 1.0)
    daemon = start_daemon("--config", str(config), "--source", str(wav), env=env)

    def language_changes(c: BusClient) -> list[dict]:
        return [
            {k: v.value for k, v in m.body[1].items()} for m in c.named("PropertiesChanged") if "Languages" in m.body[1]
        ]

    async def scenario() -> None:
        async with BusClient(private_bus.address) as c:
            assert ctl(env, "language", "de").returncode == 0
            await c.wait_for(lambda: len(language_changes(c)) == 1)  # the pin's own announcement
            for n, profile in enumerate(("lightweight", "full"), start=2):
                assert ctl(env, "profile", profile).returncode == 0
                await c.wait_for(lambda n=n: len(language_changes(c)) == n, 120)
                changed = language_changes(c)[-1]
                assert changed == {"Languages": ["en", "de"], "Language": "de", "PinnedLanguage": "de"}, changed
                assert await c.prop("Profile") == profile
            assert await c.prop("Languages") == ["en", "de"] and await c.prop("PinnedLanguage") == "de"

    asyncio.run(scenario())
    # Lightweight's one model with German in the set, said once at the switch (docs/configuration.md).
    said = "profile lightweight: its one model is base (tiny.en writes English only; the languages set hold de)"
    assert daemon.log().count(said) == 1, daemon.log()
    assert daemon.terminate() == 0


def test_lightweight_writes_german_with_whisper_base_and_an_english_only_choice_is_one_line(tmp_path):
    """Lightweight's tiny.en writes English only: with German in the set its one model is base (the log says so)."""
    d = tmp_path / "audio"
    d.mkdir()
    wav = concat(d / "de.wav", silence(d / "lead.wav", 0.5), speak(d / "s.wav", GERMAN[1], voice="de"))
    config = _config(tmp_path, '[decode]\nlanguages = ["en", "de"]\n')
    result = listend("transcribe", "--json", "--lightweight", "--config", str(config), str(wav))
    assert result.returncode == 0, result.stderr
    text = " ".join(json.loads(line)["text"] for line in result.stdout.splitlines())
    assert len(GERMAN_WORDS[1] & _words(text)) >= 3 and not _words(text) & ENGLISH_ONLY, text
    chosen = _config(tmp_path, '[decode]\nlanguages = ["de"]\n[lightweight.models]\nlive = "tiny.en"\n')
    result = listend("transcribe", "--lightweight", "--config", str(chosen), str(wav))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "no model writes de" in result.stderr and "Traceback" not in result.stderr


def test_english_said_while_german_is_pinned_is_not_the_context_of_the_german_after_it(tmp_path):
    """Whisper base, the refine pass's decoder: pinned to German in a set of two, the English sentence before a
    German one is decoded in German (as asked) but not held in its window; German before German is."""
    from listend.audio import Utterance
    from listend.config import DecodeOptions
    from listend.decoders import PassOptions, WhisperDecoder
    from listend.languages import SessionLanguages
    from listend.models import ModelSpec, load_whisper
    from listend.units import SAMPLE_RATE
    from tests.support.audio import wav_samples

    decoder = WhisperDecoder(
        load_whisper(ModelSpec("base", "cpu", "int8", 0)), "base", PassOptions.refine(DecodeOptions())
    )
    decoder.languages = SessionLanguages(["en", "de"])
    decoder.languages.pin("de")
    # Short enough that the one before fits the window's room for context beside the German sentence.
    said = {
        "de0": speak(tmp_path / "de0.wav", "Ich komme morgen früh.", voice="de"),
        "de1": speak(tmp_path / "de1.wav", GERMAN[1], voice="de"),
        "en0": speak(tmp_path / "en0.wav", "Please send the report by Friday.", voice="en-us"),
    }

    def context_of_the_last(*names: str) -> float:
        decoder.new_session()
        clock = 0
        for n, name in enumerate(names, 1):
            audio = wav_samples(said[name])
            utt = Utterance(n, clock, audio)
            decoder.heard(utt, decoder.decode_next(utt).text)
            clock += len(audio) + SAMPLE_RATE
        assert decoder.last_attempt is not None and decoder.last_language == "de"
        return decoder.last_attempt.context_s

    assert context_of_the_last("de0", "de1") > 0  # German before German: its context
    assert context_of_the_last("en0", "de1") == 0  # English before German under a German pin: none
    assert decoder.languages.state().detections == 0  # the pin chose every language
