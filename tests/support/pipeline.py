"""Building blocks for tests of the pipeline's pure parts: utterances, a fake VAD, recording supervisors."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

import numpy as np

from listend.audio import Pause, Utterance
from listend.commit import Commit
from listend.config import QueueOptions
from listend.decoders import Decoded
from listend.router import MAY_WAIT, NEVER_WAIT, Router
from listend.units import SAMPLE_RATE
from listend.vad import CHUNK

from .waiting import wait_until


def utt(seg_id: int, seconds: float = 1.0, wall: float = 1_000_000_000.0) -> Utterance:
    return Utterance(seg_id, 0, np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32), wall)


E = TypeVar("E")


class Recorder(list[Any]):
    """A subscriber that keeps the events it was given, in order (safe to read while the publisher appends)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.append(event)

    def of(self, kind: type[E]) -> list[E]:
        with self._lock:
            return [e for e in self if isinstance(e, kind)]

    def wait(self, count: int, timeout: float = 5.0) -> None:
        wait_until(lambda: len(self) >= count, timeout, lambda: f"{count} events: {list(self)}", poll=0.01)


class NotedSupervisor:
    """A :class:`~listend.supervision.Supervisor` that notes what it is told."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.deaths: list[tuple[str, str]] = []

    def failed(self, stage: str, message: str) -> None:
        self.failures.append((stage, message))

    def died(self, stage: str, message: str) -> None:
        self.deaths.append((stage, message))


def make_router(
    commit: Commit, refine: int = 2, live: int = 2, refine_enabled: bool = True, giving_up: Any = lambda: False
) -> tuple[Router, list[int]]:
    """A router over ``commit``; the list collects the ids it kept as audio."""
    kept: list[int] = []

    def keep(u: Utterance) -> None:
        kept.append(u.id)
        commit.keep_as_audio(u, "test")

    return Router(QueueOptions(refine=refine, live_final=live), commit, refine_enabled, keep, giving_up), kept


def route(router: Router, commit: Commit, u: Utterance, can_wait: bool = False) -> None:
    """Register ``u`` (as the engine does when its id is allocated) and route it."""
    if not commit.is_pending(u.id):
        commit.register(u.id)
    router.route(u, MAY_WAIT if can_wait else NEVER_WAIT)


def pause_of(u: Utterance) -> Pause:
    return Pause(u.id, u.start_sample, u.audio.copy())


def loud_is_speech(audio: np.ndarray) -> np.ndarray:
    """A stand-in VAD: a chunk whose peak is above 0.1 is speech."""
    return (np.abs(audio.reshape(-1, CHUNK)).max(axis=1) > 0.1) * 1.0


def tone(seconds: float, level: float) -> np.ndarray:
    """A constant signal (``level`` 0: silence; 0.5: "speech" to :func:`loud_is_speech`), whole VAD chunks."""
    return np.full(int(seconds * SAMPLE_RATE) // CHUNK * CHUNK, level, dtype=np.float32)


class CountingDecoder:
    """Stands in for a model where only *whether* and *on how much audio* a decode runs matters."""

    model_name = "counting"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def decode(self, audio: np.ndarray, prompt: str = "", cancelled: object = None) -> Decoded:
        self.calls.append(len(audio))
        return Decoded(f"words {len(self.calls)}", 1, 0)
