"""The typed events a client receives from listend, and how a signal becomes one (:func:`event_of`).

Contract: :func:`event_of` reads one message and nothing else -- it returns
the :data:`ClientEvent` a signal from (or about) the daemon carries, None for
any message that is not one, and raises :class:`MalformedSignal` for a signal
with listend's path, interface and member whose arguments are not listend's.
Whether the sender may speak for listend is not decided here (that is
:class:`listend.client.names.SignalGate`'s job). No bus, no I/O, no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbus_next import Message, MessageType, Variant

from ..bus import BUS_NAME, INTERFACE, OBJECT_PATH
from ..units import MAX_SEGMENT_ID

BUS_DAEMON = "org.freedesktop.DBus"


@dataclass(frozen=True)
class TranscriptEntry:
    id: int
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class SegmentEvent:
    """``SegmentRefined``: final text of a segment (Unix times)."""

    entry: TranscriptEntry


@dataclass(frozen=True)
class CommandEvent:
    """``SegmentCommand``: segment ``id`` is the command ``action`` acting on segment ``target`` (0: none).

    Delivered just before the :class:`SegmentEvent` of the same id (whose text
    is ``said``, the words as heard: a client that executes the command does
    not also type them).
    """

    id: int
    action: str
    target: int
    said: str


@dataclass(frozen=True)
class CommandEntry:
    """A command segment of the history (``GetCommands``)."""

    id: int
    action: str
    target: int


@dataclass(frozen=True)
class PartialEvent:
    id: int
    text: str


@dataclass(frozen=True)
class RetractedEvent:
    """``SegmentRetracted``: segment ``id`` has no text (``kind``: no-speech, kept-as-audio, lost)."""

    id: int
    kind: str


@dataclass(frozen=True)
class StateEvent:
    state: str


@dataclass(frozen=True)
class PressureEvent:
    level: str
    rss_bytes: int


@dataclass(frozen=True)
class PropertiesEvent:
    """Properties of the daemon that changed, unwrapped."""

    changed: dict


@dataclass(frozen=True)
class PresenceEvent:
    """The daemon took (``running``) or left the bus name."""

    running: bool


ClientEvent = (
    SegmentEvent
    | CommandEvent
    | PartialEvent
    | RetractedEvent
    | StateEvent
    | PressureEvent
    | PropertiesEvent
    | PresenceEvent
)


def event_of(msg: Message) -> ClientEvent | None:
    """The typed event a signal from (or about) the daemon carries; None for anything else.

    This reads the message only; whether its sender may speak for listend is
    :class:`SignalGate`'s to decide.
    """
    if msg.message_type != MessageType.SIGNAL:
        return None
    body = msg.body
    if msg.member == "NameOwnerChanged" and msg.interface == BUS_DAEMON:
        if msg.signature == "sss" and body[0] == BUS_NAME:
            return PresenceEvent(bool(body[2]))
        return None
    if msg.path != OBJECT_PATH:
        return None
    if msg.interface == INTERFACE:
        wanted = _SIGNATURES.get(msg.member or "")
        if wanted is None:
            return None
        if msg.signature != wanted:
            raise MalformedSignal(f"{msg.member} with signature '{msg.signature}' (not '{wanted}')")
        if msg.member == "SegmentRefined":
            if not 1 <= body[0] <= MAX_SEGMENT_ID:
                raise MalformedSignal(f"SegmentRefined with id {body[0]}")
            return SegmentEvent(TranscriptEntry(*body))
        if msg.member == "SegmentCommand":
            if not 1 <= body[0] <= MAX_SEGMENT_ID or not 0 <= body[2] <= MAX_SEGMENT_ID:
                raise MalformedSignal(f"SegmentCommand with id {body[0]}, target {body[2]}")
            return CommandEvent(*body)
        if msg.member == "PartialText":
            return PartialEvent(*body)
        if msg.member == "SegmentRetracted":
            return RetractedEvent(*body)
        if msg.member == "StateChanged":
            return StateEvent(body[0])
        return PressureEvent(*body)
    if msg.member == "PropertiesChanged" and msg.interface == PROPERTIES:
        if msg.signature != "sa{sv}as":
            raise MalformedSignal(f"PropertiesChanged with signature '{msg.signature}'")
        if body[0] == INTERFACE:
            return PropertiesEvent({k: unwrap(v) for k, v in body[1].items()})
    return None


PROPERTIES = "org.freedesktop.DBus.Properties"
_SIGNATURES = {
    "SegmentRefined": "tdds",
    "SegmentCommand": "tsts",
    "PartialText": "ts",
    "SegmentRetracted": "ts",
    "StateChanged": "s",
    "MemoryPressure": "st",
}


class MalformedSignal(ValueError):
    """A signal with listend's path and member whose arguments are not listend's."""


def unwrap(value: Any) -> Any:
    """A D-Bus variant's value (anything else as it is)."""
    return value.value if isinstance(value, Variant) else value
