"""The user's vocabulary in the refine decode (Whisper base, real model): it helps names it names, it is never
produced from silence and noise, and names that do not occur leave real speech as it was. Not timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from listend.audio import Utterance
from listend.config import DecodeOptions
from listend.decoders import PassOptions, WhisperDecoder, mentions
from listend.models import ModelSpec, load_whisper
from listend.units import SAMPLE_RATE
from tests.support.audio import speak, wav_samples, words
from tests.support.processes import run_tool

VOCABULARY = ["Okonkwo", "Anneliese", "Kubernetes", "Szczepański", "Ngozi", "Tiramisu Labs", "Xiaoyu"]
# Fifty names that do not occur in the real speech file.
ABSENT = [
    *"Aurelio Bronwyn Caoimhe Dagny Eskil Fionnuala Grzegorz Hallvard Ingrid Jaroslav Kalinda Leocadia Mireille "
    "Nkechi Oisin Przemysław Quillon Radomir Saoirse Thorvald Ulrike Vesna Wojciech Xanthe Yevgeny Zbigniew "
    "Adaeze Bartholomew Cressida Dymphna Evander Faustyna Gunnhild Henrike Isidora Jovanka Kasimir Ludmila "
    "Mstislav Nanami Ottoline Perpetua Quirinus Rosalind Svetozar Tatsuya Umberto Violetta Wendeline Ximena".split(),
]


@pytest.fixture(scope="module")
def refine() -> WhisperDecoder:
    return WhisperDecoder(
        load_whisper(ModelSpec("base", "cpu", "int8", 0)), "base", PassOptions.refine(DecodeOptions())
    )


def test_vocabulary_words_never_come_from_a_minute_of_silence_and_noise(refine, audio_dir: Path) -> None:
    """64 s of silence, hum and noise, decoded in the pieces a refine pass could be handed (the VAD bypassed)."""
    pieces = []
    for i, synth in enumerate(
        [
            ["trim", "0", "8"],
            ["synth", "8", "brownnoise", "vol", "0.05"],
            ["synth", "8", "pinknoise", "vol", "0.03"],
            ["synth", "8", "whitenoise", "vol", "0.02"],
            ["synth", "8", "sine", "50", "vol", "0.05"],
            ["synth", "8", "brownnoise", "vol", "0.2"],
            ["synth", "8", "pinknoise", "vol", "0.1"],
            ["trim", "0", "8"],
        ]
    ):
        path = audio_dir / f"vocab-noise-{i}.wav"
        run_tool("sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), *synth)
        pieces.append(wav_samples(path))
    assert sum(len(p) for p in pieces) >= 60 * SAMPLE_RATE
    refine.hotwords = lambda: VOCABULARY
    heard = [refine.decode_next(Utterance(i + 1, i * 8 * SAMPLE_RATE, p)).text for i, p in enumerate(pieces)]
    assert not [text for text in heard if mentions(text, VOCABULARY)], heard
    # Nor any other words: the names in the prompt had talked Whisper into "Thank you very much." and "I'm
    # sorry. I'm sorry." on this noise, where without them it heard nothing (bench/commands.py).
    assert not any(words(text) for text in heard), heard


def test_names_that_do_not_occur_leave_real_speech_as_it_was(refine, real_speech: Path) -> None:
    audio = wav_samples(real_speech)
    refine.hotwords = lambda: ()
    plain = refine.decode(audio).text
    refine.hotwords = lambda: ABSENT
    with_names = refine.decode(audio).text
    assert len(ABSENT) == 50 and not mentions(with_names, ABSENT)
    assert words(with_names) == words(plain), (plain, with_names)


def test_the_vocabulary_spells_the_names_it_names(refine, audio_dir: Path) -> None:
    """Three sentences with the seven names (espeak-ng): measured 0 of 7 without the vocabulary, 5 of 7 with it."""
    sentences = [
        "Please ask Okonkwo and Ngozi to review the Kubernetes cluster.",
        "Anneliese will meet Xiaoyu at Tiramisu Labs on Tuesday.",
        "The invoice from Szczepański arrived this morning.",
    ]
    audio = [wav_samples(speak(audio_dir / f"vocab-names-{i}.wav", s)) for i, s in enumerate(sentences)]

    def names_found() -> int:
        return sum(
            mentions(refine.decode(a).text, [n])
            for a, s in zip(audio, sentences, strict=True)
            for n in VOCABULARY
            if n.split()[0] in s
        )

    refine.hotwords = lambda: ()
    without = names_found()
    refine.hotwords = lambda: VOCABULARY
    with_vocabulary = names_found()
    assert with_vocabulary >= 4 and with_vocabulary > without, (without, with_vocabulary)


def test_the_live_pass_gets_no_vocabulary_it_would_bend_real_speech(real_speech: Path) -> None:
    """The decision bench/commands.py measured (docs/benchmarks.md, "Voice control"): the vocabulary goes to the
    refine and final passes, never to the live partials. Applied to the Whisper live pass the same way (tiny.en,
    greedy, no context), fifty names that do not occur rewrote real speech ("Fail again. Fail better." came out
    as "Mirelgen, Falebetta"); so the lightweight profile's live decoder, as the model life cycle builds it with
    a vocabulary in force, reads real speech as it reads it without one."""
    from listend.config import build_settings
    from listend.lifecycle import ModelLifecycle
    from listend.memory import MemoryWatchdog
    from listend.outcome import Outcome
    from listend.profiles import build_decoders, load_model

    settings = build_settings("lightweight", {})
    lifecycle = ModelLifecycle(
        settings,
        {},
        lambda s, reuse: build_decoders(s, load_model, reuse),
        MemoryWatchdog(settings.memory, lambda _: None, lambda: Outcome(False, "not here")),
        lambda _: None,
        lambda _: None,
    )
    lifecycle.hotwords = lambda: ABSENT
    decoders = lifecycle.load()
    live, final = decoders.live, decoders.final
    assert isinstance(live, WhisperDecoder) and isinstance(final, WhisperDecoder)
    assert list(final.hotwords()) == ABSENT  # the final pass expects the names
    piece = wav_samples(real_speech)[5 * SAMPLE_RATE : 10 * SAMPLE_RATE]  # a partial's worth of a long utterance
    plain = live.with_options(live.options)  # the same model and options, no vocabulary
    applied = live.with_options(live.options)
    applied.hotwords = lambda: ABSENT
    assert words(applied.decode(piece).text) != words(plain.decode(piece).text)  # why: it would bend the words
    assert live.decode(piece).text == plain.decode(piece).text
