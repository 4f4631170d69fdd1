"""listend-ime's native Wayland input method, for wlroots compositors (sway, Hyprland, river...).

On wlroots, IBus has no Wayland frontend (Debian's ``ibus-wayland`` speaks
only ``zwp_input_method_v1`` and exits with "No input_method global" on
sway), so apps without an IBus module -- foot, GTK4, Qt6, Chromium with its
Wayland IME flags -- never see IBus's text. wlroots offers every client
``zwp_input_method_manager_v2`` (input-method-unstable-v2): the compositor
hands the input method the focused field's state (activation, surrounding
text, content type) and relays its preedit, commits and deletions to the
field's ``zwp_text_input_v3``.

How it is used (all on listend-ime's one asyncio loop):

- :func:`offered` says whether this session's compositor offers the manager;
- :meth:`WaylandInputMethod.open` when dictation starts: it becomes the seat's
  input method, or raises :class:`Unavailable` with a reason to say once
  (another input method holds the seat, no compositor, no manager);
- the :class:`InputMethodHost` hears when a field gains the input method
  (``activated``), changes (``changed``: surrounding text, content type) and
  loses it (``deactivated``); ``undelivered`` hands back committed text that
  waited for a field which lost focus meanwhile; and once, ``unavailable``
  when the input method is gone;
- :meth:`~WaylandInputMethod.show_preedit`, :meth:`~WaylandInputMethod.commit`
  and :meth:`~WaylandInputMethod.delete_before` change the field; each
  returns False and sends nothing where it may not (no active field, a
  password or PIN field, the input method gone, a deletion it cannot verify
  -- :meth:`~WaylandInputMethod.deletion_refused` says why);
- :meth:`~WaylandInputMethod.close` when dictation stops: the preedit is
  cleared and the object destroyed, so nothing of listend stays in the
  user's input path.

The keyboard is never grabbed: with input-method-v2 the user's keys go to
the application unless the input method grabs them, so nothing is needed
for keys to pass through, and no virtual keyboard either (text is committed
as text, never typed as keys).

Why a hand-written client (:mod:`wayland_wire`) and not pywayland: the
pywayland 0.4.19 wheel on PyPI ships libwayland-client and generated
bindings for the protocols of wayland and wayland-protocols -- input method
*v1* and text-input-v3, but not input-method-unstable-v2, which is a wlroots
protocol outside wayland-protocols. Using it would mean shipping the XML and
running pywayland's scanner at install time, a native library and a C
extension in the input path, for seven requests and seven events. The wire
client is a few hundred lines of stdlib Python, unit-tested against its
encoding, and reads nothing but this one connection.

Requests are double-buffered (input-method-v2): ``set_preedit_string``,
``commit_string`` and ``delete_surrounding_text`` take effect together on
``commit(serial)``, where the serial is the number of ``done`` events
received. The protocol lets a compositor ignore a commit that answers an
older state; wlroots (sway 1.7) applies it anyway and passes it on under the
field's current serial, and a field that committed in between (foot does so
after every preedit, to move its cursor rectangle) drops it, text and all --
hence the waiting described in :class:`WaylandInputMethod`. Strings are
UTF-8 with lengths and cursor offsets in bytes, at most 4000: longer commits
go in pieces, a longer preedit shows its end.

Tested on Debian 12's sway 1.7 with GTK 3.24 (its default on Wayland is
text-input-v3; with ``GTK_IM_MODULE=ibus`` GTK talks to IBus instead and
never activates this input method) and foot 1.13.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, replace
from typing import Protocol

from .wayland_wire import (
    Connection,
    Disconnected,
    Message,
    WireError,
    int32,
    message,
    offered_globals,
    string,
    uint,
)

log = logging.getLogger("listend.ime")

MANAGER = "zwp_input_method_manager_v2"
SEAT = "wl_seat"
MAX_TEXT_BYTES = 4000  # the protocol's limit for one string
OPEN_TIMEOUT_S = 5.0
# How long a change waits for the field's answer to the one before (see the class). Fields answer in
# milliseconds (foot, GTK); one that never answers gets its preedit at most this often, collapsed to the newest.
ANSWER_WAIT_S = 0.5

# zwp_input_method_manager_v2 requests
_MANAGER_GET_INPUT_METHOD, _MANAGER_DESTROY = 0, 1
# zwp_input_method_v2 requests
_COMMIT_STRING, _SET_PREEDIT_STRING, _DELETE_SURROUNDING_TEXT, _COMMIT, _DESTROY = 0, 1, 2, 3, 6
# zwp_input_method_v2 events
_ACTIVATE, _DEACTIVATE, _SURROUNDING_TEXT, _TEXT_CHANGE_CAUSE, _CONTENT_TYPE, _DONE, _UNAVAILABLE = range(7)


class Purpose(enum.IntEnum):
    """zwp_text_input_v3.content_purpose: what the field is for."""

    NORMAL = 0
    ALPHA = 1
    DIGITS = 2
    NUMBER = 3
    PHONE = 4
    URL = 5
    EMAIL = 6
    NAME = 7
    PASSWORD = 8
    PIN = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    TERMINAL = 13


class Hint(enum.IntFlag):
    """zwp_text_input_v3.content_hint."""

    NONE = 0
    COMPLETION = 0x1
    SPELLCHECK = 0x2
    AUTO_CAPITALIZATION = 0x4
    LOWERCASE = 0x8
    UPPERCASE = 0x10
    TITLECASE = 0x20
    HIDDEN_TEXT = 0x40
    SENSITIVE_DATA = 0x80
    LATIN = 0x100
    MULTILINE = 0x200


class ChangeCause(enum.IntEnum):
    """zwp_text_input_v3.change_cause: who changed the text around the cursor last."""

    INPUT_METHOD = 0
    OTHER = 1  # the user (typing, a click), or the application


_PRIVATE_PURPOSES = (Purpose.PASSWORD, Purpose.PIN)
# SENSITIVE_DATA (GTK's PRIVATE hint, a browser's private window) only asks that nothing be learnt: not withheld.
_PRIVATE_HINTS = Hint.HIDDEN_TEXT


@dataclass(frozen=True)
class Surrounding:
    """The text around the cursor as the field reported it (without our preedit); offsets in bytes."""

    text: bytes
    cursor: int
    anchor: int

    @property
    def before_cursor(self) -> str:
        # The field may cut its excerpt inside a character: a stray byte there is no text of the user's.
        return self.text[: self.cursor].decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class Field:
    """The focused text field as the compositor last described it (state applied on ``done``)."""

    activation: int  # counts activations: a new number is a new focus (input-method-v2 names no field)
    purpose: Purpose = Purpose.NORMAL
    hint: Hint = Hint.NONE
    surrounding: Surrounding | None = None  # None: the field does not report it
    cause: ChangeCause = ChangeCause.INPUT_METHOD

    @property
    def private(self) -> bool:
        """A password or PIN field, or one whose text is hidden: nothing may be sent to it."""
        return self.purpose in _PRIVATE_PURPOSES or bool(self.hint & _PRIVATE_HINTS)

    @property
    def before_cursor(self) -> str | None:
        return None if self.surrounding is None else self.surrounding.before_cursor


class InputMethodHost(Protocol):
    """What the input method tells listend-ime (on its loop)."""

    def activated(self, field: Field) -> None:
        """A field has focus and wants the input method (a focus in)."""

    def changed(self, field: Field) -> None:
        """The active field's surrounding text or content type changed."""

    def deactivated(self) -> None:
        """No focused field wants the input method (a focus out)."""

    def undelivered(self, text: str, reason: str) -> None:
        """Committed text that never reached a field (it lost focus while the text waited): hand it on."""

    def unavailable(self, reason: str) -> None:
        """The input method is gone for good (said once): the compositor closed, the seat went away."""


