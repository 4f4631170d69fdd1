"""The on-disk transcript history: one JSON line per final segment.

Files are ``<dir>/YYYY-MM-DD.jsonl`` (local date of the segment's start),
mode 0600 in a 0700 directory (older files with wider modes are tightened at
start). A symlinked directory is followed -- people keep state on another
disk -- but the modes of what it points to are left alone (see
docs/security.md). Each record is fsynced before the bus announces it, so a
segment a client has seen survives a crash.

Reading never stops a start: a torn line (crash mid-write), a foreign or
hostile one (an id of ``1e999``, 100 000 nested brackets, an id outside what
a D-Bus ``t`` and a JSON number carry exactly, a line of megabytes) is
skipped and counted. New ids continue above the highest valid id in *any*
file, so neither a file dated in the future nor a clock jump reuses one.

When the disk is full or the directory not writable, records stay in memory
(bounded; what the bound drops is counted and reported), and writing resumes
-- oldest first -- once it works again. What is still unwritten when the
daemon exits is saved to the first of listend's other directories that
takes it (:func:`fallback_dirs`) and written to the history at the next
start; the daemon's exit status says that happened.

Retention deletes day files whose date *and* modification time are older
than ``retention_days``; the highest id they held is kept in ``last-id``, so
ids never restart even when every day file is gone.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeGuard

from .files import UnsafeFile, make_private, read_regular, write_private
from .paths import cache_dir, runtime_dir, state_dir
from .units import MAX_SEGMENT_ID

log = logging.getLogger("listend.history")

DEFAULT_LIMIT = 1000  # GetTranscript(limit=0)
MAX_LIMIT = 100_000
_RECENT = 10_000  # segments kept in memory for fast queries
_UNWRITTEN_MAX = 100_000  # records held while the disk refuses them
MAX_ID = MAX_SEGMENT_ID
_MAX_LINE = 1 << 20  # a record is a sentence or two; a longer line is not ours
_HIGH_WATER = "last-id"
_EARLIEST = 946_684_800.0  # 2000-01-01


class HistoryUnusable(ValueError):
    """The history directory cannot be a directory (a regular file, a device): a start-up error."""


@dataclass(frozen=True)
class Segment:
    """A final segment as stored and served (times are Unix seconds).

    ``text`` is what was said. A command segment records what it meant:
    ``command`` (a :class:`~listend.commands.Action` value) and ``target``,
    the segment it acts on -- a ``scratch_that`` marks its target retracted, a
    spoken mark gives its target a new ending (``amended``: the target's text as it now stands)
    (:func:`~listend.commands.as_meant` reads the text as meant from these).
    """

    id: int
    start: float
    end: float
    text: str
    live_text: str = ""
    source: str = "refined"
    command: str = ""
    target: int = 0
    amended: str = ""  # a spoken mark's record: its target's text with the new ending


def default_history_dir() -> Path:
    return state_dir() / "history"


def fallback_dirs() -> list[Path]:
    """Where unwritable history records are saved at exit, in order of preference."""
    return [state_dir() / "unwritten", runtime_dir() / "unwritten", cache_dir() / "unwritten"]


def day_of(start: float) -> str:
    """The local date a segment starting at Unix time ``start`` is filed under (today for a time no clock shows)."""
    if _EARLIEST <= start <= time.time() + 86_400:
        try:
            return time.strftime("%Y-%m-%d", time.localtime(start))
        except (OverflowError, OSError, ValueError):
            pass
    return time.strftime("%Y-%m-%d")


class TranscriptStore:
    """Append-only transcript history with a bounded in-memory tail.

    Thread-safe: the engine thread appends, the bus thread queries.
    """

    def __init__(self, directory: Path | None = None, retention_days: int = 30):
        self.directory = Path(directory) if directory else default_history_dir()
        check_history_dir(self.directory)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._recent: collections.deque[Segment] = collections.deque(maxlen=_RECENT)
        self._unwritten: collections.deque[Segment] = collections.deque()
        self.last_error = ""
        self.write_failures = 0
        self.skipped_lines = 0
        self.dropped = 0  # records lost because the disk refused more than _UNWRITTEN_MAX
        self._ensure_dir()
        self._max_id = self._high_water()
        self.prune()
        for path in self._files():  # one pass: the highest id anywhere, and the newest segments
            self._tighten(path)
            for seg in self._read_file(path):
                self._max_id = max(self._max_id, seg.id)
                self._recent.append(seg)
        if self.skipped_lines:
            log.warning("history: skipped %d damaged or foreign line(s) in %s", self.skipped_lines, self.directory)
        self._saved_files: list[Path] = []
        self._import_saved()

    # -- writing --------------------------------------------------------------

    def _ensure_dir(self) -> None:
        try:
            if self.directory.is_symlink():
                # Followed, but what it points to is the user's to protect.
                log.info(
                    "history directory %s is a link to %s; its modes are left as they are",
                    self.directory,
                    os.path.realpath(self.directory),
                )
                return
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
        except OSError as e:
            self.last_error = f"history directory {self.directory}: {e.strerror}"
            log.error("%s", self.last_error)

    def _tighten(self, path: Path) -> None:
        """Make an existing day file 0600 (older versions wrote 0644); links are left alone."""
        if self.directory.is_symlink():
            return
        try:
            make_private(path)
        except OSError as e:
            log.warning("cannot tighten %s to 0600: %s", path, e.strerror)

    def _path_for(self, seg: Segment) -> Path:
        return self.directory / (day_of(seg.start) + ".jsonl")

    def append(self, seg: Segment) -> list[int]:
        """Store ``seg`` durably; returns the ids written now (``seg``'s among them unless the disk refused).

        What the disk refuses stays in memory and is written, oldest first, by a later call.
        """
        with self._lock:
            self._recent.append(seg)
            self._max_id = max(self._max_id, seg.id)
            if len(self._unwritten) >= _UNWRITTEN_MAX:
                self._unwritten.popleft()
                self.dropped += 1
                log.error(
                    "history: %d segment(s) dropped from memory while %s refuses writes", self.dropped, self.directory
                )
            self._unwritten.append(seg)
            return self._flush_locked()

    def flush(self) -> list[int]:
        """Write what waits in memory; returns the ids written."""
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> list[int]:
        written: list[int] = []
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
                return written
            self._unwritten.popleft()
            written.append(seg.id)
        if self.last_error:
            log.info("history writable again")
            self.last_error = ""
        if self._saved_files:  # everything saved at an earlier exit is in the history now
            for path in self._saved_files:
                _remove(path)
            self._saved_files = []
        return written

    def save_unwritten(self) -> tuple[list[int], str]:
        """At exit: save what the history refused where listend can write; returns (ids saved, where).

        ``([], reason)`` when no directory took them: they are lost, and the reason says so.
        """
        with self._lock:
            records = list(self._unwritten)
        if not records:
            return [], ""
        data = "".join(json.dumps(asdict(s), ensure_ascii=False) + "\n" for s in records).encode("utf-8")
        problems = []
        for folder in fallback_dirs():
            path = folder / f"history-{time.time():.3f}-{os.getpid()}.jsonl"
            try:
                write_private(path, data)
            except OSError as e:
                problems.append(f"{folder}: {e.strerror or e}")
                continue
            return [s.id for s in records], str(path)
        return [], "; ".join(problems)

    def _import_saved(self) -> None:
        """Take in records an earlier run saved at exit (see :meth:`save_unwritten`), then write them."""
        known = {s.id for s in self._recent}
        imported = 0
        for folder in fallback_dirs():
            try:
                paths = sorted(p for p in folder.glob("history-*.jsonl"))
            except OSError:
                continue
            for path in paths:
                try:
                    raw = read_regular(path, 64 << 20, follow_symlinks=False)
                except (OSError, UnsafeFile) as e:
                    log.warning("cannot read saved history %s: %s", path, e.strerror or e)
                    continue
                for line in raw.splitlines():
                    seg = parse_record(line)
                    if seg is None:
                        self.skipped_lines += 1
                    elif seg.id not in known:
                        known.add(seg.id)
                        self._unwritten.append(seg)
                        self._recent.append(seg)
                        self._max_id = max(self._max_id, seg.id)
                        imported += 1
                self._saved_files.append(path)
        if self._saved_files:
            log.info("history: %d segment(s) saved at an earlier exit taken back", imported)
            self._flush_locked()

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
                while raw := f.readline(_MAX_LINE + 1):
                    if len(raw) > _MAX_LINE and not raw.endswith(b"\n"):
                        while (rest := f.readline(_MAX_LINE)) and not rest.endswith(b"\n"):
                            pass  # skip the rest of an oversized line without holding it
                        self.skipped_lines += 1
                        continue
                    seg = parse_record(raw)
                    if seg is None:
                        self.skipped_lines += 1  # torn or foreign line: skip, never fatal
                    else:
                        yield seg
        except OSError as e:
            log.warning("cannot read %s: %s", path, e.strerror)

    def last_id(self) -> int:
        """The highest id stored (0 when empty)."""
        with self._lock:
            return self._max_id

    def next_id(self) -> int:
        """The id the next segment gets: above every valid id in every file."""
        with self._lock:
            if self._max_id >= MAX_ID:
                raise OverflowError("history ids are exhausted")  # 2**53 segments: not in this universe
            return self._max_id + 1

    def recent(self, count: int) -> list[Segment]:
        """The newest ``count`` segments, oldest first."""
        with self._lock:
            return sorted(self._recent, key=_by_id)[-count:] if count else []

    def since(self, since_id: int, limit: int = 0) -> list[Segment]:
        """Segments with id > ``since_id``, oldest first, at most ``limit`` (0 = default cap)."""
        if limit < 0 or limit > MAX_LIMIT:
            raise ValueError(f"limit must be between 0 and {MAX_LIMIT}")
        limit = limit or DEFAULT_LIMIT
        with self._lock:
            recent = sorted(self._recent, key=_by_id)
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
        """Delete day files older than the retention period (by date and by mtime); returns how many.

        A day file written recently keeps its records even if their date is
        old (audio kept from long ago and decoded now).
        """
        if not self.retention_days:
            return 0
        cutoff_time = time.time() - self.retention_days * 86400
        cutoff = time.strftime("%Y-%m-%d", time.localtime(cutoff_time))
        old = []
        for path in self._files():
            try:
                if path.stem < cutoff and path.stat().st_mtime < cutoff_time:
                    old.append(path)
            except OSError:
                continue
        if not old:
            return 0
        for path in old:  # the highest id they hold outlives them
            for seg in self._read_file(path):
                self._max_id = max(self._max_id, seg.id)
        try:
            write_private(self.directory / _HIGH_WATER, f"{self._max_id}\n".encode())
        except OSError as e:
            log.warning("cannot record the highest history id, keeping old history: %s", e.strerror)
            return 0
        removed = 0
        for path in old:
            try:
                path.unlink()
                removed += 1
            except OSError as e:
                log.warning("cannot remove old history %s: %s", path, e.strerror)
        return removed

    def _high_water(self) -> int:
        try:
            value = int(read_regular(self.directory / _HIGH_WATER, 64, follow_symlinks=False).strip())
        except (OSError, ValueError, UnsafeFile):
            return 0
        return value if 0 <= value <= MAX_ID else 0


def check_history_dir(directory: Path) -> None:
    """Raise :class:`HistoryUnusable` if ``directory`` can never be a directory.

    A path that does not exist yet, or a link to a disk that is not mounted,
    is fine: records wait in memory until it can be written.
    """
    if directory.exists() and not directory.is_dir():
        raise HistoryUnusable(f"history directory {directory} is not a directory")
    for parent in directory.parents:
        if parent.exists():
            if not parent.is_dir():
                raise HistoryUnusable(f"history directory {directory}: {parent} is not a directory")
            break


def _by_id(seg: Segment) -> int:
    return seg.id


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError as e:
        log.warning("cannot remove %s: %s", path, e.strerror)


def _ends_with_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def parse_record(raw: bytes | str) -> Segment | None:
    """One history line as a :class:`Segment`, or None if it is not a valid record."""
    try:
        d = json.loads(raw)
    except (ValueError, RecursionError):  # torn, not JSON, or nested beyond reason
        return None
    if not isinstance(d, dict):
        return None
    seg_id, start, end, text = d.get("id"), d.get("start"), d.get("end"), d.get("text")
    if type(seg_id) is not int or not 1 <= seg_id <= MAX_ID:
        return None
    if not (_finite_number(start) and _finite_number(end)):
        return None
    live_text, source = d.get("live_text", ""), d.get("source", "refined")
    if not (isinstance(text, str) and isinstance(live_text, str) and isinstance(source, str)):
        return None
    command, target, amended = d.get("command", ""), d.get("target", 0), d.get("amended", "")
    if not isinstance(command, str) or not isinstance(amended, str) or type(target) is not int:
        return None
    if not 0 <= target <= MAX_ID:
        return None
    return Segment(seg_id, float(start), float(end), text, live_text, source, command, target, amended)


def retracted_ids(segments: list[Segment]) -> set[int]:
    """Ids of the segments among ``segments`` that a later ``scratch_that`` among them retracted."""
    return {s.target for s in segments if s.command == "scratch_that" and s.target}


def _finite_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
