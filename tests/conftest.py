"""Shared fixtures: real speech from espeak-ng, real models, isolated XDG dirs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download in tests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def end_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_tool(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def speak(path: Path, text: str, speed: int = 150, voice: str = "en-us") -> Path:
    """espeak-ng -> sox: 16 kHz mono 16-bit WAV of ``text``."""
    raw = path.with_suffix(".raw.wav")
    run_tool("espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text)
    # -R: the same dither on every run, so a test hears the same samples each time.
    run_tool("sox", "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path))
    raw.unlink()
    return path


def silence(path: Path, seconds: float) -> Path:
    run_tool("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "trim", "0", str(seconds))
    return path


def concat(path: Path, *parts: Path) -> Path:
    run_tool("sox", *map(str, parts), str(path))
    return path


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


SENTENCES = [
    "Please send the quarterly report to the finance team by Friday.",
    "The weather today is sunny with a light breeze from the west.",
    "Remember to buy milk, bread and eggs on the way home.",
    "Our meeting with the design team starts at three o'clock.",
]


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def speech_wav(audio_dir) -> Path:
    return speak(audio_dir / "speech.wav", SENTENCES[0])


@pytest.fixture(scope="session")
def two_utterances_wav(audio_dir) -> Path:
    a = speak(audio_dir / "u1.wav", SENTENCES[0])
    b = speak(audio_dir / "u2.wav", SENTENCES[1])
    gap = silence(audio_dir / "gap2.wav", 2.0)
    lead = silence(audio_dir / "lead.wav", 0.5)
    return concat(audio_dir / "two.wav", lead, a, gap, b, gap)


@pytest.fixture(scope="session")
def silence_wav(audio_dir) -> Path:
    return silence(audio_dir / "silence.wav", 6.0)


@pytest.fixture(scope="session")
def noise_wav(audio_dir) -> Path:
    """Low steady noise, like a fan: not speech."""
    path = audio_dir / "noise.wav"
    run_tool("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "synth", "6", "brownnoise", "vol", "0.05")
    return path


@pytest.fixture(autouse=True)
def isolated_xdg(tmp_path, monkeypatch):
    """Every test gets its own config/state dirs; the model cache is shared (joined once)."""
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        d = tmp_path / name.lower()
        d.mkdir()
        monkeypatch.setenv(name, str(d))
    cache = REPO / ".pytest_cache" / "xdg-cache"
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def listend(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "listend"), *args], capture_output=True, text=True, timeout=timeout, **kw)


def wav_samples(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
