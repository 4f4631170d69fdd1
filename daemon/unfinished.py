"""Audio that was heard but could not be decoded in time, kept on disk to be decoded later.

When a stop must finish within the service manager's timeout (or a decoder
died) and an utterance still has no text, its audio is written here as a
16 kHz mono WAV named after its wall time and id, instead of being lost. The
daemon decodes these files at its next start, as new segments that keep their
original wall times, and deletes each once its text is committed.
"""

from __future__ import annotations

import logging
import os
import re
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paths import state_dir
from .segmenter import SAMPLE_RATE, Utterance

log = logging.getLogger("listend.unfinished")

_NAME = re.compile(r"^(\d+\.\d{3})-(\d+)\.wav$")
MAX_FILES = 1000  # a bound even here: ~20 s each, at most ~640 MB if every one were full


def default_unfinished_dir() -> Path:
    return state_dir() / "unfinished"


@dataclass(frozen=True)
class KeptAudio:
    path: Path
    wall_start: float
    audio: np.ndarray


class UnfinishedAudio:
    """A directory of WAV files (0600 in a 0700 directory)."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory else default_unfinished_dir()

    def keep(self, utt: Utterance) -> str:
        """Write ``utt``'s audio; returns the path, or an error text if the disk refused."""
        if len(self.files()) >= MAX_FILES:
            return f"not kept: {self.directory} already holds {MAX_FILES} files"
        path = self.directory / f"{utt.wall_start or time.time():.3f}-{utt.id}.wav"
        pcm = (np.clip(utt.audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(SAMPLE_RATE)
                w.writeframes(pcm)
        except OSError as e:
            log.error("cannot keep the audio of segment %d: %s", utt.id, e.strerror or e)
            return f"not kept: {e.strerror or e}"
        log.warning("segment %d (%.1f s) could not be decoded in time; audio kept in %s", utt.id,
                    utt.duration, path)
        return str(path)

    def files(self) -> list[Path]:
        try:
            return sorted((p for p in self.directory.iterdir() if _NAME.match(p.name)),
                          key=lambda p: float(_NAME.match(p.name).group(1)))
        except OSError:
            return []

    def load(self, path: Path) -> KeptAudio | None:
        """Read one kept file; a damaged one is renamed aside and skipped."""
        try:
            with wave.open(str(path), "rb") as w:
                if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
                    raise ValueError("not 16 kHz mono 16-bit")
                audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
        except (OSError, EOFError, ValueError, wave.Error) as e:
            log.warning("skipping damaged kept audio %s: %s", path, e)
            try:
                path.rename(path.with_suffix(".damaged"))
            except OSError:
                pass
            return None
        return KeptAudio(path, float(_NAME.match(path.name).group(1)), audio)

    @staticmethod
    def remove(path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass
