"""Moonshine base-en from the moonshine-cpp wheel: converted once, decoded greedily; idle unload; offline finals."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from listend.config import build_settings
from listend.engine import Engine
from listend.events import Partial, Refined
from listend.models import ModelUnavailable, load_whisper
from listend.moonshine import MoonshineDecoder, MoonshineModel, max_tokens, prepare, source_dir
from listend.sources import FileSource
from listend.units import SAMPLE_RATE
from tests.support.audio import SENTENCES, concat, heard, silence, speak, wav_samples, words
from tests.support.pipeline import Recorder
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def moonshine() -> MoonshineModel:
    return MoonshineModel(prepare(), threads=1)


def test_the_conversion_is_made_once_checked_and_made_again_when_the_source_changes(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(source_dir(), source)
    target = tmp_path / "converted"
    assert prepare(target, source) == target
    manifest = (target / "manifest.json").stat().st_mtime
    assert {p.name for p in target.iterdir()} == {
        "encoder_model.onnx",
        "decoder_model_merged.onnx",
        "tokenizer.bin",
        "manifest.json",
    }
    assert target.stat().st_mode & 0o777 == 0o700
    started = time.monotonic()
    assert prepare(target, source) == target and (target / "manifest.json").stat().st_mtime == manifest
    assert time.monotonic() - started < 5  # checked, not converted again
    (source / "tokenizer.bin").write_bytes((source / "tokenizer.bin").read_bytes() + bytes([1]) + b"x")
    prepare(target, source)  # the wheel changed: converted again
    assert (target / "manifest.json").stat().st_mtime != manifest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".moonshine")]  # no half-built leftovers


def test_a_missing_or_damaged_source_is_one_line(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(source_dir(), source)
    (source / "decoder_model_merged.ort").write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable) as e:
        prepare(tmp_path / "out", source)
    message = str(e.value)
    assert message.startswith("moonshine-base: converting the moonshine-cpp model failed:") and "\n" not in message
    assert not (tmp_path / "out").exists()
    (source / "encoder_model.ort").unlink()
    with pytest.raises(ModelUnavailable) as e:
        prepare(tmp_path / "out", source)
    assert "lacks encoder_model.ort" in str(e.value) and "reinstall the moonshine-cpp package" in str(e.value)


def test_greedy_decoding_recognises_real_speech_and_stops_within_its_cap(moonshine, real_speech):
    decoder = MoonshineDecoder(moonshine)
    audio = wav_samples(real_speech)
    text = decoder.decode(audio).text
    assert len({"ever", "tried", "failed", "matter", "again", "fail"} & set(words(text))) >= 5, text
    noise = (np.random.default_rng(1).standard_normal(2 * SAMPLE_RATE) * 0.05).astype(np.float32)
    assert len(moonshine.greedy(noise, max_tokens(len(noise)))) <= max_tokens(len(noise))
    assert decoder.decode(audio[:400]).text is not None  # shorter than the encoder's minimum: padded


def test_a_decode_stops_as_soon_as_it_is_cancelled(moonshine, real_speech):
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 3

    result = MoonshineDecoder(moonshine).decode(wav_samples(real_speech), cancelled=cancelled)
    assert result.cancelled and result.text == "" and len(asked) == 4


def test_lightweight_finals_are_what_an_offline_transcription_of_the_same_audio_says(audio_dir):
    """The lightweight final once was the greedy live decode: "ill disposed" became "old-sposed"."""
    parts = [speak(audio_dir / f"offline-final-{i}.wav", s) for i, s in enumerate(SENTENCES[:3])]
    gap = silence(audio_dir / "offline-final-gap.wav", 1.2)
    audio = concat(
        audio_dir / "offline-final.wav",
        silence(audio_dir / "offline-final-lead.wav", 0.4),
        *[p for part in parts for p in (part, gap)],
    )
    engine = Engine(build_settings("lightweight"))
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        engine.start(FileSource(str(audio)))
        assert engine.wait_source_done(120) and engine.wait_drained(300)
    finally:
        engine.close(10)
    finals = rec.of(Refined)
    assert len(finals) == 3
    from listend.models import ModelSpec

    model = load_whisper(ModelSpec("tiny.en"))
    samples = wav_samples(audio)
    for final in finals:
        piece = samples[int(round(final.start * SAMPLE_RATE)) : int(round(final.end * SAMPLE_RATE))]
        segments, _ = model.transcribe(piece, language="en", vad_filter=False)  # faster-whisper's defaults
        offline = " ".join(s.text.strip() for s in segments).strip()
        assert final.text == offline, (final.text, offline)


def test_start_after_an_idle_unload_loses_no_words(audio_dir):
    speech = concat(
        audio_dir / "after-unload.wav",
        speak(audio_dir / "after-unload-0.wav", SENTENCES[0]),
        silence(audio_dir / "after-unload-tail.wav", 1.5),
    )
    overrides = {"models": {"unload_after_s": 1.0}}
    engine = Engine(build_settings("full", overrides), overrides)
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        wait_until(lambda: engine.stats().models.model_releases == 1, 30, "the models to be released")
        assert not engine.stats().models.models_loaded
        # Capture begins at once; the models load beside it; what was said first is decoded when they are there.
        engine.start(FileSource(str(speech), realtime=True))
        assert engine.state == "listening"
        assert engine.wait_source_done(120) and engine.wait_drained(120)
        stats = engine.stats().models
    finally:
        engine.close(10)
    finals = rec.of(Refined)
    assert len(finals) == 1 and finals[0].source == "refined" and heard(SENTENCES[0], finals[0].text, missing=1), finals
    assert finals[0].start < 0.3  # the first word, spoken while the models were loading
    assert stats.models_loaded and stats.model_loads == 1


def test_the_default_full_profile_runs_moonshine_live_and_whisper_refine(two_utterances_wav):
    """What the defaults are (docs/benchmarks.md says why): partials from Moonshine, refined text from Whisper."""
    engine = Engine(build_settings("full"))
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        assert engine._live.decoder.model_name == "moonshine-base"
        assert engine._refine.decoder.model_name == "base"
        engine.start(FileSource(str(two_utterances_wav), realtime=True))
        assert engine.wait_source_done(120) and engine.wait_drained(120)
    finally:
        engine.close(10)
    partials = [p for p in rec.of(Partial) if p.text.strip()]
    assert partials, "Moonshine gave no partial text"
    finals = rec.of(Refined)
    assert len(finals) == 2 and all(f.source == "refined" for f in finals)
    for final, sentence in zip(finals, SENTENCES[:2], strict=True):
        assert heard(sentence, final.text, missing=1), final.text


def test_moonshine_can_serve_both_passes_sharing_one_model(two_utterances_wav):
    overrides = {"models": {"live": "moonshine-base", "refine": "moonshine-base"}}
    engine = Engine(build_settings("full", overrides), overrides)
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        assert engine._live.decoder.model is engine._refine.decoder.model  # one model in memory
        engine.start(FileSource(str(two_utterances_wav), realtime=True))
        assert engine.wait_source_done(120) and engine.wait_drained(120)
    finally:
        engine.close(10)
    finals = rec.of(Refined)
    assert len(finals) == 2
    for final, sentence in zip(finals, SENTENCES[:2], strict=True):
        assert heard(sentence, final.text, missing=2), final.text


def test_a_hub_model_name_offline_is_a_clear_error(tmp_path):
    from listend.models import ModelSpec

    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE is set"):
        load_whisper(ModelSpec("large-v3"))
