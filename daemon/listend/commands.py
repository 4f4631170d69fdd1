"""Voice commands: which utterances are commands, and what a spoken mark does to the text before it.

A command is a *whole utterance*: the speech between two pauses, as the
segmenter cuts it. After the case and the punctuation the model added are
dropped, the utterance must be exactly one of the phrases in force ("New
line." is ``new line``; "a new line of products" is text). Inside running
dictation the same words are always text, so nothing the user meant as words
is ever turned into a symbol.

Recognition is plain text logic here, in the daemon: it announces what an
utterance meant with the segment, and the clients execute it as far as they
can verify (the input method deletes only text it committed itself). This
module holds:

- :class:`Action` — what a command does;
- :data:`PHRASES` — the phrase table per language (English, German, French);
- :class:`CommandTable` — the phrases in force (the table plus the user's
  phrases, less the actions turned off), and :meth:`CommandTable.recognise`;
- :func:`normalise` — an utterance as it is compared: case folded, the
  model's punctuation dropped, spaces collapsed;
- :func:`amend_ending` — a spoken mark ("question mark") applied to the end of
  the text before it.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Action(enum.Enum):
    """What a command utterance does; the value is its name in config, on the bus and in the history."""

    NEW_LINE = "new_line"
    NEW_PARAGRAPH = "new_paragraph"
    SCRATCH_THAT = "scratch_that"
    STOP_LISTENING = "stop_listening"
    PERIOD = "period"
    COMMA = "comma"
    QUESTION_MARK = "question_mark"
    EXCLAMATION_MARK = "exclamation_mark"
    COLON = "colon"

    @property
    def mark(self) -> str:
        """The punctuation mark a spoken-mark action puts at the end of the previous text ('' for others)."""
        return _MARKS.get(self, "")


_MARKS = {
    Action.PERIOD: ".",
    Action.COMMA: ",",
    Action.QUESTION_MARK: "?",
    Action.EXCLAMATION_MARK: "!",
    Action.COLON: ":",
}

# The phrases per language. A phrase is compared after normalise(), so write it in lower case, without
# punctuation; apostrophes and hyphens inside words are kept by normalise() and must be written here as said
# ("arrête d'écouter"). Several phrases may name one action; the first is the one shown to the user.
PHRASES: Mapping[str, Mapping[Action, tuple[str, ...]]] = {
    "en": {
        Action.NEW_LINE: ("new line", "newline"),
        Action.NEW_PARAGRAPH: ("new paragraph",),
        Action.SCRATCH_THAT: ("scratch that", "delete that"),
        Action.STOP_LISTENING: ("stop listening",),
        Action.PERIOD: ("period", "full stop"),
        Action.COMMA: ("comma",),
        Action.QUESTION_MARK: ("question mark",),
        Action.EXCLAMATION_MARK: ("exclamation mark", "exclamation point"),
        Action.COLON: ("colon",),
    },
    "de": {
        Action.NEW_LINE: ("neue zeile",),
        Action.NEW_PARAGRAPH: ("neuer absatz",),
        Action.SCRATCH_THAT: ("streich das", "lösch das"),
        Action.STOP_LISTENING: ("zuhören beenden",),
        Action.PERIOD: ("punkt",),
        Action.COMMA: ("komma",),
        Action.QUESTION_MARK: ("fragezeichen",),
        Action.EXCLAMATION_MARK: ("ausrufezeichen",),
        Action.COLON: ("doppelpunkt",),
    },
    "fr": {
        Action.NEW_LINE: ("nouvelle ligne", "à la ligne"),
        Action.NEW_PARAGRAPH: ("nouveau paragraphe",),
        Action.SCRATCH_THAT: ("efface ça", "supprime ça"),
        Action.STOP_LISTENING: ("arrête d'écouter",),
        Action.PERIOD: ("point",),
        Action.COMMA: ("virgule",),
        Action.QUESTION_MARK: ("point d'interrogation",),
        Action.EXCLAMATION_MARK: ("point d'exclamation",),
        Action.COLON: ("deux points", "deux-points"),
    },
}

MAX_PHRASE_CHARS = 64  # a command is a few words; a longer "phrase" in a config is a mistake, said at load
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "`": "'"})
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """``text`` as commands are compared: case folded, the model's punctuation dropped, spaces collapsed.

    Apostrophes and hyphens between letters stay ("d'écouter", "deux-points"); every other punctuation or
    symbol character becomes a space. Unicode is composed first, so "à" typed or decoded either way is one
    character.
    """
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES).casefold()
    kept: list[str] = []
    for i, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category[0] in "LNM" or ch.isspace():
            kept.append(ch)
        elif ch in "'-" and 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha():
            kept.append(ch)
        else:
            kept.append(" ")
    return _SPACES.sub(" ", "".join(kept)).strip()


@dataclass(frozen=True)
class CommandTable:
    """The phrases in force: normalised phrase -> action, for the languages the user dictates in.

    Build it with :meth:`build`; it is immutable, so the daemon swaps a new
    table in when the settings change instead of editing one in place.
    """

    phrases: Mapping[str, Action]

    @classmethod
    def build(
        cls,
        languages: Iterable[str] = ("en",),
        *,
        extra: Mapping[Action, Iterable[str]] | None = None,
        disabled: Iterable[Action] = (),
    ) -> CommandTable:
        """The built-in phrases of ``languages`` plus ``extra``, without the ``disabled`` actions.

        A language without a table contributes nothing (its users add their
        own phrases through ``extra``). Raises ``ValueError`` naming the phrase
        when a user's phrase is empty, too long, or already means another
        action.
        """
        off = set(disabled)
        table: dict[str, Action] = {}
        for language in languages:
            for action, said in PHRASES.get(language, {}).items():
                if action not in off:
                    for phrase in said:
                        table.setdefault(normalise(phrase), action)
        for action, users in (extra or {}).items():
            if action in off:
                continue
            for phrase in users:
                key = normalise(phrase)
                if not key or len(phrase) > MAX_PHRASE_CHARS:
                    raise ValueError(
                        f"command phrase {phrase[:MAX_PHRASE_CHARS]!r} must be 1-{MAX_PHRASE_CHARS} characters"
                    )
                if table.get(key, action) is not action:
                    raise ValueError(f"command phrase {phrase!r} already means {table[key].value}")
                table[key] = action
        return cls(table)

    def recognise(self, text: str) -> Action | None:
        """The action ``text`` means when the whole utterance is a command phrase, else None (it is text)."""
        if len(text) > 4 * MAX_PHRASE_CHARS:  # cheap: a long utterance is dictation
            return None
        said = normalise(text)
        return self.phrases.get(said) or self.phrases.get(_repeated_unit(said))

    def said(self, action: Action) -> list[str]:
        """The phrases that mean ``action``, in table order (for ``listenctl commands`` and the tray)."""
        return [phrase for phrase, meant in self.phrases.items() if meant is action]


def _repeated_unit(said: str) -> str:
    """The phrase ``said`` repeats back to back ("stop listening stop listening"), else "".

    Whisper writes a short command it hears alone twice now and then ("Stop listening. Stop listening.",
    measured in bench/commands.py); a user who repeats a command in one breath means it once as well. It acts
    once -- for "scratch that" the smaller deletion -- and two different phrases stay text ("Dot, New Line.").
    """
    words = said.split()
    for size in range(1, len(words) // 2 + 1):
        if len(words) % size == 0 and words[:size] * (len(words) // size) == words:
            return " ".join(words[:size])
    return ""


_ENDING_MARKS = ".,!?:;…"


def amend_ending(text: str, mark: str) -> str:
    """``text`` with its final punctuation replaced by ``mark`` ("Is it ready." + "?" -> "Is it ready?").

    Text ending in a word gets the mark appended. Trailing spaces are kept
    after the mark so that what follows is spaced as before. Empty text stays
    empty: a mark said first has nothing to amend.
    """
    body = text.rstrip()
    if not body:
        return text
    tail = text[len(body) :]
    return body.rstrip(_ENDING_MARKS) + mark + tail


MAX_SESSION_TEXTS = 1000  # text segments a session remembers as targets; "scratch that" walks back at most this far


class CommandSession:
    """What each utterance of one dictation session means, in segment order: text, or a command and its target.

    The target of ``scratch_that`` is the newest text segment of the session
    not already scratched (said again, it walks back one more); the target of
    a spoken mark is the newest such text segment; other commands act on no
    segment (target 0). Commands are never targets. Not thread-safe: the
    commit stage calls it under its lock, in id order.
    """

    def __init__(self) -> None:
        self._texts: list[int] = []  # ids of the session's text segments still standing, oldest first
        self._said: dict[int, str] = {}  # their text as it stands now (a mark amends it)

    def reset(self) -> None:
        """A new dictation session: earlier segments are no longer targets."""
        self._texts.clear()
        self._said.clear()

    def amended(self, seg_id: int) -> str:
        """The text of segment ``seg_id`` as it stands now (after the marks said since), '' if unknown."""
        return self._said.get(seg_id, "")

    def meaning(
        self, seg_id: int, text: str, table: CommandTable, published: str | None = None
    ) -> tuple[Action | None, int]:
        """``(action, target)`` of segment ``seg_id`` with final ``text``; ``(None, 0)`` when it is text.

        ``published`` is the text as it goes out when it is text (after the
        replacements), the text a later mark amends; default ``text``.
        """
        action = table.recognise(text)
        if action is None:
            self._texts.append(seg_id)
            self._said[seg_id] = text if published is None else published
            if len(self._texts) > MAX_SESSION_TEXTS:
                self._said.pop(self._texts.pop(0), None)
            return None, 0
        if action is Action.SCRATCH_THAT:
            target = self._texts.pop() if self._texts else 0
            self._said.pop(target, None)
            return action, target
        if action.mark:
            target = self._texts[-1] if self._texts else 0
            if target:
                self._said[target] = amend_ending(self._said[target], action.mark)
            return action, target
        return action, 0


def command_label(action: str) -> str:
    """How a command is shown in a transcript: ``[new line]``."""
    return f"[{action.replace('_', ' ')}]"


_BREAKS = {Action.NEW_LINE.value: "\n", Action.NEW_PARAGRAPH.value: "\n\n"}


def as_meant(segments: Iterable[tuple[int, str, str, int]]) -> str:
    """The text of ``segments`` as the user meant it: ``(id, text, action, target)`` each, in id order.

    Scratched segments are left out, spoken marks amend the ending of their
    target, new line / new paragraph become line breaks, other commands add
    nothing. Text segments are joined by one space (none after a break).
    """
    pieces: dict[int, str] = {}  # id -> text, or a line break under the command's own id
    for seg_id, text, action, target in segments:
        if not action:
            pieces[seg_id] = text.strip()
        elif action in _BREAKS:
            pieces[seg_id] = _BREAKS[action]
        elif action == Action.SCRATCH_THAT.value:
            pieces.pop(target, None)
        else:
            try:
                mark = Action(action).mark
            except ValueError:  # an action of a newer daemon: it adds nothing here
                continue
            if mark and target in pieces and pieces[target] not in _BREAKS.values():
                pieces[target] = amend_ending(pieces[target], mark)
    out = ""
    for piece in pieces.values():
        if piece in _BREAKS.values():
            out = out.rstrip(" ") + piece
        elif piece:
            out += ("" if not out or out.endswith("\n") else " ") + piece
    return out
