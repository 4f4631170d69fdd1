"""listend's events in the input method: partials, commands and finals to the composer, the daemon's state kept.

The daemon's signals (session bus, through :mod:`listend.client`) arrive
here on the app's loop. While an input method of listend's delivers (its
IBus engine holds the keyboard, or it is the Wayland input method), text and
commands go to :class:`~listend_ime.composer.Composer` and its effects to
:class:`~listend_ime.delivery.Delivery`; when it does not, finals that are
owed (shown before the keyboard was handed back) or that cannot reach the
apps go to the clipboard, and commands that act on text are refused. Which
engine is selected is the app's decision: this object only says that the
daemon's state or delivery choice changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from listend.client import (
    CallFailed,
    ClientEvent,
    CommandEvent,
    DictationClient,
    NotRunning,
    PartialEvent,
    PresenceEvent,
    PressureEvent,
    PropertiesEvent,
    RetractedEvent,
    SegmentEvent,
    StateEvent,
    TranscriptEntry,
)
from listend.ids import SeenIds

from .composer import KNOWN_ACTIONS, LINE_BREAKS, Composer, Effect
from .delivery import Delivery

OWED_MAX = 1000
COMMANDS_MAX = 1000  # commands announced whose final has not come yet (it follows at once)


class DaemonEvents:
    """The daemon's events, dispatched; what the daemon says its state and delivery are.

    ``apply`` carries out the composer's effects, ``publish_counts`` updates the
    status, ``changed`` is told when the daemon's state or delivery changed, and
    ``unreachable`` says why finals cannot reach the apps now (None when they can).
    """

    def __init__(
        self,
        composer: Composer,
        delivery: Delivery,
        holding: Callable[[], bool],
        apply: Callable[[list[Effect]], None],
        publish_counts: Callable[[], None],
        changed: Callable[[], None],
        unreachable: Callable[[], str | None],
    ) -> None:
        self.composer = composer
        self.delivery = delivery
        self._holding = holding  # an input method of listend's delivers now (IBus's engine, the Wayland one)
        self._apply = apply
        self._publish_counts = publish_counts
        self._changed = changed
        self._unreachable = unreachable
        self.client: DictationClient | None = None
        self.state = "absent"  # the daemon's State
        self.method = "auto"  # the daemon's Delivery
        self._seen = SeenIds()
        self._owed: dict[int, str] = {}  # ids shown whose final comes after we let go -> why it goes to the clipboard
        self._commands: dict[int, str] = {}  # command segments whose final (the words said) is still to come

    def owe(self, seg_ids: set[int], reason: str) -> None:
        """The composer let go of these segments: their finals go to the clipboard, for ``reason``."""
        for seg_id in sorted(seg_ids):
            self._owed[seg_id] = reason
        while len(self._owed) > OWED_MAX:
            del self._owed[next(iter(self._owed))]

    def on_event(self, event: ClientEvent) -> None:
        now = time.monotonic()
        match event:
            case PartialEvent(id=seg_id, text=text):
                if self._holding():
                    self._apply(self.composer.partial(seg_id, text, now))
            case CommandEvent(id=seg_id, action=action, target=target):
                self._command(seg_id, action, target, now)
            case SegmentEvent(entry=entry):
                self._final(entry, now)
            case RetractedEvent(id=seg_id):
                self._owed.pop(seg_id, None)
                if self._holding():
                    self._apply(self.composer.retracted(seg_id, now))
            case StateEvent(state=state):
                self._daemon_changed(state=state)
            case PropertiesEvent(changed=changed):
                self._follow_language(changed.get("Language"))
                self._daemon_changed(state=changed.get("State"), method=changed.get("Delivery"))
            case PresenceEvent(running=True):
                asyncio.get_running_loop().create_task(self.refresh())
            case PresenceEvent(running=False):
                self._daemon_changed(state="absent")
            case PressureEvent():
                pass

    async def refresh(self) -> None:
        """Read the daemon's state and delivery afresh (at start, and when it comes back)."""
        assert self.client is not None
        # Only a running daemon, checked to be listend: a call to its name would start it (D-Bus activation),
        # and an input method autostarted at login must not load the models of a dictation nobody asked for.
        if await self.client.name_holder() != "listend":
            self._daemon_changed(state="absent")
            return
        try:
            props = await self.client.get_all()
        except (NotRunning, CallFailed):
            self._daemon_changed(state="absent")
            return
        self._follow_language(props.get("Language"))
        self._daemon_changed(state=props.get("State", "idle"), method=props.get("Delivery", "auto"))

    def _follow_language(self, language: object) -> None:
        """The daemon's language in force: the composer spaces and capitalises what follows by its rules.

        The daemon announces a change of ``Language`` before the finals decoded
        in it (docs/dbus.md), on the same connection, so the finals that follow
        are in it. An older daemon without the property leaves English.
        """
        if isinstance(language, str) and language:
            self.composer.language = language

    def _command(self, seg_id: int, action: str, target: int, now: float) -> None:
        """Segment ``seg_id`` is a command: its final (next) is executed, not typed (:meth:`Composer.command`)."""
        if seg_id in self._seen or action not in KNOWN_ACTIONS:
            return  # an action of a newer daemon: its segment is text (docs/dbus.md)
        self._commands[seg_id] = action
        while len(self._commands) > COMMANDS_MAX:
            del self._commands[next(iter(self._commands))]
        if self._holding():
            self._apply(self.composer.command(seg_id, action, target, now))

    def _final(self, entry: TranscriptEntry, now: float) -> None:
        if not self._seen.first_time(entry.id):
            return
        reason = self._owed.pop(entry.id, None)
        action = self._commands.pop(entry.id, None)
        if action is not None and not self._holding():
            unreachable = self._unreachable()
            if reason is not None or unreachable is not None:
                self._command_elsewhere(action, reason or unreachable or "")
            return
        if self._holding():  # owed or not: a field has focus again, so it goes there (in id order)
            self._apply(self.composer.final(entry.id, entry.text, now))
            return
        reason = reason if reason is not None else self._unreachable()
        if reason is not None:
            self.composer.counts.failed += 1
            self.delivery.to_clipboard(entry.text, reason)
            self._publish_counts()

    def _command_elsewhere(self, action: str, reason: str) -> None:
        """A command whose text went to the clipboard: line breaks join it there; the rest cannot be done."""
        if action in LINE_BREAKS:
            self.delivery.to_clipboard(LINE_BREAKS[action], reason)
        elif action != "stop_listening":
            self.composer.counts.refused += 1
            self.delivery.refused("the text it acts on is not in a field listend can see")
        self._publish_counts()

    def _daemon_changed(self, state: str | None = None, method: str | None = None) -> None:
        changed = False
        if state is not None and state != self.state:
            if state == "listening":
                self.delivery.new_dictation()
            self.state, changed = state, True
        if method is not None and method != self.method:
            self.method, changed = method, True
        if changed:
            self._changed()