class Unavailable(Exception):
    """This session cannot have listend as its Wayland input method; the message says why, for the user."""


def _purpose(value: int) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        return Purpose.NORMAL  # a purpose from a newer protocol


@dataclass
class _Pending:
    """State the compositor has sent since the last ``done`` (double-buffered)."""

    active: bool = False
    activated: bool = False  # an `activate` came: a new field, whatever came before
    purpose: int = 0
    hint: int = 0
    surrounding: Surrounding | None = None
    cause: int = 0


def offered(environ: dict[str, str] | None = None) -> bool:
    """Whether this session's compositor offers ``zwp_input_method_manager_v2`` (a wlroots compositor does)."""
    return MANAGER in offered_globals(environ)


@dataclass
class _Change:
    """One ``commit(serial)`` of ours: what it inserts, deletes and shows (sent together)."""

    preedit: bytes = b""
    commit: bytes | None = None
    delete_before: int = 0  # bytes

    @property
    def text(self) -> str:
        return self.commit.decode() if self.commit else ""


class WaylandInputMethod:
    """The seat's input method while listend dictates: create with :meth:`open`, end with :meth:`close`.

    **Changes wait for the field's answer.** A text-input-v3 client answers a change of ours (its
    cursor moved, its text changed) with a commit of its own state, and a client like foot drops a
    ``done`` whose serial no longer matches its commits -- with the text in it. So after each change
    the next one waits until the compositor passes on the field's answer (a ``done``), or
    :data:`ANSWER_WAIT_S` for a field that does not answer. Queued preedits collapse to the newest;
    commits keep their order; a commit still queued when its field loses focus is handed back to the
    host (:meth:`InputMethodHost.undelivered`), never dropped silently.
    """

    def __init__(self, conn: Connection, host: InputMethodHost) -> None:
        self._conn = conn
        self._host = host
        self._im = 0
        self._dones = 0  # the serial each commit carries
        self._pending = _Pending()
        self._activations = 0
        self.field: Field | None = None  # the active field; None while no field wants us
        self._gone: str | None = None
        self._preedit = ""  # what the field shows of ours (or will, once the queue is sent)
        self._opened = False
        self._queue: list[_Change] = []  # changes waiting for the field's answer to the last one
        self._waiting: asyncio.TimerHandle | None = None  # set while a change of ours is unanswered
        self._loop: asyncio.AbstractEventLoop | None = None
        self.answer_wait_s = ANSWER_WAIT_S

    @classmethod
    async def open(
        cls, host: InputMethodHost, environ: dict[str, str] | None = None, timeout: float = OPEN_TIMEOUT_S
    ) -> WaylandInputMethod:
        """Become the seat's input method; :class:`Unavailable` (with a reason to tell the user) if it cannot."""
        try:
            conn = Connection.open(environ)
        except Disconnected as e:
            raise Unavailable(str(e)) from None
        ime = cls(conn, host)
        ime._loop = asyncio.get_running_loop()
        try:
            conn.attach(ime._loop)
            conn.get_registry()
            await asyncio.wait_for(conn.roundtrip_async(), timeout)
            if MANAGER not in conn.globals or SEAT not in conn.globals:
                missing = MANAGER if MANAGER not in conn.globals else "a seat"
                raise Unavailable(f"the Wayland compositor offers no {missing} (input-method-unstable-v2)")
            seat = conn.bind(SEAT, 1)
            manager = conn.bind(MANAGER, 1)
            ime._im = conn.new_id(ime._on_event)
            conn.send(message(manager, _MANAGER_GET_INPUT_METHOD, uint(seat), uint(ime._im)))
            conn.send(message(manager, _MANAGER_DESTROY))  # the input method outlives its manager
            conn.forget(manager)
            # `unavailable` comes at once, as the only event, if another input method holds the seat.
            await asyncio.wait_for(conn.roundtrip_async(), timeout)
        except (TimeoutError, WireError) as e:
            conn.close()
            if ime._gone is not None:  # `unavailable` came and the connection was closed on it
                raise Unavailable(ime._gone) from None
            raise Unavailable(f"the Wayland compositor did not answer: {e or 'timed out'}") from None
        except Unavailable:
            conn.close()
            raise
        if ime._gone is not None:
            conn.close()
            raise Unavailable(ime._gone)
        conn.on_closed = ime._lost
        ime._opened = True
        log.info("listend is the Wayland input method of this seat")
        if ime.field is not None:  # a field had focus already: the host hears of it once it has the method
            ime._loop.call_soon(ime._announce)
        return ime

    def _announce(self) -> None:
        if self.field is not None and self._gone is None:
            self._host.activated(self.field)

    # -- what the field is told -------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._gone is None

    def show_preedit(self, text: str) -> bool:
        """Show ``text`` as the field's preedit, the cursor at its end ("" clears it)."""
        if not self._may_send():
            return False
        if text != self._preedit:
            self._change(_Change(preedit=_tail(text, MAX_TEXT_BYTES)))
            self._preedit = text
        return True

    def commit(self, text: str) -> bool:
        """Insert ``text`` at the cursor in place of the preedit (which is cleared)."""
        if not self._may_send() or not text:
            return False
        for chunk in _chunks(text, MAX_TEXT_BYTES):
            self._change(_Change(commit=chunk))
        self._preedit = ""
        self._forget_surrounding()
        return True

    def delete_before(self, expected: str) -> bool:
        """Delete ``expected`` just before the cursor, if :meth:`deletion_refused` finds no reason not to."""
        if self.deletion_refused(expected) is not None:
            return False
        self._change(_Change(delete_before=len(expected)))  # ASCII: as many bytes as characters
        self._preedit = ""
        self._forget_surrounding()
        return True

    def deletion_refused(self, expected: str) -> str | None:
        """Why :meth:`delete_before` would not delete ``expected`` now (None: it would), in words for the user."""
        if not expected:
            return "there is nothing to delete"
        if not self._may_send():
            return "no text field that listend may change has focus"
        assert self.field is not None
        if self.field.surrounding is None or self._queue:
            return "the text field does not say (yet) what is before the cursor"
        if not self.field.before_cursor or not self.field.before_cursor.endswith(expected):
            return "the text before the cursor is not what listend wrote"
        if not expected.isascii():
            # The protocol counts bytes; GTK 4.8 (Debian 12) counts characters, and would delete more than
            # asked where the text has a non-ASCII letter. In ASCII the two counts agree.
            return "text with accents or other non-ASCII letters cannot be deleted safely in every application"
        return None

    async def sync(self) -> None:
        """Wait until the compositor has read every request sent so far (and sent what it had before)."""
        if self._gone is None:
            await self._conn.roundtrip_async()

    def close(self) -> None:
        """Send what waits, clear our preedit and stop being the seat's input method; the connection ends."""
        self._stop_waiting()
        if self._gone is None and self._im:
            if self.field is not None:
                # Dictation is over: what waited goes now rather than never (a field that is busy
                # this very moment may drop it; the app counts it unconfirmed or sees it confirmed).
                for change in self._queue:
                    self._send_change(change)
                if self._preedit or (self._queue and self._queue[-1].preedit):
                    self._send_change(_Change())
                self._stop_waiting()
            self._conn.send(message(self._im, _DESTROY))
        self._queue.clear()
        if self._gone is None:
            self._gone = "closed"
        self._conn.on_closed = None
        self._conn.close()
        self.field = None

    # -- internals --------------------------------------------------------------------------------

    def _may_send(self) -> bool:
        return self._gone is None and self.field is not None and not self.field.private

    def _change(self, change: _Change) -> None:
        if self._waiting is None and not self._queue:
            self._send_change(change)
            return
        last = self._queue[-1] if self._queue else None
        if last is not None and last.commit is None and not last.delete_before:
            self._queue[-1] = change  # a preedit that waited is replaced by whatever follows it
            return
        if last is not None and change.commit is None and not change.delete_before:
            last.preedit = change.preedit  # shown with the queued commit, in the same change
            return
        self._queue.append(change)

    def _send_change(self, change: _Change) -> None:
        if change.delete_before:
            self._conn.send(message(self._im, _DELETE_SURROUNDING_TEXT, uint(change.delete_before), uint(0)))
        if change.commit is not None:
            self._conn.send(message(self._im, _COMMIT_STRING, string(change.commit)))
        length = len(change.preedit)
        self._conn.send(message(self._im, _SET_PREEDIT_STRING, string(change.preedit), int32(length), int32(length)))
        self._conn.send(message(self._im, _COMMIT, uint(self._dones)))
        self._stop_waiting()
        if self._loop is not None:
            self._waiting = self._loop.call_later(self.answer_wait_s, self._answered)

    def _answered(self) -> None:
        """The field answered our last change (or did not in time): the next one may go."""
        self._stop_waiting()
        if self._queue and self._may_send():
            self._send_change(self._queue.pop(0))

    def _stop_waiting(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None

    def _drop_queue(self, reason: str) -> None:
        """The field the queue was for is gone: commits in it go back to the host, preedits vanish."""
        self._stop_waiting()
        undelivered = "".join(change.text for change in self._queue)
        self._queue.clear()
        if undelivered and self._opened:
            self._host.undelivered(undelivered, reason)

    def _forget_surrounding(self) -> None:
        # What the field reported before our change is no longer its text; it reports anew (or never).
        if self.field is not None and self.field.surrounding is not None:
            self.field = replace(self.field, surrounding=None)

    def _on_event(self, msg: Message) -> None:
        if self._gone is not None:
            return
        args = msg.args()
        pending = self._pending
        if msg.opcode == _ACTIVATE:
            # Activation resets all state of the previous field; what follows until `done` describes the new one.
            self._pending = _Pending(active=True, activated=True)
        elif msg.opcode == _DEACTIVATE:
            pending.active = False
        elif msg.opcode == _SURROUNDING_TEXT:
            text, cursor, anchor = args.string(), args.uint(), args.uint()
            pending.surrounding = Surrounding(text, min(cursor, len(text)), min(anchor, len(text)))
        elif msg.opcode == _TEXT_CHANGE_CAUSE:
            pending.cause = args.uint()
        elif msg.opcode == _CONTENT_TYPE:
            pending.hint, pending.purpose = args.uint(), args.uint()
        elif msg.opcode == _DONE:
            self._dones += 1
            self._done()
        elif msg.opcode == _UNAVAILABLE:
            self._unavailable("another input method holds this seat" if not self._dones else "the seat went away")

    def _done(self) -> None:
        pending = self._pending
        fresh = pending.activated
        pending.activated = False
        if not pending.active or fresh:
            self._drop_queue("the field lost focus before the text could be sent")
        if not pending.active:
            pending.surrounding, pending.cause = None, 0
            was_active, self.field, self._preedit = self.field is not None, None, ""
            if was_active and self._opened:
                self._host.deactivated()
            return
        if fresh:
            self._activations += 1
            self._preedit = ""  # a new field shows nothing of ours
        self.field = Field(
            activation=self._activations,
            purpose=_purpose(pending.purpose),
            hint=Hint(pending.hint),
            surrounding=pending.surrounding,
            cause=ChangeCause.OTHER if pending.cause else ChangeCause.INPUT_METHOD,
        )
        # Surrounding text and change cause last one `done`; the content type stays until changed.
        pending.surrounding, pending.cause = None, 0
        if self.field.private:
            self._drop_queue("the field is a password or PIN field")
        elif self._waiting is not None:
            self._answered()  # before the host hears of it: what it sends now goes after what waited
        if self._waiting is not None and self.field.surrounding is not None:
            # A change of ours is on its way: the field reported its text from before it, which confirms nothing.
            self.field = replace(self.field, surrounding=None)
        if not self._opened:
            return  # open() has not returned yet: the host hears of the field after it has
        if fresh:
            self._host.activated(self.field)
        else:
            self._host.changed(self.field)

    def _unavailable(self, reason: str) -> None:
        if self._gone is not None:
            return
        self._drop_queue(reason)
        self._gone = reason
        self.field = None
        self._conn.send(message(self._im, _DESTROY))  # inert now: the protocol asks us to destroy it
        self._conn.on_closed = None
        self._conn.close(reason)
        if self._opened:  # while opening, open() raises instead: said once either way
            self._host.unavailable(reason)

    def _lost(self, reason: str) -> None:
        if self._gone is not None:
            return
        self._drop_queue(reason)
        self._gone = reason
        self.field = None
        self._host.unavailable(reason)


def _chunks(text: str, limit: int) -> list[bytes]:
    """``text`` in UTF-8 pieces of at most ``limit`` bytes, never cutting a character."""
    out: list[bytes] = []
    piece = b""
    for char in text:
        data = char.encode()
        if len(piece) + len(data) > limit:
            out.append(piece)
            piece = b""
        piece += data
    if piece:
        out.append(piece)
    return out


def _tail(text: str, limit: int) -> bytes:
    """The end of ``text`` that fits ``limit`` bytes (a preedit shows its newest words at the cursor)."""
    data = text.encode()
    if len(data) <= limit:
        return data
    return data[-limit:].decode("utf-8", errors="ignore").encode()  # not half a character at the start
