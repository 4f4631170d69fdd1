"""`listend transcribe`, configuration errors, and model resolution."""

from __future__ import annotations

import json
import os
import sys

import jiwer
import pytest

from listend import models
from listend.config import ConfigError, build_settings, load_overrides
from tests.support.audio import SENTENCES, concat, silence, speak
from tests.support.processes import listend


def _normalise(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).split())


@pytest.fixture(scope="module")
def read_speech_30s(tmp_path_factory):
    """About 30 s of read speech in several sentences with natural pauses."""
    d = tmp_path_factory.mktemp("read")
    text = SENTENCES + [
        "The library will be closed on Monday for the public holiday.",
        "Please call me back when you have finished reading the document.",
    ]
    parts = []
    for i, sentence in enumerate(text):
        parts += [speak(d / f"s{i}.wav", sentence, speed=140), silence(d / f"p{i}.wav", 0.9)]
    return concat(d / "read.wav", *parts), " ".join(text)


def test_transcribe_json_matches_offline_accuracy(read_speech_30s):
    path, reference = read_speech_30s
    result = listend("transcribe", "--json", str(path))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records
    for r in records:
        assert set(r) == {"id", "start", "end", "text", "live_text", "source"}
        assert r["source"] == "refined" and 0 <= r["start"] < r["end"] <= 40
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    ours = " ".join(r["text"] for r in records)

    from faster_whisper import WhisperModel

    offline_model = WhisperModel(models.resolve_model("base"), device="cpu", compute_type="int8")
    segments, _ = offline_model.transcribe(str(path), language="en", beam_size=5)
    offline = " ".join(s.text for s in segments)
    wer_ours = jiwer.wer(_normalise(reference), _normalise(ours))
    wer_offline = jiwer.wer(_normalise(reference), _normalise(offline))
    assert wer_ours <= wer_offline + 0.03, (wer_ours, wer_offline, ours, offline)


def test_transcribe_plain_lightweight(speech_wav):
    result = listend("transcribe", "--lightweight", str(speech_wav))
    assert result.returncode == 0, result.stderr
    assert "quarterly" in result.stdout.lower()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "not a readable audio file"),
        (b"this is plainly not audio\n" * 50, "not a readable audio file"),
    ],
)
def test_transcribe_bad_files_exit_2(tmp_path, content, message):
    path = tmp_path / "input.wav"
    if content is not None:
        path.write_bytes(content)
    result = listend("transcribe", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert "Errno" not in lines[0]  # FFmpeg's own error number (1094995529) tells a user nothing


def test_listend_help_shows_the_daemon_options_and_says_what_lightweight_is():
    result = listend("--help")
    assert result.returncode == 0
    for option in ("--start", "--device", "--source", "--lightweight"):
        assert option in result.stdout, option
    assert "short windows" not in result.stdout  # the lightweight profile segments whole utterances
    assert "tiny.en" in " ".join(result.stdout.split())


def test_transcribe_directory_and_usage_errors(tmp_path):
    result = listend("transcribe", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr
    result = listend("transcribe")
    assert result.returncode == 2 and "FILE" in result.stderr
    result = listend("transcribe", "--no-such-flag", "x.wav")
    assert result.returncode == 2


@pytest.mark.parametrize(
    "toml, key",
    [
        ("[vad]\nthreshold = 1.5\n", "vad.threshold"),
        ("[vad]\nthreshold = 'high'\n", "vad.threshold"),
        ("[vad]\nthreshhold = 0.5\n", "vad.threshhold"),
        ("[queues]\nrefine = 0\n", "queues.refine"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("profile = 'medium'\n", "profile"),
        ("[memory]\nwarn_mb = true\n", "memory.warn_mb"),
        ("[models]\ndevice = 'tpu'\n", "models.device"),
        ("this is = = not toml", "invalid TOML"),
    ],
)
def test_config_errors_name_the_key_and_exit_2(tmp_path, speech_wav, toml, key):
    config = tmp_path / "config.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_overrides(config)
    result = listend("transcribe", "--config", str(config), str(speech_wav))
    assert result.returncode == 2
    assert key in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_config_overrides_win_over_profile_presets(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[vad]\nmax_utterance_s = 8\n[audio]\ndevice = 3\n")
    overrides = load_overrides(config)
    light = build_settings("lightweight", overrides)
    assert light.vad.max_utterance_s == 8.0 and light.models.refine == "" and light.audio.device == "3"
    assert build_settings("full", overrides).models.refine == "base"
    with pytest.raises(ConfigError):
        build_settings("full", {"vad": {"threshold": 0.3, "neg_threshold": 0.4}})


def test_missing_explicit_config_is_an_error(tmp_path, speech_wav):
    result = listend("transcribe", "--config", str(tmp_path / "absent.toml"), str(speech_wav))
    assert result.returncode == 2 and "no such config file" in result.stderr


def test_embedded_base_is_joined_once_and_verified(tmp_path):
    target = tmp_path / "base"
    path = models.embedded_base(target)
    assert (path / "model.bin").stat().st_size == models.BASE_MODEL_SIZE
    assert models.verify_embedded_base(target)
    assert oct(os.stat(path).st_mode & 0o777) == "0o700"
    mtime = (path / "model.bin").stat().st_mtime_ns
    assert models.embedded_base(target) == path
    assert (path / "model.bin").stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".base-")]


@pytest.mark.timeout(60)  # offline, the hub is never asked: no wait for a network that is not there
def test_hub_model_offline_fails_with_a_clear_message():
    with pytest.raises(models.ModelUnavailable) as err:
        models.resolve_model("large-v3")
    assert "large-v3" in str(err.value) and "download_model" in str(err.value)
    assert f"({sys.executable} -c " in str(err.value)  # the venv's python: a bare `python` has no faster_whisper


@pytest.mark.timeout(120)  # a refused connection is an answer: no retry loop that outlives it
def test_hub_model_unreachable_hub_fails_without_hanging(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(models.ModelUnavailable) as err:
        models.resolve_model("distil-large-v3")
    assert "distil-large-v3" in str(err.value) and "could not be reached" in str(err.value)


def test_unknown_model_names_and_bad_directories(tmp_path):
    with pytest.raises(models.ModelUnavailable, match="unknown model"):
        models.resolve_model("gigantic-v9")
    with pytest.raises(models.ModelUnavailable, match="no model.bin"):
        models.resolve_model(str(tmp_path))


def test_transcribe_with_unavailable_hub_model_exits_1(tmp_path, speech_wav):
    config = tmp_path / "config.toml"
    config.write_text("[models]\nrefine = 'large-v3'\n")
    result = listend("transcribe", "--config", str(config), str(speech_wav))
    assert result.returncode == 1
    assert "large-v3" in result.stderr and "Traceback" not in result.stderr


def test_several_files_are_named_and_none_borrows_the_previous_prompt(tmp_path, audio_dir):
    first = speak(audio_dir / "multi-a.wav", SENTENCES[1])
    second = speak(audio_dir / "multi-b.wav", SENTENCES[0])
    alone = listend("transcribe", str(second))
    together = listend("transcribe", str(first), str(second))
    assert alone.returncode == 0 and together.returncode == 0, together.stderr
    lines = together.stdout.splitlines()
    assert lines[0] == f"==> {first} <==" and f"==> {second} <==" in lines
    after = lines[lines.index(f"==> {second} <==") + 1 :]
    # Each file starts without a prompt from the one before: the same text as on its own.
    assert after == alone.stdout.splitlines()
