"""Moonshine base-en from the moonshine-cpp wheel: converted once, decoded greedily; idle unload; offline finals."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from listend.config import build_settings
from listend.engine import Engine
from listend.events import ErrorReported, Partial, Refined, Retracted
from listend.models import ModelUnavailable, load_whisper
from listend.moonshine import MoonshineDecoder, MoonshineModel, max_tokens
from listend.moonshine_cache import prepare, read_manifest, source_dir
from listend.sources import FileSource
from listend.unfinished import UnfinishedAudio
from listend.units import SAMPLE_RATE
from tests.support.audio import SENTENCES, concat, heard, silence, speak, wav_samples, words
from tests.support.bus import BusClient, daemon_env
from tests.support.history import history_dir, history_rows
from tests.support.pipeline import Recorder
from tests.support.waiting import until, wait_until


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
    assert {p.name: p.stat().st_mode & 0o777 for p in target.iterdir()} == dict.fromkeys(
        ("encoder_model.onnx", "decoder_model_merged.onnx", "tokenizer.bin", "manifest.json"), 0o600
    )  # docs/security.md: the user's files are 0600
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
        assert engine.decoders.live.model_name == "moonshine-base"
        assert engine.decoders.refine.model_name == "base"
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
        assert engine.decoders.live.model is engine.decoders.refine.model  # one model in memory
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


@pytest.fixture
def converted(tmp_path, monkeypatch) -> Path:
    """This test's own cache (``XDG_CACHE_HOME``) holding a copy of the converted model, to damage."""
    shared = prepare()  # converted once in the tests' shared cache
    cache = tmp_path / "cache"
    target = cache / "listend" / "models" / "moonshine-base"
    shutil.copytree(shared, target)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return target


def in_thread(work, timeout: float):
    """``work()``'s result, failing the test (not hanging it) if it does not return within ``timeout``."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert result, f"{work} did not return within {timeout:.0f} s"
    return result[0]


def test_a_manifest_that_is_a_fifo_is_converted_again_not_waited_on(converted):
    """A FIFO in the manifest's place hung every start for ever (issue 29, item 8)."""
    (converted / "manifest.json").unlink()
    os.mkfifo(converted / "manifest.json")
    assert in_thread(lambda: prepare(converted), 300) == converted
    assert read_manifest(converted / "manifest.json") is not None
    MoonshineModel(converted)  # whole again


def test_the_source_is_checksummed_again_only_when_its_files_changed(tmp_path, converted):
    """The wheel's ~63 MB were read at every load; now its files' stamps are noted beside their checksums."""
    source = tmp_path / "source"
    shutil.copytree(source_dir(), source)  # the same bytes under new stamps
    model_made = (converted / "encoder_model.onnx").stat().st_mtime_ns
    assert prepare(converted, source) == converted  # checksummed, found the same, the stamps noted
    assert (converted / "encoder_model.onnx").stat().st_mtime_ns == model_made  # not converted again
    assert set(read_manifest(converted / "manifest.json")["source_stamps"]) == {
        "encoder_model.ort",
        "decoder_model_merged.ort",
        "tokenizer.bin",
    }
    noted = (converted / "manifest.json").stat().st_mtime_ns
    assert prepare(converted, source) == converted and (converted / "manifest.json").stat().st_mtime_ns == noted
    tokenizer = source / "tokenizer.bin"
    changed = bytearray(tokenizer.read_bytes())
    changed[-1] ^= 1
    tokenizer.write_bytes(bytes(changed))  # the same size, other bytes: converted again
    assert prepare(converted, source) == converted
    assert (converted / "encoder_model.onnx").stat().st_mtime_ns != model_made
    assert sorted(p.name for p in converted.iterdir()) == [
        "decoder_model_merged.onnx",
        "encoder_model.onnx",
        "manifest.json",
        "tokenizer.bin",
    ]  # no manifest left half-written


def test_a_cache_directory_that_is_a_link_is_replaced_once_and_its_target_is_left_alone(tmp_path, converted):
    """A linked cache directory was converted again at every start, then failed in rmtree, for ever."""
    elsewhere = tmp_path / "elsewhere"
    shutil.move(converted, elsewhere)
    converted.symlink_to(elsewhere)
    (elsewhere / "manifest.json").write_text("{}")  # stale: a conversion is due
    before = sorted(os.listdir(elsewhere))
    assert prepare(converted) == converted
    assert converted.is_dir() and not converted.is_symlink()
    assert sorted(os.listdir(elsewhere)) == before  # nothing deleted through the link
    made = (converted / "manifest.json").stat().st_mtime_ns
    assert prepare(converted) == converted and (converted / "manifest.json").stat().st_mtime_ns == made  # once
    MoonshineModel(converted)


@pytest.fixture
def small_disk(tmp_path):
    mounts = []

    def mount(where: Path, size: str) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"cannot mount a tmpfs (tests run as root): {result.stderr}"
        mounts.append(where)
        return where

    yield mount
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)])


@pytest.mark.parametrize("size", ["120m", "250m"])
def test_a_full_disk_during_the_conversion_is_reported_as_such(tmp_path, small_disk, size):
    """On 120 and 250 MiB file systems the conversion said "Wire format was corrupt" (issue 29, item 12)."""
    disk = small_disk(tmp_path / "disk", size)
    with pytest.raises(ModelUnavailable) as e:
        prepare(disk / "moonshine-base")
    message = str(e.value)
    assert "no space left on device" in message and "\n" not in message and "corrupt" not in message, message
    assert not list(disk.iterdir())  # nothing half-built left behind


def speech_then_silence(audio_dir: Path, name: str) -> Path:
    return concat(
        audio_dir / f"{name}.wav",
        speak(audio_dir / f"{name}-0.wav", SENTENCES[0]),
        silence(audio_dir / f"{name}-tail.wav", 1.5),
    )


def released_engine(tmp_path: Path) -> tuple[Engine, Recorder]:
    """A Moonshine-only engine whose models were released after 1 s idle."""
    overrides = {"models": {"live": "moonshine-base", "refine": "", "unload_after_s": 1.0}}
    engine = Engine(
        build_settings("lightweight", overrides), overrides, unfinished=UnfinishedAudio(tmp_path / "unfinished")
    )
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    wait_until(lambda: engine.stats().models.model_releases == 1, 30, "the models to be released")
    return engine, rec


def test_a_cache_damaged_while_the_models_were_released_is_rebuilt_at_the_start_and_no_word_is_lost(
    tmp_path, converted, audio_dir, caplog
):
    """Issue 29, item 7: the start went to error, the words were lost and every later start failed."""
    speech = speech_then_silence(audio_dir, "damaged-at-reload")
    engine, rec = released_engine(tmp_path)
    try:
        encoder = converted / "encoder_model.onnx"
        encoder.write_bytes(b"\0" * encoder.stat().st_size)  # damaged, same size: only loading finds it
        with caplog.at_level(logging.INFO, logger="listend"):
            engine.start(FileSource(str(speech), realtime=True))
            assert engine.wait_source_done(120) and engine.wait_drained(300)
        assert engine.state == "idle" and not engine.last_error
        assert engine.stats().models.model_loads == 1
    finally:
        engine.close(10)
    finals = rec.of(Refined)
    assert len(finals) == 1 and heard(SENTENCES[0], finals[0].text, missing=1), finals
    damaged = [r for r in caplog.records if "converting it again" in r.getMessage()]
    assert len(damaged) == 1 and damaged[0].exc_info is None and "\n" not in damaged[0].getMessage()
    MoonshineModel(converted)  # rebuilt


