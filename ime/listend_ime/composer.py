"""What the input method shows and commits: plain logic, no bus, no threads.

listend's events come in (a partial, the final text of a segment, a
retraction), and so do the input context's (focus, surrounding text). Out come
*effects* for the engine to carry out: show a preedit, commit text, or put
text on the clipboard when it cannot go where it was spoken.

The rules:

- **Preedit is live text.** Every segment without final text yet shows its
  newest partial, in id order, underlined at the cursor; it is replaced as it
  changes and never committed.
- **Final text is committed once**, in id order, in place of its segment's
  preedit, with the spacing and capitals a careful typist would use
  (:mod:`spacing`).
- **Text goes to the field it was spoken into.** A segment belongs to the field
  that had focus when its first word was shown. If that field has focus again
  when its text is final, it is committed there; if another field has focus
  (or none, for more than :data:`FOCUS_GRACE_S`), the text goes to the
  clipboard and the user is told -- never silently nowhere.
- **Delivery is confirmed where the field can say so.** A field that reports
  the text around the cursor (GTK and Qt do) confirms a commit when the text
  before the cursor ends with it; a field that cannot leaves it unconfirmed.
- **Commands are executed, never typed** (the daemon announces them with the
  segment; :mod:`listend.commands`), in id order like any final. "New line"
  and "new paragraph" are line breaks committed at the start of the next
  text in that field (shown in its preedit; a commit of a lone "\n" is the
  Enter key to WebKitGTK, which submits a single-line input's form); the next
  segment starts a line: a capital, no space. Breaks said last, with no text
  after them before dictation ends, are dropped. "Scratch that" and a spoken mark only
  change text listend committed into this field, and only when the field's
  own report of the text before the cursor (with the keys typed since) ends
  with exactly that text: "scratch that" deletes it, a mark replaces its
  final punctuation. Otherwise nothing in the field changes and the refusal is
  counted and said (the user typed, clicked, or the field reports nothing).
  A segment still shown as preedit when it is scratched is simply dropped.
- **Password and PIN fields are never dictated into.** While such a field
  has focus nothing is shown there, and what is spoken there is committed
  nowhere and put on no clipboard (it stays in listend's history); the user
  is told once that dictation is paused there. Focus leaving the field ends
  the pause.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from listend.commands import Action, amend_ending
from listend.ids import SeenIds

from .spacing import clipboard_text, french_marks, join, typography

KEEP_BEFORE = 4096  # characters of the text before the cursor kept per field (a field may report megabytes)
KEEP_FIELDS = 64  # fields remembered (the focused one always)
KEEP_RECENT = 32  # segments committed per field that "scratch that" and a spoken mark may still act on
FOCUS_GRACE_S = 2.0  # a final waits this long for a field to have focus (switching windows takes a moment)
CONFIRM_WITHIN_S = 3.0  # a commit not seen in the field's surrounding text by then counts as unconfirmed
# A new field whose content type may still follow its focus (ibus-daemon sends it after FocusIn) gets nothing
# until it comes or a tick this long after the focus (a tick a moment after it may fall between the two).
TYPE_WAIT_S = 0.1


@dataclass(frozen=True)
class ShowPreedit:
    text: str


@dataclass(frozen=True)
class TypeText:
    """Commit ``text`` into the focused field (IBus's "commit"; not the daemon's commit of a segment)."""

    text: str
    seg_id: int


@dataclass(frozen=True)
class ToClipboard:
    text: str
    reason: str


@dataclass(frozen=True)
class DeleteBefore:
    """Delete the ``count`` characters before the cursor of the focused field (IBus's delete-surrounding-text).

    ``text`` is what those characters are, as the field last showed them (a
    Wayland field checks it once more before it deletes).
    """

    count: int
    seg_id: int
    text: str = ""


@dataclass(frozen=True)
class Refused:
    """A command was not carried out, to keep the user's text safe: ``reason`` says why (the user is told)."""

    reason: str
    seg_id: int


@dataclass(frozen=True)
class Paused:
    """A password or PIN field has focus and speech came: nothing is delivered there (the user is told, once)."""

    reason: str


Effect = ShowPreedit | TypeText | ToClipboard | DeleteBefore | Refused | Paused

PAUSED_REASON = "a password or PIN field has focus"

KNOWN_ACTIONS = frozenset(action.value for action in Action)
LINE_BREAKS = {Action.NEW_LINE.value: "\n", Action.NEW_PARAGRAPH.value: "\n\n"}


@dataclass
class DeliveryCounts:
    delivered: int = 0  # committed, and the field shows it
    unconfirmed: int = 0  # committed; the field could not (or did not) show it
    failed: int = 0  # not committed: it went to the clipboard
    refused: int = 0  # commands not carried out because the field could not show they were safe
    withheld: int = 0  # segments spoken into a password or PIN field: delivered nowhere


@dataclass
class _Segment:
    text: str = ""
    context: str | None = None  # the field it belongs to (where its first word was shown)
    final: str | None = None
    final_at: float = 0.0
    command: tuple[str, int] | None = None  # (action, target) when the segment is a command, not text
    # Spoken while its field was known to be a password or PIN field: delivered nowhere, ever (a field that
    # says later that it is not one cannot bring it back onto a clipboard).
    private: bool = False
    language: str | None = None  # the language in force when its final came (its spacing and capitals)


@dataclass
class _Field:
    surrounding: bool = False  # it reports the text around the cursor
    before: str | None = None  # the text before the cursor, as last reported or as we left it
    # The field's own last report of the text before the cursor, with the keys typed since; None when not
    # known now (a commit not reported back yet, a click, a key whose effect is unknown). Deletions check it.
    reported: str | None = None
    recent: dict[int, str] = field(default_factory=dict)  # seg id -> the text listend committed here for it
    breaks: str = ""  # line breaks said, committed with the next text (see _execute)
    private: bool = False  # a password or PIN field: nothing is shown, committed or copied for it

    def before_next(self) -> str | None:
        """The text the next segment follows: what is before the cursor and the line breaks still to come."""
        if self.before is None and not self.breaks:
            return None
        return (self.before or "") + self.breaks


@dataclass
class _Awaiting:
    text: str
    context: str
    deadline: float


class Composer:
    """The input method's state. Call from one thread; every method returns the effects to carry out."""

    def __init__(self) -> None:
        self._segments: dict[int, _Segment] = {}  # ids without a committed final, in id order
        self._done = SeenIds()  # committed or gone: never committed twice (bounded, like any client's)
        self.focus: str | None = None
        self._blurred_at = 0.0
        self._fields: dict[str, _Field] = {}
        self._awaiting: list[_Awaiting] = []
        self.counts = DeliveryCounts()
        self._shown = ""
        # The daemon's Language (announced before the finals decoded in it): the rules of spacing and capitals
        # for the finals that come from now on and for the preedit (spacing.typography). None: English.
        self.language: str | None = None
        self._paused_told = False  # the user was told that dictation is paused in the focused (private) field
        # The focused field, new, whose content type may still come (a password field's): nothing is committed,
        # shown or handed on until it does or a tick after TYPE_WAIT_S; and when it got focus.
        self._untyped: tuple[str, float] | None = None

    # -- listend's events ------------------------------------------------------------------------

    def partial(self, seg_id: int, text: str, now: float) -> list[Effect]:
        if seg_id in self._done:
            return []
        segment = self._segment(seg_id)
        segment.text = text
        return self._settle(now)

    def final(self, seg_id: int, text: str, now: float) -> list[Effect]:
        if seg_id in self._done:
            return []  # nothing is committed twice
        segment = self._segment(seg_id)
        segment.final, segment.final_at = text, now
        segment.language = self.language
        return self._settle(now)

    def command(self, seg_id: int, action: str, target: int, now: float) -> list[Effect]:
        """Segment ``seg_id`` is a command (its final text is what was said, never typed); ``target``: what it acts on.

        A "scratch that" whose target is still shown (no final committed yet)
        drops it: it is never committed.
        """
        if seg_id in self._done:
            return []
        if action not in KNOWN_ACTIONS:
            return []  # an action of a newer daemon: the segment stays text (docs/dbus.md)
        segment = self._segment(seg_id)
        segment.command = (action, target)
        if action == Action.SCRATCH_THAT.value and target != seg_id and target in self._segments:
            del self._segments[target]
            self._done.first_time(target)
            segment.command = (action, 0)  # done: nothing of it reached a field
            segment.text = ""
        return self._settle(now)

    def retracted(self, seg_id: int, now: float) -> list[Effect]:
        if seg_id in self._segments and self._segments[seg_id].final is None:
            del self._segments[seg_id]
            self._done.first_time(seg_id)
        return self._settle(now)

    # -- the input context -------------------------------------------------------------------------

    def focus_in(
        self, context: str, surrounding: bool, now: float, private: bool | None = None, type_follows: bool = False
    ) -> list[Effect]:
        """``context`` has focus; ``private``: it is a password or PIN field (None: as it said before).

        ``type_follows``: ``private`` is only a guess and the field's content
        type may still come (IBus sends it after the focus): nothing is
        delivered there until :meth:`content_type` or a :meth:`tick` (a
        password field must not get, even for a moment, what was said before).
        """
        if context != self.focus:
            self._paused_told = False
        self.focus = context
        self._untyped = (context, now) if type_follows else None
        fld = self._field(context)
        fld.surrounding = fld.surrounding or surrounding
        if private is not None:
            self._set_private(context, fld, private)
        self._shown = ""  # a field that gets focus shows no preedit of ours until we send one
        return self._settle(now)

    def focus_out(self, context: str | None, now: float) -> list[Effect]:
        if context is None or context == self.focus:
            self.focus = None
            self._untyped = None
            self._blurred_at = now
            self._shown = ""  # the field dropped our preedit (PREEDIT_CLEAR)
            self._paused_told = False
        return []

    def content_type(self, context: str, private: bool, now: float) -> list[Effect]:
        """The field said what it is for: ``private`` is a password or PIN field (nothing goes there)."""
        fld = self._field(context)
        was_untyped = self._untyped is not None and self._untyped[0] == context
        if was_untyped:
            self._untyped = None  # what it is is known now: what waited for it is delivered (or withheld)
        if fld.private == private and not was_untyped:
            return []
        self._set_private(context, fld, private)
        return self._settle(now) if context == self.focus else []

    def knows(self, context: str) -> bool:
        """Whether ``context`` is a field this composer remembers (its purpose among what it knows)."""
        return context in self._fields

    @property
    def paused(self) -> bool:
        """The focused field is a password or PIN field: dictation delivers nothing now."""
        return self.focus is not None and self._field_is_private(self.focus)

    def capabilities(self, context: str, surrounding: bool) -> None:
        self._field(context).surrounding = surrounding

    def reset(self, context: str) -> None:
        """The field reset its input state (a click, a programmatic change): the cursor may have moved."""
        self._field(context).reported = None

    def typed(self, context: str, text: str | None) -> None:
        """The user typed ``text`` into ``context`` (a key we passed through); None: a key whose effect is unknown.

        A field reports the text around the cursor *before* the key is
        handled, so what the key did is added here: Enter starts a new line
        (no space, a capital), BackSpace takes a character back. A key whose
        effect is unknown (an arrow, a shortcut) leaves the last report: the
        field reports again with the next key, and after every commit.
        """
        fld = self._field(context)
        if text is None:
            fld.reported = None  # the cursor may have moved: nothing is deleted until the field reports again
            return
        if fld.reported is not None:
            fld.reported = fld.reported[:-1] if text == "\b" else fld.reported + text
        if fld.before is not None:
            fld.before = (fld.before[:-1] if text == "\b" else fld.before + text)[-KEEP_BEFORE:]
        elif text == "\n":
            fld.before = "\n"

    def surrounding_text(self, context: str, before: str, now: float) -> list[Effect]:
        """The field reports the text before the cursor: remember it, and confirm what it shows."""
        fld = self._field(context)
        fld.surrounding = True
        fld.before = fld.reported = before[-KEEP_BEFORE:]
        seen = _normal(before)
        for waiting in list(self._awaiting):
            if waiting.context == context and seen.endswith(_normal(waiting.text)):
                self._awaiting.remove(waiting)
                self.counts.delivered += 1
        return self._confirm_and_settle(now)  # not a tick: a report does not tell what the field is

    def undelivered(self, text: str) -> None:
        """Committed ``text`` never reached its field (it lost focus first): it is failed, not awaiting confirmation.

        ``text`` is the last commits joined (with the line breaks committed
        before them): exactly those, newest first, are no longer awaited; an
        earlier commit whose text merely occurs in it still is.
        """
        rest = text
        for waiting in reversed(list(self._awaiting)):
            if not rest.strip("\n"):
                break
            if waiting.text and rest.endswith(waiting.text):
                self._awaiting.remove(waiting)
                rest = rest[: len(rest) - len(waiting.text)].rstrip("\n")  # and the breaks committed before it
        self.counts.failed += 1

    def tick(self, now: float) -> list[Effect]:
        """Time passes: unconfirmed commits are counted, finals that waited too long for focus are handed on."""
        if self._untyped is not None and now - self._untyped[1] >= TYPE_WAIT_S:
            self._untyped = None  # no content type came: the field is what it was taken for
        return self._confirm_and_settle(now)

    def _confirm_and_settle(self, now: float) -> list[Effect]:
        for waiting in list(self._awaiting):
            if now >= waiting.deadline:
                self._awaiting.remove(waiting)
                self.counts.unconfirmed += 1
        return self._settle(now)

    def flush(self, reason: str = "the input method stopped before it could type it") -> list[Effect]:
        """The input method lets go: what has final text and was not committed goes to the clipboard."""
        for fld in self._fields.values():
            fld.breaks = ""  # said last, nothing after them: a lone break would be an Enter key (see _execute)
        texts = []
        for segment in self._segments.values():
            if segment.private:
                self.counts.withheld += _withheld(segment)
            else:
                texts.append(_as_typed(segment))
        texts = [text for text in texts if text]
        self._segments.clear()
        self.counts.unconfirmed += len(self._awaiting)
        self._awaiting.clear()
        if not texts:
            return []
        self.counts.failed += len(texts)
        return [ToClipboard(clipboard_text(texts), reason)]

    def pending_ids(self) -> set[int]:
        """Segments shown (or known) without final text yet (not those spoken into a password or PIN field)."""
        return {seg_id for seg_id, segment in self._segments.items() if segment.final is None and not segment.private}

    @property
    def pending(self) -> bool:
        """Some segment has text not yet committed (or not yet final)."""
        return bool(self._segments)

    # -- internals -----------------------------------------------------------------------------------

    def _field_is_private(self, context: str) -> bool:
        fld = self._fields.get(context)
        return fld is not None and fld.private

    def _set_private(self, context: str, fld: _Field, private: bool) -> None:
        fld.private = private
        if private:
            for segment in self._segments.values():
                if segment.context == context:
                    segment.private = True

    def _field(self, context: str) -> _Field:
        fld = self._fields.get(context)
        if fld is None:
            fld = self._fields[context] = _Field()
            while len(self._fields) > KEEP_FIELDS:
                oldest = next(c for c in self._fields if c != self.focus and c != context)
                del self._fields[oldest]
        return fld

    def _segment(self, seg_id: int) -> _Segment:
        segment = self._segments.get(seg_id)
        if segment is None:
            segment = self._segments[seg_id] = _Segment(context=self.focus)
            self._segments = dict(sorted(self._segments.items()))
        if segment.context is None:
            segment.context = self.focus
        if segment.context is not None and self._field_is_private(segment.context):
            segment.private = True
        return segment

    def _settle(self, now: float) -> list[Effect]:
        """Commit (or hand on) the finals at the head of the order, then show the rest as preedit."""
        effects: list[Effect] = []
        if self._untyped is not None:
            return effects  # the focused field may yet say it is a password field
        for seg_id in list(self._segments):
            segment = self._segments[seg_id]
            if segment.final is None:
                break  # finals are committed in id order
            if segment.context is None:
                segment.context = self.focus
                segment.private = self.paused
            if segment.private:
                self.counts.withheld += _withheld(segment)  # it stays in the history only
            elif self.focus is not None and segment.context == self.focus:
                if segment.command is not None:
                    effects.extend(self._execute(seg_id, *segment.command))
                elif segment.final:
                    effects.extend(self._commit(seg_id, segment.final, now))
            elif self.focus is None and now - max(self._blurred_at, segment.final_at) < FOCUS_GRACE_S:
                break  # no field has focus for a moment: wait for one
            elif segment.command is not None:
                effects.extend(self._elsewhere(seg_id, *segment.command))
            elif segment.final:
                reason = (
                    "focus moved to another field before the text was final"
                    if self.focus is not None
                    else "no text field had focus when the text was final"
                )
                self.counts.failed += 1
                effects.append(ToClipboard(segment.final, reason))
            del self._segments[seg_id]
            self._done.first_time(seg_id)
        if self.paused and not self._paused_told and any(s.context == self.focus for s in self._segments.values()):
            self._paused_told = True
            effects.append(Paused(PAUSED_REASON))
        preedit = self._preedit()
        if preedit != self._shown:
            self._shown = preedit
            effects.append(ShowPreedit(preedit))
        return effects

    def _commit(self, seg_id: int, text: str, now: float) -> list[Effect]:
        assert self.focus is not None
        fld = self._field(self.focus)
        segment = self._segments.get(seg_id)
        committed = join(fld.before_next(), text, segment.language if segment is not None else self.language)
        if not committed:
            return [ShowPreedit("")]
        typed, fld.breaks = fld.breaks + committed, ""
        fld.before = ((fld.before or "") + typed)[-KEEP_BEFORE:]
        fld.reported = None  # until the field reports the text with the commit in it
        self._remember(fld, seg_id, committed)  # the segment's own text: "scratch that" leaves the line break
        self._shown = ""  # committing replaces the preedit
        if fld.surrounding:
            self._awaiting.append(_Awaiting(committed, self.focus, now + CONFIRM_WITHIN_S))
        else:
            self.counts.unconfirmed += 1
        return [ShowPreedit(""), TypeText(typed, seg_id)]

    def _remember(self, fld: _Field, seg_id: int, committed: str) -> None:
        fld.recent[seg_id] = committed
        while len(fld.recent) > KEEP_RECENT:
            del fld.recent[next(iter(fld.recent))]

    def _execute(self, seg_id: int, action: str, target: int) -> list[Effect]:
        """Carry out a command in the focused field (where it was spoken), as far as the field shows it is safe."""
        assert self.focus is not None
        fld = self._field(self.focus)
        self._shown = ""  # the command's preedit (the words as said) goes
        if action in LINE_BREAKS:
            # Held and committed at the start of the next text: WebKitGTK takes a commit of "\n" alone for the
            # Enter key and submits a single-line input's form; with text after it, it is text.
            fld.breaks = (fld.breaks + LINE_BREAKS[action])[-KEEP_BEFORE:]
            return [ShowPreedit("")]
        mark = _mark(action)
        if action != Action.SCRATCH_THAT.value and not mark:
            return [ShowPreedit("")]  # stop listening (the daemon stops): nothing to type
        if target == 0:
            if action == Action.SCRATCH_THAT.value:
                return [ShowPreedit("")]  # what it took back was never committed (dropped as preedit) or nothing
            return [ShowPreedit(""), *self._refuse(seg_id, "there is no text before it to put the mark on")]
        committed = fld.recent.get(target)
        if committed is None:
            where = (
                "into another field"
                if any(target in f.recent for f in self._fields.values())
                else "to the clipboard, or is too far back"
            )
            return [ShowPreedit(""), *self._refuse(seg_id, f"the text it acts on went {where}")]
        if not fld.surrounding or fld.reported is None:
            unseen = "the field has not shown the text before the cursor since it last changed (a click, a key)"
            return [ShowPreedit(""), *self._refuse(seg_id, unseen)]
        if not fld.reported.endswith(committed):
            return [ShowPreedit(""), *self._refuse(seg_id, "the text before the cursor is not what listend typed")]
        if action == Action.SCRATCH_THAT.value:
            del fld.recent[target]
            fld.reported = fld.reported[: len(fld.reported) - len(committed)]
            fld.before = fld.reported
            return [ShowPreedit(""), DeleteBefore(len(committed), seg_id, committed)]
        amended = amend_ending(committed, mark)
        if typography(self.language).spaced_marks:  # French: "soir ?" (see spacing.FRENCH_SPACE)
            amended = french_marks(amended)
        keep = _common_prefix(committed, amended)
        fld.recent[target] = amended
        fld.reported = fld.reported[: len(fld.reported) - len(committed)] + amended
        fld.before = fld.reported
        effects: list[Effect] = [ShowPreedit("")]
        if len(committed) > keep:
            effects.append(DeleteBefore(len(committed) - keep, seg_id, committed[keep:]))
        if amended[keep:]:
            effects.append(TypeText(amended[keep:], seg_id))
        return effects

    def _elsewhere(self, seg_id: int, action: str, target: int) -> list[Effect]:
        """A command whose field has lost focus: line breaks join the clipboard text; the rest is refused."""
        if action in LINE_BREAKS:
            self.counts.failed += 1
            return [ToClipboard(LINE_BREAKS[action], "focus moved to another field before the line break")]
        if action == Action.SCRATCH_THAT.value and target == 0:
            return []
        if action == Action.SCRATCH_THAT.value or _mark(action):
            return self._refuse(seg_id, "focus moved away from the field it was said in")
        return []

    def _refuse(self, seg_id: int, reason: str) -> list[Effect]:
        self.counts.refused += 1
        return [Refused(reason, seg_id)]

    def _preedit(self) -> str:
        if self.focus is None or self.paused:
            return ""
        texts = [
            s.text for s in self._segments.values() if s.final is None and s.text and s.context in (None, self.focus)
        ]
        if not texts:
            return ""
        fld = self._fields.get(self.focus, _Field())
        return fld.breaks + join(fld.before_next(), " ".join(texts), self.language)


def _as_typed(segment: _Segment) -> str:
    """What a segment with final text puts in the text: its words, a command's line breaks, or nothing."""
    if segment.command is not None:
        return LINE_BREAKS.get(segment.command[0], "")
    return segment.final or ""


def _withheld(segment: _Segment) -> int:
    """1 when a segment spoken into a password or PIN field counts as withheld: words (or words to come), no
    command and no empty final."""
    return 1 if segment.command is None and segment.final != "" else 0


def _mark(action: str) -> str:
    try:
        return Action(action).mark
    except ValueError:  # an action of a newer daemon: not executed
        return ""


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _normal(text: str) -> str:
    return " ".join(text.split())
