"""Audio that was heard but could not be decoded in time, kept on disk to be decoded later.

When a stop must finish within the service manager's timeout (or a decoder
died) and an utterance still has no text, its audio is written here as a
16 kHz mono WAV named after its wall time and id, instead of being lost. The
daemon decodes these files at its next start, as new segments that keep
their original wall times, and deletes each only once its text is durable
(:meth:`UnfinishedAudio.settle`: the history wrote it, or it had no speech).

The directory is listend's, but what is in it is read with suspicion: only
regular files of at most :data:`MAX_KEPT_SECONDS` of audio are read (a
FIFO, a device or a file claiming gigabytes is set aside unread), a wall
time outside any sane range is replaced by the file's modification time,
and files of other rates or channel counts are converted rather than lost.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import Audio, Utterance
from .files import UnsafeFile, read_regular
from .outcome import Outcome
from .paths import state_dir
from .units import SAMPLE_RATE

log = logging.getLogger("listend.unfinished")

_NAME = re.compile(r"^(\d+\.\d{3})-(\d+)\.wav$")
MAX_FILES = 1000  # decoded per start; ~20 s each, at most ~640 MB if every one were full
# Room kept beyond MAX_FILES, so that a stop deadline while a big recovery is under way can still keep audio.
_RESERVE = 64
MAX_KEPT_SECONDS = 30.0  # listend never keeps more than one utterance (vad.max_utterance_s <= 30 s) per file
_MAX_RATE, _MAX_CHANNELS = 48_000, 2
_MAX_BYTES = int(MAX_KEPT_SECONDS * _MAX_RATE * _MAX_CHANNELS * 2) + 4096  # a 48 kHz stereo 16-bit file, header
_EARLIEST = 946_684_800.0  # 2000-01-01: no listend audio is older
DAMAGED_SUFFIX = ".damaged"


def default_unfinished_dir() -> Path:
    return state_dir() / "unfinished"


@dataclass(frozen=True)
class KeptAudio:
    path: Path
    wall_start: float
    audio: Audio


def sane_wall_time(value: float, now: float | None = None) -> bool:
    """A Unix time listend could have heard something at: from 2000 until a day from now."""
    now = time.time() if now is None else now
    return _EARLIEST <= value <= now + 86_400


class UnfinishedAudio:
    """A directory of WAV files (0600 in a 0700 directory)."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory else default_unfinished_dir()
        self._lock = threading.Lock()
        self._decoding: dict[int, Path] = {}  # segment id -> the file it was recovered from

    def keep(self, utt: Utterance) -> Outcome:
        """Write ``utt``'s audio; the outcome's detail is the path, or why the disk refused."""
        if len(self._names()) >= MAX_FILES + _RESERVE:
            return Outcome.failed(f"not kept: {self.directory} already holds {MAX_FILES + _RESERVE} files")
        wall = utt.wall_start if sane_wall_time(utt.wall_start) else time.time()
        path = self.directory / f"{wall:.3f}-{utt.id}.wav"
        pcm = (np.clip(utt.audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(SAMPLE_RATE)
                w.writeframes(pcm)
        except OSError as e:
            log.error("cannot keep the audio of segment %d: %s", utt.id, e.strerror or e)
            return Outcome.failed(f"not kept: {e.strerror or e}")
        log.warning("segment %d (%.1f s) could not be decoded in time; audio kept in %s", utt.id, utt.duration, path)
        return Outcome.done(str(path))

    def _names(self) -> list[str]:
        try:
            return [name for name in os.listdir(self.directory) if _NAME.match(name)]
        except OSError:
            return []

    def files(self) -> list[Path]:
        """Kept files to decode, oldest first, at most :data:`MAX_FILES` (the rest wait for the next start)."""

        def wall(name: str) -> float:
            match = _NAME.match(name)
            return float(match.group(1)) if match else 0.0

        names = sorted(self._names(), key=wall)[:MAX_FILES]
        return [self.directory / name for name in names]

    def load(self, path: Path) -> KeptAudio | None:
        """Read one kept file; one that cannot be audio listend kept is set aside and skipped."""
        try:
            data = read_regular(path, _MAX_BYTES, follow_symlinks=False)
            audio = _decode_wav(data)
        except (OSError, EOFError, ValueError, wave.Error) as e:
            reason = e.strerror if isinstance(e, UnsafeFile) else str(e) or type(e).__name__
            log.warning("setting aside kept audio %s: %s", path, reason)
            self._set_aside(path)
            return None
        match = _NAME.match(path.name)
        wall = float(match.group(1)) if match else 0.0
        if not sane_wall_time(wall):
            try:
                mtime = os.lstat(path).st_mtime
            except OSError:
                mtime = time.time()
            log.warning(
                "kept audio %s: its name's time is not a real time; using the file's (%s)",
                path.name,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime)) if sane_wall_time(mtime) else "now",
            )
            wall = mtime if sane_wall_time(mtime) else time.time()
        return KeptAudio(path, wall, audio)

    @staticmethod
    def _set_aside(path: Path) -> None:
        try:
            path.rename(path.with_name(path.name + DAMAGED_SUFFIX))
        except OSError:
            pass

    # -- the life of a recovered file ------------------------------------------------

    def decoding(self, seg_id: int, path: Path) -> None:
        """``path`` is being decoded as segment ``seg_id``."""
        with self._lock:
            self._decoding[seg_id] = path

    def settle(self, seg_id: int) -> None:
        """Segment ``seg_id`` no longer needs its kept audio (its text is durable, or it had none)."""
        with self._lock:
            path = self._decoding.pop(seg_id, None)
        if path is not None:
            try:
                path.unlink()
            except OSError as e:
                log.warning("cannot remove decoded kept audio %s: %s", path, e.strerror)

    def prune_set_aside(self, retention_days: int) -> int:
        """Delete set-aside files older than the history's retention (0 = keep forever); returns how many."""
        if not retention_days:
            return 0
        cutoff = time.time() - retention_days * 86_400
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return 0
        for entry in entries:
            if not entry.name.endswith(DAMAGED_SUFFIX):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
        return removed


def _decode_wav(data: bytes) -> Audio:
    """16-bit PCM of any rate up to 48 kHz, mono or stereo, as 16 kHz mono float32."""
    with wave.open(io.BytesIO(data), "rb") as w:
        channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        if width != 2 or not 1 <= channels <= _MAX_CHANNELS or not 4000 <= rate <= _MAX_RATE:
            raise ValueError(f"not audio listend keeps ({channels} ch, {8 * width} bit, {rate} Hz)")
        if frames / rate > MAX_KEPT_SECONDS + 1:
            raise ValueError(f"claims {frames / rate:.0f} s of audio; listend keeps at most {MAX_KEPT_SECONDS:.0f} s")
        raw = w.readframes(frames)
    usable = len(raw) // (2 * channels) * (2 * channels)  # a file cut mid-sample keeps its whole samples
    pcm = np.frombuffer(raw[:usable], dtype="<i2").astype(np.float32) / 32768
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE and len(pcm):
        n = int(round(len(pcm) * SAMPLE_RATE / rate))
        pcm = np.interp(np.arange(n) * (rate / SAMPLE_RATE), np.arange(len(pcm)), pcm)
    return np.ascontiguousarray(pcm, dtype=np.float32)
