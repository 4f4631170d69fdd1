"""The engine's counters and bounds as one frozen snapshot (the D-Bus layer flattens it).

Each stage's part is its own frozen copy, taken under that stage's lock;
:class:`EngineStats` only puts them side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .capture import CaptureStats
from .commit import CommitStats
from .memory import MemoryStats
from .router import QueueStats
from .workers import WorkerStats


@dataclass(frozen=True)
class BufferStats:
    audio_buffer_bytes: int
    audio_buffer_limit_bytes: int


@dataclass(frozen=True)
class Thresholds:
    warn_bytes: int
    cleanup_bytes: int
    limit_bytes: int


@dataclass(frozen=True)
class ModelStats:
    models_loaded: bool
    model_releases: int  # times the models were released after unload_after_s without listening
    model_loads: int  # times they were loaded again for a start


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of every stage's counters and bounds (the D-Bus layer flattens it).

    Each part is a frozen copy taken under its stage's own lock.
    """

    state: str
    profile: str
    capture: CaptureStats
    queues: QueueStats
    commits: CommitStats
    memory: MemoryStats
    thresholds: Thresholds
    buffers: BufferStats
    workers: tuple[WorkerStats, ...]
    partials_skipped: int
    models: ModelStats

    def flat(self) -> dict[str, object]:
        """Leaf name -> value; per-worker fields become ``<worker>_worker_<field>``."""
        return flatten(self)


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    """Nested stats dataclasses as one flat dict of their leaves."""
    out: dict[str, object] = {}
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            inner = getattr(value, f.name)
            if dataclasses.is_dataclass(inner) or isinstance(inner, tuple):
                out.update(flatten(inner, prefix))
            else:
                out[prefix + f.name] = inner
    elif isinstance(value, tuple):
        for item in value:
            out.update(flatten(item, f"{prefix}{item.name}_worker_"))
    return out