def test_models_that_cannot_be_loaded_again_keep_the_words_as_audio_and_a_later_start_works(
    tmp_path, converted, audio_dir, small_disk
):
    """A cache that cannot be rebuilt at the start (a full disk) is an error the next start recovers from."""
    speech = speech_then_silence(audio_dir, "unloadable-at-reload")
    models = converted.parent
    saved = tmp_path / "saved"
    shutil.move(models, saved)
    small_disk(models, "100m")  # room for the converted model, not for converting it again
    shutil.copytree(saved / "moonshine-base", converted)
    engine, rec = released_engine(tmp_path)
    try:
        encoder = converted / "encoder_model.onnx"
        encoder.write_bytes(b"\0" * encoder.stat().st_size)
        engine.start(FileSource(str(speech)))  # all of it heard before the load fails
        wait_until(lambda: engine.state == "error", 120, lambda: f"an error state (state {engine.state})")
        assert engine.last_error.startswith("cannot load the models again:") and "no space left" in engine.last_error
        assert "\n" not in engine.last_error
        errors = rec.of(ErrorReported)
        assert [e.message for e in errors if e.message] == [engine.last_error]
        kept = wait_until(lambda: list((tmp_path / "unfinished").glob("*.wav")), 30, "the words kept as audio")
        assert len(kept) == 1
        heard_audio = UnfinishedAudio(tmp_path / "unfinished").load(kept[0])
        assert heard_audio is not None and len(heard_audio.audio) > 2 * SAMPLE_RATE  # the sentence, not a blip
        assert [r.kind for r in rec.of(Retracted)] == ["kept-as-audio"]
        # The disk is freed: the next start converts again and decodes.
        subprocess.run(["umount", "-l", str(models)], check=True)
        rec.clear()
        engine.start(FileSource(str(speech), realtime=True))
        assert engine.wait_source_done(300) and engine.wait_drained(300)
        assert engine.state == "idle"
    finally:
        engine.close(10)
    finals = rec.of(Refined)
    assert len(finals) == 1 and heard(SENTENCES[0], finals[0].text, missing=1), finals


def test_the_daemon_rebuilds_a_cache_damaged_while_idle_and_writes_what_was_said_to_the_history(
    start_daemon, private_bus, tmp_path, converted, audio_dir
):
    """Issue 29, item 7, end to end: released models, a damaged cache, then Start and speech."""
    speech = speech_then_silence(audio_dir, "daemon-damaged-at-reload")
    config = tmp_path / "config.toml"
    config.write_text('[models]\nlive = "moonshine-base"\nrefine = ""\nunload_after_s = 1.0\n')
    state = tmp_path / "state"
    daemon = start_daemon("--config", str(config), "--source", str(speech), env=daemon_env(private_bus, state))

    async def dictate():
        async with BusClient(private_bus.address) as c:

            async def released() -> bool:
                return (await c.memory())["model_releases"] == 1

            await until(released, 30, "the models released after 1 s idle")
            encoder = converted / "encoder_model.onnx"
            encoder.write_bytes(b"\0" * encoder.stat().st_size)  # damaged, same size: only loading finds it
            await c.call("Start")
            await c.wait_for(lambda: c.named("SegmentRefined"), timeout=300)

            async def idle() -> bool:
                return await c.prop("State") == "idle"

            await until(idle, 60, "the end of the file")
            return await c.prop("LastError"), (await c.memory())["model_loads"]

    last_error, loads = asyncio.run(dictate())
    assert last_error == "" and loads == 1
    rows = history_rows(history_dir(state))
    assert len(rows) == 1 and heard(SENTENCES[0], rows[0]["text"], missing=1), rows
    log = daemon.log()
    assert log.count("converting it again") == 1 and "Traceback" not in log, log
    assert daemon.terminate() == 0


def test_model_caches_are_private_and_those_older_versions_left_open_are_tightened(tmp_path, converted):
    """docs/security.md: the model caches are 0600 files in 0700 directories (converted files were 0644)."""
    from listend.models import embedded_base

    def modes(directory: Path) -> tuple[int, set[int]]:
        """The directory's mode and its files' modes."""
        return directory.stat().st_mode & 0o777, {p.stat().st_mode & 0o777 for p in directory.iterdir()}

    for path in converted.iterdir():
        os.chmod(path, 0o644)
    os.chmod(converted, 0o755)
    assert prepare(converted) == converted
    assert modes(converted) == (0o700, {0o600})
    base = embedded_base(tmp_path / "base")  # joined here: made private
    assert modes(base) == (0o700, {0o600})
    for path in base.iterdir():
        os.chmod(path, 0o644)
    assert embedded_base(base) == base and modes(base) == (0o700, {0o600})  # reused, and tightened


def test_the_conversion_child_peaks_below_850_mib(tmp_path):
    """Issue 29 item 10 / issue 24: the first start's conversion peaked at 1 016 MiB RSS (now ~750)."""
    target = tmp_path / "converted"
    probe = (
        "import resource, sys; from pathlib import Path; from listend.moonshine_cache import prepare; "
        "prepare(Path(sys.argv[1])); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(target)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    peak_mib = int(result.stdout.split()[-1]) / 1024
    assert (target / "manifest.json").is_file()
    assert peak_mib < 850, f"the conversion child peaked at {peak_mib:.0f} MiB"
