"""The on-disk transcript history: one JSON line per final segment.

Files are ``<dir>/YYYY-MM-DD.jsonl`` (local date of the segment's start),
mode 0600 in a 0700 directory. Each record is fsynced before the bus
announces it, so a segment a client has seen survives a crash. A torn last
line (crash mid-write) is skipped on read. When the disk is full or the
directory not writable, records stay in memory, the error is reported, and
writing resumes -- oldest first -- once it works again.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

log = logging.getLogger("listend.history")

DEFAULT_LIMIT = 1000  # GetTranscript(limit=0)
MAX_LIMIT = 100_000
_RECENT = 10_000  # segments kept in memory for fast queries
_UNWRITTEN_MAX = 100_000  # records held while the disk refuses them


@dataclass(frozen=True)
class Segment:
    """A final segment as stored and served (times are Unix seconds)."""

    id: int
    start: float
    end: float
    text: str
    live_text: str = ""
    source: str = "refined"


def default_history_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "listend" / "history"


class TranscriptStore:
    """Append-only transcript history with a bounded in-memory tail.

    Thread-safe: the engine thread appends, the bus thread queries.
    """

    def __init__(self, directory: Path | None = None, retention_days: int = 30):
        self.directory = Path(directory) if directory else default_history_dir()
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._recent: collections.deque[Segment] = collections.deque(maxlen=_RECENT)
        self._unwritten: collections.deque[Segment] = collections.deque(maxlen=_UNWRITTEN_MAX)
        self.last_error = ""
        self.write_failures = 0
        self.skipped_lines = 0
        self._ensure_dir()
        self.prune()
        for seg in self._read_tail(_RECENT):
            self._recent.append(seg)

    # -- writing --------------------------------------------------------------

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
        except OSError as e:
            self.last_error = f"history directory {self.directory}: {e.strerror}"
            log.error("%s", self.last_error)

    def _path_for(self, seg: Segment) -> Path:
        return self.directory / (time.strftime("%Y-%m-%d", time.localtime(seg.start)) + ".jsonl")

    def append(self, seg: Segment) -> bool:
        """Store ``seg`` durably; returns False (and keeps it in memory) if the disk refused."""
        with self._lock:
            self._recent.append(seg)
            self._unwritten.append(seg)
            return self._flush_locked()

    def flush(self) -> bool:
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> bool:
        while self._unwritten:
            seg = self._unwritten[0]
            try:
                self._write(seg)
            except OSError as e:
                self.write_failures += 1
                message = f"cannot write history to {self.directory}: {e.strerror or e}"
                if message != self.last_error:
                    log.error("%s (%d segment(s) kept in memory)", message, len(self._unwritten))
                self.last_error = message
                return False
            self._unwritten.popleft()
        if self.last_error:
            log.info("history writable again")
            self.last_error = ""
        return True

    def _write(self, seg: Segment) -> None:
        path = self._path_for(seg)
        line = (json.dumps(asdict(seg), ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # A previous failed write may have left a partial line: start a new one.
            if os.fstat(fd).st_size and not _ends_with_newline(fd):
                os.write(fd, b"\n")
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(28, "short write")
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)

    # -- reading --------------------------------------------------------------

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.glob("????-??-??.jsonl") if p.is_file())
        except OSError:
            return []

    def _read_file(self, path: Path) -> Iterator[Segment]:
        try:
            with open(path, "rb") as f:
                for raw in f:
                    try:
                        d = json.loads(raw)
                        yield Segment(int(d["id"]), float(d["start"]), float(d["end"]), str(d["text"]),
                                      str(d.get("live_text", "")), str(d.get("source", "refined")))
                    except (ValueError, KeyError, TypeError):
                        self.skipped_lines += 1  # torn or foreign line: skip, never fatal
        except OSError as e:
            log.warning("cannot read %s: %s", path, e.strerror)

    def _read_tail(self, count: int) -> list[Segment]:
        out: list[Segment] = []
        for path in reversed(self._files()):
            out[:0] = list(self._read_file(path))
            if len(out) >= count:
                break
        return out[-count:]

    def last_id(self) -> int:
        with self._lock:
            return self._recent[-1].id if self._recent else 0

    def recent(self, count: int) -> list[Segment]:
        with self._lock:
            return list(self._recent)[-count:] if count else []

    def since(self, since_id: int, limit: int = 0) -> list[Segment]:
        """Segments with id > ``since_id``, oldest first, at most ``limit`` (0 = default cap)."""
        if limit < 0 or limit > MAX_LIMIT:
            raise ValueError(f"limit must be between 0 and {MAX_LIMIT}")
        limit = limit or DEFAULT_LIMIT
        with self._lock:
            recent = list(self._recent)
        if recent and (since_id >= recent[0].id - 1 or len(recent) < _RECENT):
            return [s for s in recent if s.id > since_id][:limit]
        out: list[Segment] = []
        for path in self._files():  # older than the in-memory tail: read the files
            for seg in self._read_file(path):
                if seg.id > since_id:
                    out.append(seg)
                    if len(out) >= limit:
                        return out
        return out

    def prune(self) -> int:
        """Delete day files older than the retention period; returns how many."""
        if not self.retention_days:
            return 0
        cutoff = time.strftime("%Y-%m-%d", time.localtime(time.time() - self.retention_days * 86400))
        removed = 0
        for path in self._files():
            if path.stem < cutoff:
                try:
                    path.unlink()
                    removed += 1
                except OSError as e:
                    log.warning("cannot remove old history %s: %s", path, e.strerror)
        return removed


def _ends_with_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"
