"""Memory watchdog: sample RSS, clean up, and ask the engine to degrade.

Levels are episodes, not samples: crossing ``warn`` logs once until RSS falls
back below it by a margin (hysteresis: RSS sitting at a threshold does not
flap between levels); ``cleanup`` runs the collector and returns freed heap to the
OS (glibc ``malloc_trim``); ``limit`` asks the engine to shed its refine model
and switch to the lightweight profile. Every action is counted and published.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from .config import MemoryOptions
from .events import MemoryPressure, PressureLevel
from .outcome import Outcome
from .units import MIB

log = logging.getLogger("listend.memory")


def load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (gives freed heap back to the OS); None where there is none (musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (musl): nothing to trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 20
_allocator_pinned = False


def set_malloc_thresholds(mmap_bytes: int, trim_bytes: int | None = None) -> bool:
    """Fix glibc's mmap threshold at ``mmap_bytes`` (and its trim threshold at ``trim_bytes``); False where
    there is no glibc or it refused.

    Every allocation of ``mmap_bytes`` or more then gets its own mapping,
    unmapped when freed. A fixed threshold also turns off glibc's raising of it
    after each large free (up to 32 MiB), after which such blocks would come
    from the heap, which it does not give back. The daemon and listend-ime
    both use this, with thresholds of their own.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc: its allocator decides
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, mmap_bytes))
    if trim_bytes is not None:
        done = bool(mallopt(_M_TRIM_THRESHOLD, trim_bytes)) and done
    return done


def pin_mmap_threshold() -> bool:
    """Serve every allocation of 1 MiB or more with its own mmap, returned to the OS on free.

    glibc raises its mmap threshold each time a large mmapped block is freed
    (up to 32 MiB), after which model-sized buffers come from the heap, where
    decode buffers pin them in place: measured, 20 profile switches under load
    left idle RSS 74 MiB higher (316 -> 390), and malloc_trim could not give
    it back. With the threshold fixed at 1 MiB the same run ends at 275 MiB,
    3 MiB above one without switches. Setting it also turns off the dynamic
    adjustment. Done once, before any model is loaded.
    """
    global _allocator_pinned
    if _allocator_pinned:
        return True
    if os.environ.get("LISTEND_MALLOC_DEFAULTS"):  # measure glibc's own behaviour (bench/switch_rss.py)
        return False
    _allocator_pinned = set_malloc_thresholds(_MMAP_THRESHOLD)
    return _allocator_pinned


@dataclass(frozen=True)
class MemoryStats:
    rss_bytes: int = 0
    peak_rss_bytes: int = 0
    level: PressureLevel = "normal"
    cleanups: int = 0
    degradations: int = 0
    trims: int = 0


class MemoryWatchdog:
    """Periodic RSS sampler running on its own thread.

    Parameters
    ----------
    options : MemoryOptions
        Thresholds and cadence (changed at run time with :meth:`configure`).
    publish : callable
        Receives a :class:`MemoryPressure` event on every level change and action.
    degrade : callable
        Called once per ``limit`` episode; its outcome says whether it shed
        something, and what (or why it could not).
    """

    def __init__(
        self, options: MemoryOptions, publish: Callable[[MemoryPressure], None], degrade: Callable[[], Outcome]
    ):
        self.options = options
        self._publish = publish
        self._degrade = degrade
        pin_mmap_threshold()
        self._process = psutil.Process()
        self._trim = load_malloc_trim()
        self._stats_lock = threading.Lock()
        self._stats = MemoryStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_trim = time.monotonic()
        self._last_cleanup = 0.0

    def configure(self, options: MemoryOptions) -> None:
        self.options = options

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="listend-memory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.options.sample_interval_s):
            self.check()

    def stats(self) -> MemoryStats:
        with self._stats_lock:
            return self._stats

    def _update(self, **changes: object) -> None:
        with self._stats_lock:
            self._stats = dataclasses.replace(self._stats, **changes)  # type: ignore[arg-type]

    def release(self) -> None:
        """Give freed memory back: collect cycles, then trim the C heap."""
        gc.collect()
        if self._trim is not None:
            self._trim(0)
            self._update(trims=self._stats.trims + 1)
        self._last_trim = time.monotonic()

    def sample(self) -> int:
        rss = self._process.memory_info().rss
        self._update(rss_bytes=rss, peak_rss_bytes=max(self._stats.peak_rss_bytes, rss))
        return rss

    def check(self) -> PressureLevel:
        """Sample once and act on the result (also called directly by tests)."""
        o = self.options
        rss = self.sample()
        if time.monotonic() - self._last_trim >= o.trim_interval_s:
            self.release()
        previous = self._stats.level
        level = pressure_level(rss, o, previous)
        self._update(level=level)
        if level == "normal":
            if previous != "normal":
                log.info("memory back to normal: %d MiB", rss // MIB)
                self._publish(MemoryPressure("normal", rss))
            return level
        action = ""
        # Clean up on entering the episode, then at most every 10 samples:
        # a full collection every sample would itself cost CPU all day.
        if level in ("cleanup", "limit") and (
            level != previous or time.monotonic() - self._last_cleanup >= 10 * o.sample_interval_s
        ):
            self.release()
            self._update(cleanups=self._stats.cleanups + 1)
            self._last_cleanup = time.monotonic()
            rss = self.sample()
            action = "cleanup"
        if level == "limit" and previous != "limit":
            outcome = self._degrade()
            action = outcome.detail
            self._update(degradations=self._stats.degradations + outcome.ok)
            log.warning("memory over limit (%d MiB >= %d MiB): %s", rss // MIB, o.limit_mb, action)
        elif level != previous:
            log.warning(
                "memory %s: %d MiB (warn %d, cleanup %d, limit %d MiB)",
                level,
                rss // MIB,
                o.warn_mb,
                o.cleanup_mb,
                o.limit_mb,
            )
        if level != previous:
            self._publish(MemoryPressure(level, rss, action))
        return level


_ORDER: tuple[PressureLevel, ...] = ("normal", "warn", "cleanup", "limit")


def hysteresis_bytes(threshold_mb: int) -> int:
    """How far below a threshold RSS must fall to leave its level: 3 %, at least 16 MiB."""
    return max(16 * MIB, threshold_mb * MIB * 3 // 100)


def pressure_level(rss: int, o: MemoryOptions, previous: PressureLevel = "normal") -> PressureLevel:
    """The level for ``rss``: up at a threshold, down only once below it by the hysteresis margin."""
    thresholds: dict[PressureLevel, int] = {"warn": o.warn_mb, "cleanup": o.cleanup_mb, "limit": o.limit_mb}
    level: PressureLevel = "normal"
    for name in _ORDER[1:]:
        mb = thresholds[name]
        held = _ORDER.index(previous) >= _ORDER.index(name)  # already at or above this level
        if rss >= mb * MIB or (held and rss >= mb * MIB - hysteresis_bytes(mb)):
            level = name
    return level
