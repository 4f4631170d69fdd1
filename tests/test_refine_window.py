"""The refine window on real models (tiny.en, base) and real or espeak-ng speech: cap, loop guard, context.

None of these is timed; the speed is bench/shortphrases.py's and docs/benchmarks.md's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from listend.audio import Utterance
from listend.config import DecodeOptions, build_settings
from listend.decoders import PassOptions, SessionDecoder, WhisperDecoder
from listend.engine import Engine
from listend.events import Refined
from listend.models import ModelSpec, load_whisper
from listend.sources import FileSource
from listend.units import SAMPLE_RATE
from listend.whisper_window import DecodeSettings, WindowedWhisper, WindowOptions, token_cap
from tests.support.audio import SENTENCES, concat, silence, speak, wav_samples, words
from tests.support.pipeline import Recorder

COMMANDS = ["new line", "question mark", "stop listening"]


@pytest.fixture(scope="module")
def base():
    return load_whisper(ModelSpec("base", "cpu", "int8", 0))


@pytest.fixture(scope="module")
def tiny():
    return load_whisper(ModelSpec("tiny.en", "cpu", "int8", 0))


@pytest.fixture(scope="module")
def dictation(audio_dir: Path) -> Path:
    """Sentences with commands said alone between them, 1.2 s apart: one utterance each."""
    gap = silence(audio_dir / "gap12.wav", 1.2)
    parts = [silence(audio_dir / "lead05.wav", 0.5)]
    for i, text in enumerate([SENTENCES[0], COMMANDS[0], SENTENCES[1], COMMANDS[1], SENTENCES[2], COMMANDS[2]]):
        parts += [speak(audio_dir / f"dictation{i}.wav", text), gap]
    return concat(audio_dir / "dictation.wav", *parts)


def settings(**window: float) -> DecodeSettings:
    return DecodeSettings(5, "en", (0.0, 0.2, 0.4, 0.6), 0.6, -1.0, 2.4, window=WindowOptions(**window))


def test_no_decode_emits_more_tokens_than_its_cap(tiny, real_speech, noise_wav):
    whisper = WindowedWhisper(tiny)
    speech = wav_samples(real_speech)
    for audio in (speech, speech[: 2 * SAMPLE_RATE], wav_samples(noise_wav)):
        # A cap far below what the speech needs: every temperature stops at it.
        tight = settings(tokens_per_s=0.5, tokens_extra=2)
        attempt = whisper.decode(audio, tight)
        assert len(attempt.tokens) <= token_cap(len(audio) / SAMPLE_RATE, tight.window)
        ordinary = whisper.decode(audio, settings())
        assert len(ordinary.tokens) <= token_cap(len(audio) / SAMPLE_RATE, settings().window)
    assert whisper.decode(speech, settings(tokens_per_s=0.5, tokens_extra=2)).capped


def test_a_loop_is_cut(base, real_speech):
    """Real speech filling its window to the end ("... Fail again. Fail better.") makes base repeat its last phrase."""
    whisper = WindowedWhisper(base)
    audio = wav_samples(real_speech)
    # The window as the issue first proposed it (audio + 0.5 s): the loop, greedy, without fallback.
    loose = DecodeSettings(
        5, "en", (0.0,), 0.6, -1.0, 2.4, window=WindowOptions(floor_s=10.0, speech_ratio=1.0, margin_s=0.5)
    )
    attempt = whisper.decode(audio, loose)
    said = " ".join(words(attempt.text))
    assert said.count("fail better") <= 1, attempt.text
    assert {"tried", "failed", "matter", "again", "better"} <= set(words(attempt.text)), attempt.text
    # With the default window the same speech ends where it ends, no guard needed.
    plain = whisper.decode(audio, settings())
    assert not plain.looped and " ".join(words(plain.text)).count("fail better") == 1, plain.text


def test_the_context_never_appears_twice_nor_leaks_into_the_utterance(dictation):
    """Each command is decoded after the sentence before it (its text forced as prefix): only the command comes out."""
    engine = Engine(build_settings("full"))
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        engine.start(FileSource(str(dictation)))
        assert engine.wait_source_done(600) and engine.wait_drained(600)
    finally:
        engine.close()
    refined = rec.of(Refined)
    assert [r.source for r in refined] == ["refined"] * 6, refined
    texts = [r.text for r in refined]
    for i, command in enumerate(COMMANDS):
        assert " ".join(words(texts[2 * i + 1])) == command, texts  # the command alone, nothing before it
    for i, text in enumerate(texts[::2]):
        assert set(words(SENTENCES[i])) <= set(words(text)) | {"three", "3"}, texts
    whole = words(" ".join(texts))
    for sentence in SENTENCES[:3]:  # each sentence once: no context repeated in a later segment
        first = words(sentence)[:4]
        assert sum(whole[k : k + 4] == first for k in range(len(whole))) == 1, texts


def test_the_decoder_holds_the_session_and_forgets_it(base, dictation):
    """What the refine worker hands the decoder is context for the next utterance only, within one session."""
    decoder = WhisperDecoder(base, "base", PassOptions.refine(DecodeOptions()))
    assert isinstance(decoder, SessionDecoder) and decoder.windowed is not None
    sentence = Utterance(1, 0, wav_samples(speak(dictation.parent / "ctx0.wav", SENTENCES[3])))
    command = Utterance(2, len(sentence.audio) + SAMPLE_RATE, wav_samples(dictation.parent / "dictation3.wav"))
    decoder.heard(sentence, decoder.decode_next(sentence).text)
    with_context = decoder.decode_next(command).text
    assert decoder.last_attempt is not None and decoder.last_attempt.context_s > 0
    assert " ".join(words(with_context)) == "question mark", with_context
    decoder.new_session()
    alone = decoder.decode_next(command).text
    assert decoder.last_attempt.context_s == 0.0
    assert not set(words(alone)) & set(words(SENTENCES[3])) - {"mark"}, alone


def test_transcribe_and_the_live_path_give_the_same_text(dictation, tmp_path):
    cli = subprocess.run(
        [sys.executable, "-m", "listend.cli", "transcribe", str(dictation)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr
    engine = Engine(build_settings("full"))
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        engine.start(FileSource(str(dictation), realtime=True))  # paced like a microphone: speculation at pauses
        assert engine.wait_source_done(600) and engine.wait_drained(600)
    finally:
        engine.close()
    live = [r.text for r in rec.of(Refined) if r.source == "refined"]
    assert len(live) == len(rec.of(Refined)), "the live path committed live text: the machine is too slow to compare"
    assert cli.stdout.split("\n")[:-1] == live, [(r.id, r.start, r.end, r.text) for r in rec.of(Refined)]


def test_a_model_without_the_window_path_still_decodes(tiny, speech_wav):
    """``window_floor_s = 0`` (and any model object without a CTranslate2 Whisper) decodes through transcribe()."""
    old = WhisperDecoder(tiny, "tiny.en", PassOptions.refine(DecodeOptions(window_floor_s=0)))
    assert old.windowed is None
    utt = Utterance(1, 0, wav_samples(speech_wav))
    text = old.decode_next(utt).text
    assert set(words(SENTENCES[0])) - {"the", "to", "by"} <= set(words(text)), text
    new = WhisperDecoder(tiny, "tiny.en", PassOptions.refine(DecodeOptions()))
    assert new.windowed is not None
    assert words(new.decode_next(utt).text) == words(text)


def test_a_hub_model_that_is_not_here_is_one_line(tmp_path, speech_wav):
    config = tmp_path / "config.toml"
    config.write_text('[models]\nrefine = "small.en"\n')
    run = subprocess.run(
        [sys.executable, "-m", "listend.cli", "transcribe", "--config", str(config), str(speech_wav)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "small.en" in lines[0] and "Traceback" not in run.stderr, run.stderr


def test_silence_after_speech_brings_no_text_from_the_context(base, speech_wav, silence_wav, noise_wav):
    decoder = WhisperDecoder(base, "base", PassOptions.refine(DecodeOptions()))
    speech = Utterance(1, 0, wav_samples(speech_wav))
    decoder.heard(speech, decoder.decode_next(speech).text)
    for i, path in enumerate((silence_wav, noise_wav)):
        after = Utterance(2, len(speech.audio) + SAMPLE_RATE, wav_samples(path)[: 2 * SAMPLE_RATE])
        text = decoder.decode_next(after).text
        assert not set(words(text)) & set(words(SENTENCES[0])), (i, text)


@pytest.mark.parametrize(
    ("utt_id", "gap_s", "why"),
    [
        (3, 0.5, "segment 2 was committed with live text (under load): not context"),
        (2, 31.0, "after a pause of more than 30 s: another thought"),
    ],
)
def test_no_context_where_the_session_is_broken(tiny, audio_dir, utt_id: int, gap_s: float, why: str):
    """Decoded exactly as alone: same text as a decode without any context."""
    decoder = WhisperDecoder(tiny, "tiny.en", PassOptions.refine(DecodeOptions()))
    before = Utterance(1, 0, wav_samples(speak(audio_dir / "ctx3.wav", SENTENCES[3])))
    decoder.heard(before, decoder.decode_next(before).text)
    command = wav_samples(speak(audio_dir / "ctx-qm.wav", "question mark"))
    after = Utterance(utt_id, len(before.audio) + int(gap_s * SAMPLE_RATE), command)
    text = decoder.decode_next(after).text
    assert decoder.last_attempt is not None and decoder.last_attempt.context_s == 0.0, why
    assert text == decoder.decode(command).text, why
    # Right after it, within the session, the same command is decoded after the sentence: not in its text.
    follows = Utterance(2, len(before.audio) + SAMPLE_RATE, command)
    decoder.decode_next(follows)
    attempt = decoder.last_attempt
    assert attempt is not None and attempt.context_s == pytest.approx(len(before.audio) / SAMPLE_RATE)
    assert not set(words(attempt.text)) & set(words(SENTENCES[3])), attempt.text
