"""Typed events the engine publishes to its subscribers (bus, CLI, tests).

Subscribers are called on engine threads and must return quickly; the D-Bus
layer hands them to its event loop, the CLI prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["loading", "idle", "listening", "error"]
PressureLevel = Literal["normal", "warn", "cleanup", "limit"]
Source = Literal["refined", "live"]
RetractKind = Literal["no-speech", "kept-as-audio", "lost"]


@dataclass(frozen=True)
class Partial:
    """Live text of the open utterance ``id`` (replaces earlier partials of that id)."""

    id: int
    text: str
    audio_end: float  # seconds on the audio clock of the newest sample decoded


@dataclass(frozen=True)
class Refined:
    """Final text of utterance ``id``; supersedes its partials.

    ``source`` is ``"refined"`` when the accurate model produced ``text`` and
    ``"live"`` when the utterance was committed with the fast model's text
    (lightweight profile, refine queue overflow, refine model unloaded).
    ``start``/``end`` are seconds on the audio clock; ``wall_start``/
    ``wall_end`` the same instants as Unix time. ``command`` is the
    :class:`~listend.commands.Action` value when the whole utterance is a
    command phrase (``text`` is then the phrase as said), ``target`` the id of
    the segment it acts on (0 for none); both are set by the commit stage.
    """

    id: int
    start: float
    end: float
    text: str
    live_text: str
    source: Source
    wall_start: float
    wall_end: float
    command: str = ""
    target: int = 0
    amended: str = ""  # a spoken mark: the target's text with its new ending (what the history records)


@dataclass(frozen=True)
class Retracted:
    """Utterance ``id`` has no text: drop its partial.

    ``kind`` says why: ``no-speech`` (the model heard none), ``kept-as-audio``
    (it could not be decoded in time; ``reason`` says where its audio went),
    ``lost`` (its audio went with a thread that died).
    """

    id: int
    reason: str
    kind: RetractKind = "no-speech"


@dataclass(frozen=True)
class StateChanged:
    state: State
    reason: str = ""


@dataclass(frozen=True)
class MemoryPressure:
    level: PressureLevel
    rss_bytes: int
    action: str = ""


@dataclass(frozen=True)
class ProfileChanged:
    profile: str
    reason: str = ""


@dataclass(frozen=True)
class ErrorReported:
    """Something failed and the engine went on (a decode raised, a reconnect failed, a switch failed).

    ``message`` is what ``LastError`` shows; ``''`` clears it.
    """

    message: str


@dataclass(frozen=True)
class LanguageChanged:
    """The language in force changed (detection switched, the user pinned or unpinned one, a new session).

    ``pinned`` is the pinned language, ``''`` while detection may choose;
    ``languages`` the user's set (announced again after a profile switch).
    """

    language: str
    pinned: str
    reason: str = ""
    languages: tuple[str, ...] = ()


EngineEvent = (
    Partial | Refined | Retracted | StateChanged | MemoryPressure | ProfileChanged | ErrorReported | LanguageChanged
)
