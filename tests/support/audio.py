"""Speech for the tests: espeak-ng sentences made into 16 kHz WAVs, silence, noise, and word checks."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np

from .processes import run_tool

SENTENCES = [
    "Please send the quarterly report to the finance team by Friday.",
    "The weather today is sunny with a light breeze from the west.",
    "Remember to buy milk, bread and eggs on the way home.",
    "Our meeting with the design team starts at three o'clock.",
]
# Short words any model may drop or merge; key-word checks leave them out.
FILLER = {"the", "a", "to", "by", "with", "from", "on", "at", "and", "is", "our"}


def speak(path: Path, text: str, speed: int = 150, voice: str = "en-us") -> Path:
    """espeak-ng -> sox: 16 kHz mono 16-bit WAV of ``text``."""
    raw = path.with_suffix(".raw.wav")
    run_tool("espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text)
    # -R: the same dither on every run, so a test hears the same samples each time.
    run_tool("sox", "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path))
    raw.unlink()
    return path


def silence(path: Path, seconds: float) -> Path:
    # -D: digital zeros. sox dithers a synthesised silence to 16 bits by default, a new ±1 LSB noise on every run,
    # and Whisper's hearing of the speech around it flipped with that noise from run to run (measured: the same
    # "Good morning." came out "Good morning! Good morning!" beside one noise and right beside another).
    run_tool("sox", "-D", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "trim", "0", str(seconds))
    return path


def concat(path: Path, *parts: Path) -> Path:
    run_tool("sox", *map(str, parts), str(path))
    return path


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def key_words(sentence: str) -> set[str]:
    return set(words(sentence)) - FILLER


def heard(sentence: str, text: str, missing: int = 0) -> bool:
    """``text`` holds the key words of ``sentence``, all but at most ``missing`` of them."""
    expected = key_words(sentence)
    return len(expected - set(words(text))) <= missing


def wav_samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
